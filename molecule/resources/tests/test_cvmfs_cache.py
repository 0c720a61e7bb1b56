"""The CVMFS cache where jobs need it: CVMFS_CACHE_BASE on a local disk whose filesystem holds CVMFS_QUOTA_LIMIT
with the client's margin (20 % + 1024 MB), judged by the probe command and by the cvmfs role before any change.

The lab's client is a stand-in (lab/cvmfs-standin.yml): the check reads the client's configuration files and the
filesystem, never a running client. The undersized caches are real filesystems on a worker node (a tmpfs, a loop
ext4 where the kernel and the image allow it) under a scratch directory, and the probe reads a copy of /etc/cvmfs
that names them (--config-root): the node's own configuration and mounts are never changed, and the scratch
directory is unmounted and removed afterwards.
"""

import json
import re
import shlex

import pytest

PROBE = "/usr/local/sbin/sitekit-cvmfs-probe"
SCRATCH = "/var/tmp/sitekit-cache-test"
MIB = 1024 * 1024


def _workers(hostvars):
    if "worker_nodes" not in hostvars.get("group_names", []):
        pytest.skip("CVMFS is mounted on worker nodes")
    if not hostvars.get("cvmfs_enabled", True):
        pytest.skip("the cvmfs role is off for this node")


def _params(host, path="/etc/cvmfs/default.local"):
    text = host.file(path).content_string
    return dict(re.findall(r"^(CVMFS_[A-Z0-9_]+)='?([^'\n]*)'?$", text, re.M))


@pytest.fixture
def scratch(host, hostvars):
    """A copy of /etc/cvmfs under SCRATCH/etc and a mount point SCRATCH/cache; unmounted and removed afterwards."""
    _workers(hostvars)
    host.run_expect([0], f"mkdir -p {SCRATCH}/cache {SCRATCH}/etc && cp -a /etc/cvmfs/. {SCRATCH}/etc/")

    def probe(**settings):
        """Run the probe command on the copy with ``settings`` appended to its default.local."""
        lines = "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in settings.items())
        host.run_expect([0], f"printf %s {shlex.quote(lines)} >> {SCRATCH}/etc/default.local")
        return host.run(f"{PROBE} --config-root {SCRATCH}/etc")

    yield probe
    host.run(f"umount {SCRATCH}/cache")
    host.run_expect([0], f"rm -rf {SCRATCH}")
    assert host.run(f"findmnt --noheadings {SCRATCH}/cache").rc != 0


