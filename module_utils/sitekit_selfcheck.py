"""The node self-check: can this node run a job in Apptainer right now, and if not, why?

Shared by ``library/node_selfcheck.py`` and the node-side command ``/usr/local/sbin/sitekit-selfcheck`` that an
HTCondor startd cron job runs (the ``htcondor_apptainer`` role ships this file and the ones it imports). Pure
standard library, importable without Ansible. It holds no check of its own: it composes

- the kernel verdict of ``sitekit_kernel`` (``check_node``): user namespaces, the container mode;
- the repository probe of ``sitekit_cvmfs`` (``probe``): each configured repository accessed as a job would, its
  running client judged against /etc/cvmfs (a client gone DIRECT where proxies are configured fails), and
  CVMFS_NFILES against the node's open-file limit;
- a real launch of the site image as the unprivileged probe user, built from ``sitekit_launch``'s probe script,
  pilot launch line, checks and error mapping, run through ``sitekit_proc``;

under one time budget, and turns them into one result (``summarize``) and a machine ClassAd (``to_classad``):
``SitekitReady``, ``SitekitReason`` (the first failing check's cause and remedy), ``SitekitFailedCheck``,
``SitekitLaunchSeconds``, ``SitekitKernelVerdict``, ``SitekitPlatform``, ``SitekitImage``, ``SitekitCheckedAt``,
``SitekitCheckSeconds``.

Startd cron output is read as old-syntax ClassAds: a backslash is kept literally except before a double quote (a
lab startd showed ``"a\\\\b"`` as the four characters ``a\\\\b``), so a string cannot end in a backslash and
``\\n`` is no newline. ``classad_string`` therefore writes no backslash other than the one before an escaped quote,
and no control character (tests/unit/data/selfcheck/ records what a real startd published).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import sys
import tempfile
import time
import uuid

# Ansible's AnsiballZ bundles these module_utils with library/node_selfcheck.py; the node-side command finds them in
# sitekit's library directory (on sys.path).
try:
    from ansible.module_utils.sitekit_cvmfs import probe as cvmfs_probe
    from ansible.module_utils.sitekit_cvmfs import read_nofile_facts, validate_repository
    from ansible.module_utils.sitekit_kernel import check_node, parse_version_output
    from ansible.module_utils.sitekit_launch import (
        CVMFS_APPTAINER,
        MARKER_NAME,
        SCRATCH_PREFIX,
        build_launch_argv,
        build_probe,
        count_processes,
        diagnose,
        diagnose_host_path,
        error_excerpt,
        evaluate,
        host_path_problem,
        launch_env,
        parse_bind,
        parse_probe_output,
        run_as,
        strip_ansi,
        timeout_stage,
    )
    from ansible.module_utils.sitekit_proc import run_in_session
except ImportError:
    from sitekit_cvmfs import probe as cvmfs_probe
    from sitekit_cvmfs import read_nofile_facts, validate_repository
    from sitekit_kernel import check_node, parse_version_output
    from sitekit_launch import (
        CVMFS_APPTAINER,
        MARKER_NAME,
        SCRATCH_PREFIX,
        build_launch_argv,
        build_probe,
        count_processes,
        diagnose,
        diagnose_host_path,
        error_excerpt,
        evaluate,
        host_path_problem,
        launch_env,
        parse_bind,
        parse_probe_output,
        run_as,
        strip_ansi,
        timeout_stage,
    )
    from sitekit_proc import run_in_session

# Where the htcondor_apptainer role writes the command's settings.
CONFIG_PATH = "/usr/local/lib/sitekit/selfcheck.json"
DEFAULTS = {
    "image": None,
    "user": "sitekit-probe",
    "repositories": [],
    "mountpoint": "/cvmfs",
    "binds": [],
    "timeout": 60,
    "apptainer": None,
    "scratch_base": "/tmp",
}
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHECK_ORDER = ("kernel", "cvmfs", "launch")
# The longest SitekitReason published; the JSON output keeps the whole text.
REASON_CHARS = 1000
# A kernel mode in which containers can run (the launch then proves it).
RUNNABLE_MODES = ("unprivileged", "setuid")
# What to do when the container started but a check of the pilot's launch failed.
CHECK_REMEDIES = {
    "launch": "run the launch by hand as the probe user (apptainer --debug exec ...) to see where the probe stops",
    "pid_namespace": "keep --pid in the launch (HTCondor: SINGULARITY_EXTRA_ARGUMENTS, SINGULARITY_USE_PID_NAMESPACES)",
    "binds": "make each bind source exist on the node (/cvmfs: the cvmfs role) and keep it in the bind list",
    "scratch": "give the probe user a scratch base it can write to (/tmp) and an image where /srv can be a mount point",
    "host_paths": "set the container's own PATH (APPTAINERENV_PATH) rather than the host's",
}


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
def validate_config(raw):
    """The settings with defaults filled in; raises ValueError naming the bad key and what it needs."""
    if not isinstance(raw, dict):
        raise ValueError(f"the settings must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {sorted(DEFAULTS)}")
    config = dict(DEFAULTS, **raw)
    image = config["image"]
    if not isinstance(image, str) or not image:
        raise ValueError("image: give the site image jobs run in (a flat image directory or a SIF file)")
    if not isinstance(config["user"], str) or not config["user"]:
        raise ValueError("user: give the unprivileged account the launch runs as (e.g. sitekit-probe)")
    for key in ("repositories", "binds"):
        if not isinstance(config[key], list) or not all(isinstance(v, str) for v in config[key]):
            raise ValueError(f"{key}: give a list of strings, got {config[key]!r}")
    for name in config["repositories"]:
        validate_repository(name)
    for spec in config["binds"]:
        parse_bind(spec)
    timeout = config["timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout: give a positive number of seconds, got {timeout!r}")
    for key in ("mountpoint", "scratch_base"):
        if not isinstance(config[key], str) or not config[key].startswith("/"):
            raise ValueError(f"{key}: give an absolute path, got {config[key]!r}")
    apptainer = config["apptainer"]
    if apptainer is not None and (not isinstance(apptainer, str) or not apptainer.startswith("/")):
        raise ValueError(f"apptainer: give the absolute path of the Apptainer binary, or null, got {apptainer!r}")
    return config


def load_config(path=CONFIG_PATH):
    """Read and validate the settings file; raises OSError or ValueError."""
    with open(path, encoding="utf-8") as handle:
        return validate_config(json.load(handle))


# ---------------------------------------------------------------------------------------------
# The three checks, each judged from its module's own result
# ---------------------------------------------------------------------------------------------
def _step(name, ok, detail, cause=None, remedy=None, **extra):
    step = {"name": name, "ok": bool(ok), "detail": detail, "cause": cause, "remedy": remedy}
    step.update(extra)
    return step


def not_run(name, why):
    """A check that did not run (its time budget was used up before it)."""
    return _step(
        name,
        False,
        f"not run: {why}",
        why,
        "raise the self-check timeout, or find what made the checks "
        "before it slow (sitekit-selfcheck --json shows each check's time)",
    )


def judge_kernel(verdict):
    """The kernel check from ``sitekit_kernel``'s verdict: containers can run in unprivileged or setuid mode."""
    mode, platform = verdict["mode"], verdict["platform"]
    detail = f"{platform}, kernel {verdict['kernel']}: container mode {mode}"
    extra = {"mode": mode, "platform": platform}
    if mode in RUNNABLE_MODES:
        return _step("kernel", True, detail, **extra)
    blockers = [n.split(": ", 1)[1] for n in verdict["notes"] if n.startswith("user namespaces: ")]
    steps = verdict["remediation"]
    cause = "the kernel gives unprivileged users no user namespaces" + (f" ({'; '.join(blockers)})" if blockers else "")
    remedy = "; then ".join(s["action"] for s in steps) or "no remedy is known for this platform: reinstall the node"
    return _step("kernel", False, detail, cause, remedy, **extra)


