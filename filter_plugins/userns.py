"""The userns role's plan: from a node's kernel_compat verdict to the settings that turn user namespaces on."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# Keys the userns role may persist in its sysctl file; a key it no longer wants is removed there.
MANAGED_SYSCTLS = (
    "user.max_user_namespaces",
    "kernel.unprivileged_userns_clone",
    "kernel.apparmor_restrict_unprivileged_userns",
    "user.max_net_namespaces",
)
EL7_BOOT_ARG = "namespace.unpriv_enable=1"
EL7_BOOT_ARG_BUILDS = range(693, 957)  # EL7.4-7.5 kernels: 3.10.0-693 .. -956
MANUAL_KINDS = ("kernel_upgrade", "os_upgrade")


def _require(compat, key):
    if not isinstance(compat, dict) or key not in compat:
        raise AnsibleFilterError(
            f"userns_plan: expected the kernel_compat module's result (a dict with '{key}'), got {compat!r:.120}"
        )
    return compat[key]


def userns_plan(
    compat,
    max_user_namespaces=15000,
    apparmor_method="profile",
    disable_net_namespaces=False,
    persisted=None,
    starter="",
):
    """What the userns role must set on a node, from its kernel_compat verdict.

    ``persisted`` holds the keys sitekit's sysctl file already sets (a key sitekit wrote stays
    managed, so the plan does not flip once the kernel value changed). Returns a dict:
    ``sysctl`` {key: value} to persist and apply, ``absent`` [keys to drop from the file],
    ``boot_args``, ``apparmor_starter`` (path or ''), ``manual`` (remediation steps no
    configuration can do: kernel or OS upgrades), ``errors`` (bad input: the role fails on them).
    """
    facts = _require(compat, "facts")
    platform = str(_require(compat, "platform"))
    build = compat.get("kernel_build")
    if not isinstance(max_user_namespaces, int) or isinstance(max_user_namespaces, bool) or max_user_namespaces < 1:
        raise AnsibleFilterError(
            f"userns_plan: max_user_namespaces must be a positive integer, got {max_user_namespaces!r}"
        )
    if apparmor_method not in ("profile", "sysctl"):
        raise AnsibleFilterError(f"userns_plan: apparmor_method must be 'profile' or 'sysctl', got {apparmor_method!r}")
    persisted = dict(persisted or {})
    sysctl, errors, notes = {}, [], []

    current = facts.get("max_user_namespaces")
    el7 = platform == "el7" or platform.startswith("el7.")
    if current is not None and (el7 or current == 0 or "user.max_user_namespaces" in persisted):
        ours = "user.max_user_namespaces" in persisted
        if current > max_user_namespaces and not ours:
            errors.append(
                f"userns_max_user_namespaces={max_user_namespaces} would lower the kernel's user.max_user_namespaces="
                f"{current}: set userns_max_user_namespaces to {current} or more (sitekit never lowers it)"
            )
        else:
            sysctl["user.max_user_namespaces"] = max_user_namespaces
    elif current is None and el7:
        notes.append("this kernel has no user.max_user_namespaces: a kernel upgrade comes first")

    if facts.get("unprivileged_userns_clone") is not None:
        sysctl["kernel.unprivileged_userns_clone"] = 1

    apparmor_starter = ""
    if facts.get("apparmor_restrict_unprivileged_userns") is not None:
        if apparmor_method == "sysctl":
            sysctl["kernel.apparmor_restrict_unprivileged_userns"] = 0
        elif (
            facts["apparmor_restrict_unprivileged_userns"] == 1
            or "kernel.apparmor_restrict_unprivileged_userns" in persisted
        ):
            apparmor_starter = starter or (compat.get("apptainer") or {}).get("starter") or ""
            if not apparmor_starter:
                notes.append(
                    "AppArmor restricts user namespaces and no Apptainer starter is installed yet: the profile is "
                    "written once Apptainer is (or set userns_apparmor_starter)"
                )

    if disable_net_namespaces:
        sysctl["user.max_net_namespaces"] = 0

    boot_args = [EL7_BOOT_ARG] if el7 and isinstance(build, int) and build in EL7_BOOT_ARG_BUILDS else []
    manual = [step for step in compat.get("remediation", []) if step.get("kind") in MANUAL_KINDS]
    return {
        "sysctl": sysctl,
        "absent": [k for k in MANAGED_SYSCTLS if k not in sysctl and k in persisted],
        "boot_args": boot_args,
        "apparmor_starter": apparmor_starter,
        "manual": manual,
        "errors": errors,
        "notes": notes,
    }


def sysctl_conf_values(text):
    """``key = value`` lines of a sysctl.d file as a dict (comments and blank lines skipped)."""
    if text is None:
        return {}
    if not isinstance(text, str):
        raise AnsibleFilterError(f"sysctl_conf_values: expected the text of a sysctl file, got {type(text).__name__}")
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        values[key.lstrip("-")] = value
    return values


class FilterModule:
    """userns role filters."""

    def filters(self):
        return {"userns_plan": userns_plan, "sysctl_conf_values": sysctl_conf_values}
