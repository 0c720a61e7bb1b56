"""The base role's outcome on a node: a healthy systemd node that records what sitekit found."""

import json

import pytest

SITE_GROUPS = {"squids", "worker_nodes"}


@pytest.fixture
def site_node(hostvars):
    if not SITE_GROUPS & set(hostvars.get("group_names", [])):
        pytest.skip("not a site node (the lab's stand-in stratum-1)")


def test_systemd_is_healthy(host):
    # A node whose systemd is degraded hides real failures of the services sitekit adds.
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl --failed --no-legend --plain").stdout
    assert state == "running", f"systemd is {state}; failed units:\n{failed}"


def test_local_fact_names_the_platform(host, site_node):
    fact = host.file("/etc/ansible/facts.d/sitekit.fact")
    assert fact.mode == 0o644
    data = json.loads(fact.content_string)
    os_release = dict(
        line.split("=", 1) for line in host.file("/etc/os-release").content_string.splitlines() if "=" in line
    )
    distro = os_release["ID"].strip('"')
    version = os_release["VERSION_ID"].strip('"')
    expected = distro + (version if distro == "ubuntu" else version.split(".")[0])
    assert data == {"platform": expected, "managed_by": "sitekit"}


def test_base_packages_are_usable(host, site_node):
    # curl and ip are what later checks and admins reach for first.
    assert host.run("curl --version").rc == 0
    assert host.run("ip -brief address").rc == 0
