"""Can this node run unprivileged Apptainer containers? Judged only from files under a root directory.

Shared by ``library/kernel_compat.py`` and anything else that needs the verdict. Pure standard
library, importable without Ansible. Two steps, so that the judgement can be tested on recorded
platform trees:

- ``read_node(root)`` reads the raw values (os-release, /proc/sys, apptainer.conf, AppArmor
  profiles, installed binaries) from files below ``root`` and nowhere else;
- ``assess(facts)`` turns them into the verdict: user namespaces, container mode, overlay, SIF,
  cvmfsexec modes and the ordered remediation.

Each rule names its platform and reason where it is written (``assess`` and its helpers); the recorded platform trees
in tests/unit/data/platforms/ hold one case per platform and state that matters.
"""

from __future__ import annotations

import os
import re
import stat

# Distributions of the Enterprise Linux family (os-release ID); ID_LIKE containing "rhel" counts too.
EL_IDS = ("rhel", "centos", "rocky", "almalinux", "ol", "scientific")
# Debian testing has no VERSION_ID: its codename says which release it becomes.
DEBIAN_CODENAMES = {"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}

APPTAINER_BINARIES = (
    "usr/bin/apptainer",
    "usr/local/bin/apptainer",
    "usr/bin/singularity",
    "usr/local/bin/singularity",
)
# Where packages and source installs put the starter, most common first.
STARTER_DIRS = tuple(
    d.format(product=product)
    for product in ("apptainer", "singularity")
    for d in (
        "usr/libexec/{product}/bin",
        "usr/local/libexec/{product}/bin",
        "usr/lib/x86_64-linux-gnu/{product}/bin",
        "usr/lib/aarch64-linux-gnu/{product}/bin",
    )
)
# Debian packages whose version stands for the installed Apptainer/Singularity, by binary name.
DPKG_PACKAGES = {
    "apptainer": ("apptainer", "apptainer-suid"),
    "singularity": ("singularity-ce", "singularity-container", "apptainer"),
}
APPTAINER_CONFS = (
    "etc/apptainer/apptainer.conf",
    "usr/local/etc/apptainer/apptainer.conf",
    "etc/singularity/singularity.conf",
    "usr/local/etc/singularity/singularity.conf",
)
CONF_KEYS = ("allow setuid", "enable overlay", "enable underlay")
FUSERMOUNTS = ("usr/bin/fusermount3", "usr/bin/fusermount", "bin/fusermount3", "bin/fusermount")
FUSE_OVERLAYFS = ("usr/bin/fuse-overlayfs", "bin/fuse-overlayfs")
# The kernel's automounter: the filesystem's name in proc/filesystems, and its module's file names below
# lib/modules/<release>/ (autofs4 on every current kernel; compressed by the distribution or not).
AUTOFS_FILESYSTEM = "autofs"
AUTOFS_MODULES = tuple(
    f"kernel/fs/{directory}/{name}.ko{suffix}"
    for directory in ("autofs", "autofs4")
    for name in ("autofs4", "autofs")
    for suffix in ("", ".xz", ".zst", ".gz")
)

# OSG's value for user.max_user_namespaces where the kernel default is 0 (EL7).
MAX_USER_NAMESPACES = 15000
# The last EL7 kernel (EL7.9); 3.10.0-1127 (EL7.8) is the first with FUSE in a user namespace.
EL7_LAST_KERNEL = "3.10.0-1160"
EL7_BUILD_USERNS_TECH_PREVIEW = 327  # EL7.2: user namespaces exist, mount namespaces give EPERM
EL7_BUILD_USERNS = 693  # EL7.4: usable with the sysctl and namespace.unpriv_enable=1
EL7_BUILD_SYSCTL_ONLY = 957  # EL7.6: the sysctl alone
EL7_BUILD_FUSE_USERNS = 1127  # EL7.8: FUSE mounts inside a user namespace
EL7_BOOT_ARG = "namespace.unpriv_enable=1"
APPARMOR_PROFILE_FILE = "/etc/apparmor.d/apptainer-userns"

# The order remediation steps are taken in: settings that work now first, the reboot last.
REMEDIATION_ORDER = ("os_upgrade", "sysctl", "boot_arg", "apparmor", "package", "device", "kernel_upgrade", "reboot")


# ---------------------------------------------------------------------------------------------
# Reading a tree
# ---------------------------------------------------------------------------------------------
class _Tree:
    """Files below ``root``; a path that leaves ``root`` (an absolute symlink on a recorded tree) is absent."""

    def __init__(self, root):
        self.root = os.path.realpath(root)

    def path(self, rel):
        full = os.path.realpath(os.path.join(self.root, rel))
        inside = self.root == os.sep or full == self.root or full.startswith(self.root + os.sep)
        return full if inside else None

    def exists(self, rel):
        full = self.path(rel)
        return full is not None and os.path.lexists(full)

    def is_file(self, rel):
        full = self.path(rel)
        return full is not None and os.path.isfile(full)

    def mode(self, rel):
        full = self.path(rel)
        try:
            return os.stat(full).st_mode if full else None
        except OSError:
            return None

    def read(self, rel):
        full = self.path(rel)
        if full is None or not os.path.isfile(full):
            return None
        try:
            with open(full, "rb") as handle:
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return None

    def listdir(self, rel):
        full = self.path(rel)
        try:
            return sorted(os.listdir(full)) if full else []
        except OSError:
            return []


def _first(tree, candidates):
    """The first candidate that is a file, as the node sees it ("/usr/bin/x"), or None."""
    for rel in candidates:
        if tree.is_file(rel):
            return "/" + rel
    return None


def _int(text):
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def parse_os_release(text):
    """os-release KEY=value lines as a dict (quotes removed), or None when the file is absent."""
    if text is None:
        return None
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def parse_apptainer_conf(text):
    """The settings of apptainer.conf that the verdict depends on, lower-cased; absent keys are left out."""
    values = {}
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].strip()
        key, sep, value = line.partition("=")
        key = " ".join(key.split()).lower()
        if sep and key in CONF_KEYS:
            values[key] = value.strip().lower()
    return values


