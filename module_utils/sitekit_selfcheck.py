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

Two more, after the three: each named image of the site's list (one per VO, or per VO and OS) launched the same way
(``SitekitImagesReady``: the names of those that work, a ClassAd list a job can test with ``member``;
``SitekitImagesFailed``), and on a node with NVIDIA GPUs a launch with ``--nv`` (``sitekit_gpu`` finds them;
``SitekitGPUs``, ``SitekitGPUCheck``; a node without any says so and skips it). Neither changes ``SitekitReady``:
a broken VO image takes out only the jobs that need it.

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
import subprocess
import sys
import time

# Ansible's AnsiballZ bundles these module_utils with library/node_selfcheck.py; the node-side command finds them in
# sitekit's library directory (on sys.path).
try:
    from ansible.module_utils import sitekit_cvmfs as cvmfs
    from ansible.module_utils import sitekit_gpu as gpu
    from ansible.module_utils import sitekit_kernel as kernel
    from ansible.module_utils import sitekit_launch as launch
except ImportError:
    import sitekit_cvmfs as cvmfs
    import sitekit_gpu as gpu
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
    "images": [],
    "gpus": True,
}
# An image's name: what jobs test with member(name, SitekitImagesReady) (ClassAd strings compare without case).
IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# What Apptainer needs to give a job the node's NVIDIA GPUs.
GPU_ARGS = ("--nv",)
# HTCondor's GPU discovery tool (EL and HTCondor's packages; Debian's packages).
GPU_DISCOVERY = ("/usr/libexec/condor/condor_gpu_discovery", "/usr/lib/condor/libexec/condor_gpu_discovery")
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
    config["images"] = validate_images(config["images"])
    if not isinstance(config["gpus"], bool):
        raise ValueError(
            f"gpus: give true (a launch with --nv where the node has NVIDIA GPUs) or false, got {config['gpus']!r}"
        )
    return config


def validate_images(images):
    """The named images as a list of {"name", "path"}; raises ValueError naming the bad entry and the fix."""
    if not isinstance(images, list):
        raise ValueError(f"images: give a list of {{name, path}}, got {type(images).__name__}")
    seen = {}
    for index, entry in enumerate(images):
        if not isinstance(entry, dict) or set(entry) != {"name", "path"}:
            raise ValueError(f"images[{index}]: give exactly a name and a path, got {entry!r}")
        name, path = entry["name"], entry["path"]
        if not isinstance(name, str) or not IMAGE_NAME.match(name):
            raise ValueError(
                f"images[{index}].name: give 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit "
                f"(e.g. cms-el9), got {name!r}"
            )
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"images[{index}].path ({name}): give the image's absolute path on the node, got {path!r}")
        if name.lower() in seen:
            raise ValueError(
                f"images[{index}].name: {name!r} is already images[{seen[name.lower()]}]'s name "
                "(names are compared without case, as ClassAd strings are): give each image its own name"
            )
        seen[name.lower()] = index
    return [{"name": e["name"], "path": e["path"]} for e in images]


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


def judge_image(name, path, launch_step):
    """One named image's row from its launch step (``launch_check``'s, or ``not_run``'s)."""
    return {
        "name": name,
        "path": path,
        "ok": launch_step["ok"],
        "seconds": launch_step.get("seconds"),
        "image_os": launch_step.get("image_os"),
        "reason": None if launch_step["ok"] else f"{launch_step['cause'] or launch_step['detail']}",
    }


def judge_gpu(detected, discovery=None, launch_step=None, enabled=True):
    """The GPU check: ``detected`` is ``sitekit_gpu.detect``'s result, ``discovery`` HTCondor's discovery parsed
    (``sitekit_gpu.parse_discovery``, or None where it did not run), ``launch_step`` the launch with ``--nv``.

    A node without NVIDIA GPUs, or with the check off, is skipped (``checked`` false) with the reason; on a GPU node
    the check passes when the launch with ``--nv`` works and HTCondor's discovery finds as many GPUs as the driver.
    """
    count = detected["count"]
    row = {"count": count, "checked": False, "ok": None, "discovered": None, "detail": ""}
    if not enabled:
        row["detail"] = "skipped: GPU checks are off (htcondor_apptainer_gpus: false)"
        return row
    if not count:
        row["detail"] = f"skipped: {detected['reason']}"
        return row
    row["checked"] = True
    problems = []
    if discovery is not None:
        row["discovered"] = len(discovery["ids"])
        if discovery["error"]:
            problems.append(f"condor_gpu_discovery: {discovery['error']}")
        elif len(discovery["ids"]) != count:
            problems.append(
                f"condor_gpu_discovery finds {len(discovery['ids'])} GPUs where the driver shows {count}: "
                "check the driver (nvidia-smi) and the CUDA library HTCondor loads"
            )
    if launch_step is not None and not launch_step["ok"]:
        problems.append(f"a launch with --nv fails: {launch_step['cause'] or launch_step['detail']}")
    row["ok"] = not problems
    names = sorted({d.get("DeviceName", "") for d in (discovery or {}).get("devices", [])} - {""})
    row["detail"] = "; ".join(problems) or (
        f"{count} NVIDIA GPU(s){' (' + ', '.join(names) + ')' if names else ''}, a launch with --nv works"
    )
    return row


