"""Launch a container the way GlideinWMS pilots do, and judge what came back.

Shared by ``library/container_launch.py`` and anything else that launches a probe container. Pure standard
library, importable without Ansible. The pieces, each testable on its own and on recorded output of real runs:

- ``parse_bind`` and ``split_path_list`` read the module's inputs;
- ``build_probe`` writes the POSIX sh script that runs inside the container and prints one tagged line per
  fact (working directory, processes, binds, the /srv scratch, host PATH entries, the image's OS, the exit
  code of an extra command); ``parse_probe_output`` reads those lines back;
- ``build_launch_argv`` and ``launch_env`` give the pilot's command line and environment;
- ``run_as`` runs a command as another user in its own session, killing the whole session on a timeout;
- ``evaluate`` turns the parsed probe into the checks; ``diagnose`` maps Apptainer's error text to a cause
  and a remedy, ``diagnose_host_path`` does the same for an image or bind source the host itself cannot stat;
- ``version_check`` judges the Apptainer found against the minimum version (``sitekit_version``: the release that
  fixed its last published advisory); below it the node is not ready, with the advisory and the upgrade command;
- ``launch`` does the whole launch with these pieces (the account, the host paths, finding Apptainer and its
  version, the scratch directory and its marker, the run, cleanup, the checks and the diagnosis).
  ``library/container_launch.py``,
  ``sitekit_selfcheck`` (the node-side command and ``library/node_selfcheck.py``) are adapters around it, so one
  node gets one verdict whoever asks; what "ready" means for host paths is ``host_path_policy``.

Every error text the diagnosis knows was seen on a real Apptainer 1.4 run, recorded with the pilot's launch line
in tests/unit/data/launch/.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import tempfile
import uuid

# Ansible's AnsiballZ bundles these with a module that imports this file; a node-side command finds them next to this
# file (sitekit's library directory on sys.path).
try:
    from ansible.module_utils import sitekit_kernel as kernel
    from ansible.module_utils import sitekit_proc as proc
    from ansible.module_utils import sitekit_version as versions
except ImportError:
    import sitekit_kernel as kernel
    import sitekit_proc as proc
    import sitekit_version as versions

# Where the scratch directory appears inside the container, and the working directory there (as GlideinWMS).
CONTAINER_HOME = "/srv"
# The scratch directory's name carries a '#', as HTCondor's execute directories can; mkdtemp adds the rest.
SCRATCH_PREFIX = "sitekit#launch-"
# A file the module writes into the scratch directory; the probe reads it back through /srv.
MARKER_NAME = ".sitekit-launch-marker"
# The host variables whose entries the probe looks for inside the image.
HOST_PATH_VARS = ("PATH", "LD_LIBRARY_PATH")
# Where OSG publishes an Apptainer that needs no installation (it needs unprivileged user namespaces).
CVMFS_APPTAINER = "/cvmfs/oasis.opensciencegrid.org/mis/apptainer/bin/apptainer"
# Where Apptainer and its helpers are looked for when the caller has no PATH of its own (a startd cron job).
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Whether host PATH/LD_LIBRARY_PATH entries missing in the image make a node not ready. "warn" (the default for every
# caller): the host_paths check reports them and the node stays ready, since Apptainer replaces PATH unless a pilot
# forwards it; "fail": they count like any other check.
HOST_PATH_POLICIES = ("warn", "fail")
HOST_PATH_POLICY = "warn"
# A container that sees more processes than this does not have its own PID namespace, whatever the host has.
MAX_CONTAINER_PROCESSES = 20
ERROR_EXCERPT_CHARS = 1500


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
def parse_bind(spec):
    """``src``, ``src:dst`` or ``src:dst:opts`` (as ``--bind`` takes one) -> (src, dst, opts).

    ``dst`` is ``src`` when not given; ``opts`` is None or ``ro``/``rw``. Raises ValueError naming the bind.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"bind {spec!r}: give src or src:dst, an absolute path on the host")
    if "," in spec:
        raise ValueError(f"bind {spec!r}: one bind per list element (no commas)")
    parts = spec.split(":")
    if len(parts) > 3:
        raise ValueError(f"bind {spec!r}: expected src, src:dst or src:dst:ro|rw")
    src = parts[0]
    dst = parts[1] if len(parts) > 1 and parts[1] else src
    opts = parts[2] if len(parts) > 2 else None
    if opts is not None and opts not in ("ro", "rw"):
        raise ValueError(f"bind {spec!r}: the option must be ro or rw, got {opts!r}")
    for path in (src, dst):
        if not path.startswith("/"):
            raise ValueError(f"bind {spec!r}: {path!r} is not an absolute path")
        if "\n" in path or "\t" in path:
            raise ValueError(f"bind {spec!r}: paths with tabs or newlines cannot be checked")
    return src, dst, opts


def split_path_list(value):
    """A PATH-like value as its entries, in order, without empty or repeated entries."""
    entries = []
    for entry in (value or "").split(":"):
        if entry and entry not in entries and "\n" not in entry and "\t" not in entry:
            entries.append(entry)
    return entries


