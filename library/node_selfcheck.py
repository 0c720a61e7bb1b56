#!/usr/bin/python
"""Ansible module node_selfcheck: the node self-check HTCondor's startd cron job runs, from Ansible."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_selfcheck
short_description: Judge the kernel, probe CVMFS and launch the site image, as the node's self-check does
description:
  - Runs the same self-check as the node-side command C(/usr/local/sbin/sitekit-selfcheck) that an HTCondor startd
    cron job runs (the C(htcondor_apptainer) role installs both); the logic is one implementation,
    C(module_utils/sitekit_selfcheck.py).
  - Three checks, in order, under one time budget O(timeout). C(kernel) is the C(kernel_compat) verdict (containers
    can run in unprivileged or setuid mode). C(cvmfs) accesses each of O(repositories) as the C(cvmfs_probe) module
    does, and judges C(CVMFS_NFILES) and the cache (C(CVMFS_CACHE_BASE) on a local disk that holds
    C(CVMFS_QUOTA_LIMIT) + 20 % + 1024 MB) as it does. C(launch) starts O(image) as O(user) the way a pilot does
    (C(--contain --ipc --pid), a scratch directory whose name has a C(#) as C(/srv), O(binds)) and checks what the
    container saw, as C(container_launch) does.
  - RV(ready) is true when all three pass; RV(reason) is the first failing check's cause and remedy. RV(classad) is
    what the startd cron job publishes (C(SitekitReady), C(SitekitReason), C(SitekitLaunchSeconds),
    C(SitekitKernelVerdict), ...).
  - Read-only. It changes nothing, runs the same in check mode, and always returns changed=false.
options:
  image:
    description: The image jobs run in (a flat image directory, as on CVMFS, or a SIF file).
    type: str
    required: true
  user:
    description:
      - The unprivileged account the launch runs as when the module runs as root (with C(become)); otherwise the
        launch runs as the connecting user.
    type: str
    default: sitekit-probe
  repositories:
    description: CVMFS repositories that must be readable, fully qualified; none means the check passes.
    type: list
    elements: str
    default: []
  mountpoint:
    description: Where the repositories are mounted.
    type: path
    default: /cvmfs
  binds:
    description: Binds the launch passes, as C(src) or C(src:dst[:ro|rw]); each source must exist on the node.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds the three checks may take in all; a hung check is killed with what is left.
    type: int
    default: 60
  apptainer:
    description: The Apptainer binary; default the first C(apptainer) or C(singularity) on the standard path.
    type: path
  host_path_policy:
    description:
      - Whether host C(PATH) entries missing in the image make the node not ready, as in C(container_launch); the
        self-check forwards no host C(PATH), so only C(warn) (the default) or C(fail) matter for its verdict.
    type: str
    choices: [warn, fail]
    default: warn
  minimum_version:
    description:
      - The oldest Apptainer the node may run, as in C(container_launch) (the same check); below it the node is not
        ready. The default, 1.4.5, fixed GHSA-j3rw-fx6g-q46j (CVE-2025-65105); empty leaves the version unjudged.
    type: str
    default: "1.4.5"
  images:
    description:
      - Named images launched after the site image, the same way (one per VO, or per VO and OS); RV(images_ready)
        names those that work. A broken one does not make the node not ready. Names are 1-64 letters, digits, C(.),
        C(_) or C(-), unique without regard to case; paths are absolute.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The image's name, what jobs test with C(member(name, SitekitImagesReady)).
        type: str
        required: true
      path:
        description: The image's absolute path on the node (a flat image directory or a SIF file).
        type: str
        required: true
  gpus:
    description:
      - On a node with NVIDIA GPUs (C(/dev/nvidia<N>) or C(/proc/driver/nvidia/gpus)), run HTCondor's
        C(condor_gpu_discovery -properties) and launch the site image with C(--nv) (RV(gpu)). A node without any skips
        it, saying why.
    type: bool
    default: true
  fail_on_error:
    description: Fail the task when the node is not ready (the message is the reason); else only report.
    type: bool
    default: false
extends_documentation_fragment: [action_common_attributes, sitekit.read_only]
notes:
  - The launch is real, so it needs Apptainer installed and user namespaces (or a setuid starter) on the node.
seealso:
  - module: kernel_compat
  - module: cvmfs_probe
  - module: container_launch
author:
  - sitekit
"""

EXAMPLES = r"""
- name: Prove the node ready the way HTCondor's startd cron job does
  node_selfcheck:
    image: /cvmfs/singularity.opensciencegrid.org/opensciencegrid/osgvo-el9:latest
    repositories: [singularity.opensciencegrid.org]
    binds: [/cvmfs]
    fail_on_error: true
  become: true
"""

