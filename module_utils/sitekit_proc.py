"""Run a command in its own session and kill the whole session when it runs out of time.

Shared by ``sitekit_cvmfs`` (a repository access that may hang in a FUSE mount), ``sitekit_launch`` (a container
launch as another user) and ``sitekit_selfcheck``. Pure standard library, importable without Ansible.

``run_in_session`` starts ``argv`` as the leader of a new session (optionally as another user), waits up to
``timeout`` seconds, and on a timeout sends SIGKILL to its process group and then to every process still in its
session (a child that made its own process group with job control is still in the session). A process stuck in the
kernel (an uninterruptible FUSE wait) may not die: after ``grace`` seconds more it is left behind, its pipes are
closed, and the call returns anyway, so it never takes much longer than ``timeout + grace``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

# How often, and how long apart, the session is swept for survivors after the kill.
SWEEP_ROUNDS = 20
SWEEP_PAUSE = 0.05


def session_members(leader, proc="/proc"):
    """PIDs of the live (not zombie) processes whose session is ``leader`` (read from <proc>/*/stat)."""
    members = []
    try:
        names = os.listdir(proc)
    except OSError:
        return members
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # A killed process stays a zombie until its new parent reaps it: it runs no more.
        if len(fields) > 3 and fields[3] == str(leader) and fields[0] not in ("Z", "X"):
            members.append(int(name))
    return members


def kill_session(leader, until=None):
    """SIGKILL the process group ``leader`` leads, then every process still in its session; returns the survivors.

    The sweep ends after SWEEP_ROUNDS rounds, or at ``until`` (a time.monotonic() value) if that comes first.
    """
    with contextlib.suppress(OSError):
        os.killpg(leader, signal.SIGKILL)
    for _ in range(SWEEP_ROUNDS):
        left = [p for p in session_members(leader) if p != leader]
        if not left:
            return []
        for member in left:
            with contextlib.suppress(OSError):
                os.kill(member, signal.SIGKILL)
        if until is not None and time.monotonic() + SWEEP_PAUSE >= until:
            break
        time.sleep(SWEEP_PAUSE)
    return [p for p in session_members(leader) if p != leader]


def _decode(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data or ""


def run_in_session(argv, timeout, env=None, cwd="/", uid=None, gid=None, user=None, grace=5.0):
    """Run ``argv`` in a new session, stdin /dev/null; as ``uid``/``gid`` with ``user``'s groups when ``uid`` is given.

    Returns a dict: rc (None when the process was left behind), stdout, stderr, seconds (wall time), timed_out,
    killed (the process is gone after a timeout; true when there was none), leftover (PIDs that survived the kill).
    """

    def demote():
        os.setgid(gid)
        os.initgroups(user, gid)
        os.setuid(uid)

    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=demote if uid is not None else None,  # callers are single-threaded
    )
    timed_out = False
    leftover = []
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        # The sweep and the wait for the output share the grace time.
        until = time.monotonic() + grace
        leftover = kill_session(proc.pid, until)
        try:
            out, err = proc.communicate(timeout=max(0.05, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            # Stuck in the kernel, or a survivor holds the pipes: give up on the rest of the output.
            out, err = b"", b""
            for stream in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    stream.close()
    return {
        "rc": proc.poll(),
        "stdout": _decode(out),
        "stderr": _decode(err),
        "seconds": round(time.monotonic() - start, 3),
        "timed_out": timed_out,
        "killed": proc.returncode is not None,
        "leftover": leftover,
    }
