#!/usr/bin/python
"""Report which of the given packages are installed, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sitekit_installed
short_description: Report which of the given packages are installed, in one module run
description:
  - Asks the node's package database (C(dpkg-query) on the Debian family, C(rpm) on EL) which of the given packages
    are installed, without reading the repositories' package lists or refreshing anything.
  - A package counts as installed only when the database says so (C(ii) on the Debian family, so a package removed
    with its configuration left, C(rc), is missing).
  - The result registered as C(base_installed) is base's public installed-packages probe, which the roles read to
    install only what is missing.
  - Changes nothing.
version_added: "0.1.0"
author: sitekit
options:
  packages:
    description: Package names, as the package manager knows them.
    type: list
    elements: str
    required: true
  manager:
    description: The package database to ask; C(auto) takes C(dpkg-query) where it is installed, else C(rpm).
    type: str
    choices: [auto, dpkg, rpm]
    default: auto
extends_documentation_fragment: [action_common_attributes, sitekit.read_only]
"""

EXAMPLES = r"""
- name: Find which packages are installed
  sitekit_installed:
    packages: [apptainer, squashfs-tools]
  register: base_installed

- name: Install only what is missing
  ansible.builtin.package:
    name: "{{ base_installed.missing }}"
  when: base_installed.missing | length > 0
"""

RETURN = r"""
packages:
  description: The packages asked about, in the order given.
  returned: always
  type: list
  elements: str
  sample: [apptainer, squashfs-tools]
missing:
  description: Those of them that are not installed, in the order given.
  returned: always
  type: list
  elements: str
  sample: [apptainer]
manager:
  description: The package database asked (dpkg or rpm).
  returned: always
  type: str
  sample: dpkg
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# Each line: <name>=ii for an installed package (dpkg-query's status abbreviation is three characters: "ii ").
QUERY = {
    "dpkg": ["dpkg-query", "-W", "-f=${Package}=${db:Status-Abbrev}\n"],
    "rpm": ["rpm", "-q", "--qf", "%{NAME}=ii\n"],
}
# What each says about a package it does not have (dpkg-query on stderr, exit 1; rpm on stdout, exit = their number).
NOT_FOUND = {"dpkg": "no packages found matching", "rpm": "is not installed"}


def installed(stdout):
    """The names the query output reports installed."""
    names = set()
    for line in stdout.splitlines():
        name, sep, status = line.partition("=")
        if sep and status.strip() == "ii":
            names.add(name)
    return names


def problem(manager, rc, stdout, stderr):
    """The query's own error, if it failed for another reason than missing packages; else None."""
    if rc == 0:
        return None
    noise = [
        line
        for line in (stderr + "\n" + (stdout if manager == "rpm" else "")).splitlines()
        if line.strip() and NOT_FOUND[manager] not in line and not line.rstrip().endswith("=ii")
    ]
    if manager == "dpkg" and rc != 1:
        noise = noise or [f"exit status {rc}"]
    return "; ".join(noise) or None


def main():
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "required": True},
            "manager": {"type": "str", "choices": ["auto", "dpkg", "rpm"], "default": "auto"},
        },
        supports_check_mode=True,
    )
    packages = module.params["packages"]
    bad = [p for p in packages if not p or p.startswith("-") or any(c.isspace() for c in p)]
    if bad:
        module.fail_json(msg=f"sitekit_installed: packages must be package names; fix {bad}")
    manager = module.params["manager"]
    if manager == "auto":
        manager = "dpkg" if module.get_bin_path("dpkg-query") else "rpm"
    binary = module.get_bin_path(QUERY[manager][0])
    if not binary:
        module.fail_json(msg=f"sitekit_installed: {QUERY[manager][0]} is not on this node; set manager to the node's")
    if not packages:
        module.exit_json(changed=False, packages=[], missing=[], manager=manager)
    rc, stdout, stderr = module.run_command([binary, *QUERY[manager][1:], *packages], environ_update={"LC_ALL": "C"})
    failure = problem(manager, rc, stdout, stderr)
    if failure:
        module.fail_json(msg=f"sitekit_installed: {QUERY[manager][0]} failed: {failure}", rc=rc)
    found = installed(stdout)
    module.exit_json(changed=False, packages=packages, missing=[p for p in packages if p not in found], manager=manager)


if __name__ == "__main__":
    main()
