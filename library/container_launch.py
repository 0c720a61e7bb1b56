#!/usr/bin/python
"""Ansible module container_launch: launch a real container as a pilot's user, the way GlideinWMS does."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_launch
short_description: Launch a real Apptainer container as an unprivileged user, the way grid pilots do, and report
description:
  - Runs C(apptainer exec --contain --ipc --pid --home SCRATCH:/srv --pwd /srv --bind BINDS IMAGE /bin/sh -c PROBE)
    as O(user), with C(LANG=C), the launch line GlideinWMS pilots use, and reports whether the container started
    and what it saw.
  - The probe is a small POSIX sh script (shell builtins and C(rm) only) that reports the working directory, the
    processes visible in C(/proc) (PID namespace), each bind, whether C(/srv) is the scratch directory and
    writable, which host C(PATH) and C(LD_LIBRARY_PATH) entries exist in the image, the image's C(PRETTY_NAME),
    and the exit code of an optional O(command).
  - The scratch directory is made below O(scratch_base) with a C(#) in its name (as HTCondor execute directories
    can have), owned by O(user), mode C(0700), and removed before the module returns, also after a failure or a
    timeout. Apptainer's own per-user directory (C(.apptainer)) goes there too, because C(HOME) points there.
  - Apptainer error text is mapped to a C(cause) and a C(remedy) (user namespaces off, Debian's
    C(unprivileged_userns_clone), the AppArmor restriction, EL7 kernels, CVMFS autofs and crashed clients,
    C(/dev/fuse) permissions, missing images and bind sources, timeouts).
  - A read-only probe. Changes nothing on the node, so it runs in check mode as well; C(changed) is always false.
options:
  image:
    description:
      - The image, a flat (unpacked) directory as images are distributed on CVMFS, or a SIF file.
    type: path
    required: true
  user:
    description:
      - The existing unprivileged user to launch as (the pilot's account). Root (uid 0) is refused.
      - Launching as another user needs root (C(become=true)).
    type: str
    required: true
  binds:
    description:
      - Paths to bind, each C(src), C(src:dst) or C(src:dst:ro) as C(--bind) takes one; they are passed as one
        C(--bind) list, in this order.
      - Each source must exist on the host; each destination (or the source) is looked for inside the container.
    type: list
    elements: str
    default: []
  scratch_base:
    description:
      - Where the scratch directory (C(sitekit#launch-XXXXXXXX)) is made; O(user) must be able to reach it.
    type: path
    default: /tmp
  apptainer:
    description:
      - The Apptainer (or Singularity) binary; default the first of C(apptainer), C(singularity) on the PATH.
    type: path
  command:
    description:
      - An extra command (argv) run inside the container after the probe; its exit code becomes the C(command)
        check. Its output is in that check's detail.
    type: list
    elements: str
  host_env:
    description:
      - The host C(PATH) and C(LD_LIBRARY_PATH) a pilot passes into the job (keys C(PATH), C(LD_LIBRARY_PATH);
        others are ignored). Default, the module's own.
      - They are passed as C(APPTAINERENV_PATH) and C(APPTAINERENV_LD_LIBRARY_PATH) (C(SINGULARITYENV_) for a
        singularity binary), since Apptainer does not carry the launching process's PATH or LD_LIBRARY_PATH into
        the container, and each entry is looked for in the image (the classic trap, EL7 host paths in an EL6
        image).
    type: dict
  host_path_policy:
    description:
      - Whether host C(PATH) and C(LD_LIBRARY_PATH) entries missing in the image make the node not ready.
      - C(warn) reports them in the C(host_paths) check and leaves RV(ready) to the other checks (Apptainer replaces
        C(PATH) unless a pilot forwards it); C(fail) counts them like any other check. The C(validate.yml) playbook,
        the compliance gate and the node self-check all use the default, so they give a node the same verdict.
    type: str
    choices: [warn, fail]
    default: warn
  minimum_version:
    description:
      - The oldest Apptainer release the node may run; below it the C(version) check fails and the node is not
        ready, with the advisory as RV(cause) and the upgrade command for the node's package family (apt-get, dnf)
        as RV(remedy). Package revisions are left out of the comparison (C(1.4.5-2) and C(1.4.5-1.el9) are 1.4.5; a
        pre-release C(1.4.5~rc.1) or C(1.4.5-rc.1) is older).
      - The default is the newest release that fixed a published security advisory, 1.4.5
        (GHSA-j3rw-fx6g-q46j, CVE-2025-65105). An empty string leaves the version unjudged. SingularityCE and
        Singularity 3 have no minimum here (the check passes and says so).
    type: str
    default: "1.4.5"
  contain:
    description: Pass C(--contain) (no host /home, /tmp, /var/tmp), as pilots do.
    type: bool
    default: true
  ipc:
    description: Pass C(--ipc) (own IPC namespace), as pilots do.
    type: bool
    default: true
  pid:
    description:
      - Pass C(--pid) (own PID namespace), as OSG pilots do; the C(pid_namespace) check then requires that the
        container sees only its own processes. When false, that check only reports.
    type: bool
    default: true
  extra_args:
    description: More arguments for C(apptainer exec), placed before the image.
    type: list
    elements: str
    default: []
  timeout:
    description:
      - Seconds the launch (and the baseline) may take; then the whole process session is killed with SIGKILL and
        the launch reported as timed out.
    type: int
    default: 60
  baseline:
    description:
      - Also time a bare C(apptainer exec IMAGE /bin/true) as the same user, after the launch, returned as
        C(baseline_seconds).
    type: bool
    default: false
  fail_on_error:
    description:
      - Fail the task when the node cannot launch (no Apptainer, image or bind source missing, the launch fails
        or times out), with the cause and remedy in the message.
      - When false, such a node is reported with C(ready=false) and the task succeeds. Wrong arguments (unknown
        or root user, malformed binds, a timeout below 1) fail either way. Checks that fail after a successful
        launch (a bind not visible, host paths missing) never fail the task; they make C(ready) false.
    type: bool
    default: true
extends_documentation_fragment: [action_common_attributes, sitekit.read_only]
notes:
  - The user is switched by the module itself (group, supplementary groups, uid) before Apptainer starts, in a new
    session; a clean environment is used (C(PATH) of the module, C(HOME) the scratch directory, C(LANG=C)), so
    C(APPTAINER_BINDPATH) and other Apptainer variables of the caller do not leak in; put binds in O(binds).
  - The launch runs first, the baseline after it, so C(launch_seconds) includes what the first launch on a node
    pays (cold caches, CVMFS fetches) and C(baseline_seconds) is a warm lower bound.
  - The C(pid_namespace) check asks that the module's own host process is invisible inside and that the container
    sees few processes (at most 20, and fewer than the host). With C(--pid) Apptainer 1.4 runs C(appinit) as
    PID 1.
  - Observed with Apptainer 1.4.5, a C(bind path) of apptainer.conf whose source is missing is skipped silently with
    C(--contain) but fatal without it, so the bare baseline can fail where the pilot's launch works; the baseline's
    failure is a warning, and C(baseline_seconds) stays null.
  - Paths with tabs or newlines cannot be checked and are refused.
seealso:
  - module: kernel_compat
  - name: GlideinWMS and OSG container requirements
    description: How pilots launch jobs in containers.
    link: https://osg-htc.org/docs/worker-node/install-apptainer/
author:
  - sitekit
"""

