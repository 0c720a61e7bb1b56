"""CVMFS as the cvmfs role leaves it, on the lab's stand-in client: real autofs, real timeouts, real keep-alive."""

import json
import re
import time

import pytest


def _workers(hostvars):
    if "worker_nodes" not in hostvars.get("group_names", []):
        pytest.skip("CVMFS is mounted on worker nodes")
    if not hostvars.get("cvmfs_enabled", True):
        pytest.skip("the cvmfs role is off for this node")


def _mounted(host, repo):
    return f" /cvmfs/{repo} " in host.file("/proc/self/mountinfo").content_string


def _wait_unmounted(host, repo, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not _mounted(host, repo):
            return True
        time.sleep(1)
    return False


def test_client_configuration_follows_the_inventory(host, hostvars):
    _workers(hostvars)
    local = host.file("/etc/cvmfs/default.local").content_string
    assert f"CVMFS_REPOSITORIES='{','.join(hostvars['cvmfs_repositories'])}'" in local
    assert re.search(r"^CVMFS_HTTP_PROXY='auto;DIRECT'$", local, re.M)
    master = host.file("/etc/auto.master.d/cvmfs.autofs").content_string
    assert f"/cvmfs /etc/auto.cvmfs --timeout={hostvars['cvmfs_autofs_timeout']}" in master


def test_the_probe_command_reads_every_repository(host, hostvars):
    _workers(hostvars)
    run = host.run("/usr/local/sbin/sitekit-cvmfs-probe")
    assert run.rc == 0, run.stderr
    result = json.loads(run.stdout)
    assert [r["name"] for r in result["repositories"]] == hostvars["cvmfs_repositories"]
    assert all(r["readable"] and r["autofs"] and r["mounted_after"] for r in result["repositories"])


def test_the_probe_names_the_cause_of_an_unknown_repository(host, hostvars):
    _workers(hostvars)
    run = host.run("/usr/local/sbin/sitekit-cvmfs-probe --quiet missing.sitekit.lab")
    assert run.rc == 1
    assert "missing.sitekit.lab" in run.stderr and "Cause:" in run.stderr and "Remedy:" in run.stderr


def test_autofs_unmounts_without_keepalive_and_keepalive_keeps_it(host, hostvars):
    _workers(hostvars)
    repo = hostvars["cvmfs_repositories"][0]
    timeout = hostvars["cvmfs_autofs_timeout"]
    assert timeout > 0
    host.run_expect([0], "systemctl stop sitekit-cvmfs-keepalive.timer")
    try:
        host.run_expect([0], f"ls /cvmfs/{repo}")
        assert _mounted(host, repo)
        # autofs expires a mount between timeout and about 1.3 x timeout after the last access (../shared/LAB.md).
        assert _wait_unmounted(host, repo, timeout * 2 + 5), f"autofs kept {repo} mounted without the keep-alive"
    finally:
        host.run_expect([0], "systemctl start sitekit-cvmfs-keepalive.timer")
    host.run_expect([0], f"ls /cvmfs/{repo}")
    assert not _wait_unmounted(host, repo, timeout * 2 + 5), f"{repo} was unmounted although the keep-alive ran"


def test_check_mode_plans_the_real_client_install_and_changes_nothing(host, hostvars, apply_role):
    """The install path a Debian-family site takes, as check mode reports it (no registry here has the client)."""
    _workers(hostvars)
    before = host.run("sha256sum /etc/cvmfs/default.local /etc/auto.master.d/cvmfs.autofs").stdout
    run = apply_role(
        "cvmfs",
        {
            "cvmfs_source": "release",
            "cvmfs_release_package_url": "/srv/sitekit-origin/debs/cvmfs-release-latest_all.deb",
        },
        check=True,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Would install /srv/sitekit-origin/debs/cvmfs-release-latest_all.deb" in run.stdout
    planned = re.search(r"Would install: ([\w, .+-]+)", run.stdout)
    assert planned, run.stdout[-3000:]
    assert set(planned.group(1).replace(" ", "").split(",")) == {"cvmfs", "cvmfs-fuse3", "cvmfs-config-default"}
    assert host.run("sha256sum /etc/cvmfs/default.local /etc/auto.master.d/cvmfs.autofs").stdout == before
    assert host.run("dpkg-query -W cvmfs").rc != 0