def judge_cvmfs(result, repositories):
    """The CVMFS check from ``sitekit_cvmfs.probe``'s result: every configured repository is readable, its client
    does not go DIRECT where the configuration names proxies, and CVMFS_NFILES fits the node's open-file limit."""
    limit = result.get("nfiles")
    if not repositories:
        return _step("cvmfs", True, "no repositories to check", repositories=[])
    rows = [
        {
            "name": r["name"],
            "readable": r["readable"],
            "seconds": r["seconds"],
            "proxy": (r.get("xattrs") or {}).get("proxy"),
        }
        for r in result["repositories"]
    ]
    readable = [r["name"] for r in result["repositories"] if r["readable"]]
    failed = [r for r in result["repositories"] if not r.get("ok", r["readable"])]
    detail = f"{len(readable)}/{len(repositories)} repositories readable" + (
        f": {', '.join(readable)}" if readable else ""
    )
    proxies = sorted({row["proxy"] for row in rows if row["proxy"]})
    if proxies:
        detail += f"; proxy {', '.join(proxies)}"
    if failed:
        first = failed[0]
        cause = f"{first['name']}: {first['error']}: {first['cause']}"
        return _step("cvmfs", False, detail, cause, first["remedy"], repositories=rows)
    if limit and not limit["ok"]:
        return _step("cvmfs", False, detail, limit["cause"], limit["remedy"], repositories=rows)
    return _step("cvmfs", True, detail, repositories=rows)


