#!/usr/bin/python
"""Ansible module cvmfs_probe: can jobs on this node read these CVMFS repositories, and if not, why?"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cvmfs_probe
short_description: Access CVMFS repositories the way a job does and explain each failure
description:
  - For each repository in O(repositories), reads C(/proc/self/mountinfo) to see whether C(<mountpoint>/<repo>) is
    mounted and whether O(mountpoint) is an autofs mount, then stats the repository root, lists it and reads a small
    file, then reads the mount table again. So a repository that autofs mounted on access shows
    RV(repositories[].mounted_before=false) and RV(repositories[].mounted_after=true).
  - The access runs in a child process with a per-repository O(timeout). A hung FUSE mount hangs only the child,
    which is killed; the repository is then reported as timed out.
  - A failure's errno and text are mapped to a cause and a remedy, for example C(Too many levels of symbolic links)
    (the repository was not accessed on the host before a container started, CVM-2004), C(Transport endpoint is not
    connected) (the cvmfs2 client crashed), C(No such file or directory) under autofs (repository not configured
    or not existing) and C(Input/output error) (no proxy or stratum-1 reachable, or a full cache).
  - Where the filesystem has them (the CVMFS client exposes them on a repository root), the magic extended
    attributes C(user.fqrn), C(user.version), C(user.revision), C(user.expires), C(user.host), C(user.proxy),
    C(user.nioerr), C(user.timestamp_last_ioerr), C(user.usedfd), C(user.maxfd), C(user.nclg) and
    C(user.ncleanup24) are returned; unsupported or hidden ones are left out.
  - The running client is judged against what the configuration files under O(config_root) say for each
    repository (C(default.conf), C(default.d/*.conf), C(default.local), C(domain.d/<domain>.conf|.local),
    C(config.d/<repo>.conf|.local); plain assignments, the config repository's copies aside).
  - The C(proxy) attribute - a client that goes C(DIRECT) although C(CVMFS_HTTP_PROXY) names C(auto) or a proxy
    fails, with the cause (no C(CVMFS_PAC_URLS), a PAC file unreachable, every proxy down) and the remedy; one on
    a proxy although only C(DIRECT) is configured has drifted. C(host) not among C(CVMFS_SERVER_URL), and a root catalog
    whose C(expires) is negative (the client could not load a newer revision), are drift. Without the extended
    attributes (a stand-in, a bind mount) there is no verdict (C(unknown)).
  - C(CVMFS_NFILES) (from the files, the client's default 131072, or O(nfiles)) is compared with the hard limit
    on open files the mount runs under (the lower of pid 1's, which starts fstab mount units and autofs, and this
    process's) unless the node can raise it (C(CAP_SYS_RESOURCE)); above it the client refuses to mount with
    C(Failed to set maximum number of open files, insufficient permissions).
  - The cache - C(CVMFS_CACHE_BASE) (default C(/var/lib/cvmfs)) must be on a local disk. A network or cluster
    filesystem (nfs, cifs, ceph, lustre, gpfs, ...) fails, because the client cannot account for a cache other hosts
    change and creates sockets and pipes there; a memory filesystem (tmpfs, ramfs) fails, because the cache takes
    the jobs' RAM and is lost at reboot. Only an alien cache (C(CVMFS_ALIEN_CACHE), which needs
    C(CVMFS_QUOTA_LIMIT=-1) and C(CVMFS_SHARED_CACHE=no)) may be on a shared filesystem; the cache base then keeps
    only control files. The filesystem is the longest mount point of C(/proc/self/mountinfo) that holds the cache
    base.
  - The size of that filesystem (statvfs) must hold C(CVMFS_QUOTA_LIMIT) MB (default 4000) with the client's
    margin of 20 % + 1024 MB; below it the result names the quota, the size needed, the filesystem's size and
    free space, and the largest quota that fits. The size is judged, not the free space, which a cache filled up
    to its quota uses by design.
  - With an empty O(repositories), only the node-wide checks run (open files, cache), from the default files
    (C(default.conf), C(default.d), C(default.local)) and O(cache_base), O(quota_limit), O(alien_cache),
    O(shared_cache), O(nfiles).
  - Read-only. It changes nothing (apart from the mounts autofs makes on access, which is the point), runs the same
    in check mode, and always returns changed=false.
options:
  repositories:
    description:
      - Fully qualified repository names, such as C(atlas.cern.ch). Each must be DNS-like with at least one dot.
      - An empty list probes no repository and judges only the open-file limit and the cache.
    type: list
    elements: str
    required: true
  mountpoint:
    description:
      - The directory the repositories are mounted under, as the mount table shows it (no symlinks).
    type: path
    default: /cvmfs
  file:
    description:
      - A file to read, relative to each repository root (the same path for every repository).
      - When empty, the first regular file at the top of the repository in sorted order (not a symlink, which may
        lead into another repository) is read; when there is none, stat and listing alone decide.
    type: str
  timeout:
    description:
      - Seconds one repository's access may take before the child is killed and the repository reported as timed
        out. A first mount through a proxy can take several seconds.
    type: float
    default: 30
  fail_on_error:
    description:
      - Fail the task when any repository is not readable; the message names each one with its cause and remedy.
        The result keys are returned either way.
    type: bool
    default: true
  expect_proxy:
    description:
      - The C(CVMFS_HTTP_PROXY) value the running client is judged against, instead of what the configuration
        files say (for example when they cannot be read).
    type: str
  nfiles:
    description:
      - The C(CVMFS_NFILES) compared with the open-file limit, instead of what the configuration files say.
    type: int
  config_root:
    description:
      - The client's configuration directory.
    type: path
    default: /etc/cvmfs
  cache_base:
    description:
      - The C(CVMFS_CACHE_BASE) judged, instead of what the configuration files say.
    type: path
  quota_limit:
    description:
      - The C(CVMFS_QUOTA_LIMIT) in MB judged (-1 for none), instead of what the configuration files say.
    type: int
  alien_cache:
    description:
      - The C(CVMFS_ALIEN_CACHE) judged, instead of what the configuration files say.
    type: path
  shared_cache:
    description:
      - The C(CVMFS_SHARED_CACHE) judged, instead of what the configuration files say (the client's default is
        yes).
    type: bool
extends_documentation_fragment: [action_common_attributes, sitekit.read_only]
notes:
  - The probe runs as the connecting (or become) user. A repository that needs authorization reads as that user.
  - Accessing a repository from inside a container behaves differently (CVM-2004); this module sees the mount
    namespace it runs in.
  - Per-repository cache settings (C(config.d)) are judged for each repository; RV(cache) is the first cache
    that fails, else the first one.
  - Cache usage is not an extended attribute; C(cvmfs_config stat) shows it. C(user.ncleanup24) counts cache
    cleanups in the last 24 hours, a sign of a cache that is too small.
seealso:
  - name: CernVM-FS client configuration
    description: Repositories, proxies, autofs and static mounts.
    link: https://cvmfs.readthedocs.io/en/stable/cpt-configure.html
author:
  - sitekit
"""

