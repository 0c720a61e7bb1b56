"""The apptainer role's settings for apptainer.conf, from the site's variables and the kernel verdict."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# How a bind is read (src, src:dst, src:dst:ro|rw) lives once, in module_utils/sitekit_launch.py, which the launch
# check uses on the node; the filters that decide the same on the controller import it from there.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in sys.path:
    sys.path.insert(0, _MODULE_UTILS)
import sitekit_launch  # noqa: E402
import sitekit_version  # noqa: E402

CONTAINER_FORMATS = ("sif", "encrypted", "squashfs", "extfs", "dir")


def _abs_paths(name, paths):
    if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
        raise AnsibleFilterError(
            f"apptainer_conf_settings: {name} must be a list of absolute paths, got {paths!r:.120}"
        )
    return list(paths)


def apptainer_conf_settings(
    bind_paths,
    allow_setuid=False,
    mount_slave=True,
    overlay="kernel",
    limit_container_paths=(),
    allow_container=None,
    extra=None,
):
    """The apptainer.conf keys sitekit manages, as {key: value}; lists are repeated keys.

    ``overlay`` is kernel_compat's verdict: where the kernel offers no unprivileged overlay,
    ``enable underlay = preferred`` spares every launch a failed overlay attempt.
    """
    binds = []
    for path in _abs_paths("bind_paths", bind_paths):
        if path not in binds:
            binds.append(path)
    limits = _abs_paths("limit_container_paths", list(limit_container_paths))
    if overlay not in ("kernel", "fuse-overlayfs", "underlay"):
        raise AnsibleFilterError(
            f"apptainer_conf_settings: overlay must be kernel, fuse-overlayfs or underlay, got {overlay!r}"
        )
    formats = dict.fromkeys(CONTAINER_FORMATS, True)
    for name, allowed in (allow_container or {}).items():
        if name not in CONTAINER_FORMATS or not isinstance(allowed, bool):
            raise AnsibleFilterError(
                f"apptainer_conf_settings: allow_container takes {', '.join(CONTAINER_FORMATS)} with true/false, "
                f"got {name!r}: {allowed!r}"
            )
        formats[name] = allowed
    settings = {
        "allow setuid": bool(allow_setuid),
        "bind path": binds,
        "mount slave": bool(mount_slave),
        "enable underlay": "preferred" if overlay == "underlay" else "yes",
        # None: no active line, Apptainer's default (any path).
        "limit container paths": ", ".join(limits) if limits else None,
    }
    settings.update({f"allow container {name}": allowed for name, allowed in formats.items()})
    if extra:
        if not isinstance(extra, dict):
            raise AnsibleFilterError(
                f"apptainer_conf_settings: extra must be a dict of apptainer.conf keys, got {extra!r:.80}"
            )
        settings.update(extra)
    return settings


def apptainer_bind_sources(binds, variable="binds"):
    """Each bind of ``binds`` (``src``, ``src:dst`` or ``src:dst:ro|rw``) as {variable, spec, source, target}.

    The host side (``source``) is what must exist on the node: Apptainer skips a ``bind path`` of apptainer.conf whose
    source is missing without a word. A malformed bind fails naming ``variable`` and the bind. ``binds`` may also be a
    dict of variable name and its binds: the binds of every variable, in order.
    """
    if isinstance(binds, Mapping):
        return [item for name, specs in binds.items() for item in apptainer_bind_sources(specs, name)]
    if not isinstance(binds, (list, tuple)):
        raise AnsibleFilterError(
            f"apptainer_bind_sources: {variable} must be a list of binds (src, src:dst or src:dst:ro), "
            f"got {type(binds).__name__}: {binds!r:.120}"
        )
    out = []
    for spec in binds:
        try:
            source, target, _opts = sitekit_launch.parse_bind(spec)
        except ValueError as exc:
            raise AnsibleFilterError(
                f"apptainer_bind_sources: {variable}: {exc}; give each bind as src, src:dst or src:dst:ro|rw, "
                "absolute paths"
            ) from None
        out.append({"variable": variable, "spec": spec, "source": source, "target": target})
    return out


def apptainer_bind_missing(sources, paths, pending=()):
    """The binds of ``sources`` (``apptainer_bind_sources``' items) whose host path does not exist on the node.

    ``paths`` is ``sitekit_paths``' ``paths`` result for the sources (links followed: a dangling link is missing, as
    it is to Apptainer). ``pending`` lists paths that this run makes before a job can use them (in check mode the
    CVMFS mount root, which the cvmfs role makes, is not there yet): a source at or below one of them is left out.
    """
    if not isinstance(sources, (list, tuple)) or not all(isinstance(s, Mapping) and "source" in s for s in sources):
        raise AnsibleFilterError(
            f"apptainer_bind_missing: expected apptainer_bind_sources' items, got {sources!r:.120}"
        )
    if not isinstance(paths, Mapping):
        raise AnsibleFilterError(f"apptainer_bind_missing: expected sitekit_paths' paths, got {paths!r:.120}")
    roots = [p.rstrip("/") for p in pending]
    return [
        bind
        for bind in sources
        if not (paths.get(bind["source"]) or {}).get("exists")
        and not any(bind["source"] == root or bind["source"].startswith(root + "/") for root in roots)
    ]


def apptainer_version_check(version_output, minimum=sitekit_version.APPTAINER_MINIMUM, family=None, path=None):
    """The verdict on ``apptainer --version`` output against ``minimum`` (``sitekit_version.judge_apptainer``, the
    launch check's own): {ok, detail, version, minimum, cause, remedy}."""
    if not isinstance(version_output, str):
        raise AnsibleFilterError(
            "apptainer_version_check: expected the text apptainer --version prints, "
            f"got {type(version_output).__name__}"
        )
    try:
        return sitekit_version.judge_apptainer(version_output, minimum, family=family, path=path)
    except ValueError as exc:
        raise AnsibleFilterError(
            f"apptainer_version_check: apptainer_minimum_version: {exc}; or an empty string to leave it unjudged"
        ) from None


class FilterModule:
    """apptainer role filters."""

    def filters(self):
        return {
            "apptainer_conf_settings": apptainer_conf_settings,
            "apptainer_bind_sources": apptainer_bind_sources,
            "apptainer_bind_missing": apptainer_bind_missing,
            "apptainer_version_check": apptainer_version_check,
        }
