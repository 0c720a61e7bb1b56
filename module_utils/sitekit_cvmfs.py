"""Probe CVMFS repositories the way a job reaches them, and say why one cannot be read.

Shared by ``library/cvmfs_probe.py`` and any node-side command (a keep-alive timer, a startd cron check) that
needs the same answer. Pure standard library, importable without Ansible. The pieces, each testable on its own:

- ``validate_repository`` checks a fully qualified repository name;
- ``parse_mountinfo`` reads /proc/self/mountinfo; ``mount_state`` says whether a path is mounted, by what, and
  whether its parent is an autofs mount;
- ``access_repository`` stats, lists and reads a repository in a child process under a timeout (a hung FUSE
  mount hangs the child, never the caller), using ``run_with_timeout`` (``sitekit_proc``);
- ``classify_error`` maps an errno (or its text, or a timeout) to a cause and a remedy;
- ``read_parameters`` reads what the configuration files under /etc/cvmfs say for a repository (or parses
  ``cvmfs_config showconfig`` output); ``judge_client`` compares the running client's extended attributes
  (``proxy``, ``host``, ``expires``) with them: a client that goes DIRECT although the files name proxies fails;
- ``nofile_facts`` and ``judge_nfiles`` compare CVMFS_NFILES with the hard limit on open files the client's mount
  runs under; ``mounted_repositories`` lists the repositories a running client serves (a reload needs one);
- ``cache_settings``, ``cache_mount`` and ``judge_cache`` (``read_cache`` on a node or a recorded tree) say whether
  CVMFS_CACHE_BASE is on a local disk (not a network or memory filesystem, unless the data go to an alien cache)
  and whether that filesystem holds CVMFS_QUOTA_LIMIT with the client's margin;
- ``repository_result`` and ``failure_message`` put it together.

The error texts and the CVM-2004 autofs behaviour were seen on real clients and the lab's autofs; the magic extended
attribute names are those of the CernVM-FS client documentation (getxattr section of the implementation notes); the
recorded cases the tests use are in tests/unit/data/cvmfs/.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys

# Ansible's AnsiballZ bundles module_utils/sitekit_proc.py with a module that imports this file; a node-side command
# finds it next to this file (sitekit's library directory on sys.path).
try:
    from ansible.module_utils.sitekit_proc import run_in_session
except ImportError:
    from sitekit_proc import run_in_session

DEFAULT_MOUNTPOINT = "/cvmfs"
DEFAULT_TIMEOUT = 30
# How much of the file is read: enough to make the client fetch the object, little enough to stay cheap.
READ_BYTES = 65536
# The CVMFS client's magic extended attributes on a repository root (without the "user." prefix in the result).
# Cache usage is not among them (cvmfs_config stat asks the client through cvmfs_talk); ncleanup24 (cache
# cleanups in the last 24 h, -1 when the quota manager cannot tell) is the sign of a cache that is too small.
CVMFS_XATTRS = (
    "fqrn",
    "version",
    "revision",
    "expires",
    "host",
    "proxy",
    "nioerr",
    "timestamp_last_ioerr",
    "usedfd",
    "maxfd",
    "nclg",
    "ncleanup24",
)
# Mount sources and filesystem types of a CVMFS client mount (fsname=cvmfs2; "fuse.cvmfs2" if a subtype is set).
CVMFS_SOURCE = "cvmfs2"
CVMFS_FSTYPES = ("fuse", "fuse.cvmfs2")
ERROR_EXCERPT_CHARS = 1000
# The client's configuration directory, and CVMFS_NFILES as the 2.12 client's default.conf sets it (128 Ki).
CONFIG_ROOT = "/etc/cvmfs"
DEFAULT_NFILES = 131072
# The capability that lets a process raise its hard limits (setrlimit above rlim_max), and the kernel's ceiling
# for RLIMIT_NOFILE when /proc/sys/fs/nr_open cannot be read.
CAP_SYS_RESOURCE = 24
DEFAULT_NR_OPEN = 1048576
DIRECT = "DIRECT"
AUTO = "auto"

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_REPOSITORY_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
def validate_repository(name):
    """Return ``name`` when it is a fully qualified repository name (DNS-like, with a dot), else raise ValueError."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"repository {name!r}: give a fully qualified name such as atlas.cern.ch")
    if len(name) > 253 or not _REPOSITORY_RE.match(name):
        raise ValueError(
            f"repository {name!r} is not a fully qualified repository name: use DNS-style labels (letters, digits, "
            "'-', '_') joined by dots, such as atlas.cern.ch or oasis.opensciencegrid.org"
        )
    return name


def validate_file(rel):
    """A file to read inside each repository: relative, without '..'. Returns it normalised, or None."""
    if rel is None or rel == "":
        return None
    if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/") or "\0" in rel:
        raise ValueError(f"file {rel!r}: give a path relative to the repository root, without '..'")
    return os.path.normpath(rel)


# ---------------------------------------------------------------------------------------------
# Mounts
# ---------------------------------------------------------------------------------------------
def _unescape(field):
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """/proc/<pid>/mountinfo text -> list of dicts, in file order (a later entry at a path covers an earlier one).

    Keys: mount_id, parent_id, device, root, mount_point, options, optional (list), fstype, source,
    super_options. Malformed lines are skipped.
    """
    mounts = []
    for line in (text or "").splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 6 or len(fields) < sep + 3:
            continue
        mounts.append(
            {
                "mount_id": fields[0],
                "parent_id": fields[1],
                "device": fields[2],
                "root": _unescape(fields[3]),
                "mount_point": _unescape(fields[4]),
                "options": fields[5],
                "optional": fields[6:sep],
                "fstype": fields[sep + 1],
                "source": _unescape(fields[sep + 2]),
                "super_options": fields[sep + 3] if len(fields) > sep + 3 else "",
            }
        )
    return mounts


