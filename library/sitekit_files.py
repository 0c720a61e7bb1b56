#!/usr/bin/python
"""Ensure a set of files and directories in one module run: content, owner, group and mode, with check mode and diff."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sitekit_files
short_description: Ensure several files and directories (content, owner, group, mode) in one module run
description:
  - Ensures every entry of O(files) on the node in one module run, the way M(ansible.builtin.copy) (content
    rendered on the controller, for a template with P(ansible.builtin.template#lookup)) and M(ansible.builtin.file)
    (directories, absent files) each do for one path.
  - A role's files that one control covers and one handler follows go in one task; the node then runs one module
    instead of two per file (the copy action's C(stat) and its C(copy) or C(file)).
  - Entries are applied in order, so a directory listed before the files in it exists when they are written.
  - A file is written to a temporary file in its directory and renamed over the old one; O(files[].validate) runs on
    the temporary file first and a failure leaves the old file in place.
  - In check mode nothing is written; the result says what would change and the diff shows how.
version_added: "0.1.0"
author: sitekit
options:
  files:
    description: The paths to ensure, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path on the node.
        type: path
        required: true
      state:
        description:
          - V(file) a regular file with O(files[].content); V(directory) a directory (its parents are created);
            V(absent) no file there (a directory there is an error).
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: The file's content (required with O(files[].state=file)).
        type: str
      owner:
        description: The owning user.
        type: str
        default: root
      group:
        description: The owning group.
        type: str
        default: root
      mode:
        description: The permissions, an octal string. Default V(0644) for a file, V(0755) for a directory.
        type: str
      validate:
        description:
          - A command that must accept the new content before it replaces the old, V(%s) standing for the temporary
            file, as for M(ansible.builtin.copy). Not run in check mode, nor when the content is unchanged.
        type: str
      secret:
        description:
          - The content is a secret (a pool password). It is masked in the result, and the diff shows only that it
            differs.
        type: bool
        default: false
extends_documentation_fragment: [action_common_attributes, sitekit.changes]
notes:
  - The module's arguments are not echoed back in the result (only the paths), so that large contents travel once.
"""

EXAMPLES = r"""
- name: Ensure the configuration files hold the site's settings
  sitekit_files:
    files:
      - {path: /etc/cvmfs, state: directory}
      - path: /etc/cvmfs/default.local
        content: "{{ lookup('ansible.builtin.template', 'default.local.j2') }}"
      - path: /etc/condor/config.d/50-pool.conf
        content: "{{ lookup('ansible.builtin.template', 'pool.conf.j2') }}"
        validate: condor_config_val -root-config %s -summary
      - {path: /etc/profile.d/old.sh, state: absent}
  become: true
  notify: Apply the configuration
"""

RETURN = r"""
changed_paths:
  description: The paths that changed (in check mode, would change), in the order given.
  returned: always
  type: list
  elements: str
  sample: [/etc/cvmfs/default.local]
"""

import os  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# Larger contents are compared but not shown in the diff (the copy module's own limit).
DIFF_LIMIT = 104448


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _text(data, entry, side):
    if entry["secret"]:
        return f"(secret: the {side} one, not shown)\n" if data is not None else ""
    if data is None:
        return ""
    if len(data) > DIFF_LIMIT:
        return f"({len(data)} bytes: not shown)\n"
    return data.decode("utf-8", errors="replace")


def _attributes(module, entry, path, diff):
    """Owner, group and mode as the file module sets them; in check mode only compared. True when one differs."""
    args = module.load_file_common_arguments(
        {"path": path, "owner": entry["owner"], "group": entry["group"], "mode": entry["mode"]}, path=path
    )
    return module.set_fs_attributes_if_different(args, False, diff=diff, expand=False)


def _problem(module, entry, what):
    module.fail_json(
        msg=f"sitekit_files: {entry['path']}: {what}",
        changed=False,
        changed_paths=[],
        invocation={"module_args": {"files": [e["path"] for e in module.params["files"]]}},
    )


