#!/usr/bin/python
"""Ansible module kernel_compat: can this node run unprivileged Apptainer containers?"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_compat
short_description: Judge whether a node can run unprivileged Apptainer containers, and what would make it able to
description:
  - Reads the kernel, user namespace, FUSE, AppArmor and Apptainer facts of a node from files under O(root) and
    nowhere else, so that the same code judges the running system (O(root=/)) and recorded platform trees.
  - Returns the best container mode available now (V(unprivileged), V(setuid) or V(unsupported)), the overlay
    Apptainer would use, whether SIF images mount unprivileged, the cvmfsexec modes that work, and an ordered list
    of exact remediation steps. Sets the same dictionary as the fact C(kernel_compat).
  - Read-only. Changes nothing, in check mode or not.
  - Per platform, for example EL7.4-7.5 kernels need both
    C(user.max_user_namespaces) > 0 and the boot argument C(namespace.unpriv_enable=1); Ubuntu 23.10 and later
    need an AppArmor profile with C(userns,) for the installed starter.
  - When O(root=/), the Apptainer version comes from running C(apptainer --version); on a recorded tree it comes
    from C(var/lib/dpkg/status) when that exists, else it is null.
options:
  root:
    description:
      - The directory to read the node's files from, V(/) for the running system.
      - Reads C(etc/os-release), C(etc/redhat-release), C(proc/sys/kernel/osrelease),
        C(proc/sys/user/max_user_namespaces), C(proc/sys/kernel/unprivileged_userns_clone),
        C(proc/sys/kernel/apparmor_restrict_unprivileged_userns), C(proc/cmdline), C(proc/filesystems), C(dev/fuse),
        C(dev/autofs), C(lib/modules/<release>/modules.builtin) and the autofs module below C(lib/modules/<release>),
        C(etc/apparmor.d), C(etc/apptainer/apptainer.conf) (or C(usr/local/etc/apptainer/apptainer.conf), or
        singularity.conf for Singularity), C(var/lib/dpkg/status), the fusermount, fuse-overlayfs, apptainer and
        singularity binaries and the Apptainer starters below it.
      - A symlink that leads out of O(root) counts as absent.
    type: path
    default: /
  require:
    description:
      - V(none) only reports.
      - V(unprivileged) fails the task unless user namespaces work for Apptainer now (mode V(unprivileged)).
      - V(setuid) fails the task unless containers run at all (mode V(setuid) or V(unprivileged)).
      - A failure's message lists the remediation steps in order; the result keys are returned as well.
    type: str
    choices: [none, unprivileged, setuid]
    default: none
extends_documentation_fragment: [action_common_attributes, sitekit.read_only]
notes:
  - The verdict describes an unprivileged user on the node. It does not test by creating namespaces; where the rules
    cannot know (unprivileged kernel overlayfs on EL8), a note says how to probe.
  - C(overlay) describes Apptainer's user-namespace mode as configured, once user namespaces are on; C(sif) and
    C(cvmfsexec_modes) describe the node as it is now.
seealso:
  - name: Apptainer admin guide, user namespace requirements
    description: The upstream description of what unprivileged mode needs.
    link: https://apptainer.org/docs/admin/main/user_namespace.html
author:
  - sitekit
"""

EXAMPLES = r"""
- name: Judge the node's container support (sets ansible_facts.kernel_compat)
  kernel_compat:

- name: Refuse a node that cannot run unprivileged containers, listing the fixes
  kernel_compat:
    require: unprivileged

- name: Judge a recorded platform tree on the controller
  kernel_compat:
    root: /srv/platform-trees/el7.9
  delegate_to: localhost

- name: Show the remediation steps
  ansible.builtin.debug:
    msg: "{{ item.kind }} {{ item.key }}: {{ item.action }}"
  loop: "{{ ansible_facts.kernel_compat.remediation }}"
  loop_control:
    label: "{{ item.kind }} {{ item.key }}"
"""