def read_mountinfo(path="/proc/self/mountinfo"):
    """The mount table text, or "" when unreadable (then nothing counts as mounted)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def top_mount(mounts, path):
    """The mount visible at ``path`` (the last entry with that mount point), or None."""
    path = os.path.normpath(path)
    found = None
    for entry in mounts:
        if entry["mount_point"] == path:
            found = entry
    return found


def is_cvmfs_mount(entry):
    """Whether a mountinfo entry is a CVMFS client mount (fuse, source cvmfs2)."""
    return bool(entry) and entry["fstype"] in CVMFS_FSTYPES and entry["source"] == CVMFS_SOURCE


def filesystem_name(entry):
    """A short name for what is mounted: "cvmfs2" for the CVMFS client, else the fstype; None if nothing."""
    if not entry:
        return None
    return CVMFS_SOURCE if is_cvmfs_mount(entry) else entry["fstype"]


def mount_state(mounts, mountpoint, name):
    """Whether <mountpoint>/<name> is mounted now and whether <mountpoint> is an autofs mount.

    An autofs trigger at the repository path itself (a direct map) does not count as mounted.
    Returns {"mounted", "autofs", "filesystem"}.
    """
    base = top_mount(mounts, mountpoint)
    entry = top_mount(mounts, os.path.join(mountpoint, name))
    mounted = entry is not None and entry["fstype"] != "autofs"
    return {
        "mounted": mounted,
        "autofs": bool(base) and base["fstype"] == "autofs",
        "filesystem": filesystem_name(entry) if mounted else None,
    }


# ---------------------------------------------------------------------------------------------
# Access, in a child process under a timeout
# ---------------------------------------------------------------------------------------------
# Run as `python -I -c ACCESS_SCRIPT <path> <file or ""> <read bytes> <xattr names, comma-separated>`. Prints one
# JSON object. The automatically chosen file is the first regular file (not a symlink: a symlink may lead into
# another repository) at the top of the repository, in sorted order.
ACCESS_SCRIPT = r"""
import json, os, stat, sys
path, rel, nbytes, names = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
out = {"step": None, "target": path, "errno": None, "strerror": None, "file": rel or None, "bytes": 0,
       "entries": None, "xattrs": {}}
step = "stat"
try:
    os.stat(path)
    step = "list"
    entries = sorted(os.listdir(path))
    out["entries"] = len(entries)
    if not rel:
        for entry in entries:
            if stat.S_ISREG(os.lstat(os.path.join(path, entry)).st_mode):
                rel = entry
                break
        out["file"] = rel or None
    if rel:
        step = "read"
        out["target"] = os.path.join(path, rel)
        with open(out["target"], "rb") as handle:
            out["bytes"] = len(handle.read(nbytes))
    step = None
    out["target"] = None
except OSError as exc:
    out["step"], out["errno"], out["strerror"] = step, exc.errno, exc.strerror
if step != "stat" and out["errno"] != 107:
    for name in filter(None, names.split(",")):
        try:
            out["xattrs"][name] = os.getxattr(path, "user." + name).decode("utf-8", "replace").strip()
        except (OSError, AttributeError):
            pass