def env_prefix(apptainer):
    """The prefix that passes a variable into the container: SINGULARITYENV_ for a singularity binary."""
    return "SINGULARITYENV_" if os.path.basename(apptainer).startswith("singularity") else "APPTAINERENV_"


# ---------------------------------------------------------------------------------------------
# The probe script
# ---------------------------------------------------------------------------------------------
def build_probe(token, bind_targets=(), host_paths=None, host_pid=None, home=CONTAINER_HOME):
    """The POSIX sh script run inside the container; it prints ``<token>\\t<key>\\t<value>...`` lines.

    Only shell builtins and ``rm`` are used, so that it runs in any image with a /bin/sh (EL6 included).
    ``host_paths`` maps a variable name (PATH) to the host's entries; ``host_pid`` is a process of the host
    that a container with its own PID namespace must not see. Arguments after the script (``sh -c PROBE
    NAME ARG...``) are an extra command, run last with its exit code reported.
    """
    q = shlex.quote
    lines = [
        f"t={q(token)}",
        "say() { printf '%s' \"$t\"; for a in \"$@\"; do printf '\\t%s' \"$a\"; done; printf '\\n'; }",
        "say start",
        'say cwd "$(pwd)"',
        'say home "$HOME"',
        'n=0; for d in /proc/[0-9]*; do [ -d "$d" ] && n=$((n+1)); done; say procs "$n"',
        'c=; read -r c < /proc/1/comm 2>/dev/null; say pid1 "$c"',
    ]
    if host_pid is not None:
        pid = int(host_pid)
        lines.append(f"if [ -d /proc/{pid} ]; then say host_pid visible {pid}; else say host_pid hidden {pid}; fi")
    for target in bind_targets:
        lines.append(f"if [ -e {q(target)} ]; then say bind present {q(target)}; else say bind missing {q(target)}; fi")
    marker = f"{home}/{MARKER_NAME}"
    probe_file = f"{home}/.sitekit-write-test.$$"
    lines += [
        f'm=; read -r m < {q(marker)} 2>/dev/null; say marker "$m"',
        f'f="{probe_file}"',
        'if ( : > "$f" ) 2>/dev/null && rm -f "$f" 2>/dev/null && [ ! -e "$f" ]; then say writable yes; '
        "else say writable no; fi",
    ]
    for var in HOST_PATH_VARS:
        for entry in (host_paths or {}).get(var, ()):
            lines.append(
                f"if [ -d {q(entry)} ]; then say hostpath {var} present {q(entry)}; "
                f"else say hostpath {var} missing {q(entry)}; fi"
            )
        lines.append(f'say env {var} "${{{var}-}}"')
    lines += [
        "os=",
        "for f in /etc/os-release /usr/lib/os-release; do",
        '  [ -r "$f" ] || continue',
        '  while IFS= read -r l || [ -n "$l" ]; do case $l in PRETTY_NAME=*) os=${l#PRETTY_NAME=};; esac; done < "$f"',
        "  break",
        "done",
        'if [ -z "$os" ]; then',
        "  for f in /etc/redhat-release /etc/system-release /etc/debian_version; do",
        '    if [ -r "$f" ]; then read -r os < "$f"; break; fi',
        "  done",
        "fi",
        'say os "$os"',
        'if [ "$#" -gt 0 ]; then "$@"; rc=$?; echo; say command_rc "$rc"; fi',
        "say end",
        "exit 0",
    ]
    return "\n".join(lines) + "\n"


def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_probe_output(text, token):
    """The probe's tagged lines as a dict; lines without the token (the extra command's output) go to ``other``.

    Keys: started, ended (bools), cwd, home, procs (int), pid1, host_pid ("visible"/"hidden"), binds
    {target: present}, marker, writable (bool), host_paths {var: {entry: present}}, env {var: value}, os,
    command_rc (int), other (str). Absent facts are None.
    """
    result = {
        "started": False,
        "ended": False,
        "cwd": None,
        "home": None,
        "procs": None,
        "pid1": None,
        "host_pid": None,
        "binds": {},
        "marker": None,
        "writable": None,
        "host_paths": {},
        "env": {},
        "os": None,
        "command_rc": None,
        "other": "",
    }
    other = []
    tag = f"{token}\t"
    for line in (text or "").splitlines():
        at = line.find(tag) if token else -1
        if at < 0:
            other.append(line)
            continue
        if at > 0:
            other.append(line[:at])
        key, *values = line[at + len(tag) :].split("\t")
        value = "\t".join(values)
        if key == "start":
            result["started"] = True
        elif key == "end":
            result["ended"] = True
        elif key in ("cwd", "home", "pid1", "marker"):
            result[key] = value
        elif key == "procs" or key == "command_rc":
            result[key] = int(value) if value.strip().lstrip("-").isdigit() else None
        elif key == "host_pid" and values:
            result["host_pid"] = values[0]
        elif key == "bind" and len(values) >= 2:
            result["binds"][values[1]] = values[0] == "present"
        elif key == "writable":
            result["writable"] = value == "yes"
        elif key == "hostpath" and len(values) >= 3:
            result["host_paths"].setdefault(values[0], {})[values[2]] = values[1] == "present"
        elif key == "env" and values:
            result["env"][values[0]] = "\t".join(values[1:])
        elif key == "os":
            result["os"] = _unquote(value) or None
    result["other"] = "\n".join(other).strip("\n")
    return result


