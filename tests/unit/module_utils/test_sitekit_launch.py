"""sitekit_launch: the probe, its parser, the checks and the error mapping, on output recorded from real Apptainer.

Each file in tests/unit/data/launch/ is one real launch in the lab (Apptainer 1.4.5 on Debian 13), made with this
module's own ``build_probe``, ``build_launch_argv``, ``launch_env`` and ``run_as``: its inputs, the probe, the argv,
rc, stdout and stderr as they came back, and an ``expect`` block. Conditions the lab kernel does not have were made
around one launch only (a user namespace with user.max_user_namespaces = 0, a chroot, a seccomp filter, a killed
FUSE daemon in a private mount namespace); each record's description and ``inputs.wrapper`` say how.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sitekit_launch as sl

LAUNCH_DIR = Path(__file__).resolve().parents[1] / "data" / "launch"
RECORDS = sorted(LAUNCH_DIR.glob("*.json"))
CHECK_NAMES = {"launch", "pid_namespace", "binds", "scratch", "host_paths"}


def load(name):
    with open(LAUNCH_DIR / f"{name}.json", encoding="utf-8") as handle:
        return json.load(handle)


def records(predicate=lambda r: True):
    loaded = [load(p.stem) for p in RECORDS]
    chosen = [r for r in loaded if predicate(r)]
    return pytest.mark.parametrize("record", chosen, ids=[r["name"] for r in chosen])


def launched(record):
    return record["rc"] == 0 or record["timed_out"]


def inputs_of(record):
    """(bind targets, host paths) as the module derives them from the record's inputs."""
    inputs = record["inputs"]
    targets = [sl.parse_bind(b)[1] for b in inputs["binds"]]
    host_paths = {var: sl.split_path_list(inputs["host_env"].get(var, "")) for var in sl.HOST_PATH_VARS}
    return targets, host_paths


def judge(record, pid=None, host_path_policy="fail"):
    """The checks as the module judges the record; the records' expectations count host paths (policy "fail")."""
    targets, host_paths = inputs_of(record)
    parsed = sl.parse_probe_output(record["stdout"], record["token"])
    launch = {k: record[k] for k in ("rc", "stdout", "stderr", "seconds", "timed_out", "leftover")}
    checks, ready = sl.evaluate(
        parsed,
        launch=launch,
        marker=record["token"],
        scratch=record["scratch"],
        bind_targets=targets,
        host_paths=host_paths,
        pid=record["inputs"]["pid"] if pid is None else pid,
        host_processes=record["host_processes"],
        command_given=bool(record["inputs"]["command"]),
        host_path_policy=host_path_policy,
    )
    return parsed, checks, ready


# ---------------------------------------------------------------------------------------------
# The records themselves
# ---------------------------------------------------------------------------------------------
def test_there_are_records_of_every_kind():
    loaded = [load(p.stem) for p in RECORDS]
    assert len(loaded) >= 20
    assert {r["recorded"]["apptainer"] for r in loaded} == {"apptainer version 1.4.5"}
    assert any(r["rc"] == 0 for r in loaded)
    assert any(r["timed_out"] for r in loaded)
    assert any(r["rc"] not in (0, None) and not r["timed_out"] for r in loaded)
    for record in loaded:
        assert record["scratch_removed"] is True, record["name"]
        assert record["leftover"] == [], record["name"]


@records()
def test_record_was_made_by_the_current_probe_and_launch_line(record):
    """The parser is tested on what the current probe prints: a changed probe needs new recordings."""
    targets, host_paths = inputs_of(record)
    inputs = record["inputs"]
    probe = sl.build_probe(record["token"], targets, host_paths, host_pid=record["host_pid"])
    assert probe == record["probe"]
    apptainer = record["argv"][0]
    if inputs.get("baseline_only"):
        assert record["argv"] == sl.build_baseline_argv(apptainer, inputs["image"])
    else:
        argv = sl.build_launch_argv(
            apptainer,
            inputs["image"],
            record["scratch"],
            "<probe>",
            binds=inputs["binds"],
            pid=inputs["pid"],
            extra_args=inputs["extra_args"],
            command=inputs["command"],
        )
        assert argv == record["argv"]
    env = sl.launch_env(inputs["user"], record["scratch"], apptainer, inputs["host_env"], "/usr/bin:/bin")
    assert {k: v for k, v in env.items() if k.startswith("APPTAINERENV_")} == record["apptainer_env"]
    assert "#" in os.path.basename(record["scratch"])