RETURN = r"""
platform:
  description: The platform id; C(el7.<minor>) for EL7 (from redhat-release), C(<ID><VERSION_ID>) or C(unknown) else.
  returned: always
  type: str
  sample: el7.9
kernel:
  description: The kernel release, or null when C(proc/sys/kernel/osrelease) is unreadable.
  returned: always
  type: str
  sample: 3.10.0-1160.119.1.el7.x86_64
kernel_version:
  description: The kernel version as [major, minor, patch], or null.
  returned: always
  type: list
  elements: int
  sample: [3, 10, 0]
kernel_build:
  description: On EL, the kernel's build number (3.10.0-1160 -> 1160); null elsewhere.
  returned: always
  type: int
  sample: 1160
userns_enabled:
  description: Whether an unprivileged user can create the user and mount namespaces Apptainer needs, now.
  returned: always
  type: bool
  sample: true
apparmor_userns_profile:
  description: The AppArmor profile file that lets the installed starter create user namespaces, or null.
  returned: always
  type: str
  sample: /etc/apparmor.d/apptainer
mode:
  description: The best container mode available now.
  returned: always
  type: str
  choices: [unprivileged, setuid, unsupported]
  sample: unprivileged
overlay:
  description: The overlay Apptainer's user-namespace mode uses here, as apptainer.conf and the kernel decide.
  returned: always
  type: str
  choices: [kernel, fuse-overlayfs, underlay]
  sample: fuse-overlayfs
sif:
  description: Whether SIF images mount unprivileged now (FUSE in a user namespace, user namespaces on, dev/fuse).
  returned: always
  type: bool
  sample: true
fuse_in_userns:
  description: Whether the kernel can mount FUSE inside a user namespace (4.18 or later, or EL7 3.10.0-1127 or later).
  returned: always
  type: bool
  sample: true
cvmfsexec_modes:
  description: The cvmfsexec modes (1 mountrepo, 2 cvmfsexec with fusermount, 3 cvmfsexec, 4 singcvmfs) that work now.
  returned: always
  type: list
  elements: int
  sample: [1, 2, 3, 4]
apptainer:
  description: The installed Apptainer or Singularity; nulls when absent.
  returned: always
  type: dict
  contains:
    path:
      description: The binary.
      type: str
      sample: /usr/bin/apptainer
    version:
      description: Its version (from C(--version) on the running system, from the dpkg status on a tree), or null.
      type: str
      sample: 1.3.6-1.el9
    starter:
      description: The (unprivileged) starter binary.
      type: str
      sample: /usr/libexec/apptainer/bin/starter
    setuid_starter:
      description: The starter-suid binary when it carries the setuid bit, else null.
      type: str
      sample: /usr/libexec/apptainer/bin/starter-suid
  sample:
    path: /usr/bin/apptainer
    version: 1.3.6-1.el9
    starter: /usr/libexec/apptainer/bin/starter
    setuid_starter: null
automount:
  description:
    - Whether the kernel can automount (autofs), for CVMFS's autofs mounts; judged from C(proc/filesystems) and the
      autofs module of the running kernel under C(lib/modules/<release>) (a module not yet loaded counts; the
      automount daemon loads it), unless the boot argument C(nomodule) forbids loading it.
    - Not part of O(require) or C(ready): a node without autofs runs containers; it mounts CVMFS statically.
  returned: always
  type: dict
  contains:
    available:
      description: Whether autofs works now or once its module is loaded.
      type: bool
    loaded:
      description: Whether C(autofs) is registered in C(proc/filesystems) now.
      type: bool
    module:
      description: The module file, V(builtin) when C(modules.builtin) lists it, or null.
      type: str
    reason:
      description: The finding, as a sentence.
      type: str
    remedy:
      description: What to do (load the module, a kernel with autofs, or static mounts); null when autofs is loaded.
      type: str
  sample:
    available: false
    loaded: false
    module: null
    reason: "kernel 6.18.44-fc-v1252 has no autofs: it is not in proc/filesystems and no autofs module exists under
      lib/modules/6.18.44-fc-v1252"
    remedy: boot a kernel built with autofs (CONFIG_AUTOFS_FS=y or m), or mount CVMFS repositories statically ...
remediation:
  description:
    - The ordered steps that make the node capable of unprivileged mode with SIF images; empty when none is needed.
    - Each has C(kind) (sysctl, boot_arg, apparmor, package, device, kernel_upgrade, os_upgrade, reboot), C(key),
      C(value), C(action) (the exact command, or the file to write) and C(reason).
  returned: always
  type: list
  elements: dict
  sample:
    - kind: sysctl
      key: user.max_user_namespaces
      value: "15000"
      action: >-
        echo 'user.max_user_namespaces = 15000' >> /etc/sysctl.d/90-sitekit-userns.conf
        && sysctl -w user.max_user_namespaces=15000
      reason: EL7 ships user.max_user_namespaces = 0, which turns user namespaces off; 15000 is OSG's value.
advice:
  description: Optional improvements shaped like C(remediation) (kind may also be C(config)), e.g. fuse-overlayfs.
  returned: always
  type: list
  elements: dict
  sample:
    - kind: package
      key: fuse-overlayfs
      value: installed
      action: dnf -y install fuse-overlayfs
      reason: without kernel overlayfs for unprivileged users, Apptainer falls back to underlay
notes:
  description: Why user namespaces are off, what needs a probe, and other observations, as sentences.
  returned: always
  type: list
  elements: str
  sample: ["user namespaces: user.max_user_namespaces is 0 (the EL7 default is 0)"]
ready:
  description: Whether mode is V(unprivileged).
  returned: always
  type: bool
  sample: false
facts:
  description: The raw values read under O(root), for transparency.
  returned: always
  type: dict
  sample:
    kernel_release: 3.10.0-1160.119.1.el7.x86_64
    max_user_namespaces: 0
    cmdline: BOOT_IMAGE=/vmlinuz-3.10.0-1160.119.1.el7.x86_64 root=/dev/mapper/centos-root ro
    dev_fuse: true
ansible_facts:
  description: The same dictionary as the fact C(kernel_compat).
  returned: always
  type: dict
  contains:
    kernel_compat:
      description: All the keys above.
      type: dict
  sample:
    kernel_compat:
      platform: el9
      mode: unprivileged
      overlay: kernel
      sif: true
      ready: true
"""