def judge_launch(run, parsed, *, token, scratch, image, user, bind_targets, host_processes, apptainer=None):
    """The launch check from ``sitekit_launch``'s own judgement of one launch (``run_as`` result, parsed probe)."""
    checks, ready = evaluate(
        parsed,
        launch=run,
        marker=token,
        scratch=scratch,
        bind_targets=bind_targets,
        host_paths={},
        pid=True,
        host_processes=host_processes,
    )
    extra = {
        "seconds": run["seconds"],
        "image": image,
        "user": user,
        "image_os": parsed["os"],
        "apptainer": apptainer,
        "checks": checks,
        "error": None,
    }
    failed = run["timed_out"] or run["rc"] != 0 or not parsed["started"]
    if failed:
        cause, remedy = diagnose(run["stderr"] + "\n" + parsed["other"], run["timed_out"], timeout_stage(parsed))
        extra["error"] = error_excerpt(run["stderr"]) or error_excerpt(parsed["other"])
        what = (
            f"the launch as {user} timed out after {run['seconds']:.0f} s and was killed"
            if run["timed_out"]
            else f"the launch as {user} failed (rc {run['rc']})"
        )
        return _step("launch", False, what, cause, remedy, **extra)
    if not ready:
        name = next(n for n, c in checks.items() if not c["ok"])
        detail = f"launched in {run['seconds']:.2f} s, but {name}: {checks[name]['detail']}"
        return _step("launch", False, detail, f"{name}: {checks[name]['detail']}", CHECK_REMEDIES[name], **extra)
    detail = f"launched {image} as {user} in {run['seconds']:.2f} s ({parsed['os'] or 'unknown OS'})"
    return _step("launch", True, detail, **extra)


def summarize(kernel, cvmfs, launch, checked_at, seconds):
    """One result from the three judged checks; the reason is the first failing check's cause and remedy."""
    steps = {"kernel": kernel, "cvmfs": cvmfs, "launch": launch}
    failed = next((steps[n] for n in CHECK_ORDER if not steps[n]["ok"]), None)
    reason = "ready"
    if failed:
        reason = f"{failed['name']}: {failed['cause'] or failed['detail']}"
        if failed["remedy"]:
            reason += f". Remedy: {failed['remedy']}"
    return {
        "ready": failed is None,
        "reason": reason,
        "failed_check": failed["name"] if failed else "",
        "kernel_verdict": kernel.get("mode"),
        "platform": kernel.get("platform"),
        "launch_seconds": launch.get("seconds") if launch.get("checks") is not None else None,
        "image": launch.get("image"),
        "checked_at": int(checked_at),
        "seconds": round(seconds, 3),
        "checks": steps,
    }


# ---------------------------------------------------------------------------------------------
# Running the checks on this node
# ---------------------------------------------------------------------------------------------
def _run_version(binary):
    run = run_in_session([binary, "--version"], 10, env={"PATH": SEARCH_PATH, "LANG": "C", "LC_ALL": "C"})
    return parse_version_output(run["stdout"]) if run["rc"] == 0 else None


def kernel_check(root="/"):
    """Judge this node's kernel (``sitekit_kernel``), running the installed Apptainer's --version."""
    return judge_kernel(check_node(root, _run_version if os.path.realpath(root) == "/" else None))


def cvmfs_check(repositories, mountpoint, remaining):
    """Probe each repository (``sitekit_cvmfs``) with what is left of the time budget (``remaining()`` seconds)."""
    results, limit = [], None
    for name in repositories:
        left = remaining()
        if left < 1:
            break
        # The open-file limit of the mounts is pid 1's (systemd: fstab mount units, autofs), not this check's, which
        # runs under HTCondor's limits.
        probed = cvmfs_probe([name], mountpoint, None, left, nofile=lambda: read_nofile_facts(pids=("1",)))
        results += probed["repositories"]
        limit = probed.get("nfiles")
    if len(results) < len(repositories):
        skipped = ", ".join(repositories[len(results) :])
        return not_run("cvmfs", f"the time budget was used up before {skipped} could be probed")
    return judge_cvmfs({"repositories": results, "nfiles": limit if repositories else None}, repositories)


