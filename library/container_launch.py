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
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    platforms: posix
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
  description: Whether the container launched and every check passed.
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
  contains:
    path:
      description: The binary.
      type: str
      sample: /usr/bin/apptainer
    version:
      description: What C(--version) printed (the version only), or null.
      type: str
      sample: 1.4.5
  sample:
    path: /usr/bin/apptainer
    version: 1.4.5
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
      C(command) when O(command) is given. When the launch failed, every check is false with C(not run) in the
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

# Imports follow the documentation, in the order every Ansible module uses (STYLE.md: module file order).
import os  # noqa: E402
import pwd  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# Ansible's AnsiballZ finds these imports and bundles module_utils/sitekit_*.py with the module. The fallback
# serves only `python library/container_launch.py ARGS.json` run from the repository (and unit tests), where the
# ansible.module_utils package does not contain sitekit's module_utils.
try:
    from ansible.module_utils.sitekit_kernel import parse_version_output
    from ansible.module_utils.sitekit_launch import (
        CVMFS_APPTAINER,
        MARKER_NAME,
        SCRATCH_PREFIX,
        build_baseline_argv,
        build_launch_argv,
        build_probe,
        count_processes,
        diagnose,
        diagnose_host_path,
        error_excerpt,
        evaluate,
        host_path_problem,
        launch_env,
        not_run_checks,
        parse_bind,
        parse_probe_output,
        run_as,
        split_path_list,
        timeout_stage,
    )
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
    from sitekit_kernel import parse_version_output
    from sitekit_launch import (
        CVMFS_APPTAINER,
        MARKER_NAME,
        SCRATCH_PREFIX,
        build_baseline_argv,
        build_launch_argv,
        build_probe,
        count_processes,
        diagnose,
        diagnose_host_path,
        error_excerpt,
        evaluate,
        host_path_problem,
        launch_env,
        not_run_checks,
        parse_bind,
        parse_probe_output,
        run_as,
        split_path_list,
        timeout_stage,
    )

