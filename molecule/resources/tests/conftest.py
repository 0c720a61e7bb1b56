"""Shared testinfra fixtures.

Molecule's inventory reaches nodes through Ansible's podman connection, which testinfra only
drives through Ansible (one ansible process per command). Commands go straight through
``podman exec`` instead (about 8x faster, measured in the lab), while expected values still come from
the inventory Molecule wrote (``hostvars``).
"""

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import testinfra

TOP = Path(__file__).resolve().parents[3]

NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups"
CONFINED = "/usr/local/sbin/sitekit-test-confined"
# Runs a command in its own user namespace, every uid of the node mapped to itself (the parent, root,
# writes the maps: no newuidmap, no /etc/subuid, any util-linux), with user.max_user_namespaces set to
# $SITEKIT_MAX_USERNS (default 0) there. stdin passes through (Ansible pipelines modules over it).
CONFINED_SCRIPT = """#!/usr/bin/env python3
import ctypes, os, sys
CLONE_NEWUSER = 0x10000000
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER) != 0:
        sys.exit("sitekit-test-confined: unshare(CLONE_NEWUSER) failed: " + os.strerror(ctypes.get_errno()))
    os.write(ready_w, b"1")
    os.read(go_r, 1)
    with open("/proc/sys/user/max_user_namespaces", "w") as limit:
        limit.write(os.environ.get("SITEKIT_MAX_USERNS", "0"))
    os.execvp(sys.argv[1], sys.argv[1:])
os.read(ready_r, 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as idmap:
        idmap.write("0 0 65536")
os.write(go_w, b"1")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""
CONFINED_PYTHON = "/usr/local/sbin/sitekit-test-confined-python"


@pytest.fixture(scope="module")
def hostvars(_testinfra_host):
    return _testinfra_host.backend.get_variables()


@pytest.fixture(scope="module")
def host(_testinfra_host, hostvars):
    if hostvars.get("ansible_connection") in ("podman", "containers.podman.podman"):
        return testinfra.get_host(f"podman://{hostvars['inventory_hostname']}")
    return _testinfra_host


@pytest.fixture
def confined(host):
    """Install the confining wrapper; yield a function making a python3 that runs confined with a given limit."""
    made = [CONFINED]
    host.run_expect([0], f"printf %s {shlex.quote(CONFINED_SCRIPT)} > {CONFINED} && chmod 0755 {CONFINED}")

    def python_with_limit(limit):
        path = f"{CONFINED}-python-{limit}"
        wrapper = f'#!/bin/sh\nSITEKIT_MAX_USERNS={limit} exec {CONFINED} python3 "$@"\n'
        host.run_expect([0], f"printf %s {shlex.quote(wrapper)} > {path}")
        host.run_expect([0], f"chmod 0755 {path}")
        made.append(path)
        return path

    yield python_with_limit
    host.run_expect([0], "rm -f " + " ".join(made))


@pytest.fixture
def playbook(hostvars):
    """Run a playbook of this repository on this node with Molecule's inventory; returns the CompletedProcess."""

    def run(path, *args):
        env = dict(os.environ, ANSIBLE_NOCOLOR="true", ANSIBLE_FORCE_COLOR="false")
        env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "yaml"  # a table prints one row per line
        for var, sub in (("ANSIBLE_LIBRARY", "library"), ("ANSIBLE_MODULE_UTILS", "module_utils")):
            env[var] = str(TOP / sub)
        env["ANSIBLE_FILTER_PLUGINS"] = str(TOP / "filter_plugins")
        env["ANSIBLE_ROLES_PATH"] = str(TOP / "roles")
        argv = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-l", hostvars["inventory_hostname"]]
        return subprocess.run([*argv, str(TOP / path), *args], capture_output=True, text=True, env=env, timeout=600)

    return run


@pytest.fixture
def apply_role(playbook):
    """Run one role on this node through molecule/resources/apply-role.yml with extra variables."""

    def run(role, extra, check=False):
        args = ["-e", json.dumps({"sitekit_test_role": role, **extra})] + (["--check", "--diff"] if check else [])
        return playbook("molecule/resources/apply-role.yml", *args)

    return run