def test_the_lab_cache_passes_with_the_real_filesystem_and_size(host, hostvars):
    """The configured cache (the role's default.local) on the node's own filesystem, as findmnt and stat -f see it."""
    _workers(hostvars)
    params = _params(host)
    base = params.get("CVMFS_CACHE_BASE", "/var/lib/cvmfs")
    quota = int(params.get("CVMFS_QUOTA_LIMIT", 4000))
    assert quota == hostvars.get("cvmfs_quota_limit", 20000)
    result = json.loads(host.run_expect([0], PROBE).stdout)
    cache = result["cache"]
    assert cache["ok"] and cache["status"] == "ok", cache
    assert cache["base"] == host.run_expect([0], f"realpath -m {base}").stdout.strip()
    # The cache base may not exist before the client's first mount: its deepest existing directory counts.
    deepest = f'd={shlex.quote(base)}; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; echo "$d"'
    existing = host.run_expect([0], deepest).stdout.strip()
    fstype = host.run_expect([0], f"findmnt --noheadings --output FSTYPE --target {existing}").stdout.split()[-1]
    assert (cache["filesystem"], cache["kind"]) == (fstype, "local")
    frsize, blocks = map(int, host.run_expect([0], f"stat -f -c '%S %b' {existing}").stdout.split())
    assert cache["size_mb"] == frsize * blocks // MIB
    # quota + 20 % + 1024 MB, rounded up: 25024 MB for the lab's 20000.
    assert cache["quota_limit"] == quota and cache["required_mb"] == -(-quota * 6 // 5) + 1024
    assert cache["size_mb"] >= cache["required_mb"]


def test_a_cache_on_tmpfs_fails_with_cause_and_remedy(host, hostvars, scratch):
    _workers(hostvars)
    host.run_expect([0], f"mount -t tmpfs -o size=64m sitekit-cache-test {SCRATCH}/cache")
    run = scratch(CVMFS_CACHE_BASE=f"{SCRATCH}/cache", CVMFS_QUOTA_LIMIT=20000)
    assert run.rc == 1, run.stdout + run.stderr
    cache = json.loads(run.stdout)["cache"]
    assert (cache["filesystem"], cache["kind"], cache["ok"]) == ("tmpfs", "memory", False)
    assert all(r["readable"] for r in json.loads(run.stdout)["repositories"])  # only the cache fails
    assert run.stderr.startswith("cvmfs_probe: the cache cannot serve as configured. CVMFS cache: Cause: ")
    assert f"{SCRATCH}/cache is on a memory filesystem (tmpfs sitekit-cache-test mounted at {SCRATCH}/cache)" in (
        run.stderr
    )
    assert "Remedy: set CVMFS_CACHE_BASE to a directory on a local disk" in run.stderr


def test_a_quota_above_the_real_disk_fails_with_the_numbers(host, hostvars, scratch):
    """The node's real local filesystem under SCRATCH, asked for a quota it cannot hold."""
    _workers(hostvars)
    frsize, blocks = map(int, host.run_expect([0], f"stat -f -c '%S %b' {SCRATCH}/cache").stdout.split())
    size_mb = frsize * blocks // MIB
    run = scratch(CVMFS_CACHE_BASE=f"{SCRATCH}/cache", CVMFS_QUOTA_LIMIT=size_mb)
    cache = json.loads(run.stdout)["cache"]
    if cache["kind"] != "local":
        pytest.skip(f"{SCRATCH} is on {cache['filesystem']} on this node: the type fails before the size")
    assert run.rc == 1 and not cache["ok"] and cache["size_mb"] == size_mb
    assert f"too small for CVMFS_QUOTA_LIMIT={size_mb} MB plus the client's margin of 20 % + 1024 MB" in run.stderr
    assert cache["required_mb"] == -(-size_mb * 6 // 5) + 1024
    assert f"({cache['required_mb']} MB in all)" in run.stderr
    assert f"Remedy: set CVMFS_QUOTA_LIMIT to at most {cache['suggested_quota']} MB" in run.stderr


def test_a_small_loop_filesystem_fails_and_the_quota_it_suggests_passes(host, hostvars, scratch):
    """A real 1536 MB ext4 on a loop device as the cache: 4000 MB (the client's default) does not fit, the quota the
    probe suggests does."""
    _workers(hostvars)
    image = f"{SCRATCH}/disk.img"
    if host.run("command -v mkfs.ext4").rc != 0:
        pytest.skip("no loop-mounted ext4 on this node: mkfs.ext4 (e2fsprogs) is not installed in the node image")
    made = host.run(f"truncate -s 1536M {image} && mkfs.ext4 -q -F {image} && mount -o loop {image} {SCRATCH}/cache")
    if made.rc != 0:
        pytest.skip(f"no loop-mounted ext4 on this node: {(made.stderr or made.stdout).strip()[-300:]}")
    run = scratch(CVMFS_CACHE_BASE=f"{SCRATCH}/cache", CVMFS_QUOTA_LIMIT=4000)
    cache = json.loads(run.stdout)["cache"]
    assert run.rc == 1 and (cache["filesystem"], cache["ok"]) == ("ext4", False), run.stderr
    assert cache["size_mb"] < 1536 and cache["required_mb"] == 5824
    assert f"is {cache['size_mb']} MB, {cache['available_mb']} MB available: too small for CVMFS_QUOTA_LIMIT=4000" in (
        run.stderr
    )
    assert cache["suggested_quota"] > 0, cache
    # The suggested quota, appended after the first: the last assignment wins, as when the client sources the file.
    run = scratch(CVMFS_QUOTA_LIMIT=cache["suggested_quota"])
    assert run.rc == 0, run.stderr
    assert json.loads(run.stdout)["cache"]["quota_limit"] == cache["suggested_quota"]


def test_the_role_refuses_a_quota_the_cache_filesystem_cannot_hold_before_any_change(host, hostvars, apply_role):
    _workers(hostvars)
    before = host.run("sha256sum /etc/cvmfs/default.local").stdout
    quota = 100_000_000  # 100 TB
    run = apply_role("cvmfs", {"sitekit_test_hosts": "worker_nodes", "cvmfs_quota_limit": quota})
    out = re.sub(r"\s+", " ", run.stdout + run.stderr)
    assert run.returncode != 0
    assert f"cvmfs: cvmfs_quota_limit={quota} with cvmfs_cache_base=" in out, out[-2000:]
    assert "margin of 20 % + 1024 MB" in out and "Fix: set cvmfs_quota_limit to at most" in out
    recap = re.search(rf"{re.escape(hostvars['inventory_hostname'])}\s*: ok=\d+ changed=(\d+)", out)
    assert recap and recap.group(1) == "0", out[-1500:]
    assert host.run("sha256sum /etc/cvmfs/default.local").stdout == before
