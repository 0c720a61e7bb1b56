"""The apptainer role's settings for apptainer.conf, from the site's variables and the kernel verdict."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

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


class FilterModule:
    """apptainer role filters."""

    def filters(self):
        return {"apptainer_conf_settings": apptainer_conf_settings}
