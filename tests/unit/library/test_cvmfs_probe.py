"""cvmfs_probe: main() as Ansible runs it, on a tmp directory tree standing in for /cvmfs.

Repositories are directories, the ELOOP case a symlink loop, the timeout a FIFO named as the file to read: real
filesystem operations. As root with /dev/fuse, a real FUSE mount with fsname cvmfs2 whose daemon is gone gives the
ENOTCONN case, and one whose daemon never answers gives a hung mount. The mount-table and error-mapping parts are
tested on recorded data in tests/unit/module_utils/test_sitekit_cvmfs.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
import time

import cvmfs_probe
import pytest
from ansible.module_utils.testing import patch_module_args
from conftest import REPO

REPO_KEYS = {
    "name",
    "path",
    "mounted_before",
    "mounted_after",
    "mounted_on_access",
    "autofs",
    "filesystem",
    "readable",
    "ok",
    "client",
    "seconds",
    "file",
    "xattrs",
    "error",
    "errno",
    "cause",
    "remedy",
}


@pytest.fixture
def cvmfs(tmp_path):
    """A stand-in /cvmfs: two readable repositories, a symlink loop, a FIFO; missing.example.org is absent."""
    root = tmp_path / "cvmfs"
    good = root / "good.example.org"
    (good / "lib").mkdir(parents=True)
    (good / "README").write_text("good\n")
    os.mkfifo(good / "pipe")
    (root / "other.example.org").mkdir()
    (root / "other.example.org" / ".cvmfsdirtab").write_text("/lib/*\n")
    os.symlink("loop.example.org", root / "loop.example.org")
    return root


def run_main(capsys, args):
    """Run the module's main() with ``args``; return (exit code, parsed JSON result)."""
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        cvmfs_probe.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def by_name(out):
    return {r["name"]: r for r in out["repositories"]}


def test_readable_repositories(capsys, cvmfs):
    code, out = run_main(capsys, {"repositories": ["good.example.org", "other.example.org"], "mountpoint": str(cvmfs)})
    assert code == 0 and out["changed"] is False and out["ok"] is True
    repos = by_name(out)
    assert [r["name"] for r in out["repositories"]] == ["good.example.org", "other.example.org"]
    assert all(set(r) == REPO_KEYS for r in out["repositories"])
    assert repos["good.example.org"]["file"] == "README"  # the FIFO is not a regular file
    assert repos["other.example.org"]["file"] == ".cvmfsdirtab"
    assert repos["good.example.org"]["path"] == str(cvmfs / "good.example.org")
    assert not any(r["mounted_before"] or r["mounted_after"] or r["autofs"] for r in out["repositories"])


def test_failures_are_listed_with_cause_and_remedy(capsys, cvmfs):
    repos = ["good.example.org", "loop.example.org", "missing.example.org"]
    code, out = run_main(capsys, {"repositories": repos, "mountpoint": str(cvmfs)})
    assert code == 1 and out["failed"] and out["ok"] is False and out["changed"] is False
    result = by_name(out)
    assert result["loop.example.org"]["errno"] == "ELOOP"
    assert result["loop.example.org"]["error"].endswith("[ELOOP] Too many levels of symbolic links")
    assert "CVM-2004" in result["loop.example.org"]["cause"]
    assert result["missing.example.org"]["errno"] == "ENOENT"
    assert "not an autofs mount" in result["missing.example.org"]["cause"]
    assert out["msg"].startswith("cvmfs_probe: 2 of 3 repositories not readable. loop.example.org: stat ")
    assert "missing.example.org: stat" in out["msg"] and "good.example.org" not in out["msg"]
    assert out["msg"].count("Cause: ") == 2 and out["msg"].count("Remedy: ") == 2


def test_fail_on_error_false_reports_without_failing(capsys, cvmfs):
    args = {"repositories": ["loop.example.org"], "mountpoint": str(cvmfs), "fail_on_error": False}
    code, out = run_main(capsys, args)
    assert code == 0 and "failed" not in out and out["ok"] is False
    assert out["repositories"][0]["readable"] is False


def test_named_file_missing_in_one_repository(capsys, cvmfs):
    args = {"repositories": ["good.example.org", "other.example.org"], "mountpoint": str(cvmfs), "file": "README"}
    code, out = run_main(capsys, args)
    other = by_name(out)["other.example.org"]
    assert code == 1 and other["errno"] == "ENOENT" and other["error"].startswith("read ")
    assert "file to read does not exist" in other["cause"]


def test_a_blocking_read_times_out_and_the_module_returns(capsys, cvmfs):
    args = {"repositories": ["good.example.org"], "mountpoint": str(cvmfs), "file": "pipe", "timeout": 1}
    start = time.monotonic()
    code, out = run_main(capsys, args)
    assert time.monotonic() - start < 2
    (repo,) = out["repositories"]
    assert code == 1 and repo["errno"] == "ETIMEDOUT" and repo["error"].endswith("timed out after 1 s")
    assert "hung" in repo["cause"] and 1 <= repo["seconds"] < 2


