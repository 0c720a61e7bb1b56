"""sitekit_cvmfs: mount tables, error classification and the timed access, on recorded data and real filesystems.

Recorded data lives in tests/unit/data/cvmfs/: mount tables from the lab node wn2 (plain, with an autofs stand-in for
/cvmfs before and after access, and inside a private mount namespace), written ones for CVMFS hosts (autofs and
static), error texts with their source, and the module's results from real runs on wn2. The access helper runs
against directories, symlink loops and FIFOs under tmp_path: real filesystem operations, no mocks.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest
import sitekit_cvmfs as cv
import yaml

DATA = Path(__file__).resolve().parents[1] / "data" / "cvmfs"
RESULT_KEYS = {
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


def load(name):
    with open(DATA / name, encoding="utf-8") as handle:
        return json.load(handle) if name.endswith(".json") else yaml.safe_load(handle)


def mountinfo_cases():
    return sorted(p.name for p in DATA.glob("mountinfo-*.yml"))


ERROR_CASES = load("errors.yml")["cases"]


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["atlas.cern.ch", "cvmfs-config.cern.ch", "oasis.opensciencegrid.org", "sft-nightlies.cern.ch", "a.b", "x_y.org"],
)
def test_valid_repository_names(name):
    assert cv.validate_repository(name) == name


@pytest.mark.parametrize(
    "name",
    ["atlas", "", "atlas.cern.ch.", ".cern.ch", "atlas..cern.ch", "-atlas.cern.ch", "at las.cern.ch", "../etc.x",
     "atlas/cern.ch", "a" * 64 + ".ch", None, 3],
)  # fmt: skip
def test_invalid_repository_names_are_named_in_the_error(name):
    with pytest.raises(ValueError) as exc:
        cv.validate_repository(name)
    assert f"repository {name!r}" in str(exc.value)


@pytest.mark.parametrize(
    ("rel", "expected"),
    [(None, None), ("", None), ("README", "README"), ("etc/./cvmfs/x.conf", "etc/cvmfs/x.conf")],
)
def test_valid_files(rel, expected):
    assert cv.validate_file(rel) == expected


@pytest.mark.parametrize("rel", ["/etc/passwd", "../other.example.org/README", "a/../../b"])
def test_invalid_files(rel):
    with pytest.raises(ValueError, match="relative to the repository root"):
        cv.validate_file(rel)


# ---------------------------------------------------------------------------------------------
# Mount tables
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", mountinfo_cases())
def test_mount_states_from_recorded_and_written_tables(case):
    spec = load(case)
    tables = {"before": spec["before"], "after": spec["after"]} if "before" in spec else {None: spec["mountinfo"]}
    for when, text in tables.items():
        mounts = cv.parse_mountinfo(text)
        assert len(mounts) == len(text.splitlines())  # every real line parses
        expect = spec["expect"][when] if when else spec["expect"]
        for name, state in expect.items():
            if name.startswith("_"):
                continue
            assert cv.mount_state(mounts, spec["mountpoint"], name) == state, (when, name)
        if "_autofs_mounts" in expect:
            assert [m["mount_point"] for m in mounts if m["fstype"] == "autofs"] == expect["_autofs_mounts"]
        if "_unescaped" in expect:
            assert expect["_unescaped"] in [m["mount_point"] for m in mounts]


def test_recorded_autofs_mount_entry_fields():
    before = cv.parse_mountinfo(load("mountinfo-wn2-autofs.yml")["before"])
    base = cv.top_mount(before, "/tmp-cvmfs-test/")
    assert base["fstype"] == "autofs"
    assert base["source"] == "/etc/auto.sitekit-probe-test"  # autofs shows the map as the source
    assert "timeout=10" in base["super_options"] and "indirect" in base["super_options"]
    after = cv.parse_mountinfo(load("mountinfo-wn2-autofs.yml")["after"])
    bind = cv.top_mount(after, "/tmp-cvmfs-test/good.example.org")
    assert (bind["root"], bind["parent_id"]) == ("/sitekit-probe-src/good.example.org", base["mount_id"])


def test_cvmfs_client_mount_is_recognised():
    mounts = cv.parse_mountinfo(load("mountinfo-el9-cvmfs-autofs.yml")["mountinfo"])
    entry = cv.top_mount(mounts, "/cvmfs/atlas.cern.ch")
    assert cv.is_cvmfs_mount(entry)
    assert not cv.is_cvmfs_mount(cv.top_mount(mounts, "/cvmfs"))
    assert not cv.is_cvmfs_mount(None)


def test_later_mount_covers_earlier_and_autofs_trigger_is_not_mounted():
    text = (
        "30 1 0:40 / /cvmfs rw - autofs /etc/auto.cvmfs rw,indirect\n"
        "31 30 0:41 / /cvmfs/a.example.org rw - autofs /etc/auto.direct rw,direct\n"
        "garbage line without separator\n"
        "32 30 0:42 / /cvmfs/b.example.org ro - fuse cvmfs2 ro\n"
        "33 32 0:43 / /cvmfs/b.example.org ro - tmpfs tmpfs rw\n"
    )
    mounts = cv.parse_mountinfo(text)
    assert len(mounts) == 4
    assert cv.mount_state(mounts, "/cvmfs", "a.example.org") == {"mounted": False, "autofs": True, "filesystem": None}
    assert cv.mount_state(mounts, "/cvmfs", "b.example.org")["filesystem"] == "tmpfs"


def test_unreadable_mountinfo_is_empty(tmp_path):
    assert cv.read_mountinfo(str(tmp_path / "nope")) == ""
    assert "/proc" in cv.read_mountinfo()


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ERROR_CASES, ids=[c["name"] for c in ERROR_CASES])
def test_error_classification(case):
    cause, remedy = cv.classify_error(case["errno"], case["text"], case["step"], case["autofs"], "cms.cern.ch")
    assert case["expect"]["cause"] in cause
    assert case["expect"]["remedy"] in remedy
    access = {"step": case["step"], "errno": case["errno"], "strerror": case["text"], "seconds": 0.1}
    state = {"mounted": False, "autofs": case["autofs"], "filesystem": None}
    result = cv.repository_result("cms.cern.ch", "/cvmfs", state, state, access)
    assert set(result) == RESULT_KEYS
    assert result["errno"] == case["expect"]["errno"]
    assert (result["readable"], result["cause"], result["remedy"]) == (False, cause, remedy)
    assert case["text"] in result["error"]


@pytest.mark.parametrize(
    ("number", "text", "expected"),
    [
        (40, None, errno.ELOOP),
        (None, "TRANSPORT ENDPOINT IS NOT CONNECTED", errno.ENOTCONN),
        (0, "Input/output error", errno.EIO),
        (None, "something else", None),
        (None, None, None),
    ],
)
def test_errno_of(number, text, expected):
    assert cv.errno_of(number, text) == expected


def test_python_strerror_texts_match_the_table():
    """The texts the table keys on are the ones this system's C library gives (the child reports strerror)."""
    for needle, code in cv._TEXT_ERRNO.items():
        assert os.strerror(code).lower() == needle


