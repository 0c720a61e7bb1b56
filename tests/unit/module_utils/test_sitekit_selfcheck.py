"""sitekit_selfcheck: the node self-check, judged from the modules' own results and recorded runs.

The judges get what sitekit_kernel, sitekit_cvmfs and sitekit_launch return: verdicts of the recorded platform trees
(tests/unit/data/platforms/), the probe runs recorded on a lab node (tests/unit/data/cvmfs/wn2-autofs-runs.json) and the
real Apptainer launches recorded in tests/unit/data/launch/. tests/unit/data/selfcheck/ holds whole self-check results
recorded on the molecule htcondor scenario's nodes (ready, /cvmfs gone, user namespaces off, image unreadable) and what
a real startd published from the command's ClassAd output. The rest runs the real code on this machine: the CVMFS
probe on tmp directories, the launch where no Apptainer can be found, the command line and its settings file.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest
import sitekit_launch as sl
import sitekit_selfcheck as sc
from sitekit_kernel import check_node

DATA = Path(__file__).resolve().parents[1] / "data"
SELFCHECK = DATA / "selfcheck"
RECORDED = ["ready", "cvmfs-gone", "userns-off", "image-unreadable"]
CLASSAD_NAMES = [
    "SitekitReady",
    "SitekitReason",
    "SitekitFailedCheck",
    "SitekitLaunchSeconds",
    "SitekitKernelVerdict",
    "SitekitPlatform",
    "SitekitImage",
    "SitekitCheckedAt",
    "SitekitCheckSeconds",
]


def load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def recorded(name):
    return load(SELFCHECK / f"{name}.json")


def launch_record(name):
    return load(DATA / "launch" / f"{name}.json")


def parse_old_classad(text):
    """``Name = value`` lines as a startd reads cron output (old ClassAd syntax): in a string only \\" escapes."""
    ad = {}
    for line in text.splitlines():
        if line.startswith("-"):
            break
        name, value = line.split(" = ", 1)
        if value.startswith('"'):
            assert value.endswith('"') and not value.endswith('\\"'), line
            ad[name] = value[1:-1].replace('\\"', '"')
        elif value in ("true", "false"):
            ad[name] = value == "true"
        elif value == "undefined":
            ad[name] = None
        else:
            ad[name] = float(value) if "." in value else int(value)
    return ad


# ---------------------------------------------------------------------------------------------
# The kernel check, from verdicts of recorded platform trees
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "ok", "mode", "remedy"),
    [
        ("debian13", True, "unprivileged", None),
        ("el9", True, "unprivileged", None),
        ("el7.3-setuid", True, "setuid", None),
        ("el8-max0", False, "unsupported", "user.max_user_namespaces = 15000"),
        ("debian12-clone0", False, "unsupported", "kernel.unprivileged_userns_clone = 1"),
        (
            "ubuntu24.04-restricted-noprofile",
            False,
            "unsupported",
            "apparmor_parser -r /etc/apparmor.d/apptainer-userns",
        ),
        ("el6", False, "unsupported", "reinstall the node with EL9"),
    ],
)
def test_kernel_check_from_recorded_trees(make_tree, case, ok, mode, remedy):
    step = sc.kernel_check(str(make_tree(case)))
    assert (step["ok"], step["mode"]) == (ok, mode)
    if ok:
        assert step["cause"] is None and step["remedy"] is None
    else:
        assert "no user namespaces" in step["cause"]
        assert remedy in step["remedy"]


def test_kernel_cause_names_each_blocker(make_tree):
    verdict = check_node(str(make_tree("el7.5-off")))
    step = sc.judge_kernel(verdict)
    blockers = [n.split(": ", 1)[1] for n in verdict["notes"] if n.startswith("user namespaces: ")]
    assert blockers and all(b in step["cause"] for b in blockers)
    # Every remedy, in the verdict's order, joined with "then".
    assert step["remedy"] == "; then ".join(s["action"] for s in verdict["remediation"])


