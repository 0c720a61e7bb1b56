"""Compare package version strings, and judge an installed Apptainer against the release that fixed its last hole.

Shared by ``sitekit_launch`` (the launch check, so ``container_launch`` and the node self-check) and the apptainer
role's filter ``apptainer_version_check`` (the role's own check). Pure standard library, importable without Ansible.

- ``compare`` orders two version strings the way dpkg does (``[epoch:]upstream[-revision]``: ``~`` sorts before
  everything, even the end of the string, letters before other characters, digit runs numerically). RPM strings
  (``1.3.6-1.el9``) compare the same way for the versions that matter here;
- ``upstream`` is the release a package version is built from: no epoch, no Debian revision or RPM release, and an
  upstream pre-release tag (``1.4.0-rc.1``) written the packaging way (``1.4.0~rc.1``), so it sorts before 1.4.0;
- ``parse_version_output`` reads ``apptainer --version`` (``apptainer version 1.4.5-2``);
- ``judge_apptainer`` says whether that version is at least the minimum, and if not, why (the advisory the minimum
  fixed) and how to upgrade on this node's package family (``upgrade_command``).
"""

from __future__ import annotations

import re

# The newest Apptainer release that fixed a published security advisory: 1.4.5 fixed GHSA-j3rw-fx6g-q46j
# (CVE-2025-65105: a container could disable the --security apparmor:/selinux: restrictions; affected < 1.4.5).
APPTAINER_MINIMUM = "1.4.5"
APPTAINER_ADVISORY = "GHSA-j3rw-fx6g-q46j (CVE-2025-65105)"
# Package families with a known upgrade command, and the families sitekit's roles name them by (os_family).
FAMILIES = ("Debian", "RedHat")
# An upstream pre-release tag right after the release number: 1.4.0-rc.1, 1.4.0rc1.
_PRERELEASE = re.compile(r"(?<=[0-9])[-_.]?(rc|alpha|beta)(?=[0-9._-]|$)", re.I)
_VERSION_LINE = re.compile(r"^\s*(\S+)\s+version\s+(\S+)")