def test_remedies_name_the_mountpoint_and_repository():
    cause, remedy = cv.classify_error(errno.ELOOP, None, "list", True, "lhcb.cern.ch", "/cvmfs")
    assert "/cvmfs/lhcb.cern.ch" in remedy and "--timeout=0 for /cvmfs" in remedy and "CVM-2004" in cause


def test_readable_result_and_failure_message():
    state = {"mounted": True, "autofs": True, "filesystem": "cvmfs2"}
    fine = cv.repository_result(
        "atlas.cern.ch", "/cvmfs", {**state, "mounted": False, "filesystem": None}, state,
        {"step": None, "file": ".cvmfsdirtab", "xattrs": {"revision": "14822"}, "seconds": 0.8},
    )  # fmt: skip
    assert fine["readable"] and fine["mounted_on_access"] and fine["filesystem"] == "cvmfs2"
    assert (fine["error"], fine["errno"], fine["cause"], fine["remedy"]) == (None, None, None, None)
    assert cv.failure_message({"ok": True, "repositories": [fine]}) is None
    bad = cv.repository_result(
        "cms.cern.ch", "/cvmfs", state, state, {"step": "stat", "errno": 107, "strerror": "Transport endpoint is not "
        "connected", "target": "/cvmfs/cms.cern.ch", "seconds": 0.01},
    )  # fmt: skip
    msg = cv.failure_message({"ok": False, "repositories": [fine, bad]})
    assert msg.startswith("cvmfs_probe: 1 of 2 repositories not readable. cms.cern.ch: stat /cvmfs/cms.cern.ch: ")
    assert "[ENOTCONN]" in msg and "Cause: " in msg and "cvmfs_config reload cms.cern.ch" in msg
    assert "atlas.cern.ch" not in msg