def test_check_mode_runs_the_same_probe(capsys, cvmfs):
    args = {"repositories": ["good.example.org", "loop.example.org"], "mountpoint": str(cvmfs), "fail_on_error": False}
    _, normal = run_main(capsys, args)
    code, checked = run_main(capsys, {**args, "_ansible_check_mode": True})
    assert code == 0 and checked["changed"] is False

    def strip(out):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in out["repositories"]]

    assert strip(checked) == strip(normal)


def test_diff_mode_has_nothing_to_show(capsys, cvmfs):
    code, out = run_main(
        capsys, {"repositories": ["good.example.org"], "mountpoint": str(cvmfs), "_ansible_diff": True}
    )
    assert code == 0 and "diff" not in out and out["ok"]


def test_an_option_nothing_reads_is_refused(capsys, cvmfs):
    """keepalive was documented and never read: the probe is the keep-alive. Now it is an unknown option."""
    code, out = run_main(capsys, {"repositories": ["good.example.org"], "mountpoint": str(cvmfs), "keepalive": True})
    assert code == 1 and "keepalive" in out["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"repositories": [], "quota_limit": 0}, "quota_limit must be a positive number of MB, or -1"),
        ({"repositories": [], "cache_base": "var/lib/cvmfs"}, "cache_base 'var/lib/cvmfs' must be an absolute path"),
        ({"repositories": ["atlas"]}, "repository 'atlas' is not a fully qualified repository name"),
        ({"repositories": ["good.example.org", "bad name.org"]}, "repository 'bad name.org'"),
        ({"repositories": ["good.example.org"], "file": "../x"}, "file '../x': give a path relative"),
        ({"repositories": ["good.example.org"], "file": "/etc/passwd"}, "file '/etc/passwd'"),
        ({"repositories": ["good.example.org"], "timeout": 0}, "timeout must be a positive number"),
        ({"repositories": ["good.example.org"], "mountpoint": "cvmfs"}, "mountpoint 'cvmfs' must be an absolute"),
        ({"repositories": ["good.example.org"], "nfiles": 0}, "nfiles must be a positive number"),
    ],
)
def test_bad_input_fails_naming_it(capsys, args, message):
    code, out = run_main(capsys, args)
    assert code == 1 and out["failed"] and message in out["msg"]
    assert "repositories" not in out  # nothing was probed


def test_without_repositories_the_cache_the_site_plans_is_judged_on_the_real_filesystem(capsys, tmp_path):
    """What the cvmfs role asks before it writes any file: its quota against the filesystem of its cache base."""
    base = str(tmp_path / "cache")
    real = os.statvfs(tmp_path)
    size_mb = real.f_blocks * real.f_frsize // (1024 * 1024)
    too_big = size_mb  # the margin makes the filesystem's own size too much for it
    args = {"repositories": [], "cache_base": base, "quota_limit": too_big, "config_root": str(tmp_path / "none")}
    code, out = run_main(capsys, args)
    cache = out["cache"]
    assert cache["size_mb"] == size_mb and cache["quota_limit"] == too_big and out["repositories"] == []
    if cache["kind"] != "local":
        pytest.skip(f"tmp_path is on {cache['filesystem']}: the type fails before the size")
    assert code == 1 and out["failed"] and not out["ok"]
    assert out["msg"].startswith("cvmfs_probe: the cache cannot serve as configured. CVMFS cache: Cause: ")
    assert f"CVMFS_QUOTA_LIMIT={too_big} MB" in out["msg"] and f"at most {cache['suggested_quota']} MB" in out["msg"]
    if cache["suggested_quota"] < 100:
        pytest.skip(f"tmp_path's filesystem ({size_mb} MB) holds no quota with the margin")
    code, out = run_main(capsys, dict(args, quota_limit=cache["suggested_quota"], fail_on_error=True))
    assert code == 0 and out["ok"] and out["cache"]["ok"] and out["changed"] is False


