"""Pull mode as playbooks/pull.yml leaves a node, and what the node's own runs of ansible-pull then do.

The tests run in file order, as a site would see it: the timer is scheduled; the first run clones the site repository
(this working tree, published by prepare.yml) over file:// and converges the node as a proxy node of
molecule/pull/inventory; a second run changes nothing; a commit reaches the node with the next run; a bad repository
URL or an inventory missing from the repository fails the run with a clear message in the journal; bad input to the
role fails before anything on the node changes.
"""

import json
import re
from pathlib import Path

import yaml

TOP = Path(__file__).resolve().parents[3]
UNIT = "sitekit-ansible-pull"
SQUIDS_VARS = "molecule/pull/inventory/group_vars/squids.yml"
CHECKOUT = "/var/lib/sitekit/ansible-pull"
UNIT_FILES = f"/etc/systemd/system/{UNIT}.service /etc/systemd/system/{UNIT}.timer"
SPAN_UNITS = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}


def _seconds(span):
    return sum(int(n) * SPAN_UNITS[u] for n, u in re.findall(r"(\d+) *([a-z]*)", str(span)))


def _squid_vars():
    return yaml.safe_load((TOP / SQUIDS_VARS).read_text())


def _ok(run):
    """Assert that a pull run succeeded; returns it."""
    assert run.rc == 0 and run.props["Result"] == "success", run.journal[-4000:]
    assert run.props["ExecMainStatus"] == "0", run.journal[-4000:]
    return run


def test_the_timer_is_enabled_running_and_scheduled(host, hostvars):
    timer = host.service(f"{UNIT}.timer")
    assert timer.is_enabled
    assert timer.is_running
    listed = host.check_output(f"systemctl list-timers --all --output=json {UNIT}.timer")
    [entry] = json.loads(listed)
    assert entry["activates"] == f"{UNIT}.service"
    started = host.check_output(f"systemctl show -P ActiveEnterTimestamp --timestamp=unix {UNIT}.timer")
    # The first run comes the initial delay after the timer started, plus at most the splay (and 1 min accuracy).
    initial, splay = _seconds(hostvars["ansible_pull_initial_delay"]), _seconds(hostvars["ansible_pull_splay"])
    after = entry["next"] / 1e6 - int(started.lstrip("@"))
    assert initial - 1 <= after <= initial + splay + 61, (after, entry)
    unit = host.file(f"/etc/systemd/system/{UNIT}.timer").content_string
    assert f"OnUnitActiveSec={hostvars['ansible_pull_interval']}" in unit
    assert f"RandomizedDelaySec={hostvars['ansible_pull_splay']}" in unit


def test_the_service_runs_ansible_pull_for_this_node_over_the_local_connection(host, hostvars):
    assert host.run(f"systemd-analyze verify {UNIT}.service {UNIT}.timer").rc == 0
    argv = re.search(r"argv\[\]=(.*?) ;", host.check_output(f"systemctl show -P ExecStart {UNIT}.service")).group(1)
    args = argv.split()

    def value(flag):
        return args[args.index(flag) + 1]

    # The pull run and the compliance pass take the same lock.
    assert args[0] == "/usr/bin/flock" and args[2] == "/usr/bin/ansible-pull"
    assert value("--url") == hostvars["ansible_pull_repo_url"]
    assert value("--checkout") == hostvars["ansible_pull_ref"]
    assert value("--inventory") == hostvars["ansible_pull_inventory"]
    # The node's part is chosen by its inventory name, which is not its hostname here.
    assert value("--limit") == hostvars["inventory_hostname"] != host.check_output("hostname")
    assert value("--extra-vars") == "ansible_connection=local"
    assert args[-1] == "playbooks/site.yml"


def test_the_first_run_clones_the_repository_and_converges_the_node(host, hostvars, pull, repo, figures):
    run = _ok(pull())
    name = hostvars["inventory_hostname"]
    recap = run.recap(name)
    assert recap.get("failed") == 0 and recap.get("unreachable") == 0, run.journal[-4000:]
    assert recap.get("changed", 0) > 0, run.journal[-4000:]
    figures["first pull run: clone, install squid and nginx, configure"] = run.figure()
    # The commit prepare.yml published, checked out on the node.
    assert host.check_output(f"git -C {CHECKOUT} rev-parse HEAD") == repo("rev-parse", "HEAD")
    # None of the site inventory's SSH settings was used (ansible_connection: ssh, an address nothing answers on).
    assert "UNREACHABLE" not in run.journal and "Failed to connect" not in run.journal
    # The squid runs with the configuration of the inventory in the repository.
    squid = host.service("squid")
    assert squid.is_running and squid.is_enabled
    conf = host.file("/etc/squid/squid.conf").content_string
    want = _squid_vars()
    assert f"acl NET_LOCAL src {' '.join(want['squid_client_networks'])}" in conf
    assert f"acl SITEKIT_DEST dstdomain {' '.join(want['squid_cvmfs_domains'])}" in conf
    assert re.search(rf"^cache_mem {want['squid_cache_mem']}$", conf, re.M), conf
    # It serves: a destination outside the inventory's domains is refused by the squid itself.
    refused = host.check_output(
        "curl -s -o /dev/null -w '%{http_code}' -x http://127.0.0.1:3128 http://www.example.com/"
    )
    assert refused == "403"
    # The PAC file is served under the WPAD names and sends the CVMFS domains through this squid.
    pac = host.run("curl -s -D - -H 'Host: wpad' http://127.0.0.1/wpad.dat")
    assert pac.rc == 0 and " 200 " in pac.stdout.splitlines()[0], pac.stdout
    assert "content-type: application/x-ns-proxy-autoconfig" in pac.stdout.lower()
    assert f"PROXY {name}:3128" in pac.stdout