DEFAULT_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def empty_result(image, user, command_given=False):
    """Every return key, as it is before anything ran."""
    return {
        "changed": False,
        "ready": False,
        "launch_seconds": None,
        "baseline_seconds": None,
        "image": image,
        "user": user,
        "apptainer": {"path": None, "version": None},
        "command": None,
        "image_os": None,
        "checks": not_run_checks("nothing was launched", command_given=command_given),
        "error": None,
        "cause": None,
        "remedy": None,
    }


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
            "contain": {"type": "bool", "default": True},
            "ipc": {"type": "bool", "default": True},
            "pid": {"type": "bool", "default": True},
            "extra_args": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 60},
            "baseline": {"type": "bool", "default": False},
            "fail_on_error": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    image, user = p["image"], p["user"]
    command = p["command"] or []
    result = empty_result(image, user, bool(command))

    def usage_error(msg):
        """Wrong arguments: fail whatever fail_on_error says."""
        result.update(cause="wrong module arguments", remedy=msg)
        module.fail_json(msg=f"container_launch: {msg}", **result)

    def node_error(msg, cause, remedy, error=None):
        """The node cannot launch: fail, or report with fail_on_error=false."""
        result.update(error=error or msg, cause=cause, remedy=remedy)
        result["checks"] = not_run_checks(msg, [parse_bind(b)[1] for b in p["binds"]], bool(command))
        if p["fail_on_error"]:
            module.fail_json(msg=f"container_launch: {msg}. Cause: {cause}. Remedy: {remedy}", **result)
        module.exit_json(**result)

    # --- Arguments
    if p["timeout"] < 1:
        usage_error(f"timeout must be a positive number of seconds, got {p['timeout']}")
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        usage_error(f"user {user!r} does not exist on this node: name the pilot's existing unprivileged account")
    if account.pw_uid == 0:
        usage_error(f"user {user!r} has uid 0: the launch must run as an unprivileged user (the pilot's account)")
    if os.geteuid() not in (0, account.pw_uid):
        usage_error(f"launching as {user!r} needs root: run the task with become: true")
    binds = []
    for spec in p["binds"]:
        try:
            binds.append((spec, *parse_bind(spec)))
        except ValueError as exc:
            usage_error(str(exc))
    scratch_base = p["scratch_base"]
    if not os.path.isdir(scratch_base):
        usage_error(f"scratch_base {scratch_base!r} is not a directory: name one where {user!r} may create files")
    if set(":,") & set(scratch_base):
        usage_error(f"scratch_base {scratch_base!r} contains ':' or ',', which --home cannot take")
    host_env = p["host_env"]
    if host_env is None:
        host_env = {var: os.environ.get(var, "") for var in ("PATH", "LD_LIBRARY_PATH")}
    host_paths = {var: split_path_list(str(host_env.get(var) or "")) for var in ("PATH", "LD_LIBRARY_PATH")}

    # --- The node: the image, the bind sources, Apptainer
    problem = host_path_problem(image)
    if problem:
        state = "does not exist" if "no such file" in problem.lower() else "is not accessible"
        node_error(f"image {image} {state}: {problem}", *diagnose_host_path(image, problem, "image"))
    for spec, src, _dst, _opts in binds:
        problem = host_path_problem(src)
        if problem:
            state = "does not exist" if "no such file" in problem.lower() else "is not accessible"
            node_error(
                f"bind {spec!r}: the source {src} {state} on the host: {problem}",
                *diagnose_host_path(src, problem, "bind"),
            )
    apptainer = p["apptainer"]
    if apptainer:
        if not (os.path.isfile(apptainer) and os.access(apptainer, os.X_OK)):
            node_error(
                f"apptainer {apptainer!r} is not an executable file",
                "the Apptainer binary named by the apptainer option is missing",
                f"install Apptainer (sitekit's apptainer role) or point apptainer at an existing binary, e.g. "
                f"{CVMFS_APPTAINER}",
            )
    else:
        apptainer = module.get_bin_path("apptainer") or module.get_bin_path("singularity")
        if not apptainer:
            node_error(
                "neither apptainer nor singularity is on the PATH",
                "Apptainer is not installed on this node",
                "install it with sitekit's apptainer role (apptainer_source), or, where user namespaces are on, "
                f"set apptainer to OSG's build on CVMFS: {CVMFS_APPTAINER}",
            )
    rc, out, _ = module.run_command([apptainer, "--version"], environ_update={"LANG": "C", "LC_ALL": "C"})
    result["apptainer"] = {"path": apptainer, "version": parse_version_output(out) if rc == 0 else None}

    # --- The launch, in a scratch directory that is removed whatever happens
    token = f"sitekit-{uuid.uuid4().hex[:12]}"
    targets = [dst for _spec, _src, dst, _opts in binds]
    probe = build_probe(token, targets, host_paths, host_pid=os.getpid())
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=scratch_base)
    try:
        os.chmod(scratch, 0o700)
        marker_path = os.path.join(scratch, MARKER_NAME)
        with open(marker_path, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        if os.geteuid() == 0:
            os.chown(scratch, account.pw_uid, account.pw_gid)
            os.chown(marker_path, account.pw_uid, account.pw_gid)
        argv = build_launch_argv(
            apptainer,
            image,
            scratch,
            probe,
            binds=[spec for spec, *_ in binds],
            contain=p["contain"],
            ipc=p["ipc"],
            pid=p["pid"],
            extra_args=p["extra_args"],
            command=command,
        )
        result["command"] = argv
        env = launch_env(user, scratch, apptainer, host_env, os.environ.get("PATH") or DEFAULT_SEARCH_PATH)
        ids = {"uid": account.pw_uid, "gid": account.pw_gid, "user": user} if os.geteuid() == 0 else {}
        host_processes = count_processes()
        launch = run_as(argv, env, scratch, p["timeout"], **ids)
        result["launch_seconds"] = launch["seconds"]
        if p["baseline"] and not launch["timed_out"]:
            bare = run_as(build_baseline_argv(apptainer, image), env, scratch, p["timeout"], **ids)
            if bare["rc"] == 0:
                result["baseline_seconds"] = bare["seconds"]
            else:
                module.warn(f"the baseline launch failed (rc {bare['rc']}): {error_excerpt(bare['stderr'])}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if os.path.lexists(scratch):
            module.warn(f"could not remove the scratch directory {scratch}")

    parsed = parse_probe_output(launch["stdout"], token)
    checks, ready = evaluate(
        parsed,
        launch=launch,
        marker=token,
        scratch=scratch,
        bind_targets=targets,
        host_paths=host_paths,
        pid=p["pid"],
        host_processes=host_processes,
        command_given=bool(command),
    )
    result.update(checks=checks, ready=ready, image_os=parsed["os"])
    if launch["leftover"]:
        module.warn(f"processes {launch['leftover']} survived the kill after the timeout")
    failed = launch["timed_out"] or launch["rc"] != 0 or not parsed["started"]
    if failed:
        error = error_excerpt(launch["stderr"]) or error_excerpt(parsed["other"])
        stage = timeout_stage(parsed, bool(command))
        cause, remedy = diagnose(launch["stderr"] + "\n" + parsed["other"], launch["timed_out"], stage)
        what = (
            f"the launch timed out after {p['timeout']} s and was killed, {stage}"
            if launch["timed_out"]
            else f"the launch as {user!r} failed (rc {launch['rc']})"
        )
        node_error(what, cause, remedy, error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
