"""CVMFS as the cvmfs role leaves it, on the lab's stand-in client, in the mount mode the host's kernel allows.

autofs (real autofs, real timeouts, real keep-alive) where the kernel can automount, static mounts (real fstab
lines mounted by mount(8) and by systemd at boot through the stand-in /sbin/mount.cvmfs) where it cannot or where
SITEKIT_LAB_MOUNT_MODE forces them. Proofs of the other mode are skipped with the reason. Also the PAC chain the
client walks for auto, and the open-file limit the client's mount runs under.
"""

import json
import re
import shlex
import subprocess
import time
from urllib.parse import urlsplit

import lab_cvmfs
import pacparser
import pytest

UNITS = ("sitekit-cvmfs-keepalive.service", "sitekit-cvmfs-keepalive.timer")
MASTER_MAP = "/etc/auto.master.d/cvmfs.autofs"

# Python on a node: fetch URL without a proxy, as the CVMFS client fetches its PAC files; print status, type, body.
FETCH_PAC = """
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    r = opener.open(sys.argv[1], timeout=10)
    print(json.dumps({"status": r.status, "type": r.headers.get("Content-Type"), "body": r.read().decode()}))
except Exception as exc:
    print(json.dumps({"status": None, "error": f"{type(exc).__name__}: {exc}"}))
"""
# Python on a node: GET URL through PROXY (host:port), print the status.
FETCH_THROUGH = """
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port), timeout=10)
c.request("GET", sys.argv[2])
print(c.getresponse().status)
"""


def _workers(hostvars):
    if "worker_nodes" not in hostvars.get("group_names", []):
        pytest.skip("CVMFS is mounted on worker nodes")
    if not hostvars.get("cvmfs_enabled", True):
        pytest.skip("the cvmfs role is off for this node")


def _mounted(host, repo):
    return f" /cvmfs/{repo} " in host.file("/proc/self/mountinfo").content_string


def _sh(host):
    def run(command, check=True):
        return (host.run_expect([0], command) if check else host.run(command)).stdout

    return run


def _mode(host):
    return lab_cvmfs.node_mode(_sh(host))


def _require(host, mode):
    if _mode(host) != mode:
        _want, why = lab_cvmfs.expected_mode()
        pytest.skip(f"needs {mode} mounts; this node has {_mode(host)} mounts: {why}")


def _static_lines(host):
    """The fstab lines of type cvmfs, in order: (mountpoint, options)."""
    lines = [ln.split() for ln in host.file("/etc/fstab").content_string.splitlines() if not ln.startswith("#")]
    return [(f[1], f[3]) for f in lines if len(f) > 3 and f[2] == "cvmfs"]


def _assert_static_mode(host, hostvars):
    """Static mounts and nothing of autofs mode: fstab lines in order, mounted, no master map, no keep-alive."""
    config = hostvars["cvmfs_config_repository"]
    repos = hostvars["cvmfs_repositories"]
    lines = _static_lines(host)
    assert [p for p, _ in lines] == [f"/cvmfs/{r}" for r in [config, *repos]], lines
    assert "x-systemd.requires-mounts-for" not in lines[0][1]
    assert all(f"x-systemd.requires-mounts-for=/cvmfs/{config}" in opts for _, opts in lines[1:]), lines
    for path, _ in lines:
        assert lab_cvmfs.mounted(_sh(host), path), f"{path} is not mounted"
    assert not host.file(MASTER_MAP).exists
    for unit in UNITS:
        assert not host.file(f"/etc/systemd/system/{unit}").exists, unit
    assert host.run("findmnt --noheadings --types autofs --mountpoint /cvmfs").rc != 0


def _assert_autofs_mode(host, hostvars):
    """autofs mounts and nothing of static mode: the master map, the timer, no fstab line of type cvmfs."""
    assert host.file(MASTER_MAP).exists
    assert not _static_lines(host)
    assert host.run("findmnt --noheadings --types autofs --mountpoint /cvmfs").rc == 0
    assert host.service("sitekit-cvmfs-keepalive.timer").is_running