def test_module_runs_standalone_with_an_args_file(cvmfs, tmp_path):
    args = tmp_path / "args.json"
    args.write_text(
        json.dumps({"ANSIBLE_MODULE_ARGS": {"repositories": ["good.example.org"], "mountpoint": str(cvmfs)}})
    )
    proc = subprocess.run(
        [sys.executable, str(REPO / "library" / "cvmfs_probe.py"), str(args)],
        env={**os.environ, "PYTHONPATH": str(REPO / "module_utils")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["ok"] and out["repositories"][0]["file"] == "README"


# ---------------------------------------------------------------------------------------------
# Real FUSE mounts named like the CVMFS client (root and /dev/fuse only)
# ---------------------------------------------------------------------------------------------
_LIBC = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


@pytest.fixture
def fuse_mount():
    """``fuse_mount(path, alive)``: mount an unserved FUSE filesystem (fsname cvmfs2) at ``path``.

    alive=False closes /dev/fuse at once (a crashed client: ENOTCONN); alive=True keeps it open and never answers
    (a hung client). Lazily unmounted afterwards.
    """
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("needs root and /dev/fuse to mount a FUSE filesystem")
    mounted, fds = [], []

    def mount(path, alive):
        os.makedirs(path, exist_ok=True)
        fd = os.open("/dev/fuse", os.O_RDWR)
        opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
        if _LIBC.mount(b"cvmfs2", str(path).encode(), b"fuse", 6, opts) != 0:  # MS_NOSUID | MS_NODEV
            os.close(fd)
            pytest.skip(f"cannot mount FUSE here: {os.strerror(ctypes.get_errno())}")
        mounted.append(path)
        if alive:
            fds.append(fd)
        else:
            os.close(fd)

    yield mount
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    for path in mounted:
        _LIBC.umount2(str(path).encode(), MNT_DETACH)


def test_dead_fuse_client_gives_enotconn(capsys, cvmfs, fuse_mount):
    fuse_mount(cvmfs / "dead.example.org", alive=False)
    code, out = run_main(capsys, {"repositories": ["dead.example.org"], "mountpoint": str(cvmfs)})
    (repo,) = out["repositories"]
    assert code == 1 and repo["errno"] == "ENOTCONN"
    assert repo["error"] == f"stat {cvmfs}/dead.example.org: [ENOTCONN] Transport endpoint is not connected"
    assert (repo["mounted_before"], repo["mounted_after"], repo["filesystem"]) == (True, True, "cvmfs2")
    assert "crashed" in repo["cause"] and "cvmfs_config reload dead.example.org" in repo["remedy"]


def test_hung_fuse_client_times_out(capsys, cvmfs, fuse_mount):
    fuse_mount(cvmfs / "hung.example.org", alive=True)
    args = {"repositories": ["hung.example.org", "good.example.org"], "mountpoint": str(cvmfs), "timeout": 1}
    start = time.monotonic()
    code, out = run_main(capsys, args)
    assert time.monotonic() - start < 3  # the hung repository costs timeout + grace, the good one its access
    hung, good = out["repositories"]
    assert code == 1 and hung["errno"] == "ETIMEDOUT" and hung["filesystem"] == "cvmfs2"
    assert "could not be killed" not in hung["error"]
    assert good["readable"]


def test_an_empty_unmounted_mountpoint_is_not_a_repository(capsys, cvmfs):
    """What a failed or undone static mount leaves: /cvmfs/<repo> exists, empty, nothing mounted on it."""
    (cvmfs / "static.example.org").mkdir()
    code, out = run_main(capsys, {"repositories": ["good.example.org", "static.example.org"], "mountpoint": str(cvmfs)})
    assert code == 1 and out["ok"] is False
    result = by_name(out)
    assert result["good.example.org"]["readable"]
    empty = result["static.example.org"]
    assert not empty["readable"] and not empty["mounted_after"]
    assert empty["error"] == f"list {cvmfs}/static.example.org: empty directory, nothing mounted"
    assert "not a mounted repository" in empty["cause"]
    assert f"mount {cvmfs}/static.example.org" in empty["remedy"]


def test_the_client_is_judged_against_the_configuration_files(capsys, cvmfs, tmp_path):
    """A stand-in repository has no xattrs: no verdict on the client; the files' CVMFS_NFILES is judged."""
    etc = tmp_path / "etc-cvmfs"
    etc.mkdir()
    (etc / "default.local").write_text("CVMFS_HTTP_PROXY='auto;DIRECT'\nCVMFS_NFILES='1024'\n")
    args = {"repositories": ["good.example.org"], "mountpoint": str(cvmfs), "config_root": str(etc)}
    code, out = run_main(capsys, args)
    assert code == 0 and out["ok"]
    repo = out["repositories"][0]
    assert repo["ok"] and repo["client"]["status"] == "unknown"
    assert repo["client"]["checks"][0]["configured"] == "auto;DIRECT"
    assert out["nfiles"]["nfiles"] == 1024 and out["nfiles"]["ok"]
    code, out = run_main(capsys, {**args, "expect_proxy": "DIRECT", "nfiles": 2048})
    assert out["repositories"][0]["client"]["checks"][0]["configured"] == "DIRECT"
    assert out["nfiles"]["nfiles"] == 2048
    # Beyond any kernel's ceiling (fs.nr_open): the probe fails with the cause and the fix.
    code, out = run_main(capsys, {**args, "nfiles": 2**31})
    assert code == 1 and "the client cannot have its open-file limit" in out["msg"] and "CVMFS_NFILES" in out["msg"]
