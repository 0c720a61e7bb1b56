"""sitekit_cvmfs: the cache's filesystem and size, on recorded trees and on real directories.

Each case in tests/unit/data/cvmfs/cache-*.yml is a tree (proc/self/mountinfo, etc/cvmfs/default.local) with the
statvfs numbers of its directories (as `stat -f -c '%S %b %a' DIR` shows them) and what the verdict must be. The
lab case holds the mount table recorded on lab node wn2 and the statvfs recorded on the VM disk under it; the others
are written. The probe, the module, the failure message and the self-check are run on the same trees.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import sitekit_cvmfs as cv
import sitekit_selfcheck as sc
import yaml

DATA = Path(__file__).resolve().parents[1] / "data" / "cvmfs"
CASES = sorted(p.name for p in DATA.glob("cache-*.yml"))


def load(name):
    with open(DATA / name, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def tree(make_tree, name):
    """(root, statvfs, spec): the case materialised (with a directory for each recorded statvfs), and a statvfs that
    answers the recorded numbers for those directories and fails the test for any other."""
    spec = load(name)
    spec = dict(spec, dirs=[p.lstrip("/") for p in spec["statvfs"] if p != "/"])
    root = make_tree(spec, name=Path(name).stem)

    def statvfs(path):
        rel = os.path.normpath("/" + os.path.relpath(path, root)) if path != str(root) else "/"
        assert rel in spec["statvfs"], f"statvfs of {rel}: not recorded in {name}"
        numbers = spec["statvfs"][rel]
        return SimpleNamespace(f_frsize=numbers["frsize"], f_blocks=numbers["blocks"], f_bavail=numbers["bavail"])

    return root, statvfs, spec


def judge(make_tree, name, expect=None):
    root, statvfs, spec = tree(make_tree, name)
    params = cv.read_parameters("", str(root / "etc" / "cvmfs"))
    return cv.read_cache(params, str(root), statvfs=statvfs, expect=expect), spec


@pytest.mark.parametrize("name", CASES)
def test_each_recorded_cache_gets_its_verdict(make_tree, name):
    cache, spec = judge(make_tree, name)
    expect = spec["expect"]
    assert cache["ok"] is expect["ok"] and cache["status"] == ("ok" if expect["ok"] else "fail"), cache
    for key in ("filesystem", "kind", "quota_limit", "required_mb", "size_mb", "available_mb", "suggested_quota"):
        if key in expect:
            assert cache[key] == expect[key], key
    if "alien_filesystem" in expect:
        assert cache["alien_filesystem"] == expect["alien_filesystem"]
    assert cache["where"].endswith(f"mounted at {expect['mount_point']}")
    if expect["ok"]:
        assert cache["cause"] is None and cache["remedy"] is None
    else:
        assert expect["cause"] in cache["cause"] and expect["remedy"] in cache["remedy"], cache


def test_the_cases_cover_what_the_check_tells_apart():
    verdicts = {n: load(n)["expect"] for n in CASES}
    kinds = {(e["kind"], e["ok"]) for e in verdicts.values()}
    assert {("local", True), ("local", False), ("memory", False), ("network", False)} <= kinds
    assert any(e.get("alien_filesystem") == "nfs4" and e["ok"] for e in verdicts.values())
    assert {"ext4", "xfs", "overlay", "tmpfs", "nfs4"} <= {e["filesystem"] for e in verdicts.values()}


def test_a_disk_too_small_names_the_quota_the_margin_and_the_sizes(make_tree):
    cache, _spec = judge(make_tree, "cache-too-small.yml")
    # 20000 MB + 20 % + 1024 MB = 25024 MB needed; (10240 - 1024) / 1.2 = 7680 -> 7600 MB fits.
    assert (cache["quota_limit"], cache["required_mb"], cache["size_mb"]) == (20000, 25024, 10240)
    assert "CVMFS_QUOTA_LIMIT=20000 MB" in cache["cause"] and "20 % + 1024 MB (25024 MB in all)" in cache["cause"]
    assert "10240 MB, 9728 MB available" in cache["cause"] and "ext4 /dev/sdb1" in cache["cause"]
    assert cache["remedy"].startswith("set CVMFS_QUOTA_LIMIT to at most 7600 MB (sitekit's cvmfs role")
    assert "at least 25024 MB" in cache["remedy"]
    assert cv.required_mb(cache["suggested_quota"]) <= cache["size_mb"] < cv.required_mb(cache["suggested_quota"] + 100)


def test_a_filesystem_that_holds_no_quota_asks_for_a_bigger_one():
    entry = {"fstype": "ext4", "source": "/dev/loop0", "mount_point": "/var/lib/cvmfs"}
    cache = cv.judge_cache(cv.cache_settings({}), entry, {"size_mb": 1000, "available_mb": 990})
    assert cache["suggested_quota"] == 0 and not cache["ok"]
    assert cache["remedy"].startswith("give the cache a filesystem of at least 5824 MB (CVMFS_CACHE_BASE)")


def test_the_longest_mount_prefix_decides_not_the_root(make_tree):
    """/scratch/cvmfs is on the xfs at /scratch, which holds 100000 MB; the 20 GiB root would not."""
    cache, _spec = judge(make_tree, "cache-xfs-scratch.yml")
    assert cache["ok"] and cache["where"] == "xfs /dev/nvme0n1p2 mounted at /scratch"
    mounts = cv.parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 8:2 / /scratchy rw - xfs /dev/sdb rw\n")
    assert cv.cache_mount(mounts, "/scratch/cvmfs")["mount_point"] == "/"  # a name prefix is not a parent
    later = mounts + cv.parse_mountinfo("3 1 0:9 / / rw - tmpfs tmpfs rw\n")
    assert cv.cache_mount(later, "/var/lib/cvmfs")["fstype"] == "tmpfs"  # a later mount at / covers the first


def test_the_site_values_replace_the_files(make_tree):
    """What the cvmfs role passes before it writes default.local: its own quota and cache base."""
    fits, _spec = judge(make_tree, "cache-too-small.yml", expect={"quota_limit": 7600})
    assert fits["ok"] and fits["required_mb"] == 10144
    moved, _spec = judge(make_tree, "cache-nfs.yml", expect={"cache_base": "/var/lib/cvmfs"})
    assert moved["ok"] and moved["filesystem"] == "ext4"


def test_a_tmpfs_cache_only_holds_control_files_with_an_alien_cache(make_tree):
    cache, _spec = judge(make_tree, "cache-tmpfs.yml")
    assert "20000 MB" in cache["cause"] and "lost at every reboot" in cache["cause"]
    alien = {"alien_cache": "/nfs/alien", "quota_limit": -1}
    settings = cv.cache_settings({"CVMFS_SHARED_CACHE": "no"}, alien)
    entry = cv.parse_mountinfo("48 27 0:45 / /var/lib/cvmfs rw - tmpfs tmpfs rw\n")[0]
    assert cv.judge_cache(settings, entry, {"size_mb": 64, "available_mb": 64})["ok"]


def test_network_filesystems_fail_without_an_alien_cache():
    for fstype in ("nfs", "nfs4", "cifs", "ceph", "lustre", "gpfs", "fuse.sshfs"):
        entry = {"fstype": fstype, "source": "server:/x", "mount_point": "/home"}
        cache = cv.judge_cache(cv.cache_settings({}), entry, {"size_mb": 10**6, "available_mb": 10**6})
        assert not cache["ok"] and cache["kind"] == "network", fstype


def test_cache_parameters_follow_the_clients_names_and_defaults():
    assert cv.cache_settings({}) == {
        "base": "/var/lib/cvmfs",
        "quota_limit": 4000,
        "alien": None,
        "shared": True,
        "primary": None,
    }
    newer = cv.cache_settings({"CVMFS_CACHE_QUOTA_LIMIT": "-1", "CVMFS_QUOTA_LIMIT": "9", "CVMFS_CACHE_SHARED": "no"})
    assert newer["quota_limit"] == -1 and newer["shared"] is False
    assert cv.cache_settings({"CVMFS_QUOTA_LIMIT": "$((4*1000))"})["quota_limit"] is None
    unknown = cv.judge_cache(cv.cache_settings({"CVMFS_CACHE_PRIMARY": "hpc"}), None, None)
    assert unknown["ok"] and unknown["status"] == "unknown" and "CVMFS_CACHE_PRIMARY=hpc" in unknown["detail"]


def test_no_quota_needs_no_size(make_tree):
    cache, _spec = judge(make_tree, "cache-nfs-alien.yml")
    assert cache["required_mb"] is None and cache["detail"].endswith("alien cache /nfs/cvmfs/alien on nfs4")


def test_the_probe_reports_the_cache_and_fails_on_it(make_tree, tmp_path):
    root, statvfs, _spec = tree(make_tree, "cache-too-small.yml")
    config_root = str(root / "etc" / "cvmfs")
    mountinfo = (root / "proc" / "self" / "mountinfo").read_text()
    (tmp_path / "cvmfs" / "good.example.org").mkdir(parents=True)
    (tmp_path / "cvmfs" / "good.example.org" / "README").write_text("x\n")
    result = cv.probe(
        ["good.example.org"],
        str(tmp_path / "cvmfs"),
        mountinfo=lambda: mountinfo,
        config_root=config_root,
        nofile=lambda: {"hard_limit": None, "can_raise": True},
        statvfs=statvfs,
        root=str(root),
    )
    assert result["repositories"][0]["readable"] and not result["ok"]
    assert result["cache"]["repositories"] == ["good.example.org"] and result["cache"]["size_mb"] == 10240
    message = cv.failure_message(result)
    assert message.startswith("cvmfs_probe: the cache cannot serve as configured. CVMFS cache: Cause: ")
    assert "Remedy: set CVMFS_QUOTA_LIMIT to at most 7600 MB" in message
    step = sc.judge_cvmfs(result, ["good.example.org"])
    assert not step["ok"] and step["cause"] == result["cache"]["cause"] and step["remedy"] == result["cache"]["remedy"]
    assert "cache /var/lib/cvmfs on ext4 of 10240 MB" in step["detail"]


def test_the_probe_without_configuration_judges_no_cache(tmp_path):
    result = cv.probe([], config_root=str(tmp_path))
    assert result == {"ok": True, "repositories": [], "nfiles": None, "cache": None}


def test_a_real_directory_is_judged_with_its_real_filesystem(tmp_path):
    """The running system: realpath, the real mount table and a real statvfs of an existing parent."""
    (tmp_path / "link").symlink_to(tmp_path)
    cache = cv.read_cache({"CVMFS_CACHE_BASE": str(tmp_path / "link" / "not-yet"), "CVMFS_QUOTA_LIMIT": "1"})
    assert cache["base"] == str(tmp_path.resolve() / "not-yet")
    real = os.statvfs(tmp_path)
    assert cache["size_mb"] == real.f_blocks * real.f_frsize // cv.MIB
    assert cache["filesystem"] == cv.cache_mount(cv.parse_mountinfo(cv.read_mountinfo()), str(tmp_path))["fstype"]
    assert cache["ok"] is (cache["kind"] == "local" and cache["size_mb"] >= cv.required_mb(1))