print(json.dumps(out))
"""


def run_with_timeout(argv, timeout, grace=0.5):
    """Run ``argv`` in a new session; after ``timeout`` seconds SIGKILL the session (``sitekit_proc``).

    A process stuck in the kernel (uninterruptible FUSE wait) may not die: after ``grace`` seconds more it is
    left behind, so this returns within timeout + grace whatever the mount does. Returns a dict: rc (None when
    left behind), stdout, stderr, seconds, timed_out, killed (the child is gone), leftover.
    """
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
    return run_in_session(argv, timeout, env=env, cwd="/", grace=grace)


def access_repository(path, rel=None, timeout=DEFAULT_TIMEOUT, python=None, xattrs=CVMFS_XATTRS):
    """Stat, list and read ``path`` the way a job does, in a child, within ``timeout`` seconds.

    Returns the child's report (step, target, errno, strerror, file, bytes, entries, xattrs) plus seconds and
    timed_out. A child that died without a report gets step "child" and its stderr as strerror.
    """
    argv = [python or sys.executable, "-I", "-c", ACCESS_SCRIPT, path, rel or "", str(READ_BYTES), ",".join(xattrs)]
    run = run_with_timeout(argv, timeout)
    report = {
        "step": None,
        "target": None,
        "errno": None,
        "strerror": None,
        "file": rel,
        "bytes": 0,
        "entries": None,
        "xattrs": {},
    }
    if run["timed_out"]:
        report.update(step="timeout", target=path, strerror=f"timed out after {timeout:g} s")
        if not run["killed"]:
            report["strerror"] += " (the process is stuck in the kernel and could not be killed)"
    else:
        try:
            report.update(json.loads(run["stdout"].strip().splitlines()[-1]))
        except (ValueError, IndexError):
            text = (run["stderr"] or run["stdout"]).strip()[-ERROR_EXCERPT_CHARS:]
            report.update(step="child", target=path, strerror=text or f"the access process exited with {run['rc']}")
    report["seconds"] = run["seconds"]
    report["timed_out"] = run["timed_out"]
    return report


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
# Texts as strerror gives them (glibc); used when only the text is known.
_TEXT_ERRNO = {
    "too many levels of symbolic links": errno.ELOOP,
    "transport endpoint is not connected": errno.ENOTCONN,
    "no such file or directory": errno.ENOENT,
    "input/output error": errno.EIO,
    "permission denied": errno.EACCES,
    "operation not permitted": errno.EPERM,
    "no such device": errno.ENODEV,
    "not a directory": errno.ENOTDIR,
    "too many open files": errno.EMFILE,
}


def errno_of(number=None, text=None):
    """The errno from a number, or from a strerror text (case-insensitive substring), or None."""
    if isinstance(number, int) and number > 0:
        return number
    low = (text or "").lower()
    for needle, value in _TEXT_ERRNO.items():
        if needle in low:
            return value
    return None


def classify_error(number=None, text=None, step=None, autofs=False, repository="<repo>", mountpoint="/cvmfs"):
    """(cause, remedy) for a failed access.

    ``step`` is where it failed: stat, list, read (the file), timeout or child. ``autofs`` says whether the
    mountpoint is an autofs mount.
    """
    path = os.path.join(mountpoint, repository)
    if NFILES_MESSAGE in (text or "").lower():
        return nfiles_cause_remedy(None, None, repository)
    if step == "timeout":
        return (
            "the access hung: the mount does not answer (a hung cvmfs2 client, usually waiting on an unreachable "
            "proxy or stratum-1, or a hung automount)",
            f"check the network and proxies (`cvmfs_config stat {repository}`, CVMFS_HTTP_PROXY, "
            f"`cvmfs_config probe {repository}`); if it stays hung, `umount -l {path}` (or kill the cvmfs2 process) "
            "and access it again",
        )
    if step == "unmounted":
        return (
            f"{path} is an empty directory, not a mounted repository: its static mount (fstab) failed or was "
            "unmounted, or nothing mounts it (neither an fstab line nor autofs)",
            f"run `mount {path}` (the fstab line; `systemctl status $(systemd-escape -p --suffix=mount {path})` "
            f"shows why it failed at boot) or `cvmfs_config setup` and start autofs; then "
            f"`cvmfs_config probe {repository}`",
        )
    if step == "child":
        return (
            "the access process failed before it could report",
            "run the module with -vvv and look at the error text; check that the node's Python runs",
        )
    code = errno_of(number, text)
    if code == errno.ELOOP:
        return (
            "Too many levels of symbolic links: autofs could not mount the repository in this mount namespace; a "
            "container that binds /cvmfs sees this for every repository not accessed on the host before it started "
            "(CVM-2004; an automount from inside a container also needs / to be shared)",
            f"access {path} on the host before containers start and keep it mounted (sitekit's keep-alive timer, "
            f"sitekit-cvmfs-keepalive.timer, probes it every few seconds), or set --timeout=0 for {mountpoint} in "
            "the autofs master map, "
            f"or use static mounts instead of autofs; then check `cvmfs_config probe {repository}`",
        )
    if code == errno.ENOTCONN:
        return (
            "Transport endpoint is not connected: the cvmfs2 client of this repository crashed or was killed and "
            "left a dead FUSE mount",
            f"run `cvmfs_config reload {repository}` or `umount -l {path}` and access it again; look for the crash "
            "in the system log (/var/log/messages or the journal) and in the cache directory's stacktrace file",
        )
    if code == errno.ENOENT and step == "read":
        return (
            "the file to read does not exist in the repository",
            "set file to a path that exists in every probed repository, or leave it empty to read the first "
            "regular file at the top",
        )
    if code == errno.ENOENT:
        if autofs:
            return (
                "No such file or directory under an autofs mountpoint: autofs could not mount the repository; it "
                "is not configured (not in CVMFS_REPOSITORIES, or no configuration for it: missing config "
                "repository or cvmfs-config package) or no such repository exists",
                f"check the name, add it to CVMFS_REPOSITORIES in /etc/cvmfs/default.local, make sure the config "
                f"repository mounts, and run `cvmfs_config probe {repository}` to see the mount error",
            )
        return (
            f"No such file or directory, and {mountpoint} is not an autofs mount: the repository is neither "
            "mounted statically nor automounted",
            f"run `cvmfs_config setup` and start autofs (the map /etc/auto.cvmfs mounts {mountpoint}), or add a "
            f"static mount for {path} to /etc/fstab; then `cvmfs_config probe {repository}`",
        )
    if code == errno.EIO:
        return (
            "Input/output error: the client could not fetch data: no proxy or stratum-1 server reachable, a "
            "repository signature or whitelist problem, or a full cache",
            f"check `cvmfs_config stat {repository}` (the nioerr and proxy columns, xattrs here) and "
            f"`cvmfs_config probe {repository}`, CVMFS_HTTP_PROXY and the stratum-1 list; check the cache "
            "partition and CVMFS_QUOTA_LIMIT; the system log names the failing host",
        )
    if code in (errno.EACCES, errno.EPERM):
        return (
            "permission denied: the repository (or the file) is not readable by this user, e.g. a repository "
            "that requires authorization (VOMS membership) or a restrictive file mode",
            "probe as the user that runs jobs, with its credentials; or read another file",
        )
    if code == errno.ENODEV:
        return (
            "No such device: FUSE is not available (no /dev/fuse or fuse module), so cvmfs2 cannot mount",
            "load the fuse module (`modprobe fuse`) and make sure /dev/fuse exists; in a container, pass /dev/fuse",
        )
    if code == errno.ENOTDIR:
        return (
            f"{path} is not a directory",
            f"remove what occupies {path} so that the repository can be mounted there",
        )
    if code in (errno.EMFILE, errno.ENFILE):
        return (
            "too many open files: the client or this process ran out of file descriptors",
            "raise CVMFS_NFILES (and the system's limits); compare the usedfd and maxfd xattrs",
        )
    label = errno.errorcode.get(code, "an error") if code else "an error"
    return (
        f"{label}: {text or 'unknown error'}",
        f"run `cvmfs_config probe {repository}` and check the system log",
    )


# ---------------------------------------------------------------------------------------------
# What the configuration files say
# ---------------------------------------------------------------------------------------------
# Any shell variable: the client takes experiments' own variables (CMS_LOCAL_SITE) from the same files.
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def _shell_word(text):
    """The value of the first shell word of ``text``: '...' and "..." unquoted, \\x as x, up to a blank."""
    out, i, text = [], 0, text.strip()
    while i < len(text) and not text[i].isspace():
        char = text[i]
        if char in "'\"":
            end = text.find(char, i + 1)
            end = len(text) if end < 0 else end
            out.append(text[i + 1 : end])
            i = end + 1
        elif char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def parse_parameters(text):
    """``NAME=value`` assignments (``CVMFS_*`` and any other shell variable) -> {name: value}, the last one winning.

    Reads a configuration file (plain assignments, as sitekit writes them; shell logic such as ``if`` is not
    evaluated) and ``cvmfs_config showconfig`` output (``NAME=value    # from FILE``) alike.
    """
    params = {}
    for line in (text or "").splitlines():
        match = _ASSIGNMENT.match(line)
        if match:
            params[match.group(1)] = _shell_word(match.group(2))
    return params


def config_files(repository, root=CONFIG_ROOT):
    """The files the client sources for ``repository``, in its order (the config repository's copies aside)."""
    domain = repository.split(".", 1)[1] if "." in repository else ""
    default_d = os.path.join(root, "default.d")
    try:
        extra = sorted(f for f in os.listdir(default_d) if f.endswith(".conf"))
    except OSError:
        extra = []
    return (
        [os.path.join(root, "default.conf")]
        + [os.path.join(default_d, f) for f in extra]
        + [os.path.join(root, "default.local")]
        + [os.path.join(root, "domain.d", f"{domain}.{ext}") for ext in ("conf", "local")]
        + [os.path.join(root, "config.d", f"{repository}.{ext}") for ext in ("conf", "local")]
    )


def read_parameters(repository, root=CONFIG_ROOT):
    """What the configuration files under ``root`` say for ``repository`` ({} when there are none)."""
    params = {}
    for path in config_files(repository, root):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                params.update(parse_parameters(handle.read()))
        except OSError:
            continue
    return params


# ---------------------------------------------------------------------------------------------
# The running client against its configuration (extended attributes)
# ---------------------------------------------------------------------------------------------
def proxy_groups(value):
    """A CVMFS_HTTP_PROXY value as its fail-over groups, each a list of entries."""
    return [[e.strip() for e in group.split("|") if e.strip()] for group in (value or "").split(";") if group.strip()]


def _check(name, status, running, configured, detail, cause=None, remedy=None):
    return {
        "name": name,
        "status": status,
        "running": running,
        "configured": configured,
        "detail": detail,
        "cause": cause,
        "remedy": remedy,
    }


def judge_proxy(configured, used, pac_urls=None, repository="<repo>"):
    """The ``proxy`` xattr (what the client uses) against the configured CVMFS_HTTP_PROXY.

    A node whose configuration names anything but DIRECT (``auto`` or a proxy URL) should use the site's squids:
    a client on DIRECT there fails. A client on a proxy although only DIRECT is configured runs an older
    configuration (drift). Without the xattr or the configuration there is no verdict (unknown).
    """
    if not used:
        return _check("proxy", "unknown", None, configured, "no proxy attribute (not a CVMFS client mount)")
    if not configured:
        return _check("proxy", "unknown", used, None, f"uses {used}; CVMFS_HTTP_PROXY is not in the files read")
    groups = proxy_groups(configured)
    wants_proxy = any(group != [DIRECT] for group in groups)
    reload = f"then `cvmfs_config reload {repository}` so that the running client takes it"
    if used == DIRECT and wants_proxy:
        if [AUTO] in groups and not pac_urls:
            cause = (
                f"the client goes DIRECT although CVMFS_HTTP_PROXY='{configured}' asks for the site's proxies: "
                "auto found no proxy because CVMFS_PAC_URLS is not set (the client only reads PAC files from it), "
                "so it fell back to DIRECT and bypasses the squids"
            )
            remedy = (
                "set CVMFS_PAC_URLS to the site's PAC files (sitekit's cvmfs role writes it from cvmfs_pac_urls, "
                f"by default the WPAD names the wpad role serves, whenever a proxy group is auto); {reload}"
            )
        elif [AUTO] in groups:
            cause = (
                f"the client goes DIRECT although CVMFS_HTTP_PROXY='{configured}' asks for the site's proxies: "
                f"no PAC file of CVMFS_PAC_URLS='{pac_urls}' could be fetched or evaluated to a proxy for the "
                "stratum-1, or every proxy it named failed and the client fell back to DIRECT"
            )
            remedy = (
                "fetch each PAC URL from this node (curl URL) and check that it sends the stratum-1's domain to the "
                "squids (sitekit's wpad role: wpad_proxied_domains), check the squids (playbooks/check-proxy.yml), "
                f"{reload}"
            )
        else:
            cause = (
                f"the client goes DIRECT although CVMFS_HTTP_PROXY='{configured}' names proxies: every proxy failed "
                "and the client fell back to its DIRECT group"
            )
            remedy = (
                f"check the squids from this node (playbooks/check-proxy.yml, `cvmfs_talk -i {repository} proxy "
                f"info`); when they answer, {reload.removeprefix('then ')}"
            )
        return _check("proxy", "fail", used, configured, f"uses DIRECT, configured {configured}", cause, remedy)
    if used != DIRECT and not wants_proxy:
        return _check(
            "proxy",
            "drift",
            used,
            configured,
            f"uses {used}, configured {configured}",
            f"the client uses the proxy {used} although the files say CVMFS_HTTP_PROXY='{configured}': it runs "
            "an older configuration",
            f"run `cvmfs_config reload {repository}`",
        )
    return _check("proxy", "ok", used, configured, f"uses {used}")


def server_urls(value, repository):
    """CVMFS_SERVER_URL's URLs with @fqrn@ and @org@ replaced, without trailing slashes."""
    org = repository.split(".", 1)[0]
    return [
        url.strip().replace("@fqrn@", repository).replace("@org@", org).rstrip("/")
        for url in (value or "").split(";")
        if url.strip()
    ]


def judge_host(configured, used, repository="<repo>"):
    """The ``host`` xattr (the stratum-1 in use) against the configured CVMFS_SERVER_URL."""
    if not used:
        return _check("host", "unknown", None, configured, "no host attribute (not a CVMFS client mount)")
    if not configured:
        return _check(
            "host",
            "unknown",
            used,
            None,
            f"uses {used}; CVMFS_SERVER_URL is not in the files read (a config repository may set it)",
        )
    urls = server_urls(configured, repository)
    if used.rstrip("/") in urls:
        return _check("host", "ok", used, configured, f"uses {used}")
    return _check(
        "host",
        "drift",
        used,
        configured,
        f"uses {used}, not one of CVMFS_SERVER_URL",
        f"the client uses the stratum-1 {used}, which the files no longer list (CVMFS_SERVER_URL='{configured}'): "
        "it runs an older configuration",
        f"run `cvmfs_config reload {repository}`",
    )


def judge_revision(xattrs, repository="<repo>"):
    """Whether the mounted revision is fresh: ``expires`` (minutes the root catalog stays valid) not negative."""
    expires = (xattrs or {}).get("expires")
    revision = (xattrs or {}).get("revision")
    if expires is None:
        return _check("revision", "unknown", revision, None, "no expires attribute (not a CVMFS client mount)")
    if expires.startswith("never"):
        return _check("revision", "ok", revision, None, f"revision {revision}, never expires (fixed root catalog)")
    try:
        minutes = int(expires)
    except ValueError:
        return _check("revision", "unknown", revision, None, f"revision {revision}, expires {expires!r}")
    if minutes >= 0:
        return _check("revision", "ok", revision, None, f"revision {revision}, valid {minutes} more min")
    last = (xattrs or {}).get("timestamp_last_ioerr")
    return _check(
        "revision",
        "drift",
        revision,
        None,
        f"revision {revision} expired {-minutes} min ago",
        f"the client still serves revision {revision}, whose catalog expired {-minutes} min ago: it could not "
        "load a newer one" + (f" (last I/O error at {last}, {(xattrs or {}).get('nioerr')} in all)" if last else ""),
        f"check the proxy and the stratum-1 (`cvmfs_config stat -v {repository}`), then "
        f"`cvmfs_talk -i {repository} remount sync`",
    )


def judge_client(xattrs, params, repository="<repo>", expect_proxy=None):
    """The running client (its xattrs) against what the files say (``params``); ``expect_proxy`` overrides them.

    Returns {status: ok, drift, fail or unknown; checks: proxy, host, revision; cause; remedy}: the first failed
    check's cause and remedy, else the first drifted one's.
    """
    xattrs = xattrs or {}
    proxy = expect_proxy or params.get("CVMFS_HTTP_PROXY")
    checks = [
        judge_proxy(proxy, xattrs.get("proxy"), params.get("CVMFS_PAC_URLS"), repository),
        judge_host(params.get("CVMFS_SERVER_URL"), xattrs.get("host"), repository),
        judge_revision(xattrs, repository),
    ]
    statuses = [c["status"] for c in checks]
    status = next((s for s in ("fail", "drift", "ok") if s in statuses), "unknown")
    first = next((c for c in checks if c["status"] == status), None) if status in ("fail", "drift") else None
    return {
        "status": status,
        "checks": checks,
        "cause": first["cause"] if first else None,
        "remedy": first["remedy"] if first else None,
    }


# ---------------------------------------------------------------------------------------------
# File descriptors: CVMFS_NFILES against the hard limit the mount runs under
# ---------------------------------------------------------------------------------------------
# What the client prints when it cannot raise its limit to CVMFS_NFILES (a system mount then fails).
NFILES_MESSAGE = "failed to set maximum number of open files"


def parse_nofile_hard(limits_text):
    """The hard "Max open files" of a /proc/<pid>/limits text; None when unlimited or not found."""
    for line in (limits_text or "").splitlines():
        if line.startswith("Max open files"):
            fields = line[len("Max open files") :].split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1])
            return None
    return None