def parse_dpkg_status(text, packages):
    """{package: version} for the installed ``packages`` in a dpkg status file."""
    found = {}
    for stanza in re.split(r"\n\s*\n", text or ""):
        fields = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith((" ", "\t")):
                fields[key.strip().lower()] = value.strip()
        if fields.get("package") in packages and fields.get("status", "").endswith(" installed"):
            found[fields["package"]] = fields.get("version")
    return found


def parse_version_output(text):
    """``apptainer version 1.3.6-1.el9`` -> ``1.3.6-1.el9``; a bare version is returned as is."""
    lines = (text or "").strip().splitlines()
    if not lines:
        return None
    match = re.search(r"version\s+(\S+)", lines[0])
    return match.group(1) if match else lines[0].strip()


def _apparmor_glob(pattern):
    """An AppArmor path glob (after alternation expansion) as a compiled regex."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _expand_alternations(pattern):
    """``/a/starter{,-suid}`` -> ``['/a/starter', '/a/starter-suid']`` (nested alternations too)."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth = 0
    parts, last = [], start + 1
    for i in range(start, len(pattern)):
        ch = pattern[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                parts.append(pattern[last:i])
                head, tail = pattern[:start], pattern[i + 1 :]
                return [x for part in parts for x in _expand_alternations(head + part + tail)]
        elif ch == "," and depth == 1:
            parts.append(pattern[last:i])
            last = i + 1
    return [pattern]  # unbalanced: keep literally


def apparmor_attachment_matches(attachment, path):
    """Whether an AppArmor attachment (``/usr/lib/@{multiarch}/apptainer/bin/starter{,-suid}``) covers ``path``."""
    attachment = attachment.replace("@{multiarch}", "*-linux-gnu*")
    attachment = re.sub(r"@\{[^}]*\}", "*", attachment)
    return any(_apparmor_glob(p).match(path) for p in _expand_alternations(attachment))


_PROFILE_HEADER = re.compile(
    r"(?:^|(?<=[\s{}]))(?:profile\s+(?P<name>\"[^\"]+\"|\S+)(?:\s+(?P<attach>/[^\s]+))?|(?P<bare>^[ \t]*/[^\s]+))"
    r"\s+(?:flags\s*=\s*\([^)]*\)\s*)?\{",
    re.M,
)
_USERNS_RULE = re.compile(r"^\s*(?:audit\s+)?(?:allow\s+)?userns(?:\s+create)?\s*,", re.M)


def _block_body(text, open_brace):
    """The text between the brace at ``open_brace`` and its match."""
    depth = 0
    for i in range(open_brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1 : i]
    return text[open_brace + 1 :]


def apparmor_profiles_for(text, path):
    """Profiles in one AppArmor policy file that attach to ``path``: [(name, has_userns_rule)]."""
    # Comments go, except the old "#include" syntax.
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#") or ln.lstrip().startswith("#include")]
    text = "\n".join(lines)
    found = []
    for match in _PROFILE_HEADER.finditer(text):
        name = (match.group("name") or "").strip('"')
        attach = match.group("attach") or (match.group("bare") or "").strip() or (name if name.startswith("/") else "")
        if attach and apparmor_attachment_matches(attach, path):
            body = _block_body(text, match.end() - 1)
            found.append((name or attach, bool(_USERNS_RULE.search(body))))
    return found


def _apparmor_starter_profiles(tree, starter):
    """Enabled profiles under etc/apparmor.d that attach to the starter: [{path, profile, userns}]."""
    if not starter:
        return []
    disabled = set(tree.listdir("etc/apparmor.d/disable"))
    profiles = []
    for name in tree.listdir("etc/apparmor.d"):
        rel = "etc/apparmor.d/" + name
        if name in disabled or name.startswith(".") or name.endswith((".dpkg-dist", ".dpkg-old", "~")):
            continue
        text = tree.read(rel)  # None for directories (abstractions/, local/, tunables/...)
        if text is None:
            continue
        for profile, userns in apparmor_profiles_for(text, starter):
            profiles.append({"path": "/" + rel, "profile": profile, "userns": userns})
    return profiles


def _starter_dirs_for(binary):
    """STARTER_DIRS with those of the installed binary's product and prefix first."""
    if not binary:
        return STARTER_DIRS
    product = binary.rsplit("/", 1)[-1]
    local = binary.startswith("/usr/local/")
    return sorted(STARTER_DIRS, key=lambda d: (product not in d, local != d.startswith("usr/local/")))


def _read_autofs(tree, release):
    """Where the kernel's automounter is: built in (modules.builtin) or a module file for ``release``, or neither.

    Returns {"autofs_module": "/lib/modules/<release>/kernel/fs/autofs/autofs4.ko" | "builtin" | None,
    "dev_autofs": whether dev/autofs exists}. A module that is present but not loaded still counts: the
    automount daemon (or systemd at boot) loads it.
    """
    module = None
    if release:
        for base in (f"lib/modules/{release}", f"usr/lib/modules/{release}"):
            builtin = tree.read(base + "/modules.builtin") or ""
            if any(line.rsplit("/", 1)[-1] in ("autofs4.ko", "autofs.ko") for line in builtin.split()):
                module = "builtin"
                break
            found = _first(tree, [f"{base}/{rel}" for rel in AUTOFS_MODULES])
            if found:
                module = found
                break
    return {"autofs_module": module, "dev_autofs": tree.exists("dev/autofs")}


def read_node(root="/", run_version=None):
    """Read the raw values the verdict depends on, from files under ``root`` only.

    ``run_version(path)`` returns the version of the apptainer/singularity binary at ``path`` by
    running it: pass it only when ``root`` is the running system's ``/``. Without it the version
    comes from var/lib/dpkg/status, else it is None (a recorded tree runs nothing).
    """
    tree = _Tree(root)
    binary = _first(tree, APPTAINER_BINARIES)
    product = binary.rsplit("/", 1)[-1] if binary else None

    version, version_source, dpkg = None, None, {}
    if binary and run_version is not None:
        version = run_version(binary)
        version_source = "command" if version else None
    elif binary:
        dpkg = parse_dpkg_status(tree.read("var/lib/dpkg/status"), DPKG_PACKAGES[product])
        for package in DPKG_PACKAGES[product]:
            if dpkg.get(package):
                version, version_source = dpkg[package], "dpkg:" + package
                break

    starter = starter_suid = None
    starter_suid_setuid = False
    for directory in _starter_dirs_for(binary):
        if starter is None and tree.is_file(directory + "/starter"):
            starter = "/" + directory + "/starter"
        if starter_suid is None and tree.is_file(directory + "/starter-suid"):
            starter_suid = "/" + directory + "/starter-suid"
            starter_suid_setuid = bool((tree.mode(directory + "/starter-suid") or 0) & stat.S_ISUID)

    conf_candidates = APPTAINER_CONFS
    if binary:
        prefix = "usr/local/etc/" if binary.startswith("/usr/local/") else "etc/"
        conf_candidates = sorted(APPTAINER_CONFS, key=lambda c: (product not in c, not c.startswith(prefix)))
    conf = _first(tree, conf_candidates)

    fuse_mode = tree.mode("dev/fuse")
    filesystems = tree.read("proc/filesystems")
    cmdline = tree.read("proc/cmdline")
    redhat_release = tree.read("etc/redhat-release")
    kernel = tree.read("proc/sys/kernel/osrelease")
    return {
        **_read_autofs(tree, kernel.strip() if kernel else None),
        "root": root,
        "os_release": parse_os_release(tree.read("etc/os-release")),
        "redhat_release": redhat_release.strip() if redhat_release else None,
        "kernel_release": kernel.strip() if kernel else None,
        "max_user_namespaces": _int(tree.read("proc/sys/user/max_user_namespaces")),
        "unprivileged_userns_clone": _int(tree.read("proc/sys/kernel/unprivileged_userns_clone")),
        "apparmor_restrict_unprivileged_userns": _int(
            tree.read("proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        ),
        "cmdline": cmdline.strip() if cmdline is not None else None,
        "filesystems": [ln.split()[-1] for ln in filesystems.splitlines() if ln.strip()] if filesystems else None,
        "dev_fuse": tree.exists("dev/fuse"),
        "dev_fuse_mode": f"{stat.S_IMODE(fuse_mode):04o}" if fuse_mode is not None else None,
        "fusermount": _first(tree, FUSERMOUNTS),
        "fuse_overlayfs": _first(tree, FUSE_OVERLAYFS),
        "apptainer_binary": binary,
        "apptainer_version": version,
        "apptainer_version_source": version_source,
        "dpkg_versions": dpkg,
        "starter": starter,
        "starter_suid": starter_suid,
        "starter_suid_setuid": starter_suid_setuid,
        "apptainer_conf": conf,
        "apptainer_conf_values": parse_apptainer_conf(tree.read(conf[1:])) if conf else {},
        "apparmor_starter_profiles": _apparmor_starter_profiles(tree, starter),
    }


# ---------------------------------------------------------------------------------------------
# Judging
# ---------------------------------------------------------------------------------------------
def platform_info(os_release, redhat_release):
    """(platform id, family, EL major or None); family is el, debian, ubuntu, other or unknown.

    Platform ids: el6, el7.<minor> (the minor from redhat-release: EL7's os-release says only "7"),
    el8, el9, debian12, ubuntu24.04, <ID><VERSION_ID> otherwise, or unknown.
    """
    osr = os_release or {}
    os_id = osr.get("ID", "").lower()
    like = osr.get("ID_LIKE", "").lower().split()
    version = osr.get("VERSION_ID", "")
    rh = re.search(r"release\s+(\d+)(?:\.(\d+))?", redhat_release or "")
    if os_id in EL_IDS or "rhel" in like or (not osr and rh):
        major = version.split(".")[0] if version else (rh.group(1) if rh else "")
        if not major.isdigit():
            return ("el" if not major else "el" + major), "el", None
        minor = None
        if major == "7":
            if rh and rh.group(1) == "7":
                minor = rh.group(2)
            elif "." in version:
                minor = version.split(".")[1]
        return "el" + major + ("." + minor if minor else ""), "el", int(major)
    if os_id == "debian":
        if version:
            return "debian" + version.split(".")[0], "debian", None
        codename = osr.get("VERSION_CODENAME", "")
        if codename in DEBIAN_CODENAMES:
            return "debian" + DEBIAN_CODENAMES[codename], "debian", None
        return "debian-" + (codename or "unknown"), "debian", None
    if os_id == "ubuntu":
        return "ubuntu" + version, "ubuntu", None
    if os_id:
        return os_id + version, "debian" if "debian" in like or "ubuntu" in like else "other", None
    return "unknown", "unknown", None


def kernel_version(release):
    """``6.8.0-49-generic`` -> [6, 8, 0]; None when unreadable."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release or "")
    if not match:
        return None
    return [int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)]


def kernel_build(release):
    """The distribution build number: ``3.10.0-1160.119.1.el7.x86_64`` -> 1160; None without one."""
    match = re.match(r"\d+\.\d+\.\d+-(\d+)", release or "")
    return int(match.group(1)) if match else None


def _version_tuple(version):
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _step(kind, key, value, action, reason):
    return {"kind": kind, "key": key, "value": value, "action": action, "reason": reason}


def _package_command(family, el_major, packages):
    names = " ".join(packages)
    if family == "el":
        return ("yum" if (el_major or 0) <= 7 else "dnf") + " -y install " + names
    if family in ("debian", "ubuntu"):
        return "apt-get install -y " + names
    return None


# The one sysctl file sitekit's userns role writes; a remedy done by hand goes there too.
SYSCTL_FILE = "/etc/sysctl.d/90-sitekit-userns.conf"


def _sysctl_step(key, value, reason, apply_now=True):
    action = f"echo '{key} = {value}' >> {SYSCTL_FILE}"
    if apply_now:
        action += f" && sysctl -w {key}={value}"
    return _step("sysctl", key, str(value), action, reason)


def apparmor_profile_text(starter):
    """An AppArmor profile that lets ``starter`` (and its -suid twin) create user namespaces."""
    return (
        "# Permit unprivileged user namespace creation for the Apptainer starter (written by sitekit)\n"
        "abi <abi/4.0>,\n"
        "include <tunables/global>\n"
        "\n"
        f"profile apptainer-userns {starter}{{,-suid}} flags=(unconfined) {{\n"
        "  userns,\n"
        "\n"
        "  # Site-specific additions and overrides. See local/README for details.\n"
        "  include if exists <local/apptainer-userns>\n"
        "}\n"
    )


def _userns_blockers(ctx):
    """Why an unprivileged user cannot create the user+mount namespaces Apptainer needs now: [(code, text)]."""
    facts, kver, build = ctx["facts"], ctx["kver"], ctx["build"]
    max_ns = facts["max_user_namespaces"]
    if kver is None:
        return [("kernel_unknown", "proc/sys/kernel/osrelease is unreadable: the kernel cannot be judged")]
    if kver < [3, 8, 0]:
        return [("kernel_too_old", f"kernel {ctx['kernel']} is older than 3.8: no unprivileged user namespaces")]
    blockers = []
    if ctx["el7_kernel"]:
        if build < EL7_BUILD_USERNS_TECH_PREVIEW:
            return [("el7_no_userns", "EL7 kernels before 3.10.0-327 (EL7.2) have no user namespaces")]
        if build < EL7_BUILD_USERNS:
            return [
                (
                    "el7_mountns_eperm",
                    "EL7.2-7.3 kernels (3.10.0-327 to -692) refuse an unprivileged mount namespace (EPERM): unusable",
                )
            ]
        if not max_ns:
            value = "missing" if max_ns is None else "0"
            blockers.append(("max_user_namespaces", f"user.max_user_namespaces is {value} (the EL7 default is 0)"))
        if build < EL7_BUILD_SYSCTL_ONLY and EL7_BOOT_ARG not in (facts["cmdline"] or "").split():
            blockers.append(("boot_arg", f"EL7.4-7.5 kernels also need the boot argument {EL7_BOOT_ARG}"))
    elif max_ns == 0:
        blockers.append(("max_user_namespaces", "user.max_user_namespaces is 0"))
    if facts["unprivileged_userns_clone"] == 0:
        blockers.append(("userns_clone", "kernel.unprivileged_userns_clone is 0 (Debian's switch)"))
    if facts["apparmor_restrict_unprivileged_userns"] == 1 and not ctx["apparmor_profile"]:
        where = f"the starter {facts['starter']}" if facts["starter"] else "a starter (none is installed)"
        blockers.append(
            (
                "apparmor",
                f"kernel.apparmor_restrict_unprivileged_userns is 1 and no AppArmor profile with `userns,` "
                f"attaches {where}",
            )
        )
    return blockers


def _overlay(ctx):
    """(overlay, notes) as Apptainer's user-namespace mode decides (its prepare_linux.go)."""
    facts, kver = ctx["facts"], ctx["kver"]
    conf = facts["apptainer_conf_values"]
    where = facts["apptainer_conf"] or "apptainer.conf"
    if conf.get("enable underlay") == "preferred":
        return "underlay", [f"overlay: `enable underlay = preferred` in {where}"]
    if conf.get("enable overlay") == "no":
        return "underlay", [f"overlay: `enable overlay = no` in {where}"]
    notes = []
    # Unprivileged kernel overlayfs needs 5.11; EL7 (3.10) never has it, whatever proc/filesystems lists.
    if conf.get("enable overlay") != "driver" and kver is not None and kver >= [5, 11, 0]:
        return "kernel", notes
    if ctx["el_major"] == 8 and conf.get("enable overlay") != "driver":
        notes.append(
            "overlay: EL8 kernels (4.18) may carry the unprivileged overlayfs backport; sitekit does not assume it, "
            "probe as a normal user: d=$(mktemp -d) && mkdir $d/l $d/u $d/w $d/m && unshare -rm mount -t overlay "
            "overlay -o lowerdir=$d/l,upperdir=$d/u,workdir=$d/w $d/m && echo kernel overlay works"
        )
    if facts["fuse_overlayfs"] and ctx["fuse_in_userns"] and ctx["fuse_open"]:
        return "fuse-overlayfs", notes
    return "underlay", notes


def _cvmfsexec_modes(ctx, userns, setuid_usable):
    facts = ctx["facts"]
    if not facts["dev_fuse"]:
        return []  # every mode mounts CVMFS through FUSE
    # Without fusermount the unprivileged user opens /dev/fuse itself (modes 3 and unprivileged 4).
    fuse = ctx["fuse_in_userns"] and ctx["fuse_open"]
    modes = []
    if facts["fusermount"]:
        modes.append(1)
        if userns:
            modes.append(2)
    if userns and fuse:
        modes.append(3)
    binary = facts["apptainer_binary"]
    if binary:
        version = _version_tuple(facts["apptainer_version"])
        singularity = binary.endswith("/singularity")
        too_old = singularity and version is not None and version < (3, 4)  # --fusemount came in 3.4
        unpriv = userns and fuse and (not singularity or version is None or version >= (3, 6))
        if not too_old and (setuid_usable or unpriv):
            modes.append(4)
    return modes


def _remediation(ctx, blockers):
    """Ordered steps that make the node capable of unprivileged mode with SIF."""
    facts, family, el_major, build = ctx["facts"], ctx["family"], ctx["el_major"], ctx["build"]
    codes = {code for code, _ in blockers}
    if ctx["el6_or_older"]:
        return [
            _step(
                "os_upgrade",
                "os",
                "el9",
                "reinstall the node with EL9 (or EL8)",
                "EL6 (kernel 2.6.32) has no user namespaces and current Apptainer does not build on it: "
                "unprivileged containers are impossible",
            )
        ]
    steps = []
    kernel_upgrade = None
    if ctx["el7_kernel"]:
        if build < EL7_BUILD_FUSE_USERNS:
            kernel_upgrade = _step(
                "kernel_upgrade",
                "kernel",
                EL7_LAST_KERNEL,
                "yum -y update kernel",
                (
                    f"kernel 3.10.0-{build} has no usable unprivileged user namespaces (3.10.0-693+ needed); "
                    if build < EL7_BUILD_USERNS
                    else ""
                )
                + "FUSE in a user namespace (SIF images, cvmfsexec mode 3) needs 3.10.0-1127 (EL7.8) or later: "
                "install the EL7.9 kernel " + EL7_LAST_KERNEL,
            )
        if "max_user_namespaces" in codes or (build < EL7_BUILD_USERNS and not facts["max_user_namespaces"]):
            steps.append(
                _sysctl_step(
                    "user.max_user_namespaces",
                    MAX_USER_NAMESPACES,
                    "EL7 ships user.max_user_namespaces = 0, which turns user namespaces off; 15000 is OSG's value"
                    + (
                        "; this kernel has no such setting, the file takes effect with the new kernel at the reboot"
                        if build < EL7_BUILD_USERNS
                        else ""
                    )
                    + ". Check that no later sysctl file (e.g. /etc/sysctl.conf) sets it back to 0",
                    apply_now=build >= EL7_BUILD_USERNS,
                )
            )
        if "boot_arg" in codes:
            steps.append(
                _step(
                    "boot_arg",
                    "namespace.unpriv_enable",
                    "1",
                    "grubby --update-kernel=ALL --args=" + EL7_BOOT_ARG,
                    "EL7.4-7.5 kernels (3.10.0-693 to -956) allow unprivileged user namespaces only with this boot "
                    "argument; harmless once the node boots 3.10.0-957 or later",
                )
            )
    else:
        kver = ctx["kver"]
        if kver is not None and kver < [4, 18, 0]:
            kernel_upgrade = _step(
                "kernel_upgrade",
                "kernel",
                ">= 4.18",
                "install the distribution's newest kernel (4.18 or later) and boot it",
                "FUSE in a user namespace (SIF images, cvmfsexec mode 3) needs kernel 4.18 or later"
                + ("; user namespaces need 3.8 or later" if kver < [3, 8, 0] else ""),
            )
        if "max_user_namespaces" in codes:
            steps.append(
                _sysctl_step(
                    "user.max_user_namespaces",
                    MAX_USER_NAMESPACES,
                    "0 turns user namespaces off; 15000 is OSG's value. Never lower a non-zero kernel value "
                    "(the EL8/EL9 default is threads-max/2), and check that no sysctl file sets it back to 0",
                )
            )
    if "userns_clone" in codes:
        steps.append(
            _sysctl_step(
                "kernel.unprivileged_userns_clone",
                1,
                "Debian's switch for unprivileged user namespaces (its default is 1 since bullseye)",
            )
        )
    if "apparmor" in codes:
        steps.append(_apparmor_step(ctx))
    if not facts["dev_fuse"]:
        packages = ["fuse"] if el_major == 7 else ["fuse3"]
        install = _package_command(family, el_major, packages)
        steps.append(
            _step(
                "package",
                packages[0],
                "installed",
                (install + " && " if install else "install " + packages[0] + ", then: ") + "modprobe fuse",
                "dev/fuse is missing: SIF images and cvmfsexec mount through FUSE. In a container, pass the host's "
                "/dev/fuse (podman/docker --device /dev/fuse)",
            )
        )
    elif not ctx["fuse_open"]:
        steps.append(
            _step(
                "device",
                "/dev/fuse",
                "0666",
                "chmod 0666 /dev/fuse",
                f"unprivileged users cannot open /dev/fuse (mode {facts['dev_fuse_mode']}): SIF images and "
                "fuse-overlayfs need it. A host's udev makes it 0666; a container that copied the host's 0600 needs "
                "it set inside (it is reset when the container restarts)",
            )
        )
    if kernel_upgrade:
        steps.append(kernel_upgrade)
    if kernel_upgrade or "boot_arg" in codes:
        steps.append(
            _step("reboot", "reboot", None, "systemctl reboot", "the new kernel and boot arguments take effect at boot")
        )
    return sorted(steps, key=lambda s: REMEDIATION_ORDER.index(s["kind"]))


def _apparmor_step(ctx):
    facts = ctx["facts"]
    starter = facts["starter"]
    alternative = (
        "the alternative, kernel.apparmor_restrict_unprivileged_userns = 0, lifts Ubuntu's restriction for every "
        "program"
    )
    if not starter:
        return _sysctl_step(
            "kernel.apparmor_restrict_unprivileged_userns",
            0,
            "no Apptainer starter is installed here for an AppArmor profile to name (jobs would bring their own, "
            "e.g. from CVMFS), so only lifting the restriction helps; once Apptainer is installed, a profile with "
            "`userns,` for its starter is the narrower fix",
        )
    stub = next((p for p in facts["apparmor_starter_profiles"] if not p["userns"]), None)
    if stub:
        return _step(
            "apparmor",
            stub["path"],
            "userns,",
            f"add the rule `userns,` to profile {stub['profile']} in {stub['path']}, then run: "
            f"apparmor_parser -r {stub['path']}",
            f"profile {stub['profile']} attaches the starter {starter} but lacks `userns,`; {alternative}",
        )
    return _step(
        "apparmor",
        APPARMOR_PROFILE_FILE,
        apparmor_profile_text(starter),
        f"write the value to {APPARMOR_PROFILE_FILE}, then run: apparmor_parser -r {APPARMOR_PROFILE_FILE}",
        "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+): a profile with `userns,` for the installed "
        f"starter {starter} lets Apptainer create them; {alternative}",
    )


def _advice(ctx, overlay, remediation, mode, setuid_usable):
    facts, family, el_major = ctx["facts"], ctx["family"], ctx["el_major"]
    advice = []
    conf = facts["apptainer_conf_values"]
    conf_forces_underlay = conf.get("enable underlay") == "preferred" or conf.get("enable overlay") == "no"
    fuse_later = ctx["fuse_in_userns"] or any(s["kind"] == "kernel_upgrade" for s in remediation)
    if overlay == "underlay" and not conf_forces_underlay and not facts["fuse_overlayfs"] and fuse_later:
        install = _package_command(family, el_major, ["fuse-overlayfs"])
        advice.append(
            _step(
                "package",
                "fuse-overlayfs",
                "installed",
                install or "install fuse-overlayfs",
                "without kernel overlayfs for unprivileged users, Apptainer falls back to underlay; fuse-overlayfs "
                "gives writable overlays (--overlay, --writable-tmpfs) in user-namespace mode",
            )
        )
    if not facts["fusermount"] and facts["dev_fuse"] and not ctx["el6_or_older"]:
        package = "fuse" if el_major == 7 else "fuse3"
        install = _package_command(family, el_major, [package])
        advice.append(
            _step(
                "package",
                package,
                "installed",
                install or "install " + package,
                "fusermount lets cvmfsexec mount CVMFS in user space (modes 1 and 2)",
            )
        )
    if mode == "unprivileged" and setuid_usable:
        advice.append(
            _step(
                "config",
                "allow setuid",
                "no",
                f"set `allow setuid = no` in {facts['apptainer_conf'] or '/etc/apptainer/apptainer.conf'}",
                "user namespaces work here: the setuid starter is not needed and only adds attack surface",
            )
        )
    return advice


def automount_verdict(facts):
    """Can the kernel automount (autofs)? From proc/filesystems and the autofs module of the running kernel.

    Returns {"available", "loaded", "module", "reason", "remedy"}: ``available`` when autofs is registered
    (``loaded``) or its module is there to load (a module not yet loaded is not a missing one) and module
    loading is not switched off; ``remedy`` is None when autofs is loaded.
    """
    filesystems = facts.get("filesystems")
    module = facts.get("autofs_module")
    kernel = facts.get("kernel_release") or "unknown"
    nomodule = "nomodule" in (facts.get("cmdline") or "").split()
    static = (
        "or mount CVMFS repositories statically from /etc/fstab (sitekit: cvmfs_mount_mode: static, or auto, "
        "which picks static mounts where the kernel cannot automount)"
    )
    loaded = filesystems is not None and AUTOFS_FILESYSTEM in filesystems
    if loaded:
        return {
            "available": True,
            "loaded": True,
            "module": module,
            "reason": "autofs is registered in proc/filesystems",
            "remedy": None,
        }
    if filesystems is None:
        return {
            "available": False,
            "loaded": False,
            "module": module,
            "reason": "proc/filesystems is unreadable, so whether the kernel has autofs is unknown",
            "remedy": "read /proc/filesystems as root (`grep autofs /proc/filesystems`), " + static,
        }
    if module and module != "builtin" and nomodule:
        return {
            "available": False,
            "loaded": False,
            "module": module,
            "reason": f"the autofs module {module} exists, but the boot argument nomodule forbids loading modules",
            "remedy": "remove nomodule from the kernel command line and reboot, " + static,
        }
    if module:
        return {
            "available": True,
            "loaded": False,
            "module": module,
            "reason": f"the autofs module {module} of kernel {kernel} is present, not loaded yet "
            "(automount loads it when it starts)",
            "remedy": "modprobe autofs4 (or start autofs, which loads it)",
        }
    return {
        "available": False,
        "loaded": False,
        "module": None,
        "reason": f"kernel {kernel} has no autofs: it is not in proc/filesystems and no autofs module exists "
        f"under lib/modules/{kernel}",
        "remedy": "boot a kernel built with autofs (CONFIG_AUTOFS_FS=y or m), " + static,
    }


def assess(facts):
    """The verdict for a node from the raw values of ``read_node``; the same keys every time."""
    platform, family, el_major = platform_info(facts["os_release"], facts["redhat_release"])
    kernel = facts["kernel_release"]
    kver = kernel_version(kernel)
    build = kernel_build(kernel) if family == "el" else None
    el7_kernel = el_major == 7 and kver is not None and kver[:2] == [3, 10] and build is not None
    starter = facts["starter"]
    profile = next((p["path"] for p in facts["apparmor_starter_profiles"] if p["userns"]), None)
    ctx = {
        "facts": facts,
        "family": family,
        "el_major": el_major,
        "el6_or_older": family == "el" and el_major is not None and el_major <= 6,
        "kernel": kernel,
        "kver": kver,
        "build": build,
        "el7_kernel": el7_kernel,
        "apparmor_profile": profile,
        # The kernel's capability alone: FUSE mounts inside a user namespace.
        "fuse_in_userns": kver is not None and (kver >= [4, 18, 0] or (el7_kernel and build >= EL7_BUILD_FUSE_USERNS)),
        # An unprivileged user can open /dev/fuse (read and write for others; unknown mode: assumed, as on a host).
        "fuse_open": bool(facts["dev_fuse"])
        and (facts["dev_fuse_mode"] is None or int(facts["dev_fuse_mode"], 8) & 0o006 == 0o006),
    }
    blockers = _userns_blockers(ctx)
    userns = not blockers
    conf = facts["apptainer_conf_values"]
    setuid_starter = facts["starter_suid"] if facts["starter_suid_setuid"] else None
    setuid_usable = bool(setuid_starter) and conf.get("allow setuid") != "no" and not ctx["el6_or_older"]
    mode = "unprivileged" if userns else "setuid" if setuid_usable else "unsupported"
    overlay, overlay_notes = _overlay(ctx)
    sif = ctx["fuse_in_userns"] and userns and ctx["fuse_open"]
    remediation = _remediation(ctx, blockers)
    automount = automount_verdict(facts)

    notes = ["user namespaces: " + text for _, text in blockers]
    if not automount["available"]:
        notes.append(f"automount: {automount['reason']}")
    if facts["apparmor_restrict_unprivileged_userns"] == 1 and profile:
        notes.append(f"AppArmor restricts user namespaces; profile {profile} permits the starter {starter}")
    notes.extend(overlay_notes)
    if el_major == 7:
        notes.append("EL7 is end of life and Apptainer 1.3.3 dropped it: plan the move to EL9")
    if facts["starter_suid"] and not facts["starter_suid_setuid"]:
        notes.append(f"{facts['starter_suid']} exists without the setuid bit: setuid mode is not available")
    if setuid_starter and conf.get("allow setuid") == "no":
        notes.append(f"`allow setuid = no` in {facts['apptainer_conf']}: the setuid starter is not used")
    if not facts["apptainer_binary"]:
        notes.append(
            "no apptainer or singularity under usr/bin or usr/local/bin: where user namespaces work, jobs can use "
            "OSG's Apptainer on CVMFS"
        )
    elif facts["apptainer_version"] is None:
        notes.append("the Apptainer version is unknown (no dpkg record on this tree, or `--version` failed)")
    mode_bits = facts["dev_fuse_mode"]
    if facts["dev_fuse"] and mode_bits and int(mode_bits, 8) & 0o006 != 0o006:
        notes.append(
            f"dev/fuse has mode {mode_bits}: unprivileged users cannot open it (a host's is 0666; a container may "
            "copy 0600)"
        )
    if el_major == 7 and not el7_kernel and kver is not None:
        notes.append(f"EL7 with a non-EL7 kernel ({kernel}): judged by the kernel version alone")

    return {
        "platform": platform,
        "kernel": kernel,
        "kernel_version": kver,
        "kernel_build": build,
        "userns_enabled": userns,
        "apparmor_userns_profile": profile,
        "mode": mode,
        "overlay": overlay,
        "sif": bool(sif),
        "fuse_in_userns": bool(ctx["fuse_in_userns"]),
        "cvmfsexec_modes": sorted(_cvmfsexec_modes(ctx, userns, setuid_usable)),
        "apptainer": {
            "path": facts["apptainer_binary"],
            "version": facts["apptainer_version"],
            "starter": starter,
            "setuid_starter": setuid_starter,
        },
        "automount": automount,
        "remediation": remediation,
        "advice": _advice(ctx, overlay, remediation, mode, setuid_usable),
        "notes": notes,
        "ready": mode == "unprivileged",
        "facts": facts,
    }


def check_node(root="/", run_version=None):
    """``assess(read_node(root, run_version))``."""
    return assess(read_node(root, run_version))


REQUIRE_LEVELS = {"none": 0, "setuid": 1, "unprivileged": 2}
MODE_LEVELS = {"unsupported": 0, "setuid": 1, "unprivileged": 2}


def requirement_failure(result, require):
    """None when the node meets ``require`` (none, setuid = containers run at all, unprivileged); else the message."""
    if MODE_LEVELS[result["mode"]] >= REQUIRE_LEVELS[require]:
        return None
    wanted = "unprivileged" if require == "unprivileged" else "any"
    msg = (
        f"kernel_compat: this node ({result['platform']}, kernel {result['kernel']}) cannot run {wanted} "
        f"containers: its best mode is {result['mode']}."
    )
    if result["remediation"]:
        msg += " To make it capable of unprivileged containers, in order: " + " ".join(
            f"{i}) {s['action']} [{s['kind']} {s['key']}]" for i, s in enumerate(result["remediation"], 1)
        )
    if require == "setuid" and not result["platform"].startswith("el6"):
        msg += " Alternatively install a setuid starter (apptainer-suid) and keep `allow setuid = yes`."
    return msg
