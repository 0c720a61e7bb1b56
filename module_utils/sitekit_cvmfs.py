"""Probe CVMFS repositories the way a job reaches them, and say why one cannot be read.

Shared by ``library/cvmfs_probe.py`` and any node-side command (a keep-alive timer, a startd cron check) that
needs the same answer. Pure standard library, importable without Ansible. The pieces, each testable on its own:

- ``validate_repository`` checks a fully qualified repository name;
- ``parse_mountinfo`` reads /proc/self/mountinfo; ``mount_state`` says whether a path is mounted, by what, and
  whether its parent is an autofs mount;
- ``access_repository`` stats, lists and reads a repository in a child process under a timeout (a hung FUSE
  mount hangs the child, never the caller), using ``run_with_timeout`` (``sitekit_proc``);
- ``classify_error`` maps an errno (or its text, or a timeout) to a cause and a remedy;
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
            f"access {path} on the host before containers start and keep it mounted (sitekit's keep-alive timer "
            f"runs this module with keepalive=true), or set --timeout=0 for {mountpoint} in the autofs master map, "
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
# Result
# ---------------------------------------------------------------------------------------------
def repository_result(name, mountpoint, before, after, access):
    """One repository's result from mount states before/after (``mount_state``) and ``access_repository``'s report.

    Keys: name, path, mounted_before, mounted_after, mounted_on_access, autofs, filesystem, readable, seconds,
    file, xattrs, error, errno, cause, remedy.
    """
    path = os.path.join(mountpoint, name)
    if access.get("step") is None and access.get("entries") == 0 and not after["mounted"]:
        # A mountpoint left empty: a job would find no software there.
        access = dict(access, step="unmounted", target=path, strerror="empty directory, nothing mounted")
    failed = access.get("step") is not None
    code = errno_of(access.get("errno"), access.get("strerror")) if failed else None
    error = cause = remedy = None
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
    return {
        "name": name,
        "path": path,
        "mounted_before": before["mounted"],
        "mounted_after": after["mounted"],
        "mounted_on_access": not before["mounted"] and after["mounted"],
        "autofs": before["autofs"] or after["autofs"],
        "filesystem": after["filesystem"] or before["filesystem"],
        "readable": not failed,
        "seconds": access.get("seconds"),
        "file": access.get("file"),
        "xattrs": dict(access.get("xattrs") or {}),
        "error": error,
        "errno": errno.errorcode.get(code) if code else ("ETIMEDOUT" if access.get("step") == "timeout" else None),
        "cause": cause,
        "remedy": remedy,
    }


def probe(repositories, mountpoint=DEFAULT_MOUNTPOINT, rel=None, timeout=DEFAULT_TIMEOUT, mountinfo=None):
    """Probe each repository in turn; returns {"ok", "repositories"}.

    ``mountinfo`` (a callable returning the mount table text) defaults to reading /proc/self/mountinfo; it is
    read before and after each access.
    """
    mountinfo = mountinfo or read_mountinfo
    mountpoint = os.path.normpath(mountpoint)
    results = []
    for name in repositories:
        before = mount_state(parse_mountinfo(mountinfo()), mountpoint, name)
        access = access_repository(os.path.join(mountpoint, name), rel, timeout)
        after = mount_state(parse_mountinfo(mountinfo()), mountpoint, name)
        results.append(repository_result(name, mountpoint, before, after, access))
    return {"ok": all(r["readable"] for r in results), "repositories": results}


def failure_message(result):
    """The fail_json message: each unreadable repository with its error, cause and remedy; None if all are fine."""
    failed = [r for r in result["repositories"] if not r["readable"]]
    if not failed:
        return None
    parts = [f"{r['name']}: {r['error']}. Cause: {r['cause']}. Remedy: {r['remedy']}." for r in failed]
    return f"cvmfs_probe: {len(failed)} of {len(result['repositories'])} repositories not readable. " + " ".join(parts)
