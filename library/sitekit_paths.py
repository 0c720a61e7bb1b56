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
  - Changes nothing.
version_added: "0.1.0"
author: sitekit
options:
  paths:
    description: Absolute paths, in any order; a path given twice is reported once.
    type: list
    elements: path
    required: true
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
paths:
  description: Each path given, in the order given, with what it is.
  returned: always
  type: dict
  sample:
    /cvmfs: {exists: true, isdir: true, isreg: false, executable: true}
    /usr/bin/classad_eval: {exists: false, isdir: false, isreg: false, executable: false}
"""

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


def main():
    module = AnsibleModule(
        argument_spec={"paths": {"type": "list", "elements": "path", "required": True}},
        supports_check_mode=True,
    )
    relative = [p for p in module.params["paths"] if not os.path.isabs(p)]
    if relative:
        module.fail_json(msg=f"sitekit_paths: paths must be absolute; fix {relative}")
    module.exit_json(changed=False, paths={p: describe(p) for p in module.params["paths"]})


if __name__ == "__main__":
    main()