@records(launched)
def test_record_checks(record):
    expect = record["expect"]
    parsed, checks, ready = judge(record)
    assert ready is expect["ready"]
    assert {name: check["ok"] for name, check in checks.items()} == expect["checks"]
    assert set(checks) == CHECK_NAMES | ({"command"} if record["inputs"]["command"] else set())
    if "image_os" in expect:
        assert parsed["os"] == expect["image_os"]
    for name, texts in expect.get("detail_contains", {}).items():
        for text in texts:
            assert text in checks[name]["detail"], (name, text, checks[name]["detail"])
    for var, value in expect.get("container_env", {}).items():
        assert parsed["env"][var] == value


@records(lambda r: not launched(r) or r["timed_out"])
def test_record_diagnosis(record):
    expect = record["expect"]
    parsed = sl.parse_probe_output(record["stdout"], record["token"])
    stage = sl.timeout_stage(parsed, bool(record["inputs"]["command"]))
    cause, remedy = sl.diagnose(record["stderr"] + "\n" + parsed["other"], record["timed_out"], stage)
    assert expect["cause_contains"] in cause
    assert expect.get("remedy_contains", "") in remedy
    assert (cause, remedy) != sl.UNKNOWN_CAUSE
    if "error_contains" in expect:
        excerpt = sl.error_excerpt(record["stderr"])
        assert expect["error_contains"] in excerpt
        assert "\x1b" not in excerpt
        assert excerpt.startswith(("FATAL", "ERROR"))


def test_every_error_cause_is_seen_in_a_record():
    """No entry of the mapping table lives on guesses alone: each pattern matches a real error text."""
    texts = [sl.strip_ansi(load(p.stem)["stderr"]) for p in RECORDS]
    unseen = [pattern for pattern, _, _ in sl.ERROR_CAUSES if not any(re.search(pattern, t, re.I) for t in texts)]
    assert unseen == []


def test_without_pid_namespace_the_host_is_visible():
    """The no-pid record: with --pid off the container sees the node's processes and its systemd as PID 1."""
    record = load("no-pid")
    parsed, checks, _ = judge(record, pid=True)
    assert parsed["host_pid"] == "visible"
    assert parsed["pid1"] == "systemd"
    assert parsed["procs"] > 2
    assert checks["pid_namespace"]["ok"] is False
    assert "module's host process is visible" in checks["pid_namespace"]["detail"]


def test_apptainer_replaces_path_and_drops_ld_library_path_without_the_prefix():
    """Recorded: the host's values arrive only through APPTAINERENV_; LD_LIBRARY_PATH gains /.singularity.d/libs."""
    plain = sl.parse_probe_output(load("debian12-ready")["stdout"], load("debian12-ready")["token"])
    assert plain["env"]["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    record = load("ok-flat")
    parsed = sl.parse_probe_output(record["stdout"], record["token"])
    assert parsed["env"]["PATH"] == record["apptainer_env"]["APPTAINERENV_PATH"]
    assert parsed["env"]["LD_LIBRARY_PATH"] == record["apptainer_env"]["APPTAINERENV_LD_LIBRARY_PATH"] + (
        ":/.singularity.d/libs"
    )


def test_sif_unpacked_into_a_sandbox_is_slower_than_mounted():
    """Recorded timings: a SIF without squashfuse is unpacked per launch; with squashfuse it is mounted."""
    assert load("sif-no-squashfuse")["seconds"] > 3 * load("sif-squashfuse")["seconds"]


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("/cvmfs", ("/cvmfs", "/cvmfs", None)),
        ("/data/x:/data", ("/data/x", "/data", None)),
        ("/data/x:/data:ro", ("/data/x", "/data", "ro")),
        ("/etc/localtime::ro", ("/etc/localtime", "/etc/localtime", "ro")),
        ("/with space:/in side", ("/with space", "/in side", None)),
    ],
)
def test_parse_bind(spec, parsed):
    assert sl.parse_bind(spec) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "give src or src:dst"),
        ("   ", "give src or src:dst"),
        ("/a,/b", "one bind per list element"),
        ("/a:/b:ro:x", "expected src, src:dst or src:dst:ro|rw"),
        ("/a:/b:rx", "must be ro or rw"),
        ("data", "'data' is not an absolute path"),
        ("/a:data", "'data' is not an absolute path"),
        ("/a\tb", "tabs or newlines"),
        (None, "give src or src:dst"),
    ],
)
def test_parse_bind_rejects(spec, message):
    with pytest.raises(ValueError, match=message.replace("|", r"\|")):
        sl.parse_bind(spec)


