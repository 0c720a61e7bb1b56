#!/usr/bin/env python3
"""Print the host kernel features the lab relies on, and the CVMFS mount mode its nodes will get.

The lab's nodes are containers: they share this kernel, so what it lacks they lack. Each feature is read the
way sitekit reads it on a node (``module_utils/sitekit_kernel``: the same automount verdict ``kernel_compat``
returns), plus a real unprivileged user namespace and a real shared mount propagation where that is the proof.

usage: lab/host-features.py            the table, then "mount mode: autofs|static (why)"
       lab/host-features.py --mode     only the mode the lab's worker nodes get: autofs or static
       lab/host-features.py --json     everything, as JSON

The mode is SITEKIT_LAB_MOUNT_MODE when it is set (autofs or static), else autofs where the kernel can
automount and static where it cannot: what the cvmfs role's ``cvmfs_mount_mode: auto`` decides on the nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "module_utils"))
import sitekit_kernel

MODES = ("autofs", "static")


def _works(argv):
    try:
        return subprocess.run(argv, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def features(root="/"):
    """{name: {"ok": bool, "detail": str}} for every kernel feature the lab uses."""
    facts = sitekit_kernel.read_node(root)
    verdict = sitekit_kernel.assess(facts)
    filesystems = facts["filesystems"] or []
    automount = verdict["automount"]
    userns = _works(["unshare", "--user", "--map-root-user", "true"])
    return {
        "autofs": {
            "ok": automount["available"],
            "detail": automount["reason"] + ("" if automount["available"] else f" (remedy: {automount['remedy']})"),
        },
        "fuse": {"ok": "fuse" in filesystems, "detail": "fuse in /proc/filesystems" if "fuse" in filesystems else ""},
        "dev_fuse": {
            "ok": facts["dev_fuse"],
            "detail": f"/dev/fuse mode {facts['dev_fuse_mode']} (the lab's nodes open it to users: 0666)"
            if facts["dev_fuse"]
            else "no /dev/fuse",
        },
        "overlay": {"ok": "overlay" in filesystems, "detail": "overlay in /proc/filesystems"},
        "squashfs": {"ok": "squashfs" in filesystems, "detail": "squashfs in /proc/filesystems"},
        "userns": {
            "ok": userns,
            "detail": f"`unshare --user --map-root-user true` {'works' if userns else 'fails'} "
            f"(user.max_user_namespaces = {facts['max_user_namespaces']})",
        },
        "kernel": {"ok": True, "detail": facts["kernel_release"] or "unknown"},
    }


def lab_mode(found, env=None):
    """(mode, why) for the lab's worker nodes."""
    env = os.environ if env is None else env
    forced = env.get("SITEKIT_LAB_MOUNT_MODE", "")
    if forced:
        if forced not in MODES:
            sys.exit(f"host-features: SITEKIT_LAB_MOUNT_MODE={forced!r}: use autofs or static (or leave it unset)")
        if forced == "autofs" and not found["autofs"]["ok"]:
            sys.exit(
                "host-features: SITEKIT_LAB_MOUNT_MODE=autofs, but this host's kernel cannot automount: "
                + found["autofs"]["detail"]
            )
        return forced, "forced by SITEKIT_LAB_MOUNT_MODE"
    if found["autofs"]["ok"]:
        return "autofs", "the host kernel can automount"
    return "static", "the host kernel has no autofs"


def main():
    found = features()
    mode, why = lab_mode(found)
    if "--mode" in sys.argv[1:]:
        print(mode)
        return
    if "--json" in sys.argv[1:]:
        print(json.dumps({"features": found, "mount_mode": mode, "why": why}, indent=1))
        return
    print("host kernel features the lab relies on:")
    for name, item in found.items():
        print(f"  {name:<9} {'yes' if item['ok'] else 'NO ':<4} {item['detail']}")
    print(f"CVMFS mount mode of the lab's worker nodes: {mode} ({why})")
    if mode == "static":
        print("  autofs proofs (mount on access, expiry without the keep-alive, kept with it) are skipped: " + why)


if __name__ == "__main__":
    main()
