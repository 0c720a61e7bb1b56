#!/usr/bin/python
"""Ansible module vobox_check: is every VO-box service running in its container as it should?"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vobox_check
short_description: Check each VO-box service container (unit, image, /cvmfs inside, DNS inside)
description:
  - For each service the vobox_services role runs as a podman container from a Quadlet unit (C(NAME.service),
    container C(NAME)), checks that the unit is active and running, that the container runs the image the admin
    named (the same image id), that every CVMFS repository the service needs is readable inside the container, and
    that the container's resolver (nameservers, search domains) is the host's or the service's explicit one and the
    host's C(/etc/hosts) entries are in the container's.
  - A unit that is not running is reported with its last journal lines, where a failed CVMFS probe (the unit's start
    condition) gives its cause and remedy. A repository that reads "Too many levels of symbolic links" or is empty
    inside while the host has it means the host's mounts do not reach the container (no mount propagation).
  - Read-only; runs the same in check mode and always returns changed=false.
options:
  services:
    description:
      - The services, as the vobox_services_plan filter returns them; each needs C(name) and C(image), and may have
        C(repositories), C(dns_servers), C(dns_search) and C(hosts). Other keys are ignored.
    type: list
    elements: dict
    required: true
  timeout:
    description: Seconds each command (podman, systemctl, a listing inside a container) may take.
    type: int
    default: 20
  fail_on_error:
    description: Fail the task when a service is not ready. The result keys are returned either way.
    type: bool
    default: true
extends_documentation_fragment: [action_common_attributes, sitekit.read_only]
notes:
  - Needs podman and systemd on the node; runs as root (the role's containers are root's).
author:
  - sitekit
"""

EXAMPLES = r"""
- name: Prove every VO-box service ready
  vobox_check:
    services: "{{ vobox_services_list | vobox_services_plan }}"

- name: Only report, for a compliance run
  vobox_check:
    services:
      - name: alice-box
        image: registry.example.org/alice/vobox:1.2
        repositories: [alice.cern.ch]
    fail_on_error: false
  register: __vobox
"""

RETURN = r"""
ready:
  description: Whether every service passed every check.
  returned: always
  type: bool
  sample: true
services:
  description: One entry per service.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The service (and container) name.
      type: str
      sample: alice-box
    unit:
      description: Its systemd unit.
      type: str
      sample: alice-box.service
    image:
      description: The image it must run.
      type: str
    ready:
      description: Whether every check passed.
      type: bool
    failed_checks:
      description: The checks that failed, in the order unit, image, cvmfs, dns.
      type: list
      elements: str
      sample: [unit, image, cvmfs, dns]
    checks:
      description: Each check (C(unit), C(image), C(cvmfs), C(dns)) with C(ok), C(detail), C(cause) and C(remedy);
        C(cvmfs) also has C(repositories) (name, readable, entries, error, cause).
      type: dict
    cause:
      description: The first failed check's cause; null when ready.
      type: str
    remedy:
      description: The first failed check's remedy; null when ready.
      type: str
message:
  description: One line per service that is not ready, with the cause and the remedy; null when RV(ready).
  returned: always
  type: str
"""

import subprocess  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# AnsiballZ bundles module_utils/sitekit_vobox.py with the module. From the repository (unit tests, or
# `PYTHONPATH=module_utils python library/vobox_check.py ARGS.json`) module_utils is on the path instead.
try:
    from ansible.module_utils import sitekit_vobox
except ImportError:
    import sitekit_vobox

ARGUMENT_SPEC = {
    "services": {"type": "list", "elements": "dict", "required": True},
    "timeout": {"type": "int", "default": 20},
    "fail_on_error": {"type": "bool", "default": True},
}


def run(argv, timeout):
    """(rc, stdout, stderr); a command that does not finish in time or is missing answers rc 124 or 127."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C", "PODMAN_IGNORE_CGROUPSV1_WARNING": "1"}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]} {argv[1]} did not answer within {timeout} s"
    except OSError as exc:
        return 127, "", str(exc)
    return done.returncode, done.stdout, done.stderr


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    bad = [s for s in params["services"] if not s.get("name") or not s.get("image")]
    if bad:
        module.fail_json(msg=f"vobox_check: every service needs a name and an image; got {bad[0]!r}.")
    if params["timeout"] <= 0:
        module.fail_json(msg=f"vobox_check: timeout must be a positive number of seconds, got {params['timeout']}.")
    host_resolv, host_hosts = _read("/etc/resolv.conf"), _read("/etc/hosts")
    results = [
        sitekit_vobox.check_service(service, run, host_resolv, host_hosts, params["timeout"])
        for service in params["services"]
    ]
    ready = all(r["ready"] for r in results)
    message = sitekit_vobox.failure_message(results)
    if params["fail_on_error"] and not ready:
        module.fail_json(msg=message, changed=False, ready=ready, services=results, message=message)
    module.exit_json(changed=False, ready=ready, services=results, message=message)


if __name__ == "__main__":
    main()