# ---------------------------------------------------------------------------------------------
# The launch
# ---------------------------------------------------------------------------------------------
def build_launch_argv(
    apptainer,
    image,
    scratch,
    probe,
    binds=(),
    contain=True,
    ipc=True,
    pid=True,
    extra_args=(),
    command=(),
    home=CONTAINER_HOME,
):
    """The pilot's launch line: ``apptainer exec --contain --ipc --pid --home S:/srv --pwd /srv --bind ... IMAGE``
    followed by ``/bin/sh -c PROBE sitekit-probe [COMMAND...]``."""
    argv = [apptainer, "exec"]
    argv += [flag for flag, on in (("--contain", contain), ("--ipc", ipc), ("--pid", pid)) if on]
    argv += ["--home", f"{scratch}:{home}", "--pwd", home]
    if binds:
        argv += ["--bind", ",".join(binds)]
    argv += list(extra_args)
    argv += [image, "/bin/sh", "-c", probe, "sitekit-probe"]
    argv += list(command)
    return argv


def build_baseline_argv(apptainer, image):
    """The bare launch the launch time is compared with."""
    return [apptainer, "exec", image, "/bin/true"]


def launch_env(user, scratch, apptainer, host_env, search_path):
    """The launching process's environment: a clean one, as the user, HOME at the scratch directory.

    ``search_path`` is where Apptainer finds its own helpers (the module's PATH). Apptainer 1.4 passes neither
    the host's PATH (the container gets its default /usr/local/sbin:...:/bin) nor its LD_LIBRARY_PATH (unset)
    from the launching process; ``APPTAINERENV_PATH`` sets the container's PATH exactly and
    ``APPTAINERENV_LD_LIBRARY_PATH`` its LD_LIBRARY_PATH (Apptainer appends /.singularity.d/libs). So the host
    values go in with that prefix, which is how a pilot hands its environment to the job.
    """
    env = {
        "PATH": search_path,
        "HOME": scratch,
        "USER": user,
        "LOGNAME": user,
        "LANG": "C",
        "LC_ALL": "C",
    }
    prefix = env_prefix(apptainer)
    for var in HOST_PATH_VARS:
        value = (host_env or {}).get(var)
        if value:
            env[prefix + var] = value
    return env


def run_as(argv, env, cwd, timeout, uid=None, gid=None, user=None):
    """Run ``argv`` as ``uid``/``gid`` (with ``user``'s groups) in a new session; stdin is /dev/null (``sitekit_proc``).

    Returns a dict: rc, stdout, stderr, seconds (wall time), timed_out, leftover (PIDs that survived the
    kill; empty unless something escaped the session), killed. On a timeout the whole session gets SIGKILL.
    """
    return proc.run_in_session(argv, timeout, env=env, cwd=cwd, uid=uid, gid=gid, user=user, grace=5.0)


def count_processes(proc="/proc"):
    """How many processes this (host) side sees."""
    try:
        return sum(1 for name in os.listdir(proc) if name.isdigit())
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Judging the result
# ---------------------------------------------------------------------------------------------
def _check(ok, detail):
    return {"ok": bool(ok), "detail": detail}


def timeout_stage(parsed, command_given=False):
    """Where a launch that timed out hung, from what the probe printed before the kill."""
    if not parsed["started"]:
        return "before the container started"
    if command_given and parsed["os"] is not None and parsed["command_rc"] is None:
        return "while the command ran"
    return "inside the probe"


def not_run_checks(reason, binds=(), command_given=False):
    """Every check, not ok, because the launch did not happen or failed: ``reason``."""
    names = ["launch", "pid_namespace", "binds", "scratch", "host_paths"]
    if command_given:
        names.append("command")
    checks = {name: _check(False, f"not run: {reason}") for name in names}
    if binds:
        checks["binds"]["detail"] = f"not run: {reason}; wanted inside: {', '.join(binds)}"
    return checks