@pytest.mark.parametrize(
    ("value", "entries"),
    [
        ("/usr/bin:/bin", ["/usr/bin", "/bin"]),
        ("/usr/bin::/bin:", ["/usr/bin", "/bin"]),
        ("/bin:/usr/bin:/bin", ["/bin", "/usr/bin"]),
        ("", []),
        (None, []),
    ],
)
def test_split_path_list(value, entries):
    assert sl.split_path_list(value) == entries


@pytest.mark.parametrize(
    ("binary", "prefix"),
    [
        ("/usr/bin/apptainer", "APPTAINERENV_"),
        ("/cvmfs/oasis.opensciencegrid.org/mis/apptainer/bin/apptainer", "APPTAINERENV_"),
        ("/usr/bin/singularity", "SINGULARITYENV_"),
    ],
)
def test_launch_env_is_clean_and_passes_the_host_paths(binary, prefix):
    env = sl.launch_env("pilot", "/tmp/sitekit#launch-x", binary, {"PATH": "/a:/b", "HOME": "/x"}, "/usr/bin")
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/tmp/sitekit#launch-x",
        "USER": "pilot",
        "LOGNAME": "pilot",
        "LANG": "C",
        "LC_ALL": "C",
        f"{prefix}PATH": "/a:/b",
    }


def test_launch_argv_follows_the_pilot_line():
    argv = sl.build_launch_argv("/usr/bin/apptainer", "/img", "/tmp/s#1", "PROBE", binds=["/cvmfs", "/a:/b"])
    assert argv == [
        "/usr/bin/apptainer",
        "exec",
        "--contain",
        "--ipc",
        "--pid",
        "--home",
        "/tmp/s#1:/srv",
        "--pwd",
        "/srv",
        "--bind",
        "/cvmfs,/a:/b",
        "/img",
        "/bin/sh",
        "-c",
        "PROBE",
        "sitekit-probe",
    ]
    bare = sl.build_launch_argv("a", "/img", "/s", "P", contain=False, ipc=False, pid=False, extra_args=["--x"])
    assert bare == [
        "a",
        "exec",
        "--home",
        "/s:/srv",
        "--pwd",
        "/srv",
        "--x",
        "/img",
        "/bin/sh",
        "-c",
        "P",
        "sitekit-probe",
    ]
    assert sl.build_launch_argv("a", "/i", "/s", "P", command=["id", "-u"])[-3:] == ["sitekit-probe", "id", "-u"]


# ---------------------------------------------------------------------------------------------
# The probe, run by a real POSIX shell outside any container
# ---------------------------------------------------------------------------------------------
SHELLS = [s for s in ("dash", "sh", "bash") if shutil.which(s)]