# ---------------------------------------------------------------------------------------------
# The CVMFS check, from probe results recorded on a lab node and from real probes of tmp trees
# ---------------------------------------------------------------------------------------------
def test_cvmfs_check_from_a_recorded_probe_with_failures():
    run = load(DATA / "cvmfs" / "wn2-autofs-runs.json")["runs"][0]["result"]
    names = [r["name"] for r in run["repositories"]]
    step = sc.judge_cvmfs(run, names)
    failed = [r for r in run["repositories"] if not r["readable"]]
    readable = [r["name"] for r in run["repositories"] if r["readable"]]
    assert not step["ok"] and failed
    assert step["detail"].startswith(f"{len(readable)}/{len(names)} repositories readable")
    first = failed[0]
    assert step["cause"] == f"{first['name']}: {first['error']}: {first['cause']}"
    assert step["remedy"] == first["remedy"]
    assert [r["name"] for r in step["repositories"]] == names


def test_cvmfs_check_of_readable_repositories_only():
    run = load(DATA / "cvmfs" / "wn2-autofs-runs.json")["runs"][0]["result"]
    good = {"repositories": [r for r in run["repositories"] if r["readable"]]}
    step = sc.judge_cvmfs(good, [r["name"] for r in good["repositories"]])
    assert step["ok"] and step["cause"] is None


def test_no_repositories_is_no_failure():
    assert sc.judge_cvmfs({"repositories": []}, [])["ok"]


def test_cvmfs_check_probes_real_directories(tmp_path):
    (tmp_path / "good.example.org").mkdir()
    (tmp_path / "good.example.org" / "README").write_text("x\n")
    step = sc.cvmfs_check(["good.example.org"], str(tmp_path), lambda: 10)
    assert step["ok"], step
    step = sc.cvmfs_check(["good.example.org", "missing.example.org"], str(tmp_path), lambda: 10)
    assert not step["ok"] and step["cause"].startswith("missing.example.org: stat ")
    assert "ENOENT" in step["cause"] and step["remedy"]


def test_cvmfs_check_stops_when_the_budget_is_used_up(tmp_path):
    (tmp_path / "a.example.org").mkdir()
    left = iter([5, 0.5])
    step = sc.cvmfs_check(["a.example.org", "b.example.org"], str(tmp_path), lambda: next(left))
    assert not step["ok"] and step["detail"].startswith("not run:") and "b.example.org" in step["cause"]


# ---------------------------------------------------------------------------------------------
# The launch check, from real Apptainer launches recorded in the lab
# ---------------------------------------------------------------------------------------------
def judged_launch(name):
    """A recorded launch judged as ``sitekit_launch.launch`` judges it: (record, result, problem)."""
    record = launch_record(name)
    run = {k: record[k] for k in ("rc", "stdout", "stderr", "seconds", "timed_out", "leftover")}
    parsed = sl.parse_probe_output(record["stdout"], record["token"])
    targets = [sl.parse_bind(b)[1] for b in record["inputs"]["binds"]]
    result = sl.empty_result(record["inputs"]["image"], record["inputs"]["user"])
    result["command"] = record["argv"]
    problem = sl.judge(
        result,
        run,
        parsed,
        marker=record["token"],
        scratch=record["scratch"],
        timeout=record["inputs"]["timeout"],
        bind_targets=targets,
        host_processes=record["host_processes"],
    )
    return record, result, problem


def judge_record(name):
    """The self-check's launch step for a recorded launch."""
    record, result, problem = judged_launch(name)
    return record, sc.judge_launch(result, problem)