def evaluate(
    parsed,
    *,
    launch,
    marker,
    scratch,
    bind_targets=(),
    host_paths=None,
    pid=True,
    host_processes=None,
    command_given=False,
    home=CONTAINER_HOME,
    host_path_policy=HOST_PATH_POLICY,
):
    """The checks, from the parsed probe output and the run (``launch`` as ``run_as`` returns it).

    Returns (checks, ready). ``marker`` is the text the module put into the scratch directory; ``ready`` leaves out
    the host_paths check unless ``host_path_policy`` is "fail" (``blocking``).
    """
    seconds = launch["seconds"]
    if launch["timed_out"]:
        reason = f"the launch timed out after {seconds:.1f} s and was killed, {timeout_stage(parsed, command_given)}"
        return not_run_checks(reason, bind_targets, command_given), False
    if launch["rc"] != 0 or not parsed["started"]:
        why = f"apptainer exited with {launch['rc']}" if launch["rc"] else "the probe printed nothing"
        return not_run_checks(f"the launch failed ({why})", bind_targets, command_given), False

    checks = {}
    complete = parsed["ended"]
    detail = f"launched in {seconds:.2f} s, " + (
        "probe complete" if complete else "but the probe stopped before its end"
    )
    checks["launch"] = _check(complete, "; ".join([detail, *launch_notes(launch["stderr"])]))

    procs, pid1, host_pid = parsed["procs"], parsed["pid1"], parsed["host_pid"]
    seen = f"the container sees {procs} processes (host: {host_processes}), PID 1 is {pid1!r}"
    if not pid:
        checks["pid_namespace"] = _check(True, f"not requested (pid: false); {seen}")
    else:
        isolated = (
            host_pid == "hidden"
            and procs is not None
            and procs <= MAX_CONTAINER_PROCESSES
            and (host_processes is None or procs < host_processes)
        )
        if isolated:
            detail = f"own PID namespace: {seen}; the module's host process is not visible"
        elif host_pid == "visible":
            detail = f"no PID namespace: {seen}, and the module's host process is visible inside"
        else:
            detail = f"no PID namespace: {seen}"
        checks["pid_namespace"] = _check(isolated, detail)

    missing = [t for t in bind_targets if not parsed["binds"].get(t, False)]
    if not bind_targets:
        checks["binds"] = _check(True, "no binds requested")
    elif missing:
        checks["binds"] = _check(False, f"missing inside the container: {', '.join(missing)}")
    else:
        checks["binds"] = _check(True, f"visible inside: {', '.join(bind_targets)}")

    problems = []
    if parsed["marker"] != marker:
        problems.append(f"{home} does not show the scratch directory (marker read: {parsed['marker']!r})")
    if parsed["cwd"] != home:
        problems.append(f"the working directory is {parsed['cwd']!r}, not {home}")
    if not parsed["writable"]:
        problems.append(f"{home} is not writable")
    checks["scratch"] = _check(
        not problems,
        f"{scratch} mounted at {home}: " + ("; ".join(problems) if problems else "working directory, writable"),
    )

    host_paths = host_paths or {}
    absent = []
    for var in HOST_PATH_VARS:
        found = parsed["host_paths"].get(var, {})
        absent += [f"{var} {entry}" for entry in host_paths.get(var, ()) if not found.get(entry, False)]
    if not any(host_paths.get(var) for var in HOST_PATH_VARS):
        checks["host_paths"] = _check(True, "no host PATH or LD_LIBRARY_PATH given")
    elif absent:
        checks["host_paths"] = _check(
            False,
            "host entries missing in the image: "
            + ", ".join(absent)
            + ". A pilot that passes the host's PATH/LD_LIBRARY_PATH into this image runs with these dead "
            "entries (host paths of another OS release); have it set the container's own values "
            "(APPTAINERENV_PATH, or --cleanenv) or add the paths to the image",
        )
    else:
        checks["host_paths"] = _check(True, "every host PATH and LD_LIBRARY_PATH entry exists in the image")

    if command_given:
        rc = parsed["command_rc"]
        tail = parsed["other"][-500:]
        output = f"; output: {tail}" if tail else ""
        if rc is None:
            checks["command"] = _check(False, f"the command did not finish{output}")
        else:
            checks["command"] = _check(rc == 0, f"exit code {rc}{output}")
    return checks, not blocking(checks, host_path_policy)


def blocking(checks, host_path_policy=HOST_PATH_POLICY):
    """The names of the failed checks that make a node not ready, in check order."""
    if host_path_policy not in HOST_PATH_POLICIES:
        raise ValueError(f"host_path_policy: give one of {', '.join(HOST_PATH_POLICIES)}, got {host_path_policy!r}")
    return [
        name
        for name, check in checks.items()
        if not check["ok"] and (name != "host_paths" or host_path_policy == "fail")
    ]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text):
    """``text`` without terminal colour codes (the starter colours its ERROR lines even when not on a terminal)."""
    return _ANSI.sub("", text or "")


def error_excerpt(stderr, limit=ERROR_EXCERPT_CHARS):
    """Apptainer's FATAL/ERROR lines (else the last lines), colour codes removed, at most ``limit`` chars; or None."""
    lines = [line.rstrip() for line in strip_ansi(stderr).splitlines() if line.strip()]
    if not lines:
        return None
    serious = [line for line in lines if re.match(r"\s*(FATAL|ERROR)\b", line)]
    text = "\n".join(serious or lines[-5:])
    return text if len(text) <= limit else "..." + text[-limit:]


def launch_notes(stderr):
    """What Apptainer said on a launch that worked and an admin should know, as sentences."""
    notes = []
    if "Converting SIF file to temporary sandbox" in (stderr or ""):
        notes.append(
            "Apptainer could not mount the SIF (no squashfuse, or /dev/fuse closed to users) and unpacked it into "
            "a temporary sandbox: slow, and disk space per job; install squashfuse and make /dev/fuse 0666, or "
            "use the flat (CVMFS) form of the image"
        )
    return notes


_USERNS_ROLE = "sitekit's userns role"
_SYSCTL_FILE = "/etc/sysctl.d/90-sitekit-userns.conf"


def _sysctl_remedy(key, value):
    return f"echo '{key} = {value}' >> {_SYSCTL_FILE} && sysctl -w {key}={value} ({_USERNS_ROLE} does this)"