# Imports follow the documentation, in the order every Ansible module uses.
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# AnsiballZ bundles module_utils/sitekit_kernel.py with the module. From the repository (unit tests, or
# `PYTHONPATH=module_utils python library/kernel_compat.py ARGS.json`) module_utils is on the path instead.
try:
    from ansible.module_utils import sitekit_kernel as kernel
except ImportError:
    import sitekit_kernel as kernel


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "default": "/"},
            "require": {"type": "str", "default": "none", "choices": ["none", "unprivileged", "setuid"]},
        },
        supports_check_mode=True,
    )
    root = module.params["root"]
    if not os.path.isdir(root):
        module.fail_json(
            msg=f"kernel_compat: root {root!r} is not a directory. Set root to / (the running system) or to the "
            "directory of a recorded platform tree."
        )

    def run_version(binary):
        rc, out, _ = module.run_command([binary, "--version"], environ_update={"LANG": "C", "LC_ALL": "C"})
        return kernel.parse_version_output(out) if rc == 0 else None

    # Only the running system's binaries are run; a recorded tree's version comes from its dpkg status.
    result = kernel.check_node(root, run_version if os.path.realpath(root) == "/" else None)
    msg = kernel.requirement_failure(result, module.params["require"])
    if msg:
        module.fail_json(msg=msg, changed=False, **result)
    module.exit_json(changed=False, ansible_facts={"kernel_compat": result}, **result)


if __name__ == "__main__":
    main()