@pytest.mark.parametrize("name", ["ok-flat", "debian12-ready"])
def test_launch_check_of_recorded_good_launches(name):
    record, step = judge_record(name)
    assert step["ok"], step
    assert step["seconds"] == record["seconds"] and step["image_os"]
    assert step["detail"].startswith(f"launched {record['inputs']['image']} as {record['inputs']['user']}")


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        ("userns-max-0", "user namespaces are off"),
        ("image-unreadable", "may not reach the image"),
        ("image-missing", "does not exist"),
        ("mountns-eperm", "refuses the mount namespace"),
        ("timeout", "did not finish within the timeout"),
    ],
)
def test_launch_check_of_recorded_failures(name, cause):
    record, step = judge_record(name)
    assert not step["ok"]
    assert cause in step["cause"], step["cause"]
    assert step["remedy"]
    expected = sl.diagnose(
        record["stderr"] + "\n" + sl.parse_probe_output(record["stdout"], record["token"])["other"],
        record["timed_out"],
        sl.timeout_stage(sl.parse_probe_output(record["stdout"], record["token"])),
    )
    assert (step["cause"], step["remedy"]) == expected


def test_a_launch_without_its_own_pid_namespace_fails_with_the_pid_remedy():
    _record, step = judge_record("no-pid")
    assert not step["ok"]
    assert step["cause"].startswith("pid_namespace: no PID namespace")
    assert step["remedy"] == sc.CHECK_REMEDIES["pid_namespace"]


def test_launch_without_apptainer_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr(sl, "SEARCH_PATH", str(tmp_path))
    step = sc.launch_check(str(tmp_path), "nobody", timeout=5)
    assert not step["ok"] and "Apptainer is not installed" in step["cause"]
    assert sl.CVMFS_APPTAINER in step["remedy"] and step["checks"] is None


def test_launch_of_a_missing_image_is_diagnosed_before_anything_runs(tmp_path):
    step = sc.launch_check(str(tmp_path / "none"), "nobody", timeout=5)
    assert not step["ok"] and step["cause"] == f"the image {tmp_path / 'none'} does not exist"


