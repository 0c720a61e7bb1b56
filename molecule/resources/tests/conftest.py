"""Shared testinfra fixtures.

Molecule's inventory reaches nodes through Ansible's podman connection, which testinfra only
drives through Ansible (one ansible process per command). Commands go straight through
``podman exec`` instead (about 8x faster, ../shared/LAB.md), while expected values still come from
the inventory Molecule wrote (``hostvars``).
"""

import pytest
import testinfra


@pytest.fixture(scope="module")
def hostvars(_testinfra_host):
    return _testinfra_host.backend.get_variables()


@pytest.fixture(scope="module")
def host(_testinfra_host, hostvars):
    if hostvars.get("ansible_connection") in ("podman", "containers.podman.podman"):
        return testinfra.get_host(f"podman://{hostvars['inventory_hostname']}")
    return _testinfra_host