def _launch_failure(image, user, what, cause, remedy, apptainer=None):
    return _step(
        "launch",
        False,
        what,
        cause,
        remedy,
        seconds=None,
        image=image,
        user=user,
        image_os=None,
        apptainer=apptainer,
        checks=None,
        error=what,
    )


def find_apptainer(configured=None):
    """The configured Apptainer, else apptainer or singularity on the search path; None when there is none."""
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) else None
    return shutil.which("apptainer", path=SEARCH_PATH) or shutil.which("singularity", path=SEARCH_PATH)


def launch_check(image, user, binds=(), timeout=60, apptainer=None, scratch_base="/tmp"):
    """Launch ``image`` the way a pilot does (``sitekit_launch``), as ``user`` when run as root, else as oneself.

    The scratch directory (its name has a '#', as HTCondor's can) is mounted at /srv and removed afterwards.
    """
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            return _launch_failure(
                image,
                user,
                f"the probe user {user} does not exist",
                f"there is no account {user} on this node",
                "create it (sitekit's apptainer role does: apptainer_probe_user), or name an existing unprivileged "
                "account in the self-check settings",
            )
        if account.pw_uid == 0:
            return _launch_failure(
                image,
                user,
                f"the probe user {user} has uid 0",
                "the launch must run as an unprivileged user",
                "name an unprivileged account (the pilot's, or sitekit-probe)",
            )
        ids = {"uid": account.pw_uid, "gid": account.pw_gid, "user": user}
    else:
        account = pwd.getpwuid(os.geteuid())
        user, ids = account.pw_name, {}
    problem = host_path_problem(image)
    if problem:
        cause, remedy = diagnose_host_path(image, problem, "image")
        return _launch_failure(image, user, f"image {image}: {problem}", cause, remedy)
    parsed_binds = [parse_bind(spec) for spec in binds]
    for src, _dst, _opts in parsed_binds:
        problem = host_path_problem(src)
        if problem:
            cause, remedy = diagnose_host_path(src, problem, "bind")
            return _launch_failure(image, user, f"bind source {src}: {problem}", cause, remedy)
    binary = find_apptainer(apptainer)
    if not binary:
        where = apptainer or "apptainer or singularity on " + SEARCH_PATH
        return _launch_failure(
            image,
            user,
            f"no Apptainer: {where} not found",
            "Apptainer is not installed where the self-check looks",
            f"install it with sitekit's apptainer role, or point the self-check at an existing one (e.g. "
            f"{CVMFS_APPTAINER})",
        )
    token = f"sitekit-{uuid.uuid4().hex[:12]}"
    targets = [dst for _src, dst, _opts in parsed_binds]
    probe = build_probe(token, targets, {}, host_pid=os.getpid())
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=scratch_base)
    try:
        os.chmod(scratch, 0o700)
        marker = os.path.join(scratch, MARKER_NAME)
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        if ids:
            os.chown(scratch, ids["uid"], ids["gid"])
            os.chown(marker, ids["uid"], ids["gid"])
        argv = build_launch_argv(binary, image, scratch, probe, binds=list(binds))
        env = launch_env(user, scratch, binary, {}, SEARCH_PATH)
        host_processes = count_processes()
        run = run_as(argv, env, scratch, timeout, **ids)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    parsed = parse_probe_output(run["stdout"], token)
    return judge_launch(
        run,
        parsed,
        token=token,
        scratch=scratch,
        image=image,
        user=user,
        bind_targets=targets,
        host_processes=host_processes,
        apptainer=binary,
    )


def run(config, root="/", clock=time.monotonic, now=time.time, checks=None):
    """Run the three checks under ``config['timeout']`` seconds in all; returns ``summarize``'s result.

    ``checks`` replaces the check functions (tests): a dict with any of kernel(root), cvmfs(repositories,
    mountpoint, remaining) and launch(image, user, binds, timeout, apptainer, scratch_base).
    """
    checks = dict({"kernel": kernel_check, "cvmfs": cvmfs_check, "launch": launch_check}, **(checks or {}))
    start = clock()
    deadline = start + config["timeout"]

    def remaining():
        return deadline - clock()

    kernel = checks["kernel"](root)
    cvmfs = checks["cvmfs"](config["repositories"], config["mountpoint"], remaining)
    left = remaining()
    if left < 1:
        launch = not_run("launch", f"the {config['timeout']:g} s time budget was used up by the checks before it")
        launch.update(seconds=None, image=config["image"], checks=None)
    else:
        launch = checks["launch"](
            config["image"], config["user"], config["binds"], left, config["apptainer"], config["scratch_base"]
        )
    # The verdict's time is when the checks ended: a slow check does not make a fresh verdict look old.
    return summarize(kernel, cvmfs, launch, now(), clock() - start)


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def classad_string(text, limit=REASON_CHARS):
    """``text`` as an old-syntax ClassAd string literal (what startd cron output is read as).

    Control characters become one space, backslashes become '/' (old syntax keeps a backslash literally, so none
    can be escaped, and one before the closing quote would escape it), double quotes are escaped; at most
    ``limit`` characters of text, the cut marked with '...'.
    """
    text = _CONTROL.sub(" ", strip_ansi(str(text))).replace("\\", "/").strip()
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return '"' + text.replace('"', '\\"') + '"'