def has_capability(status_text, bit=CAP_SYS_RESOURCE, field="CapEff"):
    """Whether the capability ``bit`` is in ``field`` of a /proc/<pid>/status text."""
    for line in (status_text or "").splitlines():
        if line.startswith(field + ":"):
            try:
                return bool(int(line.split(":", 1)[1].strip(), 16) >> bit & 1)
            except ValueError:
                return False
    return False


def nofile_facts(texts):
    """The hard limit on open files a mount runs under, from the texts of /proc files.

    ``texts`` maps "1/limits", "self/limits", "1/status", "self/status", "sys/fs/nr_open" to file contents (a
    missing or unreadable file left out). pid 1 starts fstab mount units and autofs, a shell mount runs under the
    caller's own limit: the lower of the two counts. Raising it needs CAP_SYS_RESOURCE in both (effective and
    bounding sets). Returns
    {hard_limit (None: unlimited or unknown), can_raise, nr_open}.
    """
    limits = [parse_nofile_hard(texts[k]) for k in ("1/limits", "self/limits") if texts.get(k)]
    known = [v for v in limits if v is not None]
    statuses = [texts[k] for k in ("1/status", "self/status") if texts.get(k)]
    nr_open = (texts.get("sys/fs/nr_open") or "").strip()
    return {
        "hard_limit": min(known) if known else None,
        # Effective and bounding set: pid 1 of a container may hold the capability while its bounding set, which
        # every mount helper it starts inherits, does not.
        "can_raise": bool(statuses) and all(has_capability(t) and has_capability(t, field="CapBnd") for t in statuses),
        "nr_open": int(nr_open) if nr_open.isdigit() else DEFAULT_NR_OPEN,
    }