# (regex on Apptainer's output, cause, remedy); the first match wins, so specific texts come before generic ones.
# A named group ``path`` fills ``{path}`` in the cause and the remedy. Each entry's text was seen on a real
# Apptainer 1.4 (tests/unit/data/launch/ records where and how).
ERROR_CAUSES = (
    (
        r"maximum number of user namespaces exceeded",
        "user namespaces are off: user.max_user_namespaces is 0 (or every allowed one is in use)",
        "raise user.max_user_namespaces, never lowering a non-zero kernel default: "
        + _sysctl_remedy("user.max_user_namespaces", 15000)
        + "; check /proc/sys/user/max_user_namespaces",
    ),
    (
        r"unprivileged_userns_clone",
        "Debian's switch kernel.unprivileged_userns_clone is 0: unprivileged users may not create user namespaces",
        "set it to 1: " + _sysctl_remedy("kernel.unprivileged_userns_clone", 1),
    ),
    (
        r"not allowed to create user namespace",
        "the kernel refuses this user a user namespace (EPERM): an AppArmor profile that denies `userns` (Ubuntu "
        "23.10+ restricts unprivileged user namespaces), a seccomp profile of a surrounding container runtime, or "
        "a chroot",
        "on Ubuntu run " + _USERNS_ROLE + " (userns_apparmor_method: profile writes an AppArmor profile with "
        "`userns,` for the installed starter; check /proc/sys/kernel/apparmor_restrict_unprivileged_userns); "
        "inside another container runtime allow unshare/clone of user namespaces in its seccomp profile",
    ),
    (
        r"mount namespace requires privileges",
        "the kernel gives a user namespace but refuses the mount namespace (EPERM): Ubuntu 23.10+ with "
        "kernel.apparmor_restrict_unprivileged_userns = 1 and no AppArmor profile for the starter, or an EL7.2-7.5 "
        "kernel without the boot argument namespace.unpriv_enable=1",
        "Ubuntu: run "
        + _USERNS_ROLE
        + " (userns_apparmor_method: profile), or apparmor_parser -r a profile with `userns,` for the starter; "
        "EL7.4-7.5: grubby --update-kernel=ALL --args=namespace.unpriv_enable=1, user.max_user_namespaces = 15000 "
        "and a reboot (" + _USERNS_ROLE + ", userns_allow_reboot), better a kernel update to EL7.6 or later; "
        "EL7.2-7.3 kernels cannot do it",
    ),
    (
        r"(?P<path>/[^\s:]*): transport endpoint is not connected",
        "a FUSE file system under {path} is dead: its daemon (typically the CVMFS client) crashed and left the mount",
        "cvmfs_config probe to find the repository, then cvmfs_config reload (or umount -l the mount point) and "
        "access it again; look for the crash in the system log (cvmfs writes a stack trace to syslog)",
    ),
    (
        r"(?P<path>/[^\s:]*): (too many levels of symbolic links|EvalSymlinks: too many links)",
        "{path} cannot be resolved (too many symbolic links): a CVMFS repository that autofs had not mounted on the "
        "host when the container started, or a symbolic link loop",
        "access the repository on the host before launching (ls /cvmfs/<repo>) and make mounts stay (autofs "
        "--timeout=0 in /etc/auto.master.d/cvmfs.autofs, or static mounts); keep `mount slave = yes` in "
        "apptainer.conf (sitekit's apptainer role: apptainer_mount_slave); else fix the link loop",
    ),
    (
        r"/dev/fuse[^\n]*(permission denied|operation not permitted)",
        "the user may not open /dev/fuse, so the SIF image cannot be mounted unprivileged (squashfuse)",
        'chmod 0666 /dev/fuse and keep it with a udev rule (KERNEL=="fuse", MODE="0666"); or use the flat (CVMFS) '
        "form of the image",
    ),
    (
        r"mount source (?P<path>\S+) doesn't exist",
        "the bind source {path} does not exist on the host (a --bind, APPTAINER_BINDPATH, or a `bind path` of "
        "apptainer.conf, which is fatal without --contain)",
        "create or mount {path} on the host, or drop the bind (for `bind path` in apptainer.conf: sitekit's "
        "apptainer role, apptainer_bind_paths / apptainer_bind_cvmfs)",
    ),
    (
        r"could not open image (?P<path>\S+?):[^\n]*no such file or directory",
        "the image {path} does not exist",
        "point image at the flat image directory (on CVMFS: /cvmfs/singularity.opensciencegrid.org/<org>/"
        "<image>:<tag>) or a SIF file; on CVMFS check that the repository mounts (ls /cvmfs/<repo>)",
    ),
    (
        r"could not open image (?P<path>\S+?):[^\n]*permission denied",
        "the user may not reach the image {path} (a directory on its path is closed to the user)",
        "make the image and every directory above it readable and searchable for the pilot's user (e.g. 0755)",
    ),
    (
        r"can't change directory to (?P<path>\S+?):[^\n]*permission denied",
        "the user cannot enter the scratch directory {path}: a directory above it is closed to the user",
        "choose a scratch_base the user can reach (/tmp, or the pilot's execute directory); every directory above "
        "it needs search permission (o+x) for the user",
    ),
    (
        r"image format not recognized",
        "the image is neither a flat directory with a root file system nor a SIF/squashfs/ext3 file",
        "point image at the flat image directory or at a valid SIF file; check that the path is complete and the "
        "file is not truncated",
    ),
    (
        r"stat /bin/sh: no such file or directory",
        "the image has no /bin/sh",
        "use an image with a POSIX shell at /bin/sh (pilots and job wrappers need one too)",
    ),
    (
        r"destination (?P<path>\S+) doesn't exist in container",
        "the image directory lacks {path}: it is not a complete root file system",
        "use a complete image (a flat image made by apptainer build --sandbox, or the CVMFS form of the image)",
    ),
    (
        r"permission denied",
        "the user may not read something the launch needs (the image, the scratch directory or a bind source)",
        "make it readable for the pilot's user and its parent directories searchable; the error names the path",
    ),
)
TIMEOUT_CAUSE = (
    "the launch did not finish within the timeout: it hung (a CVMFS repository that does not answer, an "
    "unreachable proxy, a dead FUSE or NFS mount under a bind) or the node is overloaded",
    "run the same launch by hand as the user with `apptainer --debug exec ...` to see where it stops; check "
    "cvmfs_config probe and the binds; raise timeout only if the node is merely slow",
)
COMMAND_TIMEOUT_CAUSE = (
    "the container started and the probe passed, but the command did not finish within the timeout",
    "raise timeout for a command that needs longer, or run the command by hand in the container to see where it hangs",
)
UNKNOWN_CAUSE = (
    "Apptainer failed for a reason sitekit does not recognise (see error)",
    "run the launch by hand as the user with `apptainer --debug exec ...`; check kernel_compat's verdict",
)