# ---------------------------------------------------------------------------------------------
# Recorded module runs on wn2 (autofs stand-in)
# ---------------------------------------------------------------------------------------------
RUNS = load("wn2-autofs-runs.json")["runs"]


def test_recorded_runs_have_the_result_shape():
    for run in RUNS:
        assert set(run["result"]) >= {"ok", "repositories"}, run["name"]
        for repo in run["result"]["repositories"]:
            # Recorded before the client verdict (ok, client) existed.
            assert RESULT_KEYS - {"ok", "client"} <= set(repo) <= RESULT_KEYS, run["name"]
            assert repo["readable"] == (repo["error"] is None)


def test_recorded_first_access_was_mounted_by_autofs():
    first = {r["name"]: r for r in RUNS[0]["result"]["repositories"]}
    good = first["good.example.org"]
    assert (good["mounted_before"], good["mounted_after"], good["mounted_on_access"], good["autofs"]) == (
        False, True, True, True,
    )  # fmt: skip
    assert good["seconds"] < 1 and good["file"] == "README" and good["filesystem"] == "tmpfs"
    for name in ("broken.example.org", "missing.example.org"):
        assert first[name]["errno"] == "ENOENT" and not first[name]["mounted_after"]
    second = RUNS[1]["result"]["repositories"][0]
    assert (second["mounted_before"], second["mounted_on_access"]) == (True, False)


def test_recorded_private_namespace_gives_eloop_and_the_cvm_2004_cause():
    private = RUNS[3]["result"]["repositories"]
    assert [r["errno"] for r in private] == ["ELOOP", "ELOOP"]
    assert all(r["error"].startswith("list ") for r in private)  # stat of the autofs directory still worked
    assert all(cv.errno_of(None, r["error"]) == errno.ELOOP for r in private)
    premounted = RUNS[4]["result"]["repositories"][0]
    assert premounted["readable"] and premounted["mounted_before"]


# ---------------------------------------------------------------------------------------------
# The timed access, on real files
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "good.example.org"
    (path / "sub").mkdir(parents=True)
    (path / "zz-readme").write_text("sitekit\n")
    os.symlink("/etc/hostname", path / "a-link")  # a symlink is never chosen
    os.mkfifo(path / "b-fifo")  # nor a FIFO (not a regular file)
    return path


def test_access_reads_the_first_regular_file(repo):
    report = cv.access_repository(str(repo), timeout=10)
    assert report["step"] is None and report["file"] == "zz-readme" and report["bytes"] == 8
    assert report["entries"] == 4 and not report["timed_out"] and report["seconds"] < 5


