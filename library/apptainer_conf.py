#!/usr/bin/python
"""Set keys of apptainer.conf in place, keeping the package's file and its comments."""

from __future__ import annotations

DOCUMENTATION = r"""
module: apptainer_conf
short_description: Set keys of apptainer.conf (or singularity.conf) in place
description:
  - Sets the given keys of Apptainer's configuration file and leaves every other line, the comments that
    document each key included, as the package shipped it.
  - Only keys the file itself documents (a header line C(# KEY NAME) with its type) are accepted, so a typo or a key of
    another Apptainer version fails before anything is written, naming the key.
  - A key given a list is written once per element, in order (C(bind path)); other keys once.
  - A key that is only present commented out is written right after the commented example.
version_added: "0.1.0"
author: sitekit
options:
  path:
    description: The configuration file.
    type: path
    default: /etc/apptainer/apptainer.conf
  settings:
    description:
      - Keys (lower case, as in the file) and their values. Booleans are written C(yes)/C(no); lists repeat the key;
        C(null) removes the key's active lines (Apptainer's built-in default applies).
    type: dict
    required: true
extends_documentation_fragment: [action_common_attributes, sitekit.changes]
"""

EXAMPLES = r"""
- name: Ensure apptainer.conf matches the site's settings
  apptainer_conf:
    settings:
      allow setuid: false
      mount slave: true
      bind path: [/etc/hosts, /etc/localtime, /cvmfs]
  become: true
  register: __apptainer_conf

- name: Show which keys changed (Apptainer reads the file at each launch; nothing to restart)
  ansible.builtin.debug:
    var: __apptainer_conf.changed_keys
"""

RETURN = r"""
changed_keys:
  description:
    - The keys whose lines changed (in check mode, would change).
  returned: always
  type: list
  elements: str
  sample: [allow setuid, bind path]
documented_keys:
  description: The keys the file documents.
  returned: always
  type: list
  elements: str
  sample: [allow setuid, max loop devices, bind path]
"""

import os  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

HEADER = re.compile(r"^#\s*([A-Z][A-Z0-9 _${}-]*[A-Z0-9}])\s*:\s*\[")
ACTIVE = re.compile(r"^\s*([a-z][a-z0-9 _-]*[a-z0-9])\s*=")


def documented_keys(lines):
    """Keys with a ``# KEY NAME: [TYPE]`` header, lower-cased, in file order.

    A header such as ``# ALLOW CONTAINER ${TYPE}: [BOOL]`` documents a family of keys: it is
    returned as ``allow container ${type}`` and matches ``allow container sif``.
    """
    keys = []
    for line in lines:
        match = HEADER.match(line)
        if match and match.group(1).lower() not in keys:
            keys.append(match.group(1).lower())
    return keys


def is_documented(key, keys):
    key = key.lower()
    for known in keys:
        if "${" in known:
            prefix = known.split("${", 1)[0]
            if key.startswith(prefix) and re.fullmatch(r"[a-z0-9_-]+", key[len(prefix) :]):
                return True
        elif key == known:
            return True
    return False


def render_value(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _active(key):
    return re.compile(r"^\s*" + re.escape(key) + r"\s*=", re.IGNORECASE)


def _commented(key):
    return re.compile(r"^\s*#\s*" + re.escape(key) + r"\s*=", re.IGNORECASE)


def _header(key):
    return re.compile(r"^#\s*" + re.escape(key) + r"\s*:\s*\[", re.IGNORECASE)


def apply_settings(text, settings):
    """Return (new text, changed keys). Raises ValueError for keys the file does not document."""
    lines = text.splitlines()
    known = documented_keys(lines)
    unknown = [k for k in settings if not is_documented(k, known)]
    if unknown:
        raise ValueError(
            f"{', '.join(repr(k) for k in unknown)}: not a key this file documents; documented keys: {', '.join(known)}"
        )
    changed = []
    for key, value in settings.items():
        values = [] if value is None else value if isinstance(value, list) else [value]
        wanted = [f"{key} = {render_value(v)}" for v in values]
        active = [i for i, line in enumerate(lines) if _active(key).match(line)]
        if [lines[i].strip() for i in active] == wanted:
            continue
        if active:
            at = active[0]
        else:
            commented = [i for i, line in enumerate(lines) if _commented(key).match(line)]
            if commented:
                at = commented[-1] + 1
            else:
                header = next((i for i, line in enumerate(lines) if _header(key).match(line)), None)
                if header is None:  # a key of a documented family (allow container <type>) with no line yet
                    family = key.rsplit(" ", 1)[0]
                    family_header = re.compile(r"^#\s*" + re.escape(family) + r"\s+\$\{", re.IGNORECASE)
                    header = next(i for i, line in enumerate(lines) if family_header.match(line))
                at = header + 1
                while at < len(lines) and lines[at].startswith("#"):
                    at += 1
        for i in reversed(active):
            del lines[i]
        lines[at:at] = wanted
        changed.append(key)
    return "\n".join(lines) + "\n", changed


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/apptainer/apptainer.conf"},
            "settings": {"type": "dict", "required": True},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    settings = module.params["settings"]
    for key, value in settings.items():
        values = [] if value is None else value if isinstance(value, list) else [value]
        bad = [v for v in values if not isinstance(v, (str, int, bool, float)) or "\n" in str(v)]
        if bad or (isinstance(value, list) and not values):
            module.fail_json(msg=f"apptainer_conf: settings[{key!r}] must be a scalar or a non-empty list of scalars")
    if not os.path.isfile(path):
        module.fail_json(
            msg=f"apptainer_conf: {path} does not exist: install Apptainer first, or set path to its config file",
            changed_keys=[],
            documented_keys=[],
        )
    with open(path, encoding="utf-8") as handle:
        before = handle.read()
    try:
        after, changed = apply_settings(before, settings)
    except ValueError as exc:
        module.fail_json(
            msg=f"apptainer_conf: {path}: {exc}. Fix the key in the settings (apptainer_conf_extra).",
            changed_keys=[],
            documented_keys=documented_keys(before.splitlines()),
        )
    result = {
        "changed": before != after,
        "changed_keys": changed,
        "documented_keys": documented_keys(before.splitlines()),
    }
    if module._diff and result["changed"]:
        result["diff"] = {"before": before, "after": after, "before_header": path, "after_header": path}
    if result["changed"] and not module.check_mode:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".apptainer.conf.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(after)
        module.atomic_move(tmp, path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