EXAMPLES = r"""
- name: Ensure the repositories jobs need are readable
  cvmfs_probe:
    repositories:
      - atlas.cern.ch
      - oasis.opensciencegrid.org

- name: Read a known file, with a short timeout, and only report
  cvmfs_probe:
    repositories: [cvmfs-config.cern.ch]
    file: etc/cvmfs/default.d/50-cern.conf
    timeout: 10
    fail_on_error: false
  register: __cvmfs_probe

- name: Check that the cache a site plans fits this node, before any client is installed
  cvmfs_probe:
    repositories: []
    cache_base: /var/lib/cvmfs
    quota_limit: 20000

- name: Show why a repository failed
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.cause }} -> {{ item.remedy }}"
  loop: "{{ __cvmfs_probe.repositories | rejectattr('readable') }}"
  loop_control:
    label: "{{ item.name }}"

# Every access keeps an automounted repository mounted for autofs's timeout: the same probe is a keep-alive
# (the cvmfs role's timer runs it as /usr/local/sbin/sitekit-cvmfs-probe --quiet).
- name: Keep the automounted repositories mounted, whatever one bad repository does
  cvmfs_probe:
    repositories: "{{ cvmfs_repositories }}"
    fail_on_error: false
"""

RETURN = r"""
ok:
  description: Whether every repository was readable and its client did not fail (RV(repositories[].ok)), the
    open-file limit fits (RV(nfiles.ok)) and the cache can serve as configured (RV(cache.ok)).
  returned: always
  type: bool
  sample: false
nfiles:
  description: C(CVMFS_NFILES) against the hard limit on open files the mount runs under; null when no
    configuration file was read.
  returned: always
  type: dict
  contains:
    ok:
      description: Whether the client can raise its limit to RV(nfiles.nfiles).
      type: bool
    nfiles:
      description: The C(CVMFS_NFILES) judged.
      type: int
    hard_limit:
      description: The hard limit the mount runs under; null when unlimited or unknown.
      type: int
    can_raise:
      description: Whether the node may raise it (C(CAP_SYS_RESOURCE)).
      type: bool
    suggested:
      description: A C(CVMFS_NFILES) that fits, the largest power of two not above the limit.
      type: int
    cause:
      description: Why the client cannot mount; null when it can.
      type: str
    remedy:
      description: What to do; null when nothing is needed.
      type: str
  sample: {ok: false, nfiles: 131072, hard_limit: 20000, can_raise: false, suggested: 16384}
cache:
  description: The cache against the filesystem it is on; null when no configuration file was read and no cache
    option was given.
  returned: always
  type: dict
  contains:
    ok:
      description: Whether the client can use the cache as configured (RV(cache.status) is not fail).
      type: bool
    status:
      description: C(ok), C(fail), or C(unknown) (an advanced cache instance, C(CVMFS_CACHE_PRIMARY), or a quota
        that is not a number).
      type: str
    base:
      description: C(CVMFS_CACHE_BASE), its symlinks resolved.
      type: str
    filesystem:
      description: The type of the filesystem it is on (C(ext4), C(xfs), C(nfs4), C(tmpfs), ...).
      type: str
    where:
      description: That filesystem's type, source and mount point.
      type: str
    kind:
      description: C(local), C(network) or C(memory).
      type: str
    quota_limit:
      description: C(CVMFS_QUOTA_LIMIT) in MB; -1 for none.
      type: int
    required_mb:
      description: The filesystem size the quota needs (quota + 20 % + 1024 MB); null without a quota.
      type: int
    size_mb:
      description: The filesystem's size in MB; null when it could not be read.
      type: int
    available_mb:
      description: Its free space in MB, for an unprivileged user.
      type: int
    suggested_quota:
      description: The largest quota (MB, a multiple of 100) whose margin the filesystem holds.
      type: int
    alien:
      description: C(CVMFS_ALIEN_CACHE), or null.
      type: str
    alien_filesystem:
      description: The type of the filesystem the alien cache is on.
      type: str
    shared:
      description: C(CVMFS_SHARED_CACHE).
      type: bool
    repositories:
      description: The repositories that use this cache (empty when judged from the default files alone).
      type: list
      elements: str
    detail:
      description: One line for a report.
      type: str
    cause:
      description: Why the client cannot use the cache as configured; null when it can.
      type: str
    remedy:
      description: What to do; null when nothing is needed.
      type: str
  sample:
    ok: false
    status: fail
    base: /var/lib/cvmfs
    filesystem: ext4
    quota_limit: 20000
    required_mb: 25024
    size_mb: 10015
    available_mb: 9420
    suggested_quota: 7400
repositories:
  description: One entry per repository, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The repository name.
      type: str
      sample: atlas.cern.ch
    path:
      description: Where it was accessed.
      type: str
      sample: /cvmfs/atlas.cern.ch
    mounted_before:
      description: Whether the mount table showed a mount at RV(repositories[].path) before the access.
      type: bool
      sample: false
    mounted_after:
      description: Whether it showed one after the access.
      type: bool
      sample: true
    mounted_on_access:
      description: Whether the access mounted it (not mounted before, mounted after), as autofs does.
      type: bool
      sample: true
    autofs:
      description: Whether the mountpoint (C(/cvmfs)) is an autofs mount.
      type: bool
      sample: true
    filesystem:
      description: What is mounted at the path, C(cvmfs2) for the CVMFS client, else the fstype; null if nothing.
      type: str
      sample: cvmfs2
    readable:
      description: Whether stat, listing and reading the file succeeded within the timeout.
      type: bool
      sample: true
    ok:
      description: Whether it was readable and its client did not fail (RV(repositories[].client.status) not fail).
      type: bool
      sample: true
    client:
      description: The running client against what the configuration files say.
      type: dict
      contains:
        status:
          description: C(ok), C(drift) (it runs an older configuration, or a stale revision), C(fail) (it goes
            DIRECT although proxies are configured) or C(unknown) (no extended attributes).
          type: str
        checks:
          description: C(proxy), C(host) and C(revision), each with name, status, running, configured, detail,
            cause and remedy.
          type: list
          elements: dict
        cause:
          description: The first failed (else drifted) check's cause.
          type: str
        remedy:
          description: Its remedy.
          type: str
      sample: {status: fail, checks: [{name: proxy, status: fail, running: DIRECT, configured: "auto;DIRECT"}]}
    seconds:
      description: How long the access took (the child process, including its start).
      type: float
      sample: 0.041
    file:
      description: The file read, relative to the repository root; null when none was found or the access failed first.
      type: str
      sample: .cvmfsdirtab
    xattrs:
      description: The CVMFS magic extended attributes found on the repository root, names without C(user.).
      type: dict
      sample: {revision: "14822", proxy: "http://squid1:3128", host: "http://stratum1/cvmfs/atlas.cern.ch", nioerr: "0"}
    error:
      description: What failed, where, and the errno text; null when readable.
      type: str
      sample: "list /cvmfs/atlas.cern.ch: [ELOOP] Too many levels of symbolic links"
    errno:
      description: The errno name of the failure (C(ETIMEDOUT) for a timeout); null when readable.
      type: str
      sample: ELOOP
    cause:
      description: The likely cause of the failure; null when readable.
      type: str
    remedy:
      description: What to do about it; null when readable.
      type: str
  sample:
    - name: atlas.cern.ch
      path: /cvmfs/atlas.cern.ch
      mounted_before: false
      mounted_after: true
      mounted_on_access: true
      autofs: true
      filesystem: cvmfs2
      readable: true
      seconds: 0.82
      file: .cvmfsdirtab
      xattrs: {revision: "14822", nioerr: "0"}
      error: null
      errno: null
      cause: null
      remedy: null
"""

