"""sitekit_cvmfs: the running client against its configuration files, CVMFS_NFILES against the open-file limit, and
the repositories a running client serves; on what a real CVMFS 2.12.0 client left on the lab's worker nodes.

tests/unit/data/cvmfs/real-2.12.0/ holds cvmfs_probe's results and `cvmfs_config showconfig` of wn1 (with
CVMFS_PAC_URLS: the squid) and wn2 (sitekit's defaults then, no CVMFS_PAC_URLS: DIRECT), and the mount that failed on
CVMFS_NFILES=131072 under a hard limit of 20000.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sitekit_cvmfs as cv
import yaml

DATA = Path(__file__).resolve().parents[1] / "data" / "cvmfs"
REAL = DATA / "real-2.12.0"
SQUID = "http://10.89.77.10:3128"
REPO = "software.sitekit.lab"


def recorded(node):
    """The recorded repository result and what showconfig said on ``node`` (wn1 or wn2)."""
    result = json.loads((REAL / f"probe-{node}.json").read_text())["repositories"][0]
    showconfig = next(REAL.glob(f"showconfig-{node}-*.txt")).read_text()
    return result, cv.parse_parameters(showconfig)


def rejudge(node):
    """The recorded access judged by today's code: the same mount states, xattrs and file."""
    result, params = recorded(node)
    state = {"mounted": result["mounted_before"], "autofs": result["autofs"], "filesystem": result["filesystem"]}
    access = {"step": None, "xattrs": result["xattrs"], "file": result["file"], "seconds": result["seconds"]}
    return cv.repository_result(result["name"], "/cvmfs", state, dict(state), access, params)


# ---------------------------------------------------------------------------------------------
# What the files say
# ---------------------------------------------------------------------------------------------
def test_showconfig_output_is_read_like_a_configuration_file():
    _, wn1 = recorded("wn1")
    _, wn2 = recorded("wn2")
    assert wn1["CVMFS_HTTP_PROXY"] == wn2["CVMFS_HTTP_PROXY"] == "auto;DIRECT"
    assert wn1["CVMFS_PAC_URLS"] == "http://grid-wpad/wpad.dat;http://wpad/wpad.dat"
    assert "CVMFS_PAC_URLS" not in wn2
    assert wn1["CVMFS_NFILES"] == "16384" and wn1["CVMFS_CACHE_DIR"] == "/var/lib/cvmfs/shared"
    assert wn1["CVMFS_SERVER_URL"] == f"http://stratum1.sitekit.lab/cvmfs/{REPO}"
    assert wn1["CVMFS_DNS_RETRIES"] == ""


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("CVMFS_HTTP_PROXY='a|b;DIRECT'", "a|b;DIRECT"),
        ('CVMFS_QUOTA_LIMIT="20000"  # a comment', "20000"),
        ("export CVMFS_NFILES=16384", "16384"),
        ("  CVMFS_REPOSITORIES=a.b,c.d    # from /etc/cvmfs/default.local", "a.b,c.d"),
        ("CVMFS_X='it'\\''s'", "it's"),  # how cvmfs_default_local writes an embedded quote
        ("CVMFS_EMPTY=", ""),
    ],
)
def test_assignments(line, value):
    name = line.strip().removeprefix("export ").split("=", 1)[0]
    assert cv.parse_parameters(line)[name] == value


def test_comments_and_other_shell_lines_are_not_assignments():
    text = "# CVMFS_X=1\nif [ -n x ]; then\nCMS_LOCAL_SITE=T2_XX\n  CVMFS_Y=2\nfi\n1X=2\nA-B=3\n"
    assert cv.parse_parameters(text) == {"CMS_LOCAL_SITE": "T2_XX", "CVMFS_Y": "2"}