def ensure(module, entry, diffs):
    """Bring one entry to its state; return True when it changed (in check mode: would change)."""
    path, state = entry["path"], entry["state"]
    if state == "absent":
        if os.path.isdir(path) and not os.path.islink(path):
            _problem(module, entry, "is a directory; state=absent removes files only: remove it by hand")
        if not os.path.lexists(path):
            return False
        diffs.append(
            {"before_header": path, "after_header": path, "before": {"state": "file"}, "after": {"state": "absent"}}
        )
        if not module.check_mode:
            os.remove(path)
        return True

    changed = False
    if state == "directory":
        if os.path.lexists(path) and not os.path.isdir(path):
            _problem(module, entry, "exists and is not a directory: move it away, or correct the path")
        if not os.path.isdir(path):
            changed = True
            diffs.append(
                {
                    "before_header": path,
                    "after_header": path,
                    "before": {"state": "absent"},
                    "after": {"state": "directory"},
                }
            )
            if module.check_mode:
                return True
            os.makedirs(path)
    else:
        if os.path.isdir(path):
            _problem(module, entry, "is a directory, where a file is wanted: move it away, or correct the path")
        parent = os.path.dirname(path)
        wanted = entry["content"].encode("utf-8")
        before = _read(path)
        if before != wanted:
            changed = True
            diffs.append(
                {
                    "before_header": path,
                    "after_header": path,
                    "before": _text(before, entry, "node's"),
                    "after": _text(wanted, entry, "wanted"),
                }
            )
            if module.check_mode:
                # Nothing to compare owner and mode against while the file or its directory does not exist.
                if before is None:
                    return True
            else:
                if not os.path.isdir(parent):
                    _problem(
                        module, entry, f"its directory {parent} does not exist: list it first with state=directory"
                    )
                fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(path)}.")
                with os.fdopen(fd, "wb") as handle:
                    handle.write(wanted)
                if entry["validate"]:
                    if "%s" not in entry["validate"]:
                        os.remove(tmp)
                        _problem(module, entry, f"validate {entry['validate']!r} must contain %s (the file to check)")
                    rc, out, err = module.run_command(entry["validate"] % tmp)
                    if rc != 0:
                        os.remove(tmp)
                        _problem(
                            module,
                            entry,
                            f"the new content fails {entry['validate']!r} (rc {rc}): {(err or out).strip()}",
                        )
                module.atomic_move(tmp, path)
    attrs = {"before": {}, "after": {}}
    if _attributes(module, entry, path, attrs):
        changed = True
        if attrs["before"] or attrs["after"]:
            diffs.append(
                {"before_header": path, "after_header": path, "before": attrs["before"], "after": attrs["after"]}
            )
    return changed


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "path", "required": True},
                    "state": {"type": "str", "choices": ["file", "directory", "absent"], "default": "file"},
                    "content": {"type": "str"},
                    "owner": {"type": "str", "default": "root"},
                    "group": {"type": "str", "default": "root"},
                    "mode": {"type": "str"},
                    "validate": {"type": "str"},
                    "secret": {"type": "bool", "default": False},
                },
            }
        },
        supports_check_mode=True,
    )
    entries = module.params["files"]
    for entry in entries:
        if not os.path.isabs(entry["path"]):
            _problem(module, entry, "must be an absolute path")
        if entry["state"] == "file" and entry["content"] is None:
            _problem(module, entry, "content is required with state=file")
        if entry["secret"] and entry["content"]:
            module.no_log_values.add(entry["content"])
        entry["mode"] = entry["mode"] or ("0755" if entry["state"] == "directory" else "0644")
        try:
            int(entry["mode"], 8)
        except ValueError:
            _problem(module, entry, f"mode {entry['mode']!r} is not an octal string such as '0644'")
    changed, diffs = [], []
    for entry in entries:
        if ensure(module, entry, diffs):
            changed.append(entry["path"])
    result = {
        "changed": bool(changed),
        "changed_paths": changed,
        # Only the paths: the contents were sent once and need not travel back.
        "invocation": {"module_args": {"files": [e["path"] for e in entries]}},
    }
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