def diagnose(text, timed_out=False, stage=None):
    """(cause, remedy) for Apptainer's error ``text``; a timeout has its own pair (by ``timeout_stage``), unknown
    text a generic one."""
    if timed_out:
        return COMMAND_TIMEOUT_CAUSE if stage == "while the command ran" else TIMEOUT_CAUSE
    text = strip_ansi(text)
    for pattern, cause, remedy in ERROR_CAUSES:
        match = re.search(pattern, text, re.IGNORECASE)
        if match:
            path = match.groupdict().get("path") or "the path in the error"
            return cause.format(path=path), remedy.format(path=path)
    return UNKNOWN_CAUSE


def host_path_problem(path):
    """None when ``path`` exists on this host (links followed), else the error ("Too many levels of symbolic links")."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def diagnose_host_path(path, problem, kind):
    """(cause, remedy) for an image (``kind`` "image") or a bind source ("bind") the host cannot stat."""
    if kind == "image":
        return diagnose(f"could not open image {path}: {problem}")
    found = diagnose(f"{path}: {problem}")
    if found == UNKNOWN_CAUSE or "no such file" in problem.lower():
        return diagnose(f"mount source {path} doesn't exist")
    return found


# ---------------------------------------------------------------------------------------------
# The whole launch
# ---------------------------------------------------------------------------------------------
class LaunchArgumentError(ValueError):
    """Wrong arguments (the account, a bind, the scratch base, the timeout): nothing was tried on the node."""

    def __init__(self, msg, cause, remedy):
        super().__init__(msg)
        self.cause, self.remedy = cause, remedy


def empty_result(image, user, command_given=False):
    """Every key of ``launch``'s result, as it is before anything ran."""
    return {
        "changed": False,
        "ready": False,
        "launch_seconds": None,
        "baseline_seconds": None,
        "image": image,
        "user": user,
        "apptainer": {"path": None, "version": None},
        "command": None,
        "image_os": None,
        "checks": not_run_checks("nothing was launched", command_given=command_given),
        "error": None,
        "cause": None,
        "remedy": None,
    }