def test_files_are_read_in_the_clients_order(tmp_path):
    root = tmp_path / "cvmfs"
    for rel, text in {
        "default.conf": "CVMFS_NFILES=131072\nCVMFS_HTTP_PROXY=DIRECT\nCVMFS_TIMEOUT=5\n",
        "default.d/50-site.conf": "CVMFS_TIMEOUT=7\n",
        "default.local": "CVMFS_HTTP_PROXY='auto;DIRECT'\nCVMFS_NFILES='16384'\n",
        "domain.d/sitekit.lab.local": "CVMFS_SERVER_URL='http://s1/cvmfs/@fqrn@'\n",
        "config.d/software.sitekit.lab.local": "CVMFS_NFILES=8192\n",
        "config.d/other.sitekit.lab.local": "CVMFS_NFILES=1\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    params = cv.read_parameters(REPO, str(root))
    assert params["CVMFS_HTTP_PROXY"] == "auto;DIRECT" and params["CVMFS_TIMEOUT"] == "7"
    assert params["CVMFS_NFILES"] == "8192" and params["CVMFS_SERVER_URL"] == "http://s1/cvmfs/@fqrn@"
    assert cv.read_parameters(REPO, str(tmp_path / "none")) == {}


# ---------------------------------------------------------------------------------------------
# The recorded real client: wn2 went DIRECT, wn1 used the squid
# ---------------------------------------------------------------------------------------------
def test_recorded_wn2_on_direct_fails_with_cause_and_remedy():
    result = rejudge("wn2")
    assert result["readable"] and not result["ok"]
    client = result["client"]
    assert client["status"] == "fail"
    proxy = client["checks"][0]
    assert (proxy["name"], proxy["running"], proxy["configured"]) == ("proxy", "DIRECT", "auto;DIRECT")
    assert "CVMFS_PAC_URLS is not set" in result["cause"] and "DIRECT" in result["cause"]
    assert "cvmfs_pac_urls" in result["remedy"] and f"cvmfs_config reload {REPO}" in result["remedy"]
    assert result["error"] == f"proxy /cvmfs/{REPO}: uses DIRECT, configured auto;DIRECT"
    message = cv.failure_message({"ok": False, "repositories": [result], "nfiles": None})
    assert message.startswith("cvmfs_probe: 1 of 1 repositories served against the configuration. ")
    assert "Cause: " in message and "Remedy: " in message


def test_recorded_wn1_through_the_squid_passes():
    result = rejudge("wn1")
    assert result["ok"] and result["cause"] is None
    checks = {c["name"]: c for c in result["client"]["checks"]}
    assert result["client"]["status"] == "ok"
    assert checks["proxy"]["running"] == SQUID and checks["proxy"]["status"] == "ok"
    assert checks["host"]["status"] == "ok" and checks["revision"]["status"] == "ok"
    assert checks["revision"]["detail"] == "revision 2, valid 2 more min"
    assert cv.failure_message({"ok": True, "repositories": [result], "nfiles": None}) is None


# ---------------------------------------------------------------------------------------------
# Each judgement
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("configured", "used", "pac", "status", "words"),
    [
        ("DIRECT", "DIRECT", None, "ok", "uses DIRECT"),
        ("auto;DIRECT", SQUID, "http://wpad/wpad.dat", "ok", SQUID),
        ("http://squid1:3128;DIRECT", SQUID, None, "ok", SQUID),
        ("auto;DIRECT", "DIRECT", None, "fail", "CVMFS_PAC_URLS is not set"),
        ("auto;DIRECT", "DIRECT", "http://wpad/wpad.dat", "fail", "no PAC file of CVMFS_PAC_URLS"),
        ("http://squid1:3128|http://squid2:3128;DIRECT", "DIRECT", None, "fail", "every proxy failed"),
        ("DIRECT", SQUID, None, "drift", "older configuration"),
        ("auto;DIRECT", None, None, "unknown", "no proxy attribute"),
        (None, "DIRECT", None, "unknown", "not in the files"),
    ],
)
def test_proxy(configured, used, pac, status, words):
    check = cv.judge_proxy(configured, used, pac, REPO)
    assert check["status"] == status
    assert words in (check["cause"] or check["detail"])
    assert (check["remedy"] is None) == (status in ("ok", "unknown"))


@pytest.mark.parametrize(
    ("configured", "used", "status"),
    [
        ("http://s1/cvmfs/@fqrn@;http://s2/cvmfs/@fqrn@", f"http://s2/cvmfs/{REPO}", "ok"),
        ("http://s1/cvmfs/@org@.sitekit.lab/", f"http://s1/cvmfs/{REPO}", "ok"),
        ("http://s1/cvmfs/@fqrn@", f"http://old/cvmfs/{REPO}", "drift"),
        (None, f"http://s1/cvmfs/{REPO}", "unknown"),
        ("http://s1/cvmfs/@fqrn@", None, "unknown"),
    ],
)
def test_host(configured, used, status):
    check = cv.judge_host(configured, used, REPO)
    assert check["status"] == status
    if status == "drift":
        assert f"cvmfs_config reload {REPO}" == check["remedy"].removeprefix("run `").removesuffix("`")