EXAMPLES = r"""
- name: Launch a container as the pilot's user, as GlideinWMS does
  container_launch:
    image: /cvmfs/singularity.opensciencegrid.org/opensciencegrid/osgvo-el9:latest
    user: osgpilot
    binds: [/cvmfs, /etc/hosts, /etc/localtime]
  become: true

- name: Report (not fail) and time the launch against a bare one
  container_launch:
    image: /srv/images/debian12
    user: sitekit-probe
    baseline: true
    fail_on_error: false
  become: true
  register: __launch

- name: Show the launch time and every failing check
  ansible.builtin.debug:
    msg: >-
      {{ __launch.launch_seconds }} s (bare: {{ __launch.baseline_seconds }} s);
      {{ __launch.checks | dict2items | rejectattr('value.ok') | map(attribute='key') | list }}
      {{ __launch.cause | default('', true) }}

- name: Run the job's own test inside, with the pilot's EL7 host PATH
  container_launch:
    image: /cvmfs/singularity.opensciencegrid.org/opensciencegrid/osgvo-el7:latest
    user: osgpilot
    binds: [/cvmfs]
    host_env:
      PATH: /usr/lib64/qt-3.3/bin:/usr/local/bin:/usr/bin
      LD_LIBRARY_PATH: /opt/glite/lib64
    command: [python3, -c, "import ssl; print(ssl.OPENSSL_VERSION)"]
    timeout: 300
  become: true
"""