def read_nofile_facts(proc="/proc", pids=("1", "self")):
    """``nofile_facts`` of this node, read from ``proc``; ``pids`` ("1" only: leave out this process, whose limits
    are not a mount's when it runs under a batch system)."""
    texts = {}
    for key in [f"{pid}/{name}" for pid in pids for name in ("limits", "status")] + ["sys/fs/nr_open"]:
        try:
            with open(os.path.join(proc, key), encoding="utf-8", errors="replace") as handle:
                texts[key] = handle.read()
        except OSError:
            continue
    return nofile_facts(texts)


def suggested_nfiles(hard_limit):
    """The largest power of two not above ``hard_limit`` and DEFAULT_NFILES: a CVMFS_NFILES that fits."""
    ceiling = min(hard_limit, DEFAULT_NFILES) if hard_limit else DEFAULT_NFILES
    value = 1
    while value * 2 <= ceiling:
        value *= 2
    return value


def nfiles_cause_remedy(nfiles, hard_limit, repository="<repo>", source="CVMFS_NFILES"):
    """Cause and remedy of a CVMFS_NFILES the mount cannot have (either number may be unknown: None)."""
    what = f"CVMFS_NFILES={nfiles}" if nfiles else "CVMFS_NFILES"
    limit = f" ({hard_limit})" if hard_limit else ""
    example = f"at most {hard_limit}, e.g. {suggested_nfiles(hard_limit)}" if hard_limit else "within `ulimit -Hn`"
    return (
        f"Failed to set maximum number of open files: {what} is above the hard limit on open files{limit} the "
        "mount runs under, and the node cannot raise it (no CAP_SYS_RESOURCE, as in containers, Kubernetes pods "
        "and batch containers): the client refuses to mount",
        f"set {source} to {example}"
        + (" (sitekit's cvmfs role: cvmfs_nfiles, or 0 to fit the node's limit)" if source == "CVMFS_NFILES" else "")
        + ", or raise the hard limit for the mount (the container's --ulimit nofile=N:N, systemd's "
        f"DefaultLimitNOFILE for fstab mounts); then mount {repository} again (`cvmfs_config probe {repository}`)",
    )


def judge_nfiles(nfiles, facts, source="CVMFS_NFILES"):
    """Whether the client can raise its open-file limit to ``nfiles`` under ``facts`` (``nofile_facts``).

    Returns {ok, nfiles, hard_limit, can_raise, suggested, cause, remedy}.
    """
    hard, can_raise = facts.get("hard_limit"), facts.get("can_raise")
    ok = hard is None or nfiles <= hard or (can_raise and nfiles <= facts.get("nr_open", DEFAULT_NR_OPEN))
    cause = remedy = None
    if not ok:
        cause, remedy = nfiles_cause_remedy(nfiles, hard, source=source)
        remedy = remedy.replace("mount <repo> again (`cvmfs_config probe <repo>`)", "mount the repositories again")
    return {
        "ok": bool(ok),
        "nfiles": nfiles,
        "hard_limit": hard,
        "can_raise": bool(can_raise),
        "suggested": suggested_nfiles(hard) if hard else None,
        "cause": cause,
        "remedy": remedy,
    }


def configured_nfiles(params):
    """CVMFS_NFILES from the files (``params``), else the client's default; None when no file was read (no
    configuration, no verdict) or the value is not a number."""
    if not params:
        return None
    value = params.get("CVMFS_NFILES", str(DEFAULT_NFILES))
    return int(value) if value.isdigit() else None


# ---------------------------------------------------------------------------------------------
# The cache: the filesystem CVMFS_CACHE_BASE is on, and whether it holds CVMFS_QUOTA_LIMIT
# ---------------------------------------------------------------------------------------------
# The client's defaults (default.conf): the cache directory, and the soft quota in MB (MiB: the client counts
# CVMFS_QUOTA_LIMIT * 1024 * 1024 bytes).
DEFAULT_CACHE_BASE = "/var/lib/cvmfs"
DEFAULT_QUOTA_LIMIT = 4000
MIB = 1024 * 1024
# The quota is soft: the client cleans up only once it is reached, so the partition hosting the cache has to provide
# more; the CernVM-FS client documentation's cache settings ask for at least 20 % of the quota plus 1 GB beyond it.
QUOTA_MARGIN_PERCENT = 20
QUOTA_MARGIN_MB = 1024
# Network and cluster filesystems: the client cannot account for a cache other hosts may change, and it creates
# sockets and pipes in the cache directory, which these filesystems usually do not support. Only an alien cache
# (CVMFS_ALIEN_CACHE) may live on one.
NETWORK_FSTYPES = frozenset(
    (
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "ceph", "fuse.ceph", "fuse.ceph-fuse", "glusterfs",
        "fuse.glusterfs", "lustre", "gpfs", "beegfs", "fuse.beegfs", "fuse.sshfs", "9p", "ocfs2", "gfs2",
        "fuse.gcsfuse", "fuse.s3fs", "fuse.rclone", "fuse.cvmfs2", "fuse.eos", "fuse.xrootdfs", "pvfs2", "orangefs",
    )
)  # fmt: skip
# Memory filesystems: the cache takes the jobs' RAM and is gone after a reboot.
MEMORY_FSTYPES = frozenset(("tmpfs", "ramfs"))
_YES = ("yes", "on", "1", "true")
# The settings a caller may give instead of the files.
CACHE_EXPECT = ("cache_base", "quota_limit", "alien_cache", "shared_cache")