def launch_account(user):
    """``user``'s passwd entry, refusing an unknown account and uid 0; raises LaunchArgumentError."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise LaunchArgumentError(
            f"user {user!r} does not exist on this node: name the pilot's existing unprivileged account",
            f"there is no account {user} on this node",
            "create it (sitekit's apptainer role does: apptainer_probe_user), or name an existing unprivileged "
            "account (the pilot's)",
        ) from None
    if account.pw_uid == 0:
        raise LaunchArgumentError(
            f"user {user!r} has uid 0: the launch must run as an unprivileged user (the pilot's account)",
            "the launch must run as an unprivileged user, not uid 0",
            "name an unprivileged account (the pilot's, or sitekit-probe)",
        )
    if os.geteuid() not in (0, account.pw_uid):
        raise LaunchArgumentError(
            f"launching as {user!r} needs root: run the task with become: true",
            f"only root can launch as {user}",
            "run as root (become: true)",
        )
    return account


def find_apptainer(configured=None, which=None, search_path=None):
    """(binary, None), or (None, (problem, cause, remedy)) when there is no usable Apptainer.

    ``configured`` must be an executable file; else apptainer, then singularity, through ``which(name)`` (default:
    ``shutil.which`` on ``search_path``, default SEARCH_PATH).
    """
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured, None
        return None, (
            f"apptainer {configured!r} is not an executable file",
            "the Apptainer binary named by the apptainer option is missing",
            f"install Apptainer (sitekit's apptainer role) or point apptainer at an existing binary, e.g. "
            f"{CVMFS_APPTAINER}",
        )
    path = search_path or SEARCH_PATH
    which = which or (lambda name: shutil.which(name, path=path))
    found = which("apptainer") or which("singularity")
    if found:
        return found, None
    return None, (
        "neither apptainer nor singularity is on the PATH",
        "Apptainer is not installed on this node",
        "install it with sitekit's apptainer role (apptainer_source), or, where user namespaces are on, "
        f"set apptainer to OSG's build on CVMFS: {CVMFS_APPTAINER}",
    )


def apptainer_version_output(binary):
    """What ``binary --version`` prints, or "" when it fails."""
    run = proc.run_in_session([binary, "--version"], 10, env={"PATH": SEARCH_PATH, "LANG": "C", "LC_ALL": "C"})
    return run["stdout"] if run["rc"] == 0 else ""


def apptainer_version(binary):
    """What ``binary --version`` says (the version only), or None."""
    return kernel.parse_version_output(apptainer_version_output(binary)) or None


def package_family(which):
    """Debian or RedHat, by the package tool ``which(name)`` finds; None when neither."""
    if which("apt-get"):
        return "Debian"
    if which("dnf") or which("yum"):
        return "RedHat"
    return None


def version_check(output, minimum, *, family=None, path=None):
    """The ``version`` check from ``--version`` output (``sitekit_version``): {ok, detail, cause, remedy}, the last two
    None when it passes."""
    verdict = versions.judge_apptainer(output, minimum, family=family, path=path)
    return dict(_check(verdict["ok"], verdict["detail"]), cause=verdict["cause"], remedy=verdict["remedy"])


def launch_failure(run, parsed, user, timeout, command_given=False):
    """(problem, error, cause, remedy) for a launch that timed out, failed or printed nothing; else None."""
    if not (run["timed_out"] or run["rc"] != 0 or not parsed["started"]):
        return None
    stage = timeout_stage(parsed, command_given)
    cause, remedy = diagnose(run["stderr"] + "\n" + parsed["other"], run["timed_out"], stage)
    error = error_excerpt(run["stderr"]) or error_excerpt(parsed["other"])
    if run["timed_out"]:
        problem = f"the launch as {user!r} timed out after {timeout:g} s and was killed, {stage}"
    else:
        problem = f"the launch as {user!r} failed (rc {run['rc']})"
    return problem, error, cause, remedy


def launch(
    image,
    user,
    *,
    binds=(),
    scratch_base="/tmp",
    apptainer=None,
    command=(),
    host_env=None,
    contain=True,
    ipc=True,
    pid=True,
    extra_args=(),
    timeout=60,
    baseline=False,
    host_path_policy=HOST_PATH_POLICY,
    search_path=None,
    which=None,
    minimum_version=versions.APPTAINER_MINIMUM,
):
    """Launch ``image`` as ``user`` the way a pilot does and judge it: returns (result, problem, warnings).

    ``result`` has ``empty_result``'s keys; ``problem`` says why the node cannot launch (None when the container
    started: failed checks are in ``result["checks"]``, ``result["ready"]`` says whether they block); ``warnings`` are
    sentences for the admin. Wrong arguments raise LaunchArgumentError. ``host_env`` is the PATH and LD_LIBRARY_PATH
    a pilot forwards (none by default); ``search_path`` is where Apptainer's helpers are found (the launching
    process's PATH, default SEARCH_PATH); ``which`` finds a binary by name (default: on ``search_path``).
    ``minimum_version`` (empty: not judged) adds the ``version`` check once Apptainer is found; below it the node is
    not ready, with the advisory as the cause and the upgrade as the remedy.
    """
    command = list(command or ())
    result = empty_result(image, user, bool(command))
    warnings = []
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 1:
        raise LaunchArgumentError(
            f"timeout must be a positive number of seconds, got {timeout}",
            "the timeout is not a positive number of seconds",
            "give a timeout of at least 1 s",
        )
    host_path_policy = host_path_policy or HOST_PATH_POLICY
    if host_path_policy not in HOST_PATH_POLICIES:
        raise LaunchArgumentError(
            f"host_path_policy must be one of {', '.join(HOST_PATH_POLICIES)}, got {host_path_policy!r}",
            "an unknown host path policy",
            "give warn (the default) or fail",
        )
    if minimum_version:
        try:
            versions.validate(minimum_version)
        except ValueError as exc:
            raise LaunchArgumentError(
                f"minimum_version: {exc}",
                "the minimum Apptainer version is no version",
                "give a version such as 1.4.5, or an empty string to leave the version unjudged",
            ) from None
    account = launch_account(user)
    parsed_binds = []
    for spec in binds:
        try:
            parsed_binds.append((spec, *parse_bind(spec)))
        except ValueError as exc:
            raise LaunchArgumentError(
                str(exc), "a malformed bind", "give each bind as src, src:dst or src:dst:ro"
            ) from None
    if not os.path.isdir(scratch_base):
        raise LaunchArgumentError(
            f"scratch_base {scratch_base!r} is not a directory: name one where {user!r} may create files",
            "the scratch base is not a directory",
            "name a directory the user may create files in (/tmp)",
        )
    if set(":,") & set(scratch_base):
        raise LaunchArgumentError(
            f"scratch_base {scratch_base!r} contains ':' or ',', which --home cannot take",
            "the scratch base has ':' or ',' in its path",
            "name a scratch base without ':' or ','",
        )
    host_env = host_env or {}
    host_paths = {var: split_path_list(str(host_env.get(var) or "")) for var in HOST_PATH_VARS}
    targets = [dst for _spec, _src, dst, _opts in parsed_binds]

    def cannot(problem, cause, remedy):
        result.update(error=problem, cause=cause, remedy=remedy)
        result["checks"] = not_run_checks(problem, targets, bool(command))
        return result, problem, warnings

    # The node: the image, the bind sources, Apptainer
    problem = host_path_problem(image)
    if problem:
        state = "does not exist" if "no such file" in problem.lower() else "is not accessible"
        return cannot(f"image {image} {state}: {problem}", *diagnose_host_path(image, problem, "image"))
    for spec, src, _dst, _opts in parsed_binds:
        problem = host_path_problem(src)
        if problem:
            state = "does not exist" if "no such file" in problem.lower() else "is not accessible"
            return cannot(
                f"bind {spec!r}: the source {src} {state} on the host: {problem}",
                *diagnose_host_path(src, problem, "bind"),
            )
    binary, missing = find_apptainer(apptainer, which, search_path)
    if missing:
        return cannot(*missing)
    output = apptainer_version_output(binary)
    result["apptainer"] = {"path": binary, "version": kernel.parse_version_output(output) or None}
    path = search_path or SEARCH_PATH
    family = package_family(which or (lambda name: shutil.which(name, path=path)))
    version = version_check(output, minimum_version, family=family, path=binary)

    # The launch, in a scratch directory that is removed whatever happens
    token = f"sitekit-{uuid.uuid4().hex[:12]}"
    probe = build_probe(token, targets, host_paths, host_pid=os.getpid())
    ids = {"uid": account.pw_uid, "gid": account.pw_gid, "user": user} if os.geteuid() == 0 else {}
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=scratch_base)
    try:
        os.chmod(scratch, 0o700)
        marker_path = os.path.join(scratch, MARKER_NAME)
        with open(marker_path, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        if ids:
            os.chown(scratch, ids["uid"], ids["gid"])
            os.chown(marker_path, ids["uid"], ids["gid"])
        argv = build_launch_argv(
            binary,
            image,
            scratch,
            probe,
            binds=[spec for spec, *_ in parsed_binds],
            contain=contain,
            ipc=ipc,
            pid=pid,
            extra_args=extra_args,
            command=command,
        )
        result["command"] = argv
        env = launch_env(user, scratch, binary, host_env, search_path or SEARCH_PATH)
        host_processes = count_processes()
        run = run_as(argv, env, scratch, timeout, **ids)
        if baseline and not run["timed_out"]:
            bare = run_as(build_baseline_argv(binary, image), env, scratch, timeout, **ids)
            if bare["rc"] == 0:
                result["baseline_seconds"] = bare["seconds"]
            else:
                warnings.append(f"the baseline launch failed (rc {bare['rc']}): {error_excerpt(bare['stderr'])}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if os.path.lexists(scratch):
            warnings.append(f"could not remove the scratch directory {scratch}")
    if run["leftover"]:
        warnings.append(f"processes {run['leftover']} survived the kill after the timeout")

    judging = {"marker": token, "scratch": scratch, "bind_targets": targets, "host_paths": host_paths, "pid": pid}
    judging.update(host_processes=host_processes, command_given=bool(command), host_path_policy=host_path_policy)
    problem = judge(result, run, parse_probe_output(run["stdout"], token), timeout=timeout, **judging)
    add_version_check(result, version)
    return result, problem, warnings


def add_version_check(result, check):
    """Put the ``version`` check (``version_check``) into ``result``, last among the checks; when it fails the node is
    not ready, and its cause and remedy are the result's unless the launch itself already has one."""
    result["checks"]["version"] = check
    if check["ok"]:
        return
    result["ready"] = False
    if not result["cause"]:
        result.update(cause=check["cause"], remedy=check["remedy"])


def judge(result, run, parsed, *, timeout, **evaluate_args):
    """Fill ``result`` (``empty_result``'s keys) from one run (``run_as``) and its parsed probe.

    ``evaluate_args`` are ``evaluate``'s keywords (marker, scratch, bind_targets, ..., host_path_policy). Returns the
    problem when the launch timed out, failed or printed nothing (the checks then say "not run"), else None.
    """
    checks, ready = evaluate(parsed, launch=run, **evaluate_args)
    result.update(checks=checks, ready=ready, image_os=parsed["os"], launch_seconds=run["seconds"])
    command_given = evaluate_args.get("command_given", False)
    failure = launch_failure(run, parsed, result["user"], timeout, command_given)
    if not failure:
        return None
    problem, error, cause, remedy = failure
    result.update(error=error or problem, cause=cause, remedy=remedy)
    result["checks"] = not_run_checks(problem, evaluate_args.get("bind_targets", ()), command_given)
    return problem
