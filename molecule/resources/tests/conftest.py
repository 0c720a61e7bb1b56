"""Shared testinfra fixtures.

Molecule's inventory reaches nodes through Ansible's podman connection, which testinfra only
drives through Ansible (one ansible process per command). Commands go straight through
``podman exec`` instead (about 8x faster, ../shared/LAB.md), while expected values still come from
the inventory Molecule wrote (``hostvars``).
"""

import shlex

import pytest
import testinfra

NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups"
CONFINED = "/usr/local/sbin/sitekit-test-confined"
# Runs a command in its own user namespace with user.max_user_namespaces = $SITEKIT_MAX_USERNS (default 0).
# Every uid of the node is mapped (util-linux >= 2.38), so that unprivileged accounts work inside.
CONFINED_SCRIPT = """#!/bin/sh
exec unshare --user --map-users=0:0:65536 --map-groups=0:0:65536 --fork -- sh -c '
  echo "${SITEKIT_MAX_USERNS:-0}" > /proc/sys/user/max_user_namespaces && exec "$@"' sh "$@"
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
    if "--map-users" not in host.run("unshare --help").stdout:
        pytest.skip("util-linux < 2.38 (unshare without --map-users): no confined view of the node here")
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