def _probe_ok(host):
    run = host.run("/usr/local/sbin/sitekit-cvmfs-probe")
    assert run.rc == 0, run.stderr
    return json.loads(run.stdout)


def test_the_mount_mode_is_the_one_the_host_kernel_allows(host, hostvars):
    _workers(hostvars)
    want, why = lab_cvmfs.expected_mode()
    assert _mode(host) == want, f"expected {want}: {why}"


def _wait_unmounted(host, repo, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not _mounted(host, repo):
            return True
        time.sleep(1)
    return False


def test_client_configuration_follows_the_inventory(host, hostvars):
    _workers(hostvars)
    local = host.file("/etc/cvmfs/default.local").content_string
    assert f"CVMFS_REPOSITORIES='{','.join(hostvars['cvmfs_repositories'])}'" in local
    assert re.search(r"^CVMFS_HTTP_PROXY='auto;DIRECT'$", local, re.M)
    if _mode(host) == "autofs":
        master = host.file(MASTER_MAP).content_string
        assert f"/cvmfs /etc/auto.cvmfs --timeout={hostvars['cvmfs_autofs_timeout']}" in master
        _assert_autofs_mode(host, hostvars)
    else:
        _assert_static_mode(host, hostvars)


def test_the_probe_command_reads_every_repository(host, hostvars):
    _workers(hostvars)
    result = _probe_ok(host)
    assert [r["name"] for r in result["repositories"]] == hostvars["cvmfs_repositories"]
    autofs = _mode(host) == "autofs"
    # autofs mounts on access; static mounts are there before it.
    assert all(r["readable"] and r["autofs"] is autofs and r["mounted_after"] for r in result["repositories"])
    if not autofs:
        assert all(r["mounted_before"] for r in result["repositories"])


def test_the_probe_names_the_cause_of_an_unknown_repository(host, hostvars):
    _workers(hostvars)
    run = host.run("/usr/local/sbin/sitekit-cvmfs-probe --quiet missing.sitekit.lab")
    assert run.rc == 1
    assert "missing.sitekit.lab" in run.stderr and "Cause:" in run.stderr and "Remedy:" in run.stderr


def test_autofs_unmounts_without_keepalive_and_keepalive_keeps_it(host, hostvars):
    _workers(hostvars)
    _require(host, "autofs")
    repo = hostvars["cvmfs_repositories"][0]
    timeout = hostvars["cvmfs_autofs_timeout"]
    assert timeout > 0
    host.run_expect([0], "systemctl stop sitekit-cvmfs-keepalive.timer")
    try:
        host.run_expect([0], f"ls /cvmfs/{repo}")
        assert _mounted(host, repo)
        # autofs expires a mount between timeout and about 1.3 x timeout after the last access (measured in the lab).
        assert _wait_unmounted(host, repo, timeout * 2 + 5), f"autofs kept {repo} mounted without the keep-alive"
    finally:
        host.run_expect([0], "systemctl start sitekit-cvmfs-keepalive.timer")
    host.run_expect([0], f"ls /cvmfs/{repo}")
    assert not _wait_unmounted(host, repo, timeout * 2 + 5), f"{repo} was unmounted although the keep-alive ran"


def test_check_mode_plans_the_real_client_install_and_changes_nothing(host, hostvars, apply_role):
    """The install path a Debian-family site takes, as check mode reports it (no registry here has the client)."""
    _workers(hostvars)
    state = "sha256sum /etc/cvmfs/default.local /etc/fstab; ls /etc/auto.master.d"
    before = host.run(state).stdout
    run = apply_role(
        "cvmfs",
        {
            "cvmfs_source": "release",
            "cvmfs_release_package_url": "/srv/sitekit-origin/debs/cvmfs-release-latest_all.deb",
        },
        check=True,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Would install /srv/sitekit-origin/debs/cvmfs-release-latest_all.deb" in run.stdout
    planned = re.search(r"Would install: ([\w, .+-]+)", run.stdout)
    assert planned, run.stdout[-3000:]
    assert set(planned.group(1).replace(" ", "").split(",")) == {"cvmfs", "cvmfs-fuse3", "cvmfs-config-default"}
    assert host.run(state).stdout == before
    assert host.run("dpkg-query -W cvmfs").rc != 0


# ---------------------------------------------------------------------------------------------
# Static mounts, and switching between the modes
# ---------------------------------------------------------------------------------------------
def test_static_mounts_wait_for_the_config_repository_at_boot(host, hostvars):
    """systemd's mount unit of each repository requires the config repository's, from the fstab option."""
    _workers(hostvars)
    _require(host, "static")
    config_unit = host.run_expect([0], f"systemd-escape -p --suffix=mount /cvmfs/{hostvars['cvmfs_config_repository']}")
    for repo in hostvars["cvmfs_repositories"]:
        unit = host.run_expect([0], f"systemd-escape -p --suffix=mount /cvmfs/{repo}").stdout.strip()
        show = host.run_expect([0], f"systemctl show -p Requires -p After -p ActiveState {unit}").stdout
        assert config_unit.stdout.strip() in re.search(r"^Requires=(.*)$", show, re.M).group(1), show
        assert config_unit.stdout.strip() in re.search(r"^After=(.*)$", show, re.M).group(1), show
        assert "ActiveState=active" in show


def test_static_mounts_come_back_after_a_node_restart(host, hostvars):
    _workers(hostvars)
    _require(host, "static")
    name = hostvars["inventory_hostname"]
    start = time.monotonic()
    subprocess.run(["podman", "restart", "--time", "30", name], check=True, capture_output=True, timeout=120)
    state = ""
    while state not in ("running", "degraded") and time.monotonic() - start < 120:
        # podman exec fails until the restarted container runs; then systemd waits for the boot to finish.
        state = host.run("systemctl is-system-running --wait").stdout.strip()
        time.sleep(0.5)
    booted = round(time.monotonic() - start, 1)
    assert state in ("running", "degraded"), host.run("systemctl --failed").stdout
    _assert_static_mode(host, hostvars)
    result = _probe_ok(host)
    assert all(r["mounted_before"] for r in result["repositories"]), f"not mounted at boot ({booted} s)"


def test_explicit_autofs_is_refused_where_the_kernel_cannot_automount(host, hostvars, apply_role):
    _workers(hostvars)
    if lab_cvmfs.host_features.features()["autofs"]["ok"]:
        pytest.skip("the host kernel can automount: cvmfs_mount_mode: autofs is valid here")
    state = "sha256sum /etc/fstab /etc/cvmfs/default.local; ls /etc/auto.master.d /etc/systemd/system"
    before = host.run(state).stdout
    run = apply_role("cvmfs", {"cvmfs_mount_mode": "autofs"})
    out = re.sub(r"\s+", " ", run.stdout + run.stderr)  # the result format wraps long messages
    assert run.returncode != 0
    assert "cvmfs_mount_mode=autofs, but this node cannot automount" in out, run.stdout[-3000:]
    assert "set cvmfs_mount_mode: static" in out
    assert host.run(state).stdout == before
    assert "changed=0" in out


def test_static_mode_clears_autofs_leftovers_without_touching_an_autofs_that_cannot_run(host, hostvars, apply_role):
    """The node the issue met: autofs installed (it cannot run on a kernel without autofs), its master map entry
    and keep-alive units left from autofs mode. Static mode removes them and touches no autofs that is not running;
    where the kernel has autofs, the running autofs gives /cvmfs back to the static mounts first."""
    _workers(hostvars)
    _require(host, "static")
    sh = _sh(host)
    sh("apt-get install -y -q --no-install-recommends autofs >/dev/null 2>&1 || true")
    assert host.package("autofs").is_installed
    try:
        sh(f"echo '/cvmfs /etc/auto.cvmfs --timeout=10' > {MASTER_MAP}")
        # The keep-alive units as autofs mode leaves them: the timer enabled and running.
        units = {
            UNITS[0]: "[Unit]\\nDescription=left from autofs mode\\n[Service]\\nType=oneshot\\nExecStart=/bin/true\\n",
            UNITS[1]: "[Unit]\\nDescription=left from autofs mode\\n[Timer]\\nOnUnitActiveSec=60\\nOnBootSec=60\\n"
            "[Install]\\nWantedBy=timers.target\\n",
        }
        for unit, text in units.items():
            sh(f"printf '{text}' > /etc/systemd/system/{unit}")
        sh(f"systemctl daemon-reload && systemctl enable --now {UNITS[1]}")
        sh("systemctl restart autofs || true")
        autofs_before = sh("systemctl is-active autofs", check=False).strip()
        run = apply_role("cvmfs", {})
        assert run.returncode == 0, run.stdout[-3000:]
        assert "autofs" not in re.findall(r"FAILED! => .*", run.stdout)
        _assert_static_mode(host, hostvars)
        # autofs runs where the kernel has it, and stays down where it cannot run: nobody touched it.
        assert sh("systemctl is-active autofs", check=False).strip() == autofs_before
        _probe_ok(host)
        again = apply_role("cvmfs", {})
        assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
    finally:
        sh("apt-get purge -y -q autofs >/dev/null 2>&1; systemctl reset-failed", check=False)


def test_switching_from_autofs_to_static_and_back_leaves_nothing_behind(host, hostvars, apply_role):
    _workers(hostvars)
    _require(host, "autofs")
    run = apply_role("cvmfs", {"cvmfs_mount_mode": "static"})
    assert run.returncode == 0, run.stdout[-3000:]
    _assert_static_mode(host, hostvars)
    _probe_ok(host)
    back = apply_role("cvmfs", {})
    assert back.returncode == 0, back.stdout[-3000:]
    _assert_autofs_mode(host, hostvars)
    assert all(r["autofs"] for r in _probe_ok(host)["repositories"])


def _default_local(host):
    text = host.file("/etc/cvmfs/default.local").content_string
    return dict(re.findall(r"^(CVMFS_[A-Z0-9_]+)='([^']*)'$", text, re.M))


def _pac_proxy_to_cvmfs(pac):
    """A PAC result as the client turns it into proxy groups: "PROXY h:p; DIRECT" -> ["http://h:p", "DIRECT"]."""
    groups = []
    for item in filter(None, (part.strip() for part in pac.split(";"))):
        kind, _, where = item.partition(" ")
        groups.append("DIRECT" if kind == "DIRECT" else f"http://{where.strip()}")
    return groups


def test_auto_comes_with_the_pac_files_of_the_sites_wpad(host, hostvars):
    """With the defaults (auto;DIRECT) the role writes CVMFS_PAC_URLS naming each WPAD name the site serves."""
    _workers(hostvars)
    params = _default_local(host)
    assert params["CVMFS_HTTP_PROXY"] == "auto;DIRECT"
    names = hostvars.get("wpad_server_names", ["grid-wpad", "wpad"])
    urls = params["CVMFS_PAC_URLS"].split(";")
    assert sorted(urlsplit(u).hostname for u in urls) == sorted(names) and all(u.endswith("/wpad.dat") for u in urls)


def test_the_pac_chain_the_client_walks_ends_at_the_site_squid(host, hostvars):
    """Each URL of CVMFS_PAC_URLS, fetched from the worker node without a proxy as the client fetches it, evaluated
    with pacparser (the engine the client embeds) for the stratum-1, names the site's squid; the squid serves."""
    _workers(hostvars)
    url = hostvars["readiness_proxy_url"]
    stratum1 = urlsplit(url).hostname
    squid = f"{hostvars['groups']['squids'][0]}:3128"
    for pac_url in _default_local(host)["CVMFS_PAC_URLS"].split(";"):
        run = host.run(f"python3 -c {shlex.quote(FETCH_PAC)} {shlex.quote(pac_url)}")
        answer = json.loads(run.stdout)
        assert answer["status"] == 200, (pac_url, answer)
        assert answer["type"] == "application/x-ns-proxy-autoconfig"
        pacparser.init()
        try:
            pacparser.parse_pac_string(answer["body"])
            groups = _pac_proxy_to_cvmfs(pacparser.find_proxy(url, stratum1))
        finally:
            pacparser.cleanup()
        assert groups[0] == f"http://{squid}", (pac_url, groups)
        assert ("DIRECT" in groups) == bool(hostvars.get("wpad_direct_fallback", False))
    status = host.run(f"python3 -c {shlex.quote(FETCH_THROUGH)} {shlex.quote(squid)} {shlex.quote(url)}")
    assert status.stdout.strip() == "200", status.stdout + status.stderr


def test_the_open_file_limit_fits_the_mount(host, hostvars):
    """CVMFS_NFILES within the hard limit the mount runs under (the lab's nodes: 20000, no CAP_SYS_RESOURCE), and
    the probe, which makes the same check on the node, agrees; a stand-in without xattrs has no proxy verdict."""
    _workers(hostvars)
    hard = int(re.search(r"^Max open files\s+\S+\s+(\d+)", host.file("/proc/1/limits").content_string, re.M).group(1))
    params = _default_local(host)
    nfiles = int(params.get("CVMFS_NFILES", 131072))
    result = json.loads(host.run_expect([0], "/usr/local/sbin/sitekit-cvmfs-probe").stdout)
    assert result["nfiles"]["ok"] and result["nfiles"]["nfiles"] == nfiles
    if not result["nfiles"]["can_raise"]:
        assert nfiles <= hard
        assert "CVMFS_NFILES" in params or hard >= 131072
    for repo in result["repositories"]:
        assert repo["ok"] and repo["client"]["status"] == "unknown", repo["client"]
        assert repo["client"]["checks"][0]["configured"] == params["CVMFS_HTTP_PROXY"]


def test_a_cvmfs_nfiles_above_the_limit_fails_naming_the_variable_and_the_fix(host, hostvars, apply_role):
    _workers(hostvars)
    limits = host.file("/proc/1/limits").content_string
    hard = int(re.search(r"^Max open files\s+\S+\s+(\d+)", limits, re.M).group(1))
    status = host.file("/proc/1/status").content_string
    bounding = int(re.search(r"^CapBnd:\s+([0-9a-f]+)", status, re.M).group(1), 16)
    if bounding >> 24 & 1:
        pytest.skip("the node may raise its open-file limit (CAP_SYS_RESOURCE): any CVMFS_NFILES to fs.nr_open fits")
    before = host.run("sha256sum /etc/cvmfs/default.local").stdout
    run = apply_role("cvmfs", {"sitekit_test_hosts": "worker_nodes", "cvmfs_nfiles": hard + 1})
    out = re.sub(r"\s+", " ", run.stdout + run.stderr)
    assert run.returncode != 0
    assert f"cvmfs_nfiles={hard + 1}: Failed to set maximum number of open files" in out, out[-2000:]
    assert "Fix: set cvmfs_nfiles to at most" in out and "--ulimit nofile" in out
    assert host.run("sha256sum /etc/cvmfs/default.local").stdout == before


# Python on a node: what the client's files say for a repository, read by the probe's own code (sitekit_cvmfs, as
# the role installs it): default.local, then domain.d, then config.d, the last one winning, as the client reads them.
EFFECTIVE = """
import json, sys
sys.path.insert(0, "/usr/local/lib/sitekit")
import sitekit_cvmfs
print(json.dumps(sitekit_cvmfs.read_parameters(sys.argv[1])))
"""


def test_an_experiments_variable_reaches_default_local_and_the_repositorys_own_file(host, hostvars, apply_role):
    """CMS sites set CMS_LOCAL_SITE in default.local or in the repository's config.d file; the client resolves the
    variant symlink from it (the stand-in cannot show the link: the files read back, as the client reads them, are the
    proof). A site-wide value, a per-domain one and a per-repository one: the repository's file wins for it."""
    _workers(hostvars)
    repo = hostvars["cvmfs_repositories"][0]
    domain = repo.split(".", 1)[1]
    files = f"/etc/cvmfs/config.d/{repo}.local /etc/cvmfs/domain.d/{domain}.local"
    extra = {
        "cvmfs_default_local_extra": {"CMS_LOCAL_SITE": "T2_XX_Site"},
        "cvmfs_domain_config": {domain: {"CMS_LOCAL_SITE": "T2_XX_Domain", "SITEKIT_TEST_TAG": "domain"}},
        "cvmfs_repository_config": {repo: {"CMS_LOCAL_SITE": "T2_XX_Lab"}},
    }
    try:
        run = apply_role("cvmfs", extra)
        assert run.returncode == 0, run.stdout[-3000:]
        assert _default_local(host)["CVMFS_HTTP_PROXY"] == "auto;DIRECT"  # the site's settings stay
        assert re.search(r"^CMS_LOCAL_SITE='T2_XX_Site'$", host.file("/etc/cvmfs/default.local").content_string, re.M)
        own = host.file(f"/etc/cvmfs/config.d/{repo}.local")
        assert own.exists and own.mode == 0o644 and own.user == "root"
        assert re.search(r"^CMS_LOCAL_SITE='T2_XX_Lab'$", own.content_string, re.M), own.content_string
        effective = json.loads(host.check_output(f"python3 -c {shlex.quote(EFFECTIVE)} {repo}"))
        assert effective["CMS_LOCAL_SITE"] == "T2_XX_Lab" and effective["SITEKIT_TEST_TAG"] == "domain"
        assert effective["CVMFS_HTTP_PROXY"] == "auto;DIRECT"
        # A repository of another domain, without files of its own: the site-wide value.
        elsewhere = json.loads(host.check_output(f"python3 -c {shlex.quote(EFFECTIVE)} cms.cern.ch"))
        assert elsewhere["CMS_LOCAL_SITE"] == "T2_XX_Site" and "SITEKIT_TEST_TAG" not in elsewhere
        # The client's own /bin/sh + echo read-back (cvmfs/options.cc) of each file gives the value unchanged.
        written = {"/etc/cvmfs/default.local": "T2_XX_Site", f"/etc/cvmfs/config.d/{repo}.local": "T2_XX_Lab"}
        for path, value in written.items():
            echoed = host.check_output(f"sh -c '. {path}; echo $CMS_LOCAL_SITE'")
            assert echoed == value
        again = apply_role("cvmfs", extra)
        assert again.returncode == 0 and re.search(r"changed=0\b", again.stdout), again.stdout[-3000:]
    finally:
        host.run(f"rm -f {files}")
        restored = apply_role("cvmfs", {})
        assert restored.returncode == 0, restored.stdout[-3000:]
    assert "CMS_LOCAL_SITE" not in host.file("/etc/cvmfs/default.local").content_string


def test_an_override_that_is_not_a_shell_variable_fails_before_any_change(host, hostvars, apply_role):
    _workers(hostvars)
    repo = hostvars["cvmfs_repositories"][0]
    state = "sha256sum /etc/cvmfs/default.local; ls /etc/cvmfs/config.d /etc/cvmfs/domain.d"
    before = host.run(state).stdout
    run = apply_role("cvmfs", {"cvmfs_repository_config": {repo: {"CMS-LOCAL-SITE": "T2_XX_Lab"}}})
    out = re.sub(r"\s+", " ", run.stdout + run.stderr)
    assert run.returncode != 0
    assert f"cvmfs_repository_config[{repo}]: parameter name 'CMS-LOCAL-SITE' is not a shell variable name" in out
    assert "use letters, digits and _" in out
    assert host.run(state).stdout == before
