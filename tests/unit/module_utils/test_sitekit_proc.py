"""sitekit_proc: one runner for "run in a new session, SIGKILL the session at the timeout", on real processes.

sitekit_cvmfs.run_with_timeout and sitekit_launch.run_as are thin wrappers around it (their own tests stay in
test_sitekit_cvmfs.py and test_sitekit_launch.py); here the runner itself: output and exit code, the kill of every
process in the session (job-control children included), a survivor outside the session that holds the pipes (the
call still returns after the grace time), the user switch, and the session scan on a written /proc.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import sitekit_cvmfs
import sitekit_launch
import sitekit_proc as sp

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C"}


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(") ", 1)[1][0] not in "ZX"
    except OSError:
        return False


def test_output_exit_code_and_time(tmp_path):
    run = sp.run_in_session(["sh", "-c", "pwd; echo err >&2; exit 3"], 10, env=ENV, cwd=str(tmp_path))
    assert (run["rc"], run["stdout"], run["stderr"]) == (3, f"{tmp_path}\n", "err\n")
    assert run["timed_out"] is False and run["killed"] is True and run["leftover"] == []
    assert 0 <= run["seconds"] < 10


def test_stdin_is_empty_and_the_environment_is_the_one_given():
    run = sp.run_in_session(["sh", "-c", 'cat; echo "[$HOME]"'], 10, env=ENV)
    assert run["stdout"] == "[]\n"


def test_the_timeout_kills_every_process_of_the_session(tmp_path):
    pids = tmp_path / "pids"
    # One child in the leader's process group, one that made its own (job control): both are in the session.
    script = f"sleep 300 & echo $! >> '{pids}'; (set -m; sleep 300 & echo $! >> '{pids}'; wait) & sleep 300"
    start = time.monotonic()
    run = sp.run_in_session(["sh", "-c", script], 1, env=ENV)
    assert time.monotonic() - start < 10
    assert run["timed_out"] and run["rc"] == -signal.SIGKILL and run["killed"] and run["leftover"] == []
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    time.sleep(0.2)
    assert not any(alive(p) for p in children)


def test_a_survivor_outside_the_session_cannot_hold_the_call(tmp_path):
    """setsid leaves the session and keeps the pipes open: the runner gives up on the output after the grace time."""
    pidfile = tmp_path / "escaped"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 30' & sleep 30"
    start = time.monotonic()
    try:
        run = sp.run_in_session(["sh", "-c", script], 0.5, env=ENV, grace=0.5)
        elapsed = time.monotonic() - start
        assert run["timed_out"] and elapsed < 3, elapsed
        assert (run["stdout"], run["stderr"]) == ("", "")
        assert run["killed"] and run["rc"] == -signal.SIGKILL
    finally:
        for _ in range(50):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.05)
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_runs_as_another_user(tmp_path):
    tmp_path.chmod(0o755)
    run = sp.run_in_session(["id", "-u"], 10, env=ENV, cwd=str(tmp_path), uid=65534, gid=65534, user="nobody")
    assert run["stdout"].strip() == "65534"


def write_stat(proc, pid, comm, state, session):
    (proc / str(pid)).mkdir()
    # pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses.
    (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) {state} 1 {pid} {session} 0 0\n")


def test_session_members_read_from_proc(tmp_path):
    write_stat(tmp_path, 10, "sh", "S", 10)
    write_stat(tmp_path, 11, "odd) name (x", "R", 10)
    write_stat(tmp_path, 12, "zombie", "Z", 10)
    write_stat(tmp_path, 13, "other", "S", 99)
    (tmp_path / "self").mkdir()
    assert sorted(sp.session_members(10, str(tmp_path))) == [10, 11]
    assert sp.session_members(10, str(tmp_path / "none")) == []


def test_the_modules_use_this_runner():
    """One implementation: the CVMFS probe and the launch delegate to it, with their own grace times."""
    assert sitekit_cvmfs.run_in_session is sp.run_in_session
    assert sitekit_launch.proc.run_in_session is sp.run_in_session
    assert not hasattr(sitekit_cvmfs, "_kill_group") and not hasattr(sitekit_launch, "_kill_session")
    cvmfs = sitekit_cvmfs.run_with_timeout(["sh", "-c", "echo $LANG"], 5)
    assert cvmfs["stdout"] == "C\n" and "leftover" in cvmfs
    launch = sitekit_launch.run_as(["sh", "-c", "echo $X"], {"X": "y", "PATH": "/bin:/usr/bin"}, "/", 5)
    assert launch["stdout"] == "y\n" and "killed" in launch