@pytest.mark.parametrize("shell", SHELLS)
def test_probe_runs_in_a_posix_shell_and_round_trips(shell, tmp_path):
    """Paths with spaces and quotes survive quoting; the parser reads back what the shell printed."""
    home = tmp_path / "srv home"
    home.mkdir()
    (home / sl.MARKER_NAME).write_text("sitekit-t0k3n\n")
    there = tmp_path / "it's here"
    there.mkdir()
    gone = str(tmp_path / "not $HOME")
    probe = sl.build_probe(
        "sitekit-t0k3n",
        [str(there), gone],
        {"PATH": [str(there), gone], "LD_LIBRARY_PATH": [gone]},
        host_pid=os.getpid(),
        home=str(home),
    )
    proc = subprocess.run(
        [shutil.which(shell), "-c", probe, "sitekit-probe", "sh", "-c", "echo job says hi; exit 7"],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LD_LIBRARY_PATH": "/x:/y"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    parsed = sl.parse_probe_output(proc.stdout, "sitekit-t0k3n")
    assert parsed["started"] and parsed["ended"]
    assert parsed["cwd"] == str(home)
    assert parsed["home"] == str(home)
    assert parsed["host_pid"] == "visible"  # no PID namespace here
    assert parsed["procs"] > 1
    assert parsed["binds"] == {str(there): True, gone: False}
    assert parsed["marker"] == "sitekit-t0k3n"
    assert parsed["writable"] is True
    assert list(home.iterdir()) == [home / sl.MARKER_NAME]  # the write test cleaned up
    assert parsed["host_paths"] == {"PATH": {str(there): True, gone: False}, "LD_LIBRARY_PATH": {gone: False}}
    assert parsed["env"] == {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": "/x:/y"}
    assert parsed["os"]  # the test machine's PRETTY_NAME
    assert parsed["command_rc"] == 7
    assert parsed["other"].strip() == "job says hi"


def test_probe_without_command_or_os_release(tmp_path):
    """No command: no command_rc; the probe still ends."""
    probe = sl.build_probe("tok", home=str(tmp_path))
    out = subprocess.run(["sh", "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    parsed = sl.parse_probe_output(out, "tok")
    assert parsed["ended"] and parsed["command_rc"] is None and parsed["host_pid"] is None
    assert parsed["marker"] == ""


def test_parse_keeps_command_output_that_lacks_a_newline():
    out = "tok\tstart\npartial line without newlinetok\tcommand_rc\t0\ntok\tend\n"
    parsed = sl.parse_probe_output(out, "tok")
    assert parsed["command_rc"] == 0
    assert parsed["other"] == "partial line without newline"


def test_parse_empty_output():
    parsed = sl.parse_probe_output("", "tok")
    assert parsed["started"] is False and parsed["binds"] == {} and parsed["other"] == ""


# ---------------------------------------------------------------------------------------------
# Checks on edited recordings (states the lab cannot produce on purpose)
# ---------------------------------------------------------------------------------------------
def _edited(name, old, new):
    record = load(name)
    assert old in record["stdout"]
    record["stdout"] = record["stdout"].replace(old, new)
    return record


@pytest.mark.parametrize(
    ("old", "new", "check", "text"),
    [
        ("\tbind\tpresent\t/etc/localtime", "\tbind\tmissing\t/etc/localtime", "binds", "missing inside the container"),
        ("\twritable\tyes", "\twritable\tno", "scratch", "/srv is not writable"),
        ("\tcwd\t/srv", "\tcwd\t/home/pilot", "scratch", "the working directory is '/home/pilot'"),
        ("\tmarker\tsitekit-", "\tmarker\tother-", "scratch", "does not show the scratch directory"),
        ("\tprocs\t2", "\tprocs\t250", "pid_namespace", "no PID namespace"),
        ("\tend\n", "\n", "launch", "stopped before its end"),
    ],
)
def test_checks_fail_on_edited_output(old, new, check, text):
    _, checks, ready = judge(_edited("debian12-ready", old, new))
    assert ready is False
    assert checks[check]["ok"] is False
    assert text in checks[check]["detail"]


def test_failed_launch_marks_every_check_not_run():
    record = load("userns-max-0")
    _, checks, ready = judge(record)
    assert ready is False
    assert set(checks) == CHECK_NAMES
    assert all(
        not c["ok"] and c["detail"].startswith("not run: the launch failed (apptainer exited with 1)")
        for c in checks.values()
    )
    assert sl.not_run_checks("x", ["/cvmfs"], True)["binds"]["detail"] == "not run: x; wanted inside: /cvmfs"


def test_no_host_paths_and_no_binds_are_fine():
    record = load("debian12-ready")
    parsed = sl.parse_probe_output(record["stdout"], record["token"])
    launch = {"rc": 0, "stderr": "", "seconds": 0.1, "timed_out": False}
    checks, ready = sl.evaluate(parsed, launch=launch, marker=record["token"], scratch=record["scratch"])
    assert ready is True
    assert checks["binds"]["detail"] == "no binds requested"
    assert checks["host_paths"]["detail"] == "no host PATH or LD_LIBRARY_PATH given"


@pytest.mark.parametrize(
    ("stdout", "command_given", "stage"),
    [
        ("", False, "before the container started"),
        ("t\tstart\nt\tcwd\t/srv\n", True, "inside the probe"),
        ("t\tstart\nt\tos\tX\n", True, "while the command ran"),
        ("t\tstart\nt\tos\tX\n", False, "inside the probe"),
    ],
)
def test_timeout_stage(stdout, command_given, stage):
    assert sl.timeout_stage(sl.parse_probe_output(stdout, "t"), command_given) == stage


def test_timeout_before_start_has_the_general_cause():
    assert sl.diagnose("", True, "before the container started") == sl.TIMEOUT_CAUSE
    assert sl.diagnose("", True, "while the command ran") == sl.COMMAND_TIMEOUT_CAUSE


# ---------------------------------------------------------------------------------------------
# Error text
# ---------------------------------------------------------------------------------------------
def test_error_excerpt_prefers_fatal_lines_strips_colour_and_limits():
    stderr = "INFO:    a\n\x1b[91mERROR  : boom\n\x1b[0m\nWARNING: b\n"
    assert sl.error_excerpt(stderr) == "ERROR  : boom"
    assert sl.error_excerpt("one\ntwo\n") == "one\ntwo"
    assert sl.error_excerpt("") is None
    long = sl.error_excerpt("FATAL: " + "x" * 3000, limit=100)
    assert len(long) == 103 and long.startswith("...")


def test_unknown_error_text_gets_the_generic_pair():
    assert sl.diagnose("FATAL:   something new") == sl.UNKNOWN_CAUSE


@pytest.mark.parametrize(
    ("problem", "kind", "cause"),
    [
        ("No such file or directory", "image", "the image /cvmfs/x/img does not exist"),
        ("Too many levels of symbolic links", "image", "/cvmfs/x/img cannot be resolved"),
        ("Transport endpoint is not connected", "image", "FUSE file system under /cvmfs/x/img is dead"),
        ("No such file or directory", "bind", "the bind source /cvmfs/x/img does not exist"),
        ("Too many levels of symbolic links", "bind", "/cvmfs/x/img cannot be resolved"),
        ("Transport endpoint is not connected", "bind", "FUSE file system under /cvmfs/x/img is dead"),
        ("Input/output error", "bind", "the bind source /cvmfs/x/img does not exist"),
    ],
)
def test_diagnose_host_path(problem, kind, cause):
    """What the module's own stat of the image or a bind source says (Python's strerror texts)."""
    assert cause in sl.diagnose_host_path("/cvmfs/x/img", problem, kind)[0]


def test_host_path_problem_on_real_paths(tmp_path):
    loop = tmp_path / "a"
    loop.symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(loop)
    assert sl.host_path_problem(str(loop)) == "Too many levels of symbolic links"
    assert sl.host_path_problem(str(tmp_path / "none")) == "No such file or directory"
    assert sl.host_path_problem(str(tmp_path)) is None


# ---------------------------------------------------------------------------------------------
# run_as: the timeout kills the whole session
# ---------------------------------------------------------------------------------------------
def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_run_as_returns_output_and_time(tmp_path):
    result = sl.run_as(["sh", "-c", "echo out; echo err >&2; exit 3"], {"PATH": "/usr/bin:/bin"}, str(tmp_path), 10)
    assert (result["rc"], result["stdout"], result["stderr"]) == (3, "out\n", "err\n")
    assert result["timed_out"] is False and result["leftover"] == []
    assert 0 <= result["seconds"] < 10


def test_run_as_kills_the_whole_session_on_timeout(tmp_path):
    """A child in its own process group (job control) is still in the session, and is killed too."""
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! >> '{pids}'; (set -m; sleep 300 & echo $! >> '{pids}'; wait) & sleep 300"
    start = time.monotonic()
    result = sl.run_as(["sh", "-c", script], {"PATH": "/usr/bin:/bin"}, str(tmp_path), 1)
    assert time.monotonic() - start < 20
    assert result["timed_out"] is True
    assert result["rc"] == -9
    assert result["leftover"] == []
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    time.sleep(0.2)
    assert not any(_alive(p) for p in children)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_run_as_switches_user(tmp_path):
    tmp_path.chmod(0o755)
    result = sl.run_as(["id", "-u"], {"PATH": "/usr/bin:/bin"}, str(tmp_path), 10, uid=65534, gid=65534, user="nobody")
    assert result["stdout"].strip() == "65534"


def test_count_processes(tmp_path):
    assert sl.count_processes() > 1
    assert sl.count_processes(str(tmp_path / "none")) is None
    assert sys.platform.startswith("linux")