def test_launch_with_a_missing_bind_source(tmp_path):
    step = sc.launch_check(str(tmp_path), "nobody", binds=[str(tmp_path / "cvmfs")], timeout=5)
    assert not step["ok"] and "does not exist on the host" in step["cause"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the probe account is looked up only when running as root")
def test_launch_as_root_needs_an_existing_unprivileged_account(tmp_path):
    step = sc.launch_check(str(tmp_path), "sitekit-no-such-user", timeout=5)
    assert not step["ok"] and "there is no account sitekit-no-such-user" in step["cause"]
    step = sc.launch_check(str(tmp_path), "root", timeout=5)
    assert not step["ok"] and "unprivileged" in step["cause"]


# ---------------------------------------------------------------------------------------------
# The whole check, and whole results recorded on the scenario's nodes
# ---------------------------------------------------------------------------------------------
def ok(name, **extra):
    return sc._step(name, True, f"{name} fine", **extra)


def bad(name, cause, remedy="fix it", **extra):
    return sc._step(name, False, f"{name} broken", cause, remedy, **extra)


def test_the_reason_is_the_first_failing_check_in_order():
    launch = bad("launch", "launch cause", seconds=None, checks=None, image="/img")
    result = sc.summarize(
        ok("kernel", mode="unprivileged", platform="debian13"), bad("cvmfs", "cvmfs cause"), launch, 7, 1
    )
    assert (result["ready"], result["failed_check"]) == (False, "cvmfs")
    assert result["reason"] == "cvmfs: cvmfs cause. Remedy: fix it"
    assert result["launch_seconds"] is None and result["checked_at"] == 7


def test_ready_when_every_check_passes():
    launch = ok("launch", seconds=0.2, checks={}, image="/img")
    result = sc.summarize(ok("kernel", mode="unprivileged", platform="debian13"), ok("cvmfs"), launch, 1, 0.3)
    assert result["ready"] and result["reason"] == "ready" and result["failed_check"] == ""
    assert result["launch_seconds"] == 0.2 and result["kernel_verdict"] == "unprivileged"


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_results_are_consistent_with_summarize(name):
    result = recorded(name)["result"]
    again = sc.summarize(
        result["checks"]["kernel"],
        result["checks"]["cvmfs"],
        result["checks"]["launch"],
        result["checked_at"],
        result["seconds"],
    )
    assert again == result


@pytest.mark.parametrize(
    ("name", "failed", "cause"),
    [
        ("ready", "", None),
        ("cvmfs-gone", "cvmfs", "[ENOENT] No such file or directory"),
        ("userns-off", "kernel", "user.max_user_namespaces is 0"),
        ("image-unreadable", "launch", "a directory on its path is closed to the user"),
    ],
)
def test_recorded_results_say_what_broke(name, failed, cause):
    result = recorded(name)["result"]
    assert result["failed_check"] == failed
    assert result["ready"] is (failed == "")
    if cause:
        assert cause in result["reason"] and ". Remedy: " in result["reason"]


def test_recorded_userns_off_launch_failed_for_the_same_reason():
    launch = recorded("userns-off")["result"]["checks"]["launch"]
    assert "maximum number of user namespaces exceeded" in launch["error"]
    assert launch["cause"] == sl.diagnose(launch["error"])[0]


def test_run_gives_the_launch_what_is_left_of_the_budget():
    ticks = iter([0.0, 2.5, 9.0])
    seen = {}

    def launch(image, user, binds, timeout, apptainer, scratch_base, host_path_policy, minimum_version):
        seen.update(timeout=timeout, minimum_version=minimum_version)
        return ok("launch", seconds=1.0, checks={}, image=image)

    config = sc.validate_config({"image": "/img", "timeout": 10, "minimum_version": "1.5.0"})
    result = sc.run(
        config,
        clock=lambda: next(ticks),
        now=lambda: 100,
        checks={
            "kernel": lambda root: ok("kernel", mode="unprivileged", platform="x"),
            "cvmfs": lambda repos, mnt, remaining: ok("cvmfs"),
            "launch": launch,
        },
    )
    assert seen == {"timeout": 7.5, "minimum_version": "1.5.0"}
    assert result["ready"] and result["seconds"] == 9.0 and result["checked_at"] == 100


def test_run_does_not_launch_when_the_budget_is_used_up():
    ticks = iter([0.0, 9.5, 10.0])
    config = sc.validate_config({"image": "/img", "timeout": 10})
    result = sc.run(
        config,
        clock=lambda: next(ticks),
        now=lambda: 0,
        checks={
            "kernel": lambda root: ok("kernel", mode="unprivileged", platform="x"),
            "cvmfs": lambda repos, mnt, remaining: ok("cvmfs"),
            "launch": lambda *a: pytest.fail("the launch must not run"),
        },
    )
    assert result["failed_check"] == "launch" and "used up" in result["reason"]


# ---------------------------------------------------------------------------------------------
# The ClassAd a startd cron job publishes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("ready", '"ready"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a\\b", '"a/b"'),
        ("ends in backslash\\", '"ends in backslash/"'),
        ("line one\nline two\ttab", '"line one line two tab"'),
        ("\x1b[31mERROR\x1b[0m colour", '"ERROR colour"'),
        ("", '""'),
    ],
)
def test_classad_strings(text, literal):
    assert sc.classad_string(text) == literal


def test_long_reasons_are_cut():
    literal = sc.classad_string("x" * 5000)
    assert len(literal) == sc.REASON_CHARS + 2 and literal.endswith('..."')


def test_recorded_ready_classad_has_every_attribute_in_order():
    record = recorded("ready")
    names = [line.split(" = ")[0] for line in record["classad"].splitlines() if not line.startswith("-")]
    assert names == CLASSAD_NAMES
    mine = sc.to_classad(record["result"])
    assert [line.split(" = ")[0] for line in mine.splitlines()] == [*CLASSAD_NAMES, "- update:true"]
    published = parse_old_classad(record["classad"])
    assert published["SitekitReady"] is True and published["SitekitReason"] == "ready"