RETURN = r"""
ready:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: true
reason:
  description: C(ready), or the first failing check's name, cause and remedy.
  returned: always
  type: str
  sample: "cvmfs: images.sitekit.lab: stat /cvmfs/images.sitekit.lab: [ENOENT] No such file or directory: ..."
failed_check:
  description: The first failing check (C(kernel), C(cvmfs), C(launch)), or an empty string.
  returned: always
  type: str
  sample: ""
kernel_verdict:
  description: The container mode of the kernel verdict (C(unprivileged), C(setuid), C(unsupported)).
  returned: always
  type: str
  sample: unprivileged
platform:
  description: The platform id of the kernel verdict.
  returned: always
  type: str
  sample: debian13
launch_seconds:
  description: Wall time of the launch; null when nothing was launched.
  returned: always
  type: float
  sample: 0.14
image:
  description: The image launched.
  returned: always
  type: str
  sample: /cvmfs/images.sitekit.lab/debian12
checked_at:
  description: When the check started, in seconds since the epoch.
  returned: always
  type: int
  sample: 1763800000
seconds:
  description: How long the three checks took.
  returned: always
  type: float
  sample: 0.41
checks:
  description: Each check (kernel, cvmfs, launch) with C(ok), C(detail), C(cause), C(remedy) and its own facts.
  returned: always
  type: dict
  sample:
    kernel: {name: kernel, ok: true, detail: "debian13, kernel 6.12.57+deb13-amd64: container mode unprivileged"}
images:
  description: One row per named image (name, path, ok, seconds, image_os, reason).
  returned: when O(images) is not empty
  type: list
  elements: dict
  sample: [{name: vo-a, path: /cvmfs/images.sitekit.lab/vo-a, ok: true, seconds: 0.12}]
images_ready:
  description: The names of the named images that launched.
  returned: when O(images) is not empty
  type: list
  elements: str
  sample: [debian12, vo-a]
images_failed:
  description: The names of the named images that did not launch.
  returned: when O(images) is not empty
  type: list
  elements: str
  sample: []
gpu:
  description:
    - The GPU check, C(count) (GPUs the driver shows), C(checked), C(ok) (null when skipped), C(discovered) (GPUs
      HTCondor's discovery found) and C(detail) (the reason when skipped).
  returned: always
  type: dict
  sample: {count: 0, checked: false, ok: null, discovered: null, detail: "skipped: no NVIDIA GPU on this node ..."}
classad:
  description: The machine attributes the startd cron job publishes for this result.
  returned: always
  type: str
  sample: "SitekitReady = true\nSitekitReason = \"ready\"\n..."
"""

# Imports follow the documentation, in the order every Ansible module uses.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# AnsiballZ bundles module_utils/sitekit_selfcheck.py and what it imports with the module. From the
# repository (unit tests, `PYTHONPATH=module_utils python library/node_selfcheck.py ARGS.json`) it is on the path.
try:
    from ansible.module_utils import sitekit_selfcheck as selfcheck
except ImportError:
    import sitekit_selfcheck as selfcheck


def main():
    module = AnsibleModule(
        argument_spec={
            "image": {"type": "str", "required": True},
            "user": {"type": "str", "default": "sitekit-probe"},
            "repositories": {"type": "list", "elements": "str", "default": []},
            "mountpoint": {"type": "path", "default": "/cvmfs"},
            "binds": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 60},
            "apptainer": {"type": "path"},
            "host_path_policy": {"type": "str", "choices": ["warn", "fail"], "default": "warn"},
            "minimum_version": {"type": "str", "default": selfcheck.DEFAULTS["minimum_version"]},
            "images": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {"name": {"type": "str", "required": True}, "path": {"type": "str", "required": True}},
            },
            "gpus": {"type": "bool", "default": True},
            "fail_on_error": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    settings = {key: params[key] for key in selfcheck.DEFAULTS if key != "scratch_base"}
    try:
        config = selfcheck.validate_config(settings)
    except ValueError as exc:
        module.fail_json(msg=f"node_selfcheck: {exc}.")
    # Check mode runs the same: every check only reads (a launch leaves nothing behind).
    result = selfcheck.run(config)
    result["classad"] = selfcheck.to_classad(result)
    if params["fail_on_error"] and not result["ready"]:
        module.fail_json(msg=f"node_selfcheck: the node is not ready: {result['reason']}", changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