def summarize(kernel_step, cvmfs_step, launch_step, checked_at, seconds, images=None, gpu=None):
    """One result from the three judged checks; the reason is the first failing check's cause and remedy.

    ``images`` (``judge_image`` rows) and ``gpu`` (``judge_gpu``'s row), where given, are added as they are: they
    do not change ``ready``.
    """
    steps = {"kernel": kernel_step, "cvmfs": cvmfs_step, "launch": launch_step}
    failed = next((steps[n] for n in CHECK_ORDER if not steps[n]["ok"]), None)
    reason = "ready"
    if failed:
        reason = f"{failed['name']}: {failed['cause'] or failed['detail']}"
        if failed["remedy"]:
            reason += f". Remedy: {failed['remedy']}"
    result = {
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
    if images is not None:
        result["images"] = images
        result["images_ready"] = [row["name"] for row in images if row["ok"]]
        result["images_failed"] = [row["name"] for row in images if not row["ok"]]
    if gpu is not None:
        result["gpu"] = gpu
    return result


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
    extra_args=(),
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
            extra_args=extra_args,
        )
    except launch.LaunchArgumentError as exc:
        result, problem = launch.empty_result(image, user), str(exc)
        result.update(error=problem, cause=exc.cause, remedy=exc.remedy)
    return judge_launch(result, problem)


def gpu_discovery(timeout):
    """HTCondor's own GPU discovery (``condor_gpu_discovery -properties``) parsed, or None where it is not installed
    or did not answer; a run that fails is reported as the discovery's error."""
    binary = next((p for p in GPU_DISCOVERY if os.access(p, os.X_OK)), None)
    if binary is None:
        return None
    try:
        done = subprocess.run(
            [binary, "-properties"], capture_output=True, text=True, timeout=max(1, timeout), check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ids": [], "devices": [], "common": {}, "error": f"{binary} did not answer: {exc}"}
    try:
        return gpu.parse_discovery(done.stdout)
    except ValueError as exc:
        return {"ids": [], "devices": [], "common": {}, "error": f"{exc} (rc {done.returncode})"}


def gpu_check(config, remaining, root="/"):
    """The GPU check of this node: skipped without NVIDIA GPUs; else HTCondor's discovery and a launch with --nv."""
    detected = gpu.detect(root)
    if not config["gpus"] or not detected["count"]:
        return judge_gpu(detected, enabled=config["gpus"])
    if remaining() < 1:
        return judge_gpu(detected, None, not_run("gpu", "the time budget was used up before the GPU launch"))
    discovery = gpu_discovery(min(10, remaining()))
    step = launch_check(
        config["image"],
        config["user"],
        config["binds"],
        max(1, remaining()),
        config["apptainer"],
        config["scratch_base"],
        config["host_path_policy"],
        minimum_version=config["minimum_version"],
        extra_args=GPU_ARGS,
    )
    return judge_gpu(detected, discovery, step)


def images_check(config, main_step, remaining, launch_fn):
    """Launch each named image as the main launch does (one already launched there is not launched twice)."""
    rows = []
    for entry in config["images"]:
        if entry["path"] == config["image"]:
            step = main_step
        elif remaining() < 1:
            step = not_run("launch", f"the time budget was used up before image {entry['name']} could be launched")
        else:
            step = launch_fn(
                entry["path"],
                config["user"],
                config["binds"],
                remaining(),
                config["apptainer"],
                config["scratch_base"],
                config["host_path_policy"],
                minimum_version=config["minimum_version"],
            )
        rows.append(judge_image(entry["name"], entry["path"], step))
    return rows


def run(config, root="/", clock=time.monotonic, now=time.time, checks=None):
    """Run the checks under ``config['timeout']`` seconds in all; returns ``summarize``'s result.

    ``checks`` replaces the check functions (tests): a dict with any of kernel(root), cvmfs(repositories,
    mountpoint, remaining), launch(image, user, binds, timeout, apptainer, scratch_base, host_path_policy,
    minimum_version=...) (also used for each named image) and gpu(config, remaining).
    """
    checks = dict(
        {"kernel": kernel_check, "cvmfs": cvmfs_check, "launch": launch_check, "gpu": gpu_check}, **(checks or {})
    )
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
    images = images_check(config, launch_step, remaining, checks["launch"]) if config["images"] else None
    gpu_row = checks["gpu"](config, remaining)
    # The verdict's time is when the checks ended: a slow check does not make a fresh verdict look old.
    return summarize(kernel_step, cvmfs_step, launch_step, now(), clock() - start, images, gpu_row)


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


def classad_list(names):
    """Names as a ClassAd list of strings, e.g. ``{"cms-el9", "atlas"}`` (``member("atlas", ...)`` tests it)."""
    return "{" + ", ".join(classad_string(n) for n in names) + "}"


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
    if "images" in result:
        lines.append(f"SitekitImagesReady = {classad_list(result['images_ready'])}")
        lines.append(f"SitekitImagesFailed = {classad_list(result['images_failed'])}")
    if "gpu" in result:
        lines.append(f"SitekitGPUs = {int(result['gpu']['count'])}")
        lines.append(f"SitekitGPUCheck = {classad_string(result['gpu']['detail'])}")
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
    for row in result.get("images", []):
        detail = f"{row['path']} in {row['seconds']:.2f} s" if row["ok"] else f"{row['path']}: {row['reason']}"
        lines.append(f"  image   {'ok' if row['ok'] else 'FAIL':<5} {row['name']}: {detail}")
    if "gpu" in result:
        state = "-" if result["gpu"]["ok"] is None else ("ok" if result["gpu"]["ok"] else "FAIL")
        lines.append(f"  gpu     {state:<5} {result['gpu']['detail']}")
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