@pytest.mark.parametrize("name", RECORDED)
def test_classads_of_recorded_results_read_back_as_the_result(name):
    result = recorded(name)["result"]
    ad = parse_old_classad(sc.to_classad(result))
    assert ad["SitekitReady"] is result["ready"]
    assert ad["SitekitReason"] == result["reason"].replace("\\", "/")[: sc.REASON_CHARS]
    assert ad["SitekitFailedCheck"] == result["failed_check"]
    assert ad["SitekitCheckedAt"] == result["checked_at"]
    assert ad["SitekitLaunchSeconds"] == (
        None if result["launch_seconds"] is None else round(result["launch_seconds"], 3)
    )


def test_what_a_real_startd_published_matches_the_command_output():
    """Quotes escaped with a backslash, the backslash itself written as '/': read back exactly as the startd did."""
    record = recorded("published-quotes-backslash")
    ours = parse_old_classad(record["classad"])
    published = record["published"]
    for name in ("SitekitReady", "SitekitReason", "SitekitFailedCheck", "SitekitKernelVerdict", "SitekitPlatform"):
        assert ours[name] == published[name], name
    assert '"' in published["SitekitReason"] and "\\" not in published["SitekitReason"]
    assert published["SitekitLaunchSeconds"] is None and published["State"] == "Owner"
    # The command writes the same line again for the same reason.
    line = next(x for x in record["classad"].splitlines() if x.startswith("SitekitReason = "))
    assert line == "SitekitReason = " + sc.classad_string(published["SitekitReason"])