@pytest.mark.parametrize(
    ("xattrs", "status"),
    [
        ({"expires": "2", "revision": "2"}, "ok"),
        ({"expires": "never (fixed root catalog)", "revision": "7"}, "ok"),
        ({"expires": "-30", "revision": "2", "timestamp_last_ioerr": "1796000000", "nioerr": "3"}, "drift"),
        ({"revision": "2"}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_revision_freshness(xattrs, status):
    check = cv.judge_revision(xattrs, REPO)
    assert check["status"] == status
    if status == "drift":
        assert "expired 30 min ago" in check["cause"] and "remount sync" in check["remedy"]


def test_a_stand_in_without_xattrs_has_no_verdict_and_passes():
    state = {"mounted": True, "autofs": True, "filesystem": "tmpfs"}
    access = {"step": None, "xattrs": {}, "file": "README", "seconds": 0.01}
    params = {"CVMFS_HTTP_PROXY": "auto;DIRECT"}
    result = cv.repository_result("images.sitekit.lab", "/cvmfs", state, state, access, params)
    assert result["ok"] and result["client"]["status"] == "unknown"


def test_expect_proxy_replaces_the_files():
    _, params = recorded("wn2")
    client = cv.judge_client({"proxy": "DIRECT"}, params, REPO, expect_proxy="DIRECT")
    assert client["checks"][0]["status"] == "ok"


# ---------------------------------------------------------------------------------------------
# CVMFS_NFILES against the hard limit on open files
# ---------------------------------------------------------------------------------------------
PROC = yaml.safe_load((REAL / "proc-wn2.yml").read_text())


def test_the_recorded_nodes_limit_is_read_from_proc():
    facts = cv.nofile_facts(PROC["files"])
    assert facts == {"hard_limit": 20000, "can_raise": False, "nr_open": 1048576}


def test_the_recorded_failing_mount_is_predicted_and_its_fix_fits():
    """131072 failed on wn2 with the recorded message, 16384 mounted: the check says the same, before the mount."""
    text = (REAL / "mount-nfiles-131072-hard-limit-20000.txt").read_text()
    assert "CVMFS_NFILES=131072" in text and "mounted cvmfs on /cvmfs/software.sitekit.lab" in text
    facts = cv.nofile_facts(PROC["files"])
    bad = cv.judge_nfiles(131072, facts)
    assert not bad["ok"] and bad["suggested"] == PROC["expect"]["suggested"]
    assert "hard limit on open files (20000)" in bad["cause"] and "CAP_SYS_RESOURCE" in bad["cause"]
    assert "set CVMFS_NFILES to at most 20000, e.g. 16384" in bad["remedy"] and "--ulimit nofile" in bad["remedy"]
    assert cv.judge_nfiles(16384, facts)["ok"]


def test_the_recorded_mount_message_maps_to_cause_and_remedy():
    text = (REAL / "mount-nfiles-131072-hard-limit-20000.txt").read_text()
    message = next(line for line in text.splitlines() if line.startswith("Failed to set"))
    cause, remedy = cv.classify_error(None, message, "stat", False, REPO)
    assert cause.startswith("Failed to set maximum number of open files: CVMFS_NFILES is above the hard limit")
    assert "within `ulimit -Hn`" in remedy and "cvmfs_nfiles" in remedy and f"cvmfs_config probe {REPO}" in remedy


@pytest.mark.parametrize(
    ("status", "nfiles", "ok"),
    [
        # The capability in the effective and the bounding set: the client raises its own limit.
        ("CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n", 131072, True),
        ("CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n", 2_000_000, False),  # above fs.nr_open
        # pid 1 of a container may hold it while its bounding set, which mount helpers inherit, does not.
        ("CapEff:\t000001ffffffffff\nCapBnd:\t000001fffeffffff\n", 131072, False),
        ("CapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n", 20000, True),
    ],
)
def test_raising_the_limit_needs_the_capability(status, nfiles, ok):
    texts = dict(PROC["files"], **{"1/status": status, "self/status": status})
    assert cv.judge_nfiles(nfiles, cv.nofile_facts(texts))["ok"] is ok


def test_an_unlimited_or_unknown_limit_has_no_objection():
    assert cv.nofile_facts({})["hard_limit"] is None
    assert cv.judge_nfiles(131072, cv.nofile_facts({"1/limits": "Max open files  unlimited  unlimited  files"}))["ok"]


@pytest.mark.parametrize(("hard", "value"), [(20000, 16384), (1024, 1024), (65536, 65536), (10**6, 131072)])
def test_suggested_nfiles(hard, value):
    assert cv.suggested_nfiles(hard) == value


def test_this_nodes_proc_is_readable():
    facts = cv.read_nofile_facts()
    assert set(facts) == {"hard_limit", "can_raise", "nr_open"}


def test_probe_judges_nfiles_from_the_files_and_the_client_from_its_xattrs(tmp_path):
    root, mnt = tmp_path / "etc", tmp_path / "cvmfs"
    root.mkdir()
    (mnt / "images.sitekit.lab").mkdir(parents=True)
    (mnt / "images.sitekit.lab" / "README").write_text("hello\n")
    (root / "default.local").write_text("CVMFS_HTTP_PROXY='auto;DIRECT'\nCVMFS_NFILES='131072'\n")
    facts = lambda: cv.nofile_facts(PROC["files"])  # noqa: E731
    result = cv.probe(["images.sitekit.lab"], str(mnt), None, 10, lambda: "", config_root=str(root), nofile=facts)
    assert result["repositories"][0]["ok"] and result["repositories"][0]["client"]["status"] == "unknown"
    assert not result["ok"] and result["nfiles"]["nfiles"] == 131072 and not result["nfiles"]["ok"]
    message = cv.failure_message(result)
    assert message.startswith("cvmfs_probe: the client cannot have its open-file limit. CVMFS_NFILES: Cause: ")
    fixed = cv.probe(
        ["images.sitekit.lab"],
        str(mnt),
        None,
        10,
        lambda: "",
        expect={"nfiles": 16384},
        config_root=str(root),
        nofile=facts,
    )
    assert fixed["ok"] and fixed["nfiles"]["ok"]
    # No configuration file at all: no verdict on open files.
    bare = cv.probe(
        ["images.sitekit.lab"], str(mnt), None, 10, lambda: "", config_root=str(tmp_path / "no"), nofile=facts
    )
    assert bare["ok"] and bare["nfiles"] is None


# ---------------------------------------------------------------------------------------------
# The repositories a running client serves (the reload handler's condition)
# ---------------------------------------------------------------------------------------------
MOUNTED = {
    "mountinfo-el9-cvmfs-static.yml": ["cms.cern.ch", "cvmfs-config.cern.ch"],
    "mountinfo-el9-cvmfs-autofs.yml": ["atlas.cern.ch", "cvmfs-config.cern.ch"],
    "mountinfo-dead-fuse.yml": ["dead"],
    "mountinfo-wn2-plain.yml": [],
    "mountinfo-wn2-unshare.yml": [],
    "mountinfo-wn2-autofs.yml/before": [],
    "mountinfo-wn2-autofs.yml/after": [],
}


def mount_table(case):
    name, _, part = case.partition("/")
    data = yaml.safe_load((DATA / name).read_text())
    return data[part or "mountinfo"], data["mountpoint"]


def test_every_recorded_mount_table_is_covered():
    names = {case.partition("/")[0] for case in MOUNTED}
    assert names == {p.name for p in DATA.glob("mountinfo-*.yml")}


@pytest.mark.parametrize("case", sorted(MOUNTED))
def test_mounted_repositories(case):
    text, mountpoint = mount_table(case)
    assert cv.mounted_repositories(text, mountpoint) == MOUNTED[case]


def test_a_cvmfs_mount_elsewhere_or_covered_does_not_count():
    text = (
        "1 0 0:1 / / rw - ext4 /dev/sda1 rw\n"
        "2 1 0:2 / /cvmfs/a.b rw - fuse cvmfs2 rw\n"
        "3 2 0:3 / /cvmfs/a.b rw - tmpfs tmpfs rw\n"
        "4 1 0:4 / /srv/cvmfs/c.d rw - fuse cvmfs2 rw\n"
        "5 1 0:5 / /cvmfs/e.f/sub rw - fuse cvmfs2 rw\n"
    )
    assert cv.mounted_repositories(text) == []