def test_access_reads_the_named_file_and_reports_a_missing_one(repo):
    assert cv.access_repository(str(repo), "zz-readme", 10)["bytes"] == 8
    missing = cv.access_repository(str(repo), "nope", 10)
    assert (missing["step"], missing["errno"], missing["target"]) == ("read", errno.ENOENT, str(repo / "nope"))


def test_access_of_an_empty_repository_has_no_file(tmp_path):
    report = cv.access_repository(str(tmp_path), timeout=10)
    assert report["step"] is None and report["file"] is None and report["entries"] == 0


def test_access_through_a_symlink_loop_gives_eloop(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    report = cv.access_repository(str(tmp_path / "a"), timeout=10)
    assert (report["step"], report["errno"], report["strerror"]) == ("stat", 40, "Too many levels of symbolic links")


def test_access_reads_xattrs_where_the_filesystem_has_them(repo):
    try:
        os.setxattr(repo, "user.revision", b"14822")
        os.setxattr(repo, "user.nioerr", b"0\n")
    except OSError as exc:
        pytest.skip(f"tmp_path's filesystem takes no user xattrs: {exc}")
    report = cv.access_repository(str(repo), timeout=10)
    assert report["xattrs"] == {"revision": "14822", "nioerr": "0"}


def test_access_of_a_blocking_file_is_killed_after_the_timeout(repo):
    start = time.monotonic()
    report = cv.access_repository(str(repo), "b-fifo", timeout=1)
    elapsed = time.monotonic() - start
    assert 1 <= elapsed < 2, elapsed
    assert report["timed_out"] and report["step"] == "timeout"
    assert report["strerror"] == "timed out after 1 s"


def test_run_with_timeout_kills_the_whole_session(tmp_path):
    marker = tmp_path / "survived"
    # A grandchild in the same session must die with the child.
    argv = ["sh", "-c", f"(sleep 2; touch {marker}) & sleep 30"]
    run = cv.run_with_timeout(argv, 0.5)
    assert run["timed_out"] and run["killed"] and run["seconds"] < 1.5
    time.sleep(2.5)
    assert not marker.exists()


def test_run_with_timeout_returns_output_and_rc():
    run = cv.run_with_timeout(["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
    assert (run["rc"], run["stdout"], run["stderr"], run["timed_out"]) == (3, "out\n", "err\n", False)


def test_child_that_dies_without_a_report(tmp_path):
    report = cv.access_repository(str(tmp_path), timeout=10, python="/bin/false")
    assert report["step"] == "child" and "exited with 1" in report["strerror"]


def test_probe_reads_the_mount_table_before_and_after(repo):
    tables = iter([load("mountinfo-wn2-autofs.yml")["before"], load("mountinfo-wn2-autofs.yml")["after"]])
    result = cv.probe(["good.example.org"], str(repo.parent), timeout=10, mountinfo=lambda: next(tables))
    # The recorded tables are about /tmp-cvmfs-test, not tmp_path: nothing here counts as mounted.
    (only,) = result["repositories"]
    assert result["ok"] and only["readable"] and not only["mounted_before"] and not only["autofs"]


def test_an_empty_directory_is_readable_only_when_something_is_mounted_on_it():
    access = {"step": None, "entries": 0, "file": None, "seconds": 0.01, "xattrs": {}}
    unmounted = {"mounted": False, "autofs": False, "filesystem": None}
    mounted = {"mounted": True, "autofs": False, "filesystem": "cvmfs2"}
    empty = cv.repository_result("a.example.org", "/cvmfs", unmounted, unmounted, access)
    assert not empty["readable"] and empty["cause"].startswith("/cvmfs/a.example.org is an empty directory")
    assert cv.repository_result("a.example.org", "/cvmfs", mounted, mounted, access)["readable"]
    # A directory with entries is judged by its access alone (unit tests use plain directories as repositories).
    assert cv.repository_result("a.example.org", "/cvmfs", unmounted, unmounted, dict(access, entries=3))["readable"]