def _cache_parameter(params, name):
    """A cache parameter of the default cache instance: CVMFS_CACHE_<NAME> when set, else its older name."""
    older = {"ALIEN": "CVMFS_ALIEN_CACHE", "SHARED": "CVMFS_SHARED_CACHE", "QUOTA_LIMIT": "CVMFS_QUOTA_LIMIT"}[name]
    value = params.get(f"CVMFS_CACHE_{name}")
    return params.get(older) if value is None else value


def cache_settings(params, expect=None):
    """The cache the files (``params``) configure; ``expect`` (cache_base, quota_limit, alien_cache, shared_cache)
    overrides them.

    Returns {base, quota_limit (MB; -1 none; None unreadable), alien (a path or None), shared, primary (an advanced
    cache instance, CVMFS_CACHE_PRIMARY, or None)}.
    """
    expect = expect or {}
    quota = expect.get("quota_limit")
    if quota is None:
        text = str(_cache_parameter(params, "QUOTA_LIMIT") or DEFAULT_QUOTA_LIMIT).strip()
        quota = int(text) if re.fullmatch(r"-?\d+", text) else None
    shared = expect.get("shared_cache")
    if shared is None:
        shared = _cache_parameter(params, "SHARED")
    return {
        "base": os.path.normpath(expect.get("cache_base") or params.get("CVMFS_CACHE_BASE") or DEFAULT_CACHE_BASE),
        "quota_limit": quota,
        "alien": expect.get("alien_cache") or _cache_parameter(params, "ALIEN") or None,
        "shared": True if shared is None else str(shared).strip().lower() in _YES,
        "primary": params.get("CVMFS_CACHE_PRIMARY") or None,
    }


def cache_mount(mounts, path):
    """The mount ``path`` is on: the entry with the longest mount point that is ``path`` or one of its parents (of
    several at that mount point, the last one, which covers the others); None when the table is empty."""
    path = os.path.normpath(path)
    found, length = None, -1
    for entry in mounts:
        point = entry["mount_point"]
        covers = path == point or point == "/" or path.startswith(point.rstrip("/") + "/")
        if covers and len(point) >= length:
            found, length = entry, len(point)
    return found


