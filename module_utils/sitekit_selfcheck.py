"""The node self-check: can this node run a job in Apptainer right now, and if not, why?

Shared by ``library/node_selfcheck.py`` and the node-side command ``/usr/local/sbin/sitekit-selfcheck`` that an
HTCondor startd cron job runs (the ``htcondor_apptainer`` role ships this file and the ones it imports). Pure
standard library, importable without Ansible. It holds no check of its own: it composes

- the kernel verdict of ``sitekit_kernel`` (``check_node``): user namespaces, the container mode;
- the repository probe of ``sitekit_cvmfs`` (``probe``): each configured repository accessed as a job would, its
  running client judged against /etc/cvmfs (a client gone DIRECT where proxies are configured fails),
  CVMFS_NFILES against the node's open-file limit, and the cache (CVMFS_CACHE_BASE on a local disk that holds
  CVMFS_QUOTA_LIMIT with the client's margin);
- a real launch of the site image as the unprivileged probe user: ``sitekit_launch.launch``, the launch the
  ``container_launch`` module makes, judged by the same policy (``host_path_policy``);

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
import sys
import time

# Ansible's AnsiballZ bundles these module_utils with library/node_selfcheck.py; the node-side command finds them in
# sitekit's library directory (on sys.path).
try:
    from ansible.module_utils import sitekit_cvmfs as cvmfs
    from ansible.module_utils import sitekit_kernel as kernel
    from ansible.module_utils import sitekit_launch as launch
except ImportError:
    import sitekit_cvmfs as cvmfs
    import sitekit_kernel as kernel
    import sitekit_launch as launch

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
    "host_path_policy": launch.HOST_PATH_POLICY,
    # The oldest Apptainer the node may run (the launch check's version check); empty leaves it unjudged.
    "minimum_version": launch.versions.APPTAINER_MINIMUM,
}
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
    "version": "upgrade Apptainer (apt-get install --only-upgrade apptainer; dnf upgrade apptainer)",
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
        cvmfs.validate_repository(name)
    for spec in config["binds"]:
        launch.parse_bind(spec)
    if config["host_path_policy"] not in launch.HOST_PATH_POLICIES:
        raise ValueError(
            f"host_path_policy: give one of {', '.join(launch.HOST_PATH_POLICIES)}, got {config['host_path_policy']!r}"
        )
    if config["minimum_version"]:
        try:
            launch.versions.validate(config["minimum_version"])
        except ValueError as exc:
            raise ValueError(f"minimum_version: {exc}, or an empty string") from None
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
    does not go DIRECT where the configuration names proxies, CVMFS_NFILES fits the node's open-file limit, and the
    cache is on a local disk that holds its quota."""
    limit = result.get("nfiles")
    cache = result.get("cache")
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
    if cache:
        detail += f"; cache {cache['detail']}"
    if failed:
        first = failed[0]
        cause = f"{first['name']}: {first['error']}: {first['cause']}"
        return _step("cvmfs", False, detail, cause, first["remedy"], repositories=rows)
    if limit and not limit["ok"]:
        return _step("cvmfs", False, detail, limit["cause"], limit["remedy"], repositories=rows)
    if cache and not cache["ok"]:
        return _step("cvmfs", False, detail, cache["cause"], cache["remedy"], repositories=rows)
    return _step("cvmfs", True, detail, repositories=rows)


def judge_launch(result, problem=None):
    """The launch check from ``sitekit_launch.launch``'s result and problem (None when the container started)."""
    launched = result["command"] is not None
    extra = {
        "seconds": result["launch_seconds"] if launched else None,
        "image": result["image"],
        "user": result["user"],
        "image_os": result["image_os"],
        "apptainer": result["apptainer"]["path"],
        "checks": result["checks"] if launched else None,
        "error": result["error"],
    }
    if problem:
        return _step("launch", False, problem, result["cause"], result["remedy"], **extra)
    checks, seconds = result["checks"], result["launch_seconds"]
    if not result["ready"]:
        failed = [n for n, c in checks.items() if not c["ok"]]
        name = next((n for n in failed if n != "host_paths"), failed[0])
        detail = f"launched in {seconds:.2f} s, but {name}: {checks[name]['detail']}"
        # The version check carries its own remedy: the upgrade command of the node's package family.
        remedy = checks[name].get("remedy") or CHECK_REMEDIES[name]
        return _step("launch", False, detail, f"{name}: {checks[name]['detail']}", remedy, **extra)
    detail = f"launched {result['image']} as {result['user']} in {seconds:.2f} s ({result['image_os'] or 'unknown OS'})"
    return _step("launch", True, detail, **extra)