# Imports follow the documentation, in the order every Ansible module uses.
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# AnsiballZ bundles module_utils/sitekit_cvmfs.py with the module. From the repository (unit tests, or
# `PYTHONPATH=module_utils python library/cvmfs_probe.py ARGS.json`) module_utils is on the path instead.
try:
    from ansible.module_utils import sitekit_cvmfs as cvmfs
except ImportError:
    import sitekit_cvmfs as cvmfs


def main():
    module = AnsibleModule(
        argument_spec={
            "repositories": {"type": "list", "elements": "str", "required": True},
            "mountpoint": {"type": "path", "default": "/cvmfs"},
            "file": {"type": "str"},
            "timeout": {"type": "float", "default": 30},
            "fail_on_error": {"type": "bool", "default": True},
            "expect_proxy": {"type": "str"},
            "nfiles": {"type": "int"},
            "config_root": {"type": "path", "default": "/etc/cvmfs"},
            "cache_base": {"type": "path"},
            "quota_limit": {"type": "int"},
            "alien_cache": {"type": "path"},
            "shared_cache": {"type": "bool"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        for name in params["repositories"]:
            cvmfs.validate_repository(name)
        rel = cvmfs.validate_file(params["file"])
    except ValueError as exc:
        module.fail_json(msg=f"cvmfs_probe: {exc}.")
    if params["timeout"] <= 0:
        module.fail_json(msg=f"cvmfs_probe: timeout must be a positive number of seconds, got {params['timeout']}.")
    if params["nfiles"] is not None and params["nfiles"] < 1:
        module.fail_json(msg=f"cvmfs_probe: nfiles must be a positive number, got {params['nfiles']}.")
    quota = params["quota_limit"]
    if quota is not None and quota < 1 and quota != -1:
        module.fail_json(msg=f"cvmfs_probe: quota_limit must be a positive number of MB, or -1 for none, got {quota}.")
    for key in ("cache_base", "alien_cache"):
        if params[key] is not None and not os.path.isabs(params[key]):
            module.fail_json(msg=f"cvmfs_probe: {key} {params[key]!r} must be an absolute path.")
    if not os.path.isabs(params["mountpoint"]):
        module.fail_json(msg=f"cvmfs_probe: mountpoint {params['mountpoint']!r} must be an absolute path.")

    # Check mode runs the same: the probe only reads (the automount it triggers is what a job would trigger).
    expect = {key: params[key] for key in ("nfiles", *cvmfs.CACHE_EXPECT)}
    expect["proxy"] = params["expect_proxy"]
    result = cvmfs.probe(
        params["repositories"],
        params["mountpoint"],
        rel,
        params["timeout"],
        expect=expect,
        config_root=params["config_root"],
    )
    msg = cvmfs.failure_message(result) if params["fail_on_error"] else None
    if msg:
        module.fail_json(msg=msg, changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
