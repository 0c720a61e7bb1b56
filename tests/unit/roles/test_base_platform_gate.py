"""base's platform gate, run with the role's own task on this machine (connection local) for recorded platforms' facts:
a platform that cannot run unprivileged containers is refused with the reason, one outside the support matrix unless
the site says to try it, and a supported one passes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_play

TOP = Path(__file__).resolve().parents[3]
PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Run base's platform gate
      ansible.builtin.include_role:
        name: base
        tasks_from: validate
"""
# The facts the gate reads, as gather_facts reports them on each platform.
EL6 = {
    "distribution": "CentOS",
    "distribution_major_version": "6",
    "distribution_version": "6.10",
    "os_family": "RedHat",
    "kernel": "2.6.32-754.el6.x86_64",
}
DEBIAN10 = {
    "distribution": "Debian",
    "distribution_major_version": "10",
    "distribution_version": "10.13",
    "os_family": "Debian",
    "kernel": "4.19.0-27-amd64",
}
DEBIAN12 = {
    "distribution": "Debian",
    "distribution_major_version": "12",
    "distribution_version": "12.8",
    "os_family": "Debian",
    "kernel": "6.1.0-28-amd64",
}
ROCKY9 = {
    "distribution": "Rocky",
    "distribution_major_version": "9",
    "distribution_version": "9.5",
    "os_family": "RedHat",
    "kernel": "5.14.0-503.14.1.el9_5.x86_64",
}


def gate(tmp_path, facts, **extra):
    run = run_play(tmp_path, PLAY, json.dumps({"ansible_facts": facts, **extra}))
    return run.returncode, re.sub(r"\s+", " ", run.stdout)


@pytest.mark.parametrize(
    ("facts", "extra", "message"),
    [
        (EL6, {}, "base: localhost runs el6: EL6 (kernel 2.6.32) has no user namespaces"),
        # No setting lets a refused platform through.
        (EL6, {"base_refuse_unsupported": False}, "Reinstall the node with EL8 or EL9"),
        (DEBIAN10, {}, "runs Debian 10.13 (debian10), which is not in sitekit's support matrix"),
    ],
    ids=["el6", "el6-try-anyway", "debian10"],
)
def test_a_platform_sitekit_cannot_serve_is_refused_with_the_reason(tmp_path, facts, extra, message):
    code, out = gate(tmp_path, facts, **extra)
    assert code != 0 and message in out, out[-2000:]


@pytest.mark.parametrize(
    ("facts", "extra"),
    [(DEBIAN12, {}), (ROCKY9, {}), (DEBIAN10, {"base_refuse_unsupported": False})],
    ids=["debian12", "rocky9", "debian10-try-anyway"],
)
def test_a_supported_platform_passes_and_an_unsupported_one_when_the_site_says_so(tmp_path, facts, extra):
    code, out = gate(tmp_path, facts, **extra)
    assert code == 0 and "failed=0" in out, out[-2000:]