def summarize(kernel_step, cvmfs_step, launch_step, checked_at, seconds):
    """One result from the three judged checks; the reason is the first failing check's cause and remedy."""
    steps = {"kernel": kernel_step, "cvmfs": cvmfs_step, "launch": launch_step}
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
        "kernel_verdict": kernel_step.get("mode"),
        "platform": kernel_step.get("platform"),
        "launch_seconds": launch_step.get("seconds") if launch_step.get("checks") is not None else None,
        "image": launch_step.get("image"),
        "checked_at": int(checked_at),
        "seconds": round(seconds, 3),
        "checks": steps,
    }


# ---------------------------------------------------------------------------------------------
# Running the checks on this node
# ---------------------------------------------------------------------------------------------
def kernel_check(root="/"):
    """Judge this node's kernel (``sitekit_kernel``), running the installed Apptainer's --version."""
    return judge_kernel(kernel.check_node(root, launch.apptainer_version if os.path.realpath(root) == "/" else None))


def cvmfs_check(repositories, mountpoint, remaining):
    """Probe each repository (``sitekit_cvmfs``) with what is left of the time budget (``remaining()`` seconds)."""
    results, limit, cache = [], None, None
    for name in repositories:
        left = remaining()
        if left < 1:
            break
        # The open-file limit of the mounts is pid 1's (systemd: fstab mount units, autofs), not this check's, which
        # runs under HTCondor's limits.
        probed = cvmfs.probe([name], mountpoint, None, left, nofile=lambda: cvmfs.read_nofile_facts(pids=("1",)))
        results += probed["repositories"]
        limit = probed.get("nfiles")
        if cache is None or (cache["ok"] and probed.get("cache") and not probed["cache"]["ok"]):
            cache = probed.get("cache")
    if len(results) < len(repositories):
        skipped = ", ".join(repositories[len(results) :])
        return not_run("cvmfs", f"the time budget was used up before {skipped} could be probed")
    return judge_cvmfs(
        {"repositories": results, "nfiles": limit if repositories else None, "cache": cache}, repositories
    )


def launch_check(
    image,
    user,
    binds=(),
    timeout=60,
    apptainer=None,
    scratch_base="/tmp",
    host_path_policy=None,
    minimum_version=launch.versions.APPTAINER_MINIMUM,
):
    """Launch ``image`` the way a pilot does (``sitekit_launch.launch``), as ``user`` when run as root, else as
    oneself; forwards no host PATH (a startd cron job has none of a pilot's)."""
    if os.geteuid() != 0:
        user = pwd.getpwuid(os.geteuid()).pw_name
    try:
        result, problem, _warnings = launch.launch(
            image,
            user,
            binds=binds,
            timeout=timeout,
            apptainer=apptainer,
            scratch_base=scratch_base,
            host_path_policy=host_path_policy,
            minimum_version=minimum_version,
        )
    except launch.LaunchArgumentError as exc:
        result, problem = launch.empty_result(image, user), str(exc)
        result.update(error=problem, cause=exc.cause, remedy=exc.remedy)
    return judge_launch(result, problem)


def run(config, root="/", clock=time.monotonic, now=time.time, checks=None):
    """Run the three checks under ``config['timeout']`` seconds in all; returns ``summarize``'s result.

    ``checks`` replaces the check functions (tests): a dict with any of kernel(root), cvmfs(repositories,
    mountpoint, remaining) and launch(image, user, binds, timeout, apptainer, scratch_base, host_path_policy,
    minimum_version=...).
    """
    checks = dict({"kernel": kernel_check, "cvmfs": cvmfs_check, "launch": launch_check}, **(checks or {}))
    start = clock()
    deadline = start + config["timeout"]

    def remaining():
        return deadline - clock()

    kernel_step = checks["kernel"](root)
    cvmfs_step = checks["cvmfs"](config["repositories"], config["mountpoint"], remaining)
    left = remaining()
    if left < 1:
        launch_step = not_run("launch", f"the {config['timeout']:g} s time budget was used up by the checks before it")
        launch_step.update(seconds=None, image=config["image"], checks=None)
    else:
        launch_step = checks["launch"](
            config["image"],
            config["user"],
            config["binds"],
            left,
            config["apptainer"],
            config["scratch_base"],
            config["host_path_policy"],
            minimum_version=config["minimum_version"],
        )
    # The verdict's time is when the checks ended: a slow check does not make a fresh verdict look old.
    return summarize(kernel_step, cvmfs_step, launch_step, now(), clock() - start)


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
    text = _CONTROL.sub(" ", launch.strip_ansi(str(text))).replace("\\", "/").strip()
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