RETURN = r"""
ready:
  description:
    - Whether the container launched and every check passed; C(host_paths) counts only with O(host_path_policy=fail).
  returned: always
  type: bool
  sample: true
launch_seconds:
  description: Wall time of the launch, in seconds; null when nothing was launched.
  returned: always
  type: float
  sample: 0.21
baseline_seconds:
  description: Wall time of C(apptainer exec IMAGE /bin/true) as the same user, with O(baseline); else null.
  returned: always
  type: float
  sample: 0.09
image:
  description: The image, as given.
  returned: always
  type: str
  sample: /cvmfs/singularity.opensciencegrid.org/opensciencegrid/osgvo-el9:latest
user:
  description: The user the container ran as.
  returned: always
  type: str
  sample: osgpilot
apptainer:
  description: The binary used and its version (nulls when none was found).
  returned: always
  type: dict
  sample: {path: /usr/bin/apptainer, version: 1.4.5}
  contains:
    path: {description: The binary., type: str, sample: /usr/bin/apptainer}
    version: {description: What C(--version) printed (the version only), or null., type: str, sample: 1.4.5-2}
command:
  description: The argv the launch ran (the probe script is one element); null when nothing was launched.
  returned: always
  type: list
  elements: str
  sample:
    - /usr/bin/apptainer
    - exec
    - --contain
    - --ipc
    - --pid
    - --home
    - "/tmp/sitekit#launch-x1y2z3ab:/srv"
    - --pwd
    - /srv
    - --bind
    - /etc/hosts,/cvmfs
    - /srv/images/debian12
    - /bin/sh
    - -c
    - "t=sitekit-3f2a...\n..."
    - sitekit-probe
image_os:
  description: The image's PRETTY_NAME (os-release; else redhat-release, system-release, debian_version), or null.
  returned: always
  type: str
  sample: Debian GNU/Linux 12 (bookworm)
checks:
  description:
    - Each check as C({ok, detail}). Always C(launch), C(pid_namespace), C(binds), C(scratch), C(host_paths);
      C(command) when O(command) is given; C(version) (the Apptainer found against O(minimum_version)) once an
      Apptainer was found. When the launch failed, every check but C(version) is false with C(not run) in the
      detail.
    - C(host_paths) is false when any host entry is missing in the image; the pilot must then set the container's
      own values, which is the trap the check is there to show.
  returned: always
  type: dict
  sample:
    launch: {ok: true, detail: "launched in 0.21 s, probe complete"}
    pid_namespace:
      ok: true
      detail: "own PID namespace: the container sees 3 processes (host: 41), PID 1 is 'appinit'; ..."
    binds: {ok: true, detail: "visible inside: /etc/hosts, /cvmfs"}
    scratch: {ok: true, detail: "/tmp/sitekit#launch-x1y2z3ab mounted at /srv: working directory, writable"}
    host_paths: {ok: false, detail: "host entries missing in the image: PATH /usr/lib64/qt-3.3/bin. ..."}
    version: {ok: true, detail: "Apptainer 1.4.5-2, at least 1.4.5"}
error:
  description: An excerpt of Apptainer's error output (its FATAL/ERROR lines), or null.
  returned: always
  type: str
  sample: "FATAL:   container creation failed: mount hook function failure: ..."
cause:
  description: What the error means, or null when there is none.
  returned: always
  type: str
  sample: "user namespaces are off: user.max_user_namespaces is 0 (or all are in use)"
remedy:
  description: What to do about it, or null.
  returned: always
  type: str
  sample: "raise user.max_user_namespaces ...: echo 'user.max_user_namespaces = 15000' >> ..."
"""

# Imports follow the documentation, in the order every Ansible module uses.
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# AnsiballZ bundles module_utils/sitekit_launch.py and what it imports with the module. From the
# repository (unit tests, `PYTHONPATH=module_utils python library/container_launch.py ARGS.json`) it is on the path.
try:
    from ansible.module_utils import sitekit_launch as launch
except ImportError:
    import sitekit_launch as launch

empty_result = launch.empty_result


def main():
    module = AnsibleModule(
        argument_spec={
            "image": {"type": "path", "required": True},
            "user": {"type": "str", "required": True},
            "binds": {"type": "list", "elements": "str", "default": []},
            "scratch_base": {"type": "path", "default": "/tmp"},
            "apptainer": {"type": "path"},
            "command": {"type": "list", "elements": "str"},
            "host_env": {"type": "dict"},
            "host_path_policy": {"type": "str", "choices": list(launch.HOST_PATH_POLICIES), "default": "warn"},
            "contain": {"type": "bool", "default": True},
            "ipc": {"type": "bool", "default": True},
            "pid": {"type": "bool", "default": True},
            "extra_args": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 60},
            "baseline": {"type": "bool", "default": False},
            "fail_on_error": {"type": "bool", "default": True},
            "minimum_version": {"type": "str", "default": launch.versions.APPTAINER_MINIMUM},
        },
        supports_check_mode=True,
    )
    p = module.params
    host_env = p["host_env"]
    if host_env is None:
        host_env = {var: os.environ.get(var, "") for var in launch.HOST_PATH_VARS}
    try:
        result, problem, warnings = launch.launch(
            p["image"],
            p["user"],
            binds=p["binds"],
            scratch_base=p["scratch_base"],
            apptainer=p["apptainer"],
            command=p["command"] or [],
            host_env=host_env,
            contain=p["contain"],
            ipc=p["ipc"],
            pid=p["pid"],
            extra_args=p["extra_args"],
            timeout=p["timeout"],
            baseline=p["baseline"],
            host_path_policy=p["host_path_policy"],
            search_path=os.environ.get("PATH") or launch.SEARCH_PATH,
            which=module.get_bin_path,
            minimum_version=p["minimum_version"],
        )
    except launch.LaunchArgumentError as exc:
        # Wrong arguments fail whatever fail_on_error says.
        result = launch.empty_result(p["image"], p["user"], bool(p["command"]))
        result.update(cause="wrong module arguments", remedy=str(exc))
        module.fail_json(msg=f"container_launch: {exc}", **result)
    for warning in warnings:
        module.warn(warning)
    if problem and p["fail_on_error"]:
        module.fail_json(
            msg=f"container_launch: {problem}. Cause: {result['cause']}. Remedy: {result['remedy']}", **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