# ---------------------------------------------------------------------------------------------
# Settings and the command line
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "image:"),
        ({"image": "/i", "extra": 1}, "unknown settings ['extra']"),
        ({"image": "/i", "timeout": 0}, "timeout:"),
        ({"image": "/i", "timeout": True}, "timeout:"),
        ({"image": "/i", "repositories": ["not a name"]}, "not a fully qualified repository name"),
        ({"image": "/i", "binds": ["relative"]}, "is not an absolute path"),
        ({"image": "/i", "apptainer": "apptainer"}, "apptainer:"),
        ({"image": "/i", "scratch_base": "tmp"}, "scratch_base:"),
        ([], "JSON object"),
    ],
)
def test_bad_settings_are_named(raw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        sc.validate_config(raw)


def test_settings_get_defaults():
    config = sc.validate_config({"image": "/i"})
    assert config["user"] == "sitekit-probe" and config["timeout"] == 60 and config["binds"] == []


def fake_result(ready):
    launch = ok("launch", seconds=0.1, checks={}, image="/i") if ready else bad("launch", "it broke")
    launch.setdefault("seconds", None)
    return sc.summarize(ok("kernel", mode="unprivileged", platform="debian13"), ok("cvmfs"), launch, 1, 0.2)


@pytest.mark.parametrize(
    ("ready", "fmt", "code"),
    [(True, [], 0), (False, [], 1), (False, ["--classad"], 0), (True, ["--json"], 0), (False, ["--json"], 1)],
)
def test_command_line_exit_codes_and_formats(tmp_path, monkeypatch, ready, fmt, code):
    settings = tmp_path / "selfcheck.json"
    settings.write_text(json.dumps({"image": "/i"}))
    monkeypatch.setattr(sc, "run", lambda config: fake_result(ready))
    out = io.StringIO()
    assert sc.main(fmt, str(settings), out) == code
    text = out.getvalue()
    if fmt == ["--classad"]:
        assert text.startswith("SitekitReady = false\n") and text.endswith("- update:true\n")
    elif fmt == ["--json"]:
        assert json.loads(text)["ready"] is ready
    else:
        assert text.startswith("sitekit self-check: " + ("READY" if ready else "NOT READY"))


def test_unreadable_settings_publish_not_ready(tmp_path):
    out = io.StringIO()
    assert sc.main(["--classad"], str(tmp_path / "missing.json"), out) == 0
    ad = parse_old_classad(out.getvalue())
    assert ad["SitekitReady"] is False and ad["SitekitFailedCheck"] == "config"
    assert "run the htcondor_apptainer role again" in ad["SitekitReason"]


def test_a_crash_publishes_not_ready_rather_than_nothing(tmp_path, monkeypatch):
    settings = tmp_path / "selfcheck.json"
    settings.write_text(json.dumps({"image": "/i"}))

    def crash(config):
        raise RuntimeError("boom")

    monkeypatch.setattr(sc, "run", crash)
    out = io.StringIO()
    assert sc.main(["--classad"], str(settings), out) == 0
    ad = parse_old_classad(out.getvalue())
    assert ad["SitekitReady"] is False and "RuntimeError: boom" in ad["SitekitReason"]


def test_usage_errors(tmp_path, capsys):
    assert sc.main(["--bogus"], str(tmp_path / "x.json"), io.StringIO()) == 2
    assert "usage: sitekit-selfcheck" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The real CVMFS 2.12.0 client: a node whose client goes DIRECT is not ready
# ---------------------------------------------------------------------------------------------
def _real(node):
    from sitekit_cvmfs import parse_parameters, repository_result

    real = DATA / "cvmfs" / "real-2.12.0"
    recorded = json.loads((real / f"probe-{node}.json").read_text())["repositories"][0]
    params = parse_parameters(next(real.glob(f"showconfig-{node}-*.txt")).read_text())
    state = {"mounted": True, "autofs": False, "filesystem": "cvmfs2"}
    access = {"step": None, "xattrs": recorded["xattrs"], "file": recorded["file"], "seconds": recorded["seconds"]}
    return repository_result(recorded["name"], "/cvmfs", state, state, access, params)


def test_a_client_gone_direct_makes_the_node_not_ready():
    step = sc.judge_cvmfs({"repositories": [_real("wn2")], "nfiles": None}, ["software.sitekit.lab"])
    assert not step["ok"]
    assert step["detail"] == "1/1 repositories readable: software.sitekit.lab; proxy DIRECT"
    assert "CVMFS_PAC_URLS is not set" in step["cause"] and "cvmfs_config reload" in step["remedy"]


def test_a_client_through_the_squid_is_ready_and_names_it():
    step = sc.judge_cvmfs({"repositories": [_real("wn1")], "nfiles": None}, ["software.sitekit.lab"])
    assert step["ok"] and step["detail"].endswith("; proxy http://10.89.77.10:3128")


def test_an_open_file_limit_the_client_cannot_have_makes_the_node_not_ready():
    limit = {"ok": False, "cause": "Failed to set maximum number of open files: ...", "remedy": "set CVMFS_NFILES"}
    step = sc.judge_cvmfs({"repositories": [_real("wn1")], "nfiles": limit}, ["software.sitekit.lab"])
    assert not step["ok"] and step["cause"] == limit["cause"] and step["remedy"] == "set CVMFS_NFILES"


def test_a_recorded_good_launch_with_an_apptainer_below_the_minimum_is_not_ready_with_the_upgrade():
    """The recorded lab launch passes; the same launch by an Apptainer older than the minimum takes the node out, the
    reason naming the advisory and the remedy the node's upgrade command."""
    record, result, problem = judged_launch("ok-flat")
    sl.add_version_check(result, sl.version_check("apptainer version 1.4.4-1.el9", "1.4.5", family="RedHat"))
    step = sc.judge_launch(result, problem)
    assert not step["ok"]
    assert step["cause"].startswith("version: Apptainer 1.4.4-1.el9 is older than 1.4.5 (1.4.5 fixed GHSA-j3rw")
    assert step["remedy"].startswith("upgrade Apptainer to 1.4.5 or newer: dnf upgrade apptainer")
    sl.add_version_check(result, sl.version_check(record["recorded"]["apptainer"], "1.4.5"))
    result.update(ready=True, cause=None, remedy=None)
    assert sc.judge_launch(result, problem)["ok"]


def test_the_minimum_version_defaults_to_the_launch_checks_and_must_be_a_version():
    assert sc.validate_config({"image": "/img"})["minimum_version"] == sl.versions.APPTAINER_MINIMUM
    assert sc.validate_config({"image": "/img", "minimum_version": ""})["minimum_version"] == ""
    with pytest.raises(ValueError, match="minimum_version: expected a version string"):
        sc.validate_config({"image": "/img", "minimum_version": "soon"})


# ---------------------------------------------------------------------------------------------
# Named images and GPUs
# ---------------------------------------------------------------------------------------------
IMAGES = [
    {"name": "cms-el9", "path": "/cvmfs/img/cms-el9"},
    {"name": "atlas", "path": "/cvmfs/img/atlas"},
    {"name": "site", "path": "/img"},
]


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ({"cms": "/cvmfs/x"}, "images: give a list of {name, path}, got dict"),
        ([{"name": "cms"}], "images[0]: give exactly a name and a path"),
        ([{"name": "-cms", "path": "/x"}], "images[0].name: give 1-64 letters"),
        ([{"name": "cms", "path": "cvmfs/x"}], "images[0].path (cms): give the image's absolute path"),
        (
            [{"name": "cms", "path": "/a"}, {"name": "CMS", "path": "/b"}],
            "images[1].name: 'CMS' is already images[0]'s name",
        ),
    ],
)
def test_bad_image_lists_are_refused_naming_the_entry(images, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        sc.validate_config({"image": "/img", "images": images})


def fake_launches(broken=()):
    launched = []

    def launch(image, user, binds, timeout, apptainer, scratch_base, host_path_policy, minimum_version=None):
        launched.append(image)
        if image in broken:
            return bad("launch", f"{image}: permission denied", seconds=None, checks=None, image=image)
        return ok("launch", seconds=0.1, checks={}, image=image, image_os="Debian GNU/Linux 12 (bookworm)")

    return launched, launch


def run_with(config, launch, gpu_row=None):
    return sc.run(
        sc.validate_config(config),
        now=lambda: 1,
        checks={
            "kernel": lambda root: ok("kernel", mode="unprivileged", platform="x"),
            "cvmfs": lambda repos, mnt, remaining: ok("cvmfs"),
            "launch": launch,
            "gpu": lambda config, remaining: gpu_row or sc.judge_gpu({"count": 0, "reason": "none here"}),
        },
    )


def test_each_named_image_is_launched_once_and_a_broken_one_leaves_the_node_ready():
    launched, launch = fake_launches(broken={"/cvmfs/img/atlas"})
    result = run_with({"image": "/img", "images": IMAGES}, launch)
    # The site image is launched once, as the main launch.
    assert launched == ["/img", "/cvmfs/img/cms-el9", "/cvmfs/img/atlas"]
    assert result["ready"] and result["images_ready"] == ["cms-el9", "site"]
    assert result["images_failed"] == ["atlas"]
    (atlas,) = [row for row in result["images"] if row["name"] == "atlas"]
    assert "permission denied" in atlas["reason"]
    ad = sc.to_classad(result)
    assert 'SitekitImagesReady = {"cms-el9", "site"}\n' in ad and 'SitekitImagesFailed = {"atlas"}\n' in ad
    assert "image   FAIL  atlas: /cvmfs/img/atlas: " in sc.to_text(result)


def test_images_left_without_time_are_not_ready():
    clock = {"now": 0.0}
    _launched, launch = fake_launches()

    def slow_launch(*args, **kwargs):
        clock["now"] += 9.5
        return launch(*args, **kwargs)

    result = sc.run(
        sc.validate_config({"image": "/img", "images": IMAGES, "timeout": 10}),
        clock=lambda: clock["now"],
        now=lambda: 1,
        checks={
            "kernel": lambda root: ok("kernel", mode="unprivileged", platform="x"),
            "cvmfs": lambda repos, mnt, remaining: ok("cvmfs"),
            "launch": slow_launch,
            "gpu": lambda config, remaining: sc.judge_gpu({"count": 0, "reason": "none"}),
        },
    )
    # The site image took the budget: it is ready (its own launch), the other two were not launched.
    assert result["ready"] and result["images_failed"] == ["cms-el9", "atlas"] and result["images_ready"] == ["site"]
    assert "time budget was used up before image cms-el9" in result["images"][0]["reason"]


def test_no_images_no_image_attributes():
    _launched, launch = fake_launches()
    result = run_with({"image": "/img"}, launch)
    assert "images" not in result and "SitekitImagesReady" not in sc.to_classad(result)


def test_an_empty_list_is_a_classad_list():
    assert sc.classad_list([]) == "{}"
    assert sc.classad_list(["a", 'b"c']) == '{"a", "b\\"c"}'


def test_a_node_without_gpus_skips_the_gpu_check_with_the_reason(tmp_path):
    (tmp_path / "dev").mkdir()
    row = sc.gpu_check(sc.validate_config({"image": "/img"}), lambda: 10, root=str(tmp_path))
    assert row == {
        "count": 0,
        "checked": False,
        "ok": None,
        "discovered": None,
        "detail": "skipped: no NVIDIA GPU on this node (no /dev/nvidia<N> device, no /proc/driver/nvidia/gpus entry)",
    }
    off = sc.judge_gpu({"count": 2, "reason": None}, enabled=False)
    assert off["checked"] is False and "htcondor_apptainer_gpus: false" in off["detail"]


def gpu_discovery(name):
    from sitekit_gpu import parse_discovery

    return parse_discovery((DATA / "gpu" / name).read_text(encoding="utf-8"))


def test_a_gpu_node_whose_discovery_and_launch_agree_is_ok():
    row = sc.judge_gpu({"count": 2, "reason": None}, gpu_discovery("two-a100.txt"), ok("launch", seconds=0.3))
    assert row["ok"] and row["checked"] and row["discovered"] == 2
    assert row["detail"] == "2 NVIDIA GPU(s) (NVIDIA A100-SXM4-40GB), a launch with --nv works"


def test_a_gpu_node_where_htcondor_finds_fewer_gpus_than_the_driver_is_not_ok():
    row = sc.judge_gpu({"count": 4, "reason": None}, gpu_discovery("two-a100.txt"), ok("launch"))
    assert row["ok"] is False and "finds 2 GPUs where the driver shows 4" in row["detail"]


def test_a_gpu_node_without_the_driver_library_or_a_failing_nv_launch_is_not_ok():
    row = sc.judge_gpu(
        {"count": 1, "reason": None}, gpu_discovery("no-driver.txt"), bad("launch", "could not find libnvidia")
    )
    assert row["ok"] is False
    assert (
        "libnvidia-ml.so.1" in row["detail"] and "a launch with --nv fails: could not find libnvidia" in row["detail"]
    )


def test_the_gpu_launch_passes_nv_through_the_one_launch(monkeypatch, tmp_path):
    """On a node with GPUs the check is the one launch (sitekit_launch.launch) with --nv added."""
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "nvidia0").write_text("")
    seen = {}

    def fake_launch(image, user, **kwargs):
        seen.update(kwargs, image=image)
        result = sl.empty_result(image, user)
        return result, "stopped here", []

    monkeypatch.setattr(sc.launch, "launch", fake_launch)
    monkeypatch.setattr(sc, "gpu_discovery", lambda timeout: None)
    row = sc.gpu_check(sc.validate_config({"image": "/img"}), lambda: 10, root=str(tmp_path))
    assert seen["extra_args"] == ("--nv",) and seen["image"] == "/img"
    assert row["checked"] and row["ok"] is False and row["count"] == 1