def required_mb(quota_limit):
    """The filesystem size (MB) that holds a cache of ``quota_limit`` MB with the client's margin."""
    return -(-quota_limit * (100 + QUOTA_MARGIN_PERCENT) // 100) + QUOTA_MARGIN_MB


def fitting_quota(size_mb):
    """The largest CVMFS_QUOTA_LIMIT (MB, rounded down to 100 MB) whose margin a filesystem of ``size_mb`` holds."""
    quota = (size_mb - QUOTA_MARGIN_MB) * 100 // (100 + QUOTA_MARGIN_PERCENT) // 100 * 100
    return max(quota, 0)


def filesystem_kind(fstype):
    """local, network or memory."""
    if fstype in MEMORY_FSTYPES:
        return "memory"
    if fstype in NETWORK_FSTYPES or fstype.startswith("nfs"):
        return "network"
    return "local"


def _existing(path, root):
    """The deepest existing directory of ``path`` (absolute) below ``root``, as a real path on this machine."""
    full = os.path.join(root, path.lstrip("/"))
    while not os.path.exists(full) and os.path.dirname(full) != full:
        full = os.path.dirname(full)
    return full


def _statvfs_mb(result):
    return {
        "size_mb": result.f_blocks * result.f_frsize // MIB,
        "available_mb": result.f_bavail * result.f_frsize // MIB,
    }


def _where(entry):
    return (
        f"{entry['fstype']} {entry['source']} mounted at {entry['mount_point']}" if entry else "an unknown filesystem"
    )


def cache_cause_remedy(problem, cache, names=None):
    """(cause, remedy) of a cache the client cannot use as configured. ``problem``: network, memory, size or alien;
    ``cache`` a ``judge_cache`` result; ``names`` maps quota_limit and cache_base to the variables that set them."""
    names = dict({"quota_limit": "CVMFS_QUOTA_LIMIT", "cache_base": "CVMFS_CACHE_BASE"}, **(names or {}))
    base, quota = cache["base"], cache["quota_limit"]
    role = (
        " (sitekit's cvmfs role: cvmfs_cache_base, cvmfs_quota_limit)"
        if names["cache_base"] == "CVMFS_CACHE_BASE"
        else ""
    )
    where = cache["where"]
    if problem == "network":
        return (
            f"the CVMFS cache {base} is on a network filesystem ({where}): the client cannot account for a cache "
            "other hosts may change, and it creates sockets and pipes there, which network filesystems usually do "
            "not support",
            f"set {names['cache_base']} to a directory on a local disk{role}; on nodes without local disk, keep "
            "CVMFS_CACHE_BASE local (it holds only control files then) and put the data in an alien cache on the "
            "shared filesystem: CVMFS_ALIEN_CACHE=<dir>, CVMFS_QUOTA_LIMIT=-1, CVMFS_SHARED_CACHE=no; then "
            "`cvmfs_config reload`",
        )
    if problem == "memory":
        return (
            f"the CVMFS cache {base} is on a memory filesystem ({where}): the cache takes the jobs' RAM, up to "
            f"{names['quota_limit']}={quota} MB, and is lost at every reboot",
            f"set {names['cache_base']} to a directory on a local disk{role}; then `cvmfs_config reload`",
        )
    if problem == "alien":
        return (
            f"CVMFS_ALIEN_CACHE={cache['alien']} needs CVMFS_QUOTA_LIMIT=-1 and CVMFS_SHARED_CACHE=no (an alien "
            f"cache has no quota management); with {names['quota_limit']}={quota} and CVMFS_SHARED_CACHE="
            f"{'yes' if cache['shared'] else 'no'} the client refuses to mount",
            f"set {names['quota_limit']} to -1 and CVMFS_SHARED_CACHE to no (sitekit's cvmfs role: cvmfs_quota_limit: "
            "-1, cvmfs_shared_cache: false), or remove CVMFS_ALIEN_CACHE",
        )
    fit = cache["suggested_quota"]
    return (
        f"the filesystem of the CVMFS cache {base} ({where}) is {cache['size_mb']} MB, "
        f"{cache['available_mb']} MB available: too small for {names['quota_limit']}={quota} MB plus the client's "
        f"margin of {QUOTA_MARGIN_PERCENT} % + {QUOTA_MARGIN_MB} MB ({cache['required_mb']} MB in all); the cache "
        "would fill the filesystem before its cleanup starts, and reads would fail with Input/output error (No space "
        "left on device)",
        (
            f"set {names['quota_limit']} to at most {fit} MB"
            + (" (sitekit's cvmfs role: cvmfs_quota_limit)" if names["quota_limit"] == "CVMFS_QUOTA_LIMIT" else "")
            + ", or give"
            if fit
            else "give"
        )
        + f" the cache a filesystem of at least {cache['required_mb']} MB ({names['cache_base']}); then "
        "`cvmfs_config reload`",
    )


def judge_cache(settings, entry, sizes, alien_entry=None, names=None):
    """Whether the cache ``settings`` (``cache_settings``) configure fits the filesystem it is on.

    ``entry`` is the mount the cache base is on (``cache_mount``), ``sizes`` its {size_mb, available_mb} (None when
    unknown), ``alien_entry`` the alien cache's mount. The size counted is the filesystem's, not its free space: a
    cache filled up to its quota leaves little free space by design. Returns {ok, status (ok, fail, unknown), base,
    filesystem, where, kind, quota_limit, required_mb, size_mb, available_mb, suggested_quota, alien,
    alien_filesystem, shared, detail, cause, remedy}.
    """
    quota, alien = settings["quota_limit"], settings["alien"]
    sizes = sizes or {}
    kind = filesystem_kind(entry["fstype"]) if entry else None
    cache = {
        "ok": True,
        "status": "ok",
        "base": settings["base"],
        "filesystem": entry["fstype"] if entry else None,
        "where": _where(entry),
        "kind": kind,
        "quota_limit": quota,
        "required_mb": required_mb(quota) if quota is not None and quota > 0 and not alien else None,
        "size_mb": sizes.get("size_mb"),
        "available_mb": sizes.get("available_mb"),
        "suggested_quota": None,
        "alien": alien,
        "alien_filesystem": alien_entry["fstype"] if alien_entry else None,
        "shared": settings["shared"],
        "detail": None,
        "cause": None,
        "remedy": None,
    }
    if cache["size_mb"] is not None:
        cache["suggested_quota"] = fitting_quota(cache["size_mb"])
    problem = None
    if settings.get("primary"):
        cache.update(status="unknown", detail=f"an advanced cache instance (CVMFS_CACHE_PRIMARY={settings['primary']})")
        return cache
    if quota is None:
        cache.update(status="unknown", detail="CVMFS_QUOTA_LIMIT is not a number")
        return cache
    if alien and (quota != -1 or settings["shared"]):
        problem = "alien"
    elif kind == "network":
        problem = "network"
    elif kind == "memory" and not alien:
        problem = "memory"
    elif cache["required_mb"] and cache["size_mb"] is not None and cache["size_mb"] < cache["required_mb"]:
        problem = "size"
    if problem:
        cause, remedy = cache_cause_remedy(problem, cache, names)
        cache.update(ok=False, status="fail", cause=cause, remedy=remedy)
    if entry is None:
        detail = f"{settings['base']} on an unknown filesystem"
    else:
        detail = f"{settings['base']} on {entry['fstype']}"
    if cache["size_mb"] is not None:
        detail += f" of {cache['size_mb']} MB ({cache['available_mb']} MB available)"
    if alien:
        detail += f", alien cache {alien}" + (f" on {cache['alien_filesystem']}" if alien_entry else "")
    elif quota == -1:
        detail += ", no quota"
    else:
        detail += f", quota {quota} MB (needs {cache['required_mb']} MB)"
    cache["detail"] = detail
    return cache


def read_cache(params, root="/", mountinfo=None, statvfs=None, expect=None, names=None):
    """``judge_cache`` for the cache the files (``params``) and ``expect`` configure, on the machine below ``root``.

    The mount table is ``mountinfo()`` (default: ``<root>/proc/self/mountinfo``); the size is ``statvfs(path)``
    (default ``os.statvfs``) of the deepest existing directory of the cache base below ``root``: on a recorded tree,
    pass a ``statvfs`` that returns the recorded numbers. On the running system (``root`` "/") the cache base's
    symlinks are resolved first.
    """
    settings = cache_settings(params, expect)
    mounts = parse_mountinfo(mountinfo() if mountinfo else read_mountinfo(os.path.join(root, "proc/self/mountinfo")))
    base = settings["base"]
    if os.path.realpath(root) == "/":
        base = os.path.realpath(base)
    try:
        sizes = _statvfs_mb((statvfs or os.statvfs)(_existing(base, root)))
    except OSError:
        sizes = None
    alien_entry = cache_mount(mounts, settings["alien"]) if settings["alien"] else None
    return judge_cache(dict(settings, base=base), cache_mount(mounts, base), sizes, alien_entry, names)


def configured_caches(repositories, config_root=CONFIG_ROOT, expect=None):
    """[(settings, params, [repository, ...])]: each distinct cache the repositories' files configure (the default
    files alone when there are no repositories); [] when no file was read and ``expect`` names no cache."""
    expect = {k: v for k, v in (expect or {}).items() if v is not None and k in CACHE_EXPECT}
    caches = []
    for name in repositories or [None]:
        params = read_parameters(name, config_root) if name else read_parameters("", config_root)
        if not params and not expect:
            continue
        settings = cache_settings(params, expect)
        for known, _params, names in caches:
            if known == settings:
                if name:
                    names.append(name)
                break
        else:
            caches.append((settings, params, [name] if name else []))
    return caches


# ---------------------------------------------------------------------------------------------
# Running clients
# ---------------------------------------------------------------------------------------------
def mounted_repositories(mountinfo_text, mountpoint=DEFAULT_MOUNTPOINT):
    """The repositories a CVMFS client serves now: cvmfs2 FUSE mounts directly under ``mountpoint``, sorted."""
    mounts = parse_mountinfo(mountinfo_text)
    mountpoint = os.path.normpath(mountpoint)
    names = set()
    for entry in mounts:
        parent, name = os.path.split(entry["mount_point"])
        if parent == mountpoint and is_cvmfs_mount(top_mount(mounts, entry["mount_point"])):
            names.add(name)
    return sorted(names)


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------
def repository_result(name, mountpoint, before, after, access, params=None, expect_proxy=None):
    """One repository's result from mount states before/after (``mount_state``) and ``access_repository``'s report.

    ``params`` (what the configuration files say, ``read_parameters``) and ``expect_proxy`` judge the running
    client (``judge_client``). Keys: name, path, mounted_before, mounted_after, mounted_on_access, autofs,
    filesystem, readable, ok (readable and the client did not fail), seconds, file, xattrs, client, error, errno,
    cause, remedy.
    """
    path = os.path.join(mountpoint, name)
    if access.get("step") is None and access.get("entries") == 0 and not after["mounted"]:
        # A mountpoint left empty: a job would find no software there.
        access = dict(access, step="unmounted", target=path, strerror="empty directory, nothing mounted")
    failed = access.get("step") is not None
    code = errno_of(access.get("errno"), access.get("strerror")) if failed else None
    error = cause = remedy = None
    xattrs = dict(access.get("xattrs") or {})
    client = judge_client(xattrs, params or {}, name, expect_proxy)
    if failed:
        steps = {"stat": "stat", "list": "list", "read": "read", "timeout": "access", "child": "access"}
        where = dict(steps, unmounted="list").get(access["step"], access["step"])
        label = errno.errorcode.get(code) if code else None
        text = access.get("strerror") or "unknown error"
        error = f"{where} {access.get('target') or path}: " + (f"[{label}] {text}" if label else text)
        cause, remedy = classify_error(
            access.get("errno"),
            access.get("strerror"),
            access["step"],
            after["autofs"] or before["autofs"],
            name,
            mountpoint,
        )
    elif client["status"] == "fail":
        failing = next(c for c in client["checks"] if c["status"] == "fail")
        error = f"{failing['name']} {path}: {failing['detail']}"
        cause, remedy = client["cause"], client["remedy"]
    return {
        "name": name,
        "path": path,
        "mounted_before": before["mounted"],
        "mounted_after": after["mounted"],
        "mounted_on_access": not before["mounted"] and after["mounted"],
        "autofs": before["autofs"] or after["autofs"],
        "filesystem": after["filesystem"] or before["filesystem"],
        "readable": not failed,
        "ok": not failed and client["status"] != "fail",
        "seconds": access.get("seconds"),
        "file": access.get("file"),
        "xattrs": xattrs,
        "client": client,
        "error": error,
        "errno": errno.errorcode.get(code) if code else ("ETIMEDOUT" if access.get("step") == "timeout" else None),
        "cause": cause,
        "remedy": remedy,
    }


def probe(
    repositories,
    mountpoint=DEFAULT_MOUNTPOINT,
    rel=None,
    timeout=DEFAULT_TIMEOUT,
    mountinfo=None,
    *,
    expect=None,
    config_root=CONFIG_ROOT,
    nofile=None,
    statvfs=None,
    root="/",
):
    """Probe each repository in turn; returns {"ok", "repositories", "nfiles", "cache"}.

    ``mountinfo`` (a callable returning the mount table text) defaults to reading /proc/self/mountinfo; it is
    read before and after each access. What the files under ``config_root`` say judges each running client;
    ``expect`` may give ``proxy`` (CVMFS_HTTP_PROXY), ``nfiles`` (CVMFS_NFILES), ``cache_base``
    (CVMFS_CACHE_BASE), ``quota_limit`` (CVMFS_QUOTA_LIMIT), ``alien_cache`` (CVMFS_ALIEN_CACHE) and
    ``shared_cache`` (CVMFS_SHARED_CACHE, a bool) instead. ``nofile`` (a callable returning ``nofile_facts``)
    defaults to reading this node's /proc, ``statvfs`` to ``os.statvfs``; the cache base is looked up below
    ``root`` (a recorded tree; see ``read_cache``). With no repositories, only the node-wide checks run (open
    files, cache), from the default files.
    "cache" is the first cache that fails (``judge_cache``, with the ``repositories`` using it), else the first one;
    None when no configuration file was read and ``expect`` names no cache.
    """
    expect = expect or {}
    mountinfo = mountinfo or read_mountinfo
    mountpoint = os.path.normpath(mountpoint)
    results = []
    nfiles = expect.get("nfiles")
    for name in repositories:
        params = read_parameters(name, config_root)
        if nfiles is None:
            nfiles = configured_nfiles(params)
        before = mount_state(parse_mountinfo(mountinfo()), mountpoint, name)
        access = access_repository(os.path.join(mountpoint, name), rel, timeout)
        after = mount_state(parse_mountinfo(mountinfo()), mountpoint, name)
        results.append(repository_result(name, mountpoint, before, after, access, params, expect.get("proxy")))
    if nfiles is None and not repositories:
        nfiles = configured_nfiles(read_parameters("", config_root))
    limit = judge_nfiles(nfiles, (nofile or read_nofile_facts)()) if nfiles else None
    caches = []
    for _settings, params, names in configured_caches(repositories, config_root, expect):
        caches.append(dict(read_cache(params, root, mountinfo, statvfs, expect), repositories=names))
    cache = next((c for c in caches if not c["ok"]), caches[0] if caches else None)
    return {
        "ok": all(r["ok"] for r in results) and (limit is None or limit["ok"]) and (cache is None or cache["ok"]),
        "repositories": results,
        "nfiles": limit,
        "cache": cache,
    }


def failure_message(result):
    """The fail_json message: each failed repository with its error, cause and remedy, and an open-file limit the
    client cannot have; None if all is fine."""
    failed = [r for r in result["repositories"] if not r.get("ok", r["readable"])]
    limit = result.get("nfiles")
    cache = result.get("cache")
    cache_failed = bool(cache) and not cache["ok"]
    if not failed and (not limit or limit["ok"]) and not cache_failed:
        return None
    unreadable = [r for r in failed if not r["readable"]]
    parts = [f"{r['name']}: {r['error']}. Cause: {r['cause']}. Remedy: {r['remedy']}." for r in failed]
    if limit and not limit["ok"]:
        parts.append(f"CVMFS_NFILES: Cause: {limit['cause']}. Remedy: {limit['remedy']}.")
    if cache_failed:
        parts.append(f"CVMFS cache: Cause: {cache['cause']}. Remedy: {cache['remedy']}.")
    total = len(result["repositories"])
    heads = []
    if unreadable:
        heads.append(f"{len(unreadable)} of {total} repositories not readable")
    if len(failed) > len(unreadable):
        heads.append(f"{len(failed) - len(unreadable)} of {total} repositories served against the configuration")
    if limit and not limit["ok"]:
        heads.append("the client cannot have its open-file limit")
    if cache_failed:
        heads.append("the cache cannot serve as configured")
    return "cvmfs_probe: " + "; ".join(heads) + ". " + " ".join(parts)