def classad_real(value):
    """A number as a ClassAd real, or ``undefined``."""
    return "undefined" if value is None else f"{float(value):.3f}"


def to_classad(result, update=True):
    """The machine attributes a startd cron job publishes, one ``Name = value`` per line, then the end-of-ad line."""
    lines = [
        f"SitekitReady = {'true' if result['ready'] else 'false'}",
        f"SitekitReason = {classad_string(result['reason'])}",
        f"SitekitFailedCheck = {classad_string(result['failed_check'])}",
        f"SitekitLaunchSeconds = {classad_real(result['launch_seconds'])}",
        f"SitekitKernelVerdict = {classad_string(result['kernel_verdict'] or 'unknown')}",
        f"SitekitPlatform = {classad_string(result['platform'] or 'unknown')}",
        f"SitekitImage = {classad_string(result['image'] or '')}",
        f"SitekitCheckedAt = {int(result['checked_at'])}",
        f"SitekitCheckSeconds = {classad_real(result['seconds'])}",
    ]
    lines.append("- update:true" if update else "-")
    return "\n".join(lines) + "\n"


def failure_result(check, cause, remedy, checked_at):
    """The result published when the checks could not run (unreadable settings, a crash): not ready, saying why."""
    failed = _step(check, False, cause, cause, remedy)
    return {
        "ready": False,
        "reason": f"{check}: {cause}. Remedy: {remedy}",
        "failed_check": check,
        "kernel_verdict": None,
        "platform": None,
        "launch_seconds": None,
        "image": None,
        "checked_at": int(checked_at),
        "seconds": 0.0,
        "checks": {check: failed},
    }


def to_text(result):
    """A short report for an admin: one line per check, then the reason."""
    state = "READY" if result["ready"] else "NOT READY"
    lines = [f"sitekit self-check: {state} ({result['seconds']:.2f} s)"]
    for name, step in result["checks"].items():
        lines.append(f"  {name:<7} {'ok' if step['ok'] else 'FAIL':<5} {step['detail']}")
    if not result["ready"]:
        lines.append(f"reason: {result['reason']}")
    return "\n".join(lines) + "\n"


USAGE = """usage: sitekit-selfcheck [--classad | --json] [--config PATH]
  Judge this node's kernel, probe its CVMFS repositories and launch the site image as the probe user.
  Default: a short report, exit 0 when ready, 1 when not. --json: the whole result. --classad: the machine
  attributes for an HTCondor startd cron job (always exit 0: the attributes say it).
"""


def main(argv, config_path=CONFIG_PATH, out=None):
    """The command line; returns the exit code."""
    out = out or sys.stdout
    fmt, args = "text", list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("--classad", "--json"):
            fmt = arg[2:]
        elif arg == "--config" and args:
            config_path = args.pop(0)
        else:
            sys.stderr.write(USAGE)
            return 2
    try:
        config = load_config(config_path)
    except (OSError, ValueError) as exc:
        result = failure_result(
            "config",
            f"the self-check settings {config_path} are unusable: {exc}",
            "run the htcondor_apptainer role again (it writes the settings)",
            time.time(),
        )
    else:
        try:
            result = run(config)
        except Exception as exc:  # a crash must still publish "not ready" rather than leave the last result standing
            result = failure_result(
                "selfcheck",
                f"the self-check failed: {type(exc).__name__}: {exc}",
                "run sitekit-selfcheck --json by hand as root and report the traceback",
                time.time(),
            )
    if fmt == "classad":
        out.write(to_classad(result))
        return 0
    out.write(json.dumps(result, indent=1, sort_keys=True) + "\n" if fmt == "json" else to_text(result))
    return 0 if result["ready"] else 1
