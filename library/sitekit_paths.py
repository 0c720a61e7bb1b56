#!/usr/bin/python
"""Report what several paths on the node are, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sitekit_paths
short_description: Report what several paths on the node are, in one module run
description:
  - For each path, whether it exists, whether it is a directory or a regular file, and whether it is executable,
    following symbolic links (a dangling link does not exist), as M(ansible.builtin.stat) with C(follow=true) reports
    for one path.
  - A role's checks of the node's paths (its binds' host paths, the commands it needs) are then one module run
    instead of one C(stat) per path.
  - It also reads small text files (O(read)) and lists the paths that match glob patterns (O(globs)), so that what
    a role reads from the node before it decides is one module run.
  - Changes nothing.
version_added: "0.1.0"
author: sitekit
options:
  paths:
    description: Absolute paths, in any order; a path given twice is reported once.
    type: list
    elements: path
    default: []
  read:
    description:
      - Absolute paths of text files to return (RV(contents)), up to 1 MiB each; a file that does not exist is
        returned as null.
    type: list
    elements: path
    default: []
  globs:
    description: Absolute glob patterns (C(*), C(?), C([...])), each with the paths that match it (RV(matches)).
    type: list
    elements: path
    default: []
extends_documentation_fragment: [action_common_attributes, sitekit.read_only]
"""

EXAMPLES = r"""
- name: Find the host paths of the binds and the commands this role needs
  sitekit_paths:
    paths: [/cvmfs, /etc/grid-security, /usr/bin/classad_eval]
  register: __paths

- name: Refuse bind paths that do not exist
  ansible.builtin.assert:
    that: not __paths.paths['/etc/grid-security'].exists
"""

RETURN = r"""
contents:
  description: Each file of O(read), with its text (invalid UTF-8 replaced), or null where it does not exist.
  returned: always
  type: dict
  sample: {/etc/sysctl.d/90-sitekit-userns.conf: "user.max_user_namespaces = 15000\n"}
matches:
  description: Each pattern of O(globs), with the paths that match it, sorted.
  returned: always
  type: dict
  sample: {"/etc/systemd/system/*/90-sitekit.conf": [/etc/systemd/system/foo.service.d/90-sitekit.conf]}
paths:
  description: Each path given, in the order given, with what it is.
  returned: always
  type: dict
  sample:
    /cvmfs: {exists: true, isdir: true, isreg: false, executable: true}
    /usr/bin/classad_eval: {exists: false, isdir: false, isreg: false, executable: false}
"""

import glob  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def describe(path):
    """What the path is, following symbolic links."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return {"exists": False, "isdir": False, "isreg": False, "executable": False}
    return {
        "exists": True,
        "isdir": stat.S_ISDIR(mode),
        "isreg": stat.S_ISREG(mode),
        "executable": os.access(path, os.X_OK),
    }


# The most read() returns of one file: the files a role reads before it decides are a few lines.
READ_LIMIT = 1024 * 1024


def read_text(path):
    """The file's text, or None where it does not exist; raises OSError for any other failure (or a larger file)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(READ_LIMIT + 1)
    except FileNotFoundError:
        return None
    if len(data) > READ_LIMIT:
        raise OSError(f"larger than {READ_LIMIT} bytes")
    return data.decode("utf-8", errors="replace")


def main():
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "path", "default": []},
            "read": {"type": "list", "elements": "path", "default": []},
            "globs": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params
    for option in ("paths", "read", "globs"):
        relative = [p for p in params[option] if not os.path.isabs(p)]
        if relative:
            module.fail_json(msg=f"sitekit_paths: {option} must be absolute paths; fix {relative}")
    contents = {}
    for path in params["read"]:
        try:
            contents[path] = read_text(path)
        except OSError as exc:
            module.fail_json(msg=f"sitekit_paths: cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
    module.exit_json(
        changed=False,
        paths={p: describe(p) for p in params["paths"]},
        contents=contents,
        matches={pattern: sorted(glob.glob(pattern)) for pattern in params["globs"]},
    )


if __name__ == "__main__":
    main()