def _order(char: str) -> int:
    """dpkg's weight of one non-digit character: ~ first, then the end of a part, letters, everything else."""
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp on one part (upstream or revision)."""
    i = j = 0
    while i < len(a) or j < len(b):
        first = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first:
                first = (a[i] > b[j]) - (a[i] < b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first:
            return first
    return 0


def _split(version: str) -> tuple[int, str, str]:
    epoch, sep, rest = version.partition(":")
    if not sep or not epoch.isdigit():
        epoch, rest = "0", version
    upstream_part, sep, revision = rest.rpartition("-")
    if not sep:
        upstream_part, revision = rest, ""
    return int(epoch), upstream_part, revision


def validate(version) -> str:
    """``version`` as a string, or ValueError when it is no version (empty, blanks, no digit)."""
    if isinstance(version, bool) or not isinstance(version, (str, int, float)):
        raise ValueError(f"expected a version string such as 1.4.5, got {type(version).__name__}: {version!r:.60}")
    text = str(version).strip()
    if not text or any(c.isspace() for c in text) or not any(c.isdigit() for c in text):
        raise ValueError(f"expected a version string such as 1.4.5, got {version!r:.60}")
    return text


def compare(a, b) -> int:
    """-1, 0 or 1 as version ``a`` sorts before, equal to or after ``b`` (dpkg's order)."""
    a_epoch, a_up, a_rev = _split(validate(a))
    b_epoch, b_up, b_rev = _split(validate(b))
    if a_epoch != b_epoch:
        return -1 if a_epoch < b_epoch else 1
    return _compare_part(a_up, b_up) or _compare_part(a_rev, b_rev)


def upstream(version) -> str:
    """The release a package version was built from: ``1:1.4.5-2`` -> ``1.4.5``, ``1.3.6-1.el9`` -> ``1.3.6``,
    ``1.4.0-rc.1`` -> ``1.4.0~rc.1``, ``1.4.0~rc.1-1`` -> ``1.4.0~rc.1``."""
    text = validate(version)
    epoch, sep, rest = text.partition(":")
    if sep and epoch.isdigit():
        text = rest
    text = _PRERELEASE.sub(lambda m: f"~{m.group(1).lower()}", text)
    return text.rpartition("-")[0] if "-" in text else text


def at_least(installed, minimum) -> bool:
    """Whether the release ``installed`` was built from is ``minimum`` or newer (package revisions left out)."""
    return compare(upstream(installed), upstream(minimum)) >= 0


def parse_version_output(text):
    """``apptainer version 1.4.5-2`` -> (``apptainer``, ``1.4.5-2``); a bare version -> (None, it); nothing -> None."""
    lines = (text or "").strip().splitlines()
    if not lines:
        return None
    match = _VERSION_LINE.match(lines[0])
    if match:
        return match.group(1).lower(), match.group(2)
    return None, lines[0].strip()


def upgrade_command(family, package="apptainer"):
    """The command that upgrades ``package`` on a node of ``family`` (Debian or RedHat), or both when unknown."""
    commands = {
        "Debian": f"apt-get update && apt-get install --only-upgrade {package}",
        "RedHat": f"dnf upgrade {package} (yum upgrade {package} on EL7)",
    }
    return commands.get(family) or " or ".join(f"{name}: {cmd}" for name, cmd in commands.items())


def judge_apptainer(version_output, minimum=APPTAINER_MINIMUM, *, family=None, path=None, advisory=None):
    """Whether the Apptainer that printed ``version_output`` (``--version``) has no hole the ``minimum`` fixed.

    Returns {ok, detail, version, minimum, cause, remedy}. ``minimum`` empty or None: not judged (ok). Not Apptainer
    (SingularityCE, Singularity 3): no minimum is known for it (ok, said in the detail). ``advisory`` names what
    the minimum fixed (default: ``APPTAINER_ADVISORY`` for the default minimum). ``family`` (Debian, RedHat) picks
    the upgrade command; a binary below /cvmfs is upgraded by pointing at a newer build instead.
    """
    parsed = parse_version_output(version_output)
    product, version = parsed if parsed else (None, None)
    out = {"ok": True, "detail": "", "version": version, "minimum": minimum or None, "cause": None, "remedy": None}
    if not minimum:
        out["detail"] = f"Apptainer {version or 'of unknown version'}: no minimum version set"
        return out
    minimum = validate(minimum)
    if version is None:
        out.update(ok=False, detail="apptainer --version printed nothing")
        out.update(cause="the Apptainer version cannot be read", remedy="run apptainer --version on the node")
        return out
    if product not in (None, "apptainer"):
        out["detail"] = f"{product} {version} is not Apptainer: no minimum version is known for it"
        return out
    try:
        ok = at_least(version, minimum)
    except ValueError:
        out.update(ok=False, detail=f"apptainer --version printed {version!r}, which is no version")
        out.update(cause="the Apptainer version cannot be read", remedy="run apptainer --version on the node")
        return out
    if advisory is None:
        advisory = APPTAINER_ADVISORY if compare(upstream(minimum), APPTAINER_MINIMUM) == 0 else None
    if ok:
        out["detail"] = f"Apptainer {version}, at least {minimum}"
        return out
    out["ok"] = False
    if advisory:
        out["detail"] = f"Apptainer {version} is older than {minimum} ({minimum} fixed {advisory})"
        out["cause"] = f"Apptainer {version} has a published hole: {minimum} fixed {advisory}"
    else:
        out["detail"] = out["cause"] = f"Apptainer {version} is older than the site minimum, {minimum}"
    if path and (path == "/cvmfs" or path.startswith("/cvmfs/")):
        out["remedy"] = (
            f"point the Apptainer jobs use ({path}) at a build of {minimum} or newer "
            "(OSG's on CVMFS: /cvmfs/oasis.opensciencegrid.org/mis/apptainer/bin/apptainer)"
        )
    else:
        out["remedy"] = (
            f"upgrade Apptainer to {minimum} or newer: {upgrade_command(family)} "
            "(or with the apptainer role: apptainer_package_state: latest)"
        )
    return out