def test_a_second_run_changes_nothing(hostvars, pull, figures):
    run = _ok(pull())
    recap = run.recap(hostvars["inventory_hostname"])
    assert recap.get("changed") == 0 and recap.get("failed") == 0, run.journal[-4000:]
    figures["no-op pull run"] = run.figure()


def test_a_commit_to_the_repository_reaches_the_node_with_the_next_run(host, hostvars, pull, publish, figures):
    text = (TOP / SQUIDS_VARS).read_text()
    old = _squid_vars()["squid_cache_mem"]
    assert f"squid_cache_mem: {old}\n" in text
    commit = publish(SQUIDS_VARS, text.replace(f"squid_cache_mem: {old}\n", "squid_cache_mem: 96 MB\n"), "More memory")
    run = _ok(pull())
    recap = run.recap(hostvars["inventory_hostname"])
    assert recap.get("changed", 0) > 0 and recap.get("failed") == 0, run.journal[-4000:]
    figures["pull run applying one changed setting"] = run.figure()
    assert host.check_output(f"git -C {CHECKOUT} rev-parse HEAD") == commit
    assert re.search(r"^cache_mem 96 MB$", host.file("/etc/squid/squid.conf").content_string, re.M)
    assert host.service("squid").is_running


# Well-formed settings that cannot work, and what the journal must then say.
BROKEN = [
    # No repository at that URL.
    (
        {"ansible_pull_repo_url": "file:///srv/sitekit-pull/missing.git"},
        ["'/srv/sitekit-pull/missing.git' does not appear to be a git repository"],
    ),
    # The repository is fine, but the inventory is not in it: no fallback to the repository's ansible.cfg inventory.
    (
        {"ansible_pull_inventory": "inventories/nosuchsite/hosts.yml"},
        [f"Unable to parse {CHECKOUT}/inventories/nosuchsite/hosts.yml", "No inventory was parsed"],
    ),
]


def test_a_broken_setting_fails_the_run_with_a_clear_message(host, pull, pull_playbook):
    try:
        for extra, journal in BROKEN:
            out = pull_playbook(extra, units_only=True).communicate(timeout=900)[0]
            assert "failed=0" in out, out[-3000:]
            run = pull()
            assert run.rc != 0 and run.props["Result"] == "exit-code", (extra, run.journal[-3000:])
            assert run.props["ExecMainStatus"] != "0", run.journal[-3000:]
            for message in journal:
                assert message in run.journal, (extra, run.journal[-3000:])
            assert host.run(f"systemctl is-failed {UNIT}.service").stdout.strip() == "failed"
            # What the last good run set up keeps running.
            assert host.service("squid").is_running
    finally:
        # The inventory's settings back.
        out = pull_playbook({}, units_only=True).communicate(timeout=900)[0]
        host.run(f"systemctl reset-failed {UNIT}.service")
    assert "failed=0" in out, out[-3000:]


BAD_INPUT = [
    ({"ansible_pull_repo_url": ""}, "ansible_pull_repo_url is required"),
    ({"ansible_pull_repo_url": "github.com/site/repo"}, "ansible_pull_repo_url must be a git URL"),
    ({"ansible_pull_repo_url": "https://git.example.org/site.git;reboot"}, "ansible_pull_repo_url must be a git URL"),
    ({"ansible_pull_interval": "0"}, "ansible_pull_interval must be a systemd time span of at least 1min"),
    ({"ansible_pull_interval": "hourly"}, "ansible_pull_interval must be a systemd time span of at least 1min"),
    ({"ansible_pull_inventory": ""}, "ansible_pull_inventory is required"),
]


def test_bad_input_fails_before_any_change_naming_the_variable(host, pull_playbook):
    before = host.check_output(f"sha256sum {UNIT_FILES}; systemctl is-enabled {UNIT}.timer")
    # The runs only read the node: side by side.
    runs = [(pull_playbook(extra), message) for extra, message in BAD_INPUT]
    for proc, message in runs:
        out = proc.communicate(timeout=900)[0]
        assert proc.returncode != 0, out[-3000:]
        assert message in re.sub(r"\s+", " ", out), out[-3000:]
        assert re.search(r"changed=0 .*failed=1", out), out[-3000:]
    assert host.check_output(f"sha256sum {UNIT_FILES}; systemctl is-enabled {UNIT}.timer") == before
    assert host.service(f"{UNIT}.timer").is_running


def test_the_repository_holds_this_working_tree(repo):
    # prepare.yml published the tree as it is, untracked files included (this scenario's inventory may be one).
    published = repo("ls-tree", "-r", "--name-only", "HEAD").splitlines()
    assert {"molecule/pull/inventory/hosts.yml", "playbooks/site.yml", "roles/squid/tasks/main.yml"} <= set(published)
