"""A VO-box as playbooks/vobox.yml leaves it: two services in podman containers under systemd, and the lessons.

Each lesson of running services in containers is proved on the node with real containers, and each recovery is
timed (figures): podman's packages reinstalled and its service restarted; the containers killed; the node restarted;
a repository mounted on the host after the container started (with and without mount propagation); the host's
resolver changed; /cvmfs broken. Nothing machine-wide is changed: every mount and file touched is inside the node.
"""

import json
import os
import re
import shlex
import subprocess
import time

PODMAN = "PODMAN_IGNORE_CGROUPSV1_WARNING=1 podman"
IMAGE = "localhost/sitekit-node:trixie"


def _wait(predicate, limit, step=0.5):
    """Seconds until predicate() is true (monotonic), or None after ``limit`` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            if predicate():
                return round(time.monotonic() - start, 1)
        except Exception:
            pass
        time.sleep(step)
    return None


def _up_script(services):
    """One shell command that succeeds when every service is back: its unit active, /cvmfs readable inside, and
    what runs inside answering (systemd's ssh unit; the entry point's HTTP server through its published port)."""
    checks = []
    for s in services:
        checks.append(f"systemctl is-active --quiet {s['name']}.service")
        checks += [f"{PODMAN} exec {s['name']} ls -A /cvmfs/{r} | grep -q ." for r in s["repositories"]]
        if s["init"] == "systemd":
            checks.append(f"{PODMAN} exec {s['name']} systemctl is-active --quiet ssh.service")
        for port in s["ports"]:
            number = port.split(":")[-2] if port.count(":") == 2 else port.split(":")[0]
            if s["init"] != "systemd":
                checks.append(
                    "python3 -c "
                    + shlex.quote(
                        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{number}/', timeout=2)"
                    )
                )
    return " && ".join(checks)


def _all_back(host, services):
    return host.run(_up_script(services)).rc == 0


def _started_at(host, name):
    return host.run(f"{PODMAN} container inspect --format '{{{{.State.StartedAt}}}}' {name}").stdout.strip()


# ---------------------------------------------------------------------------------------------
# Bad input and check mode first: they must find the node as the converge left it
# ---------------------------------------------------------------------------------------------
BAD = {
    "no image": ([{"name": "alice-box"}], "vobox_services_list[0] (alice-box).image is required"),
    "not a repository": (
        [{"name": "alice-box", "image": IMAGE, "repositories": ["alice"]}],
        "is not a fully qualified repository name",
    ),
    "port taken twice": (
        [
            {"name": "alice-box", "image": IMAGE, "ports": ["8443:8443"]},
            {"name": "alice-web", "image": IMAGE, "ports": ["8443:443/tcp"]},
        ],
        "host port 8443/tcp is taken twice (alice-box and alice-web)",
    ),
}


def test_bad_input_fails_before_any_change(host, hostvars):
    before = host.check_output("ls -l --time-style=+%s /etc/containers/systemd; systemctl list-units --all 'vobox*'")
    env = dict(os.environ, ANSIBLE_NOCOLOR="true")
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    for var, sub in (("ANSIBLE_LIBRARY", "library"), ("ANSIBLE_MODULE_UTILS", "module_utils")):
        env[var] = os.path.join(top, sub)
    env["ANSIBLE_FILTER_PLUGINS"] = os.path.join(top, "filter_plugins")
    env["ANSIBLE_ROLES_PATH"] = os.path.join(top, "roles")
    runs = {}
    for case, (services, _) in BAD.items():
        extra = {
            "sitekit_test_role": "vobox_services",
            "sitekit_test_hosts": "vobox_hosts",
            "vobox_services_list": services,
        }
        argv = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-l", hostvars["inventory_hostname"]]
        argv += [os.path.join(top, "molecule/resources/apply-role.yml"), "-e", json.dumps(extra)]
        runs[case] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for case, run in runs.items():
        out = run.communicate(timeout=300)[0]
        assert run.returncode != 0, f"{case}: accepted\n{out[-2000:]}"
        assert BAD[case][1] in " ".join(out.split()), f"{case}:\n{out[-3000:]}"
        assert "changed=0" in out, f"{case}: changed something\n{out[-2000:]}"
    assert (
        host.check_output("ls -l --time-style=+%s /etc/containers/systemd; systemctl list-units --all 'vobox*'")
        == before
    )


def test_check_mode_changes_nothing(playbook):
    run = playbook("playbooks/vobox.yml", "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    recap = re.search(r"ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", run.stdout)
    assert recap and recap.group(1) == "0", run.stdout[-3000:]


# ---------------------------------------------------------------------------------------------
# What the role set up
# ---------------------------------------------------------------------------------------------
def test_each_service_runs_in_its_container_from_its_quadlet_unit(host, services):
    image_id = host.check_output(f"{PODMAN} image inspect --format '{{{{.Id}}}}' {IMAGE}")
    for s in services:
        props = dict(
            line.split("=", 1)
            for line in host.check_output(
                f"systemctl show {s['name']}.service -p FragmentPath,UnitFileState,Restart,ActiveState,SubState"
            ).splitlines()
        )
        assert props["FragmentPath"] == f"/run/systemd/generator/{s['name']}.service", props
        assert props["UnitFileState"] == "generated" and props["Restart"] == "always", props
        assert (props["ActiveState"], props["SubState"]) == ("active", "running"), props
        inspect = json.loads(host.check_output(f"{PODMAN} container inspect {s['name']}"))[0]
        assert inspect["Image"] == image_id
        cvmfs = [m for m in inspect["Mounts"] if m["Destination"] == "/cvmfs"]
        assert cvmfs and cvmfs[0]["Propagation"] == "rslave" and not cvmfs[0]["RW"], inspect["Mounts"]
        # What runs inside was started by the container's own init, or is the entry point itself.
        pid1 = host.check_output(f"{PODMAN} exec {s['name']} cat /proc/1/comm")
        assert pid1 == ("systemd" if s["init"] == "systemd" else s["command"][0]), pid1
    assert _all_back(host, services), _up_script(services)
    assert host.check_output("findmnt --noheadings --output PROPAGATION /") == "shared"


def test_the_readiness_check_passes_every_service(vobox_check, services):
    results, ready = vobox_check()
    assert ready, json.dumps(results, indent=1)
    assert sorted(results) == sorted(s["name"] for s in services)
    for result in results.values():
        assert sorted(k for k, c in result["checks"].items() if c["ok"]) == ["cvmfs", "dns", "image", "unit"]


# ---------------------------------------------------------------------------------------------
# Lesson 1: the container runtime restarted (a package update) and the containers killed
# ---------------------------------------------------------------------------------------------
def test_a_service_taken_out_of_the_list_is_stopped_and_removed_and_comes_back(host, hostvars, apply_role):
    listed = hostvars["vobox_services_list"]
    kept, dropped = listed[0], listed[-1]["name"]
    admins = "/etc/containers/systemd/admin-own.container"  # the admin's unit: no marker, never touched
    host.run_expect([0], f"printf '[Container]\\nImage=localhost/sitekit-node:trixie\\n' > {admins}")
    try:
        run = apply_role("vobox_services", {"sitekit_test_hosts": "vobox_hosts", "vobox_services_list": [kept]})
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert not host.file(f"/etc/containers/systemd/{dropped}.container").exists
        assert host.check_output(f"systemctl show -p LoadState --value {dropped}.service") == "not-found"
        assert host.run(f"podman container exists {dropped}").rc == 1
        assert host.service(f"{kept['name']}.service").is_running
        assert host.file(admins).exists

        run = apply_role("vobox_services", {"sitekit_test_hosts": "vobox_hosts", "vobox_services_list": listed})
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert host.service(f"{dropped}.service").is_running
        assert host.file(f"/etc/containers/systemd/{dropped}.container").exists
    finally:
        host.run(f"rm -f {admins} && systemctl daemon-reload")


def test_every_service_comes_back_after_the_runtime_is_updated_and_restarted(host, services, figures):
    before = {s["name"]: _started_at(host, s["name"]) for s in services}
    host.run_expect(
        [0],
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall -o Dpkg::Options::=--force-confold "
        "podman conmon crun",
    )
    start = time.monotonic()
    host.run_expect([0], "systemctl restart podman.socket podman.service")
    back = _wait(lambda: _all_back(host, services), 120)
    assert back is not None, "not every service came back after podman's packages and service were restarted"
    figures["runtime_reinstall_and_restart_to_all_back_s"] = round(time.monotonic() - start, 1)
    # No daemon holds the containers: an update of podman's packages leaves them running.
    figures["runtime_update_restarted_containers"] = [n for n in before if _started_at(host, n) != before[n]]

    before = {s["name"]: _started_at(host, s["name"]) for s in services}
    start = time.monotonic()
    host.run_expect([0], f"{PODMAN} kill {' '.join(s['name'] for s in services)}")
    assert _wait(lambda: all(_started_at(host, n) not in ("", before[n]) for n in before), 60) is not None
    back = _wait(lambda: _all_back(host, services), 120)
    assert back is not None, "not every service came back after its container was killed"
    figures["containers_killed_to_all_back_s"] = round(time.monotonic() - start, 1)


# ---------------------------------------------------------------------------------------------
# Lesson 2: /cvmfs from the host, with mount propagation
# ---------------------------------------------------------------------------------------------
def test_a_repository_mounted_after_the_container_started_is_readable_inside_only_with_propagation(
    host, services, figures
):
    """The agent does not need software.sitekit.lab: it starts while that repository is not mounted on the host; the
    repository is then mounted (static mode: the mount autofs would make on first access) and read inside. A container
    started the same way without propagation sees an empty directory (static) or "Too many levels of symbolic links"
    (autofs: the host's automount point without the mount)."""
    repo = "software.sitekit.lab"
    agent = next(s["name"] for s in services if repo not in s["repositories"])
    mode = lab_mode(host)
    host.run(f"umount /cvmfs/{repo}")
    try:
        host.run_expect([0], f"systemctl restart {agent}.service")
        host.run_expect(
            [0],
            f"{PODMAN} run -d --replace --name vobox-test-private --volume /cvmfs:/cvmfs:ro,rprivate {IMAGE} sleep 600",
        )
        inside_private = f"{PODMAN} exec vobox-test-private ls -A /cvmfs/{repo}"
        if mode == "static":
            assert host.run(inside_private).stdout.strip() == "", "the repository was there before it was mounted"
            host.run_expect([0], f"mount /cvmfs/{repo}")
        start = time.monotonic()
        seen = host.run(f"{PODMAN} exec {agent} ls -A /cvmfs/{repo}")
        figures["repository_mounted_later_visible_inside_s"] = round(time.monotonic() - start, 2)
        assert seen.rc == 0 and ".cvmfsdirtab" in seen.stdout, seen.stderr
        private = host.run(inside_private)
        if mode == "autofs":
            assert private.rc != 0 and "Too many levels of symbolic links" in private.stderr, private
        else:
            assert private.rc == 0 and private.stdout.strip() == "", private
    finally:
        host.run(f"{PODMAN} rm -f -t 0 vobox-test-private")
        host.run(f"mountpoint -q /cvmfs/{repo} || mount /cvmfs/{repo}")
    assert _wait(lambda: _all_back(host, services), 60) is not None


def lab_mode(host):
    return json.loads(host.check_output("cat /usr/local/lib/sitekit/cvmfs-probe.json"))["mount_mode"]


# ---------------------------------------------------------------------------------------------
# Lesson 3: name resolution from the host, across restarts
# ---------------------------------------------------------------------------------------------
def test_the_containers_follow_the_hosts_resolver_and_lose_changes_made_inside(host, services, vobox_check):
    saved = host.check_output("cat /etc/resolv.conf")
    web, agent = (next(s["name"] for s in services if s["init"] == kind) for kind in ("entrypoint", "systemd"))
    try:
        changed = f"{saved}\nnameserver 192.0.2.53\nsearch vobox.sitekit.lab sitekit.lab\n"
        # Written in place: the node's /etc/resolv.conf is a file podman bound into it.
        host.run_expect([0], f"printf '%s\\n' {shlex.quote(changed)} > /etc/resolv.conf")
        results, ready = vobox_check([web])
        assert not ready and results[web]["failed_checks"] == ["dns"], results[web]
        assert "192.0.2.53" in results[web]["checks"]["dns"]["detail"]
        host.run_expect([0], f"systemctl restart {web}.service")
        assert _wait(lambda: _all_back(host, services), 60) is not None
        inside = host.check_output(f"{PODMAN} exec {web} cat /etc/resolv.conf")
        assert "nameserver 192.0.2.53" in inside and re.search(r"^search vobox.sitekit.lab sitekit.lab$", inside, re.M)
        assert vobox_check([web])[1]
    finally:
        host.run_expect([0], f"printf '%s\\n' {shlex.quote(saved)} > /etc/resolv.conf")
    # An admin's edit inside the container (the old way) is drift the check names, and a restart undoes it.
    host.run_expect([0], f"{PODMAN} exec {agent} sh -c 'echo nameserver 198.51.100.1 > /etc/resolv.conf'")
    results, ready = vobox_check([agent])
    assert not ready and results[agent]["failed_checks"] == ["dns"], results[agent]
    host.run_expect([0], f"systemctl restart {web}.service {agent}.service")
    assert _wait(lambda: _all_back(host, services), 90) is not None
    results, ready = vobox_check()
    assert ready, json.dumps(results, indent=1)


# ---------------------------------------------------------------------------------------------
# Lesson 4: a /cvmfs that cannot be mounted holds the service back, with the reason
# ---------------------------------------------------------------------------------------------
def test_a_broken_cvmfs_holds_the_service_back_with_the_probes_reason(
    host, services, vobox_check, break_repository, figures
):
    repo = "software.sitekit.lab"
    needing = [s["name"] for s in services if repo in s["repositories"]]
    others = [s for s in services if repo not in s["repositories"]]
    assert needing and others
    repair = break_repository(host, repo)
    try:
        for name in needing:
            assert host.run(f"systemctl restart {name}.service").rc != 0, f"{name} started without {repo}"
        time.sleep(6)  # a few retries (RestartSec 2 s): still held back
        for name in needing:
            state = host.check_output(f"systemctl show {name}.service -p ActiveState,SubState --value").split()
            assert state[0] in ("activating", "failed") and state != ["active", "running"], state
            assert host.run(f"{PODMAN} container inspect --format '{{{{.State.Running}}}}' {name}").stdout.strip() in (
                "",
                "false",
            )
            # The status names the failed start condition; the probe's cause and remedy are in the unit's journal.
            status = host.run(f"systemctl status --no-pager {name}.service").stdout
            assert "ExecStartPre=/usr/local/sbin/sitekit-cvmfs-probe" in status and "status=1/FAILURE" in status, status
            journal = host.check_output(f"journalctl -u {name}.service -n 30 -o cat --no-pager")
            assert repo in journal and "Cause:" in journal and "Remedy:" in journal, journal
        results, _ = vobox_check()
        for name in needing:
            assert (
                results[name]["failed_checks"][0] == "unit" and "Remedy:" in results[name]["checks"]["unit"]["detail"]
            )
        assert all(results[s["name"]]["ready"] for s in others), results
    finally:
        start = time.monotonic()
        repair()
    # Nothing but the repaired /cvmfs: systemd starts the service again by itself.
    back = _wait(lambda: _all_back(host, services), 120)
    assert back is not None, "the held-back service did not start by itself once /cvmfs was repaired"
    figures["cvmfs_repaired_to_service_back_s"] = round(time.monotonic() - start, 1)


# ---------------------------------------------------------------------------------------------
# Lesson 5: the node restarted (last: it ends every connection)
# ---------------------------------------------------------------------------------------------
def test_every_service_comes_back_after_the_node_restarts(host, hostvars, services, vobox_check, figures):
    node = hostvars["inventory_hostname"]
    before = {s["name"]: _started_at(host, s["name"]) for s in services}
    host.run_expect([0], "touch /run/sitekit-test-before-restart")
    start = time.monotonic()
    subprocess.run(["podman", "restart", "--time", "30", node], check=True, capture_output=True, timeout=120)
    restarted = time.monotonic()
    back = _wait(lambda: _all_back(host, services), 240, step=1)
    assert back is not None, "not every service came back after the node restarted"
    figures["node_restart_command_s"] = round(restarted - start, 1)
    figures["node_started_to_all_back_s"] = round(time.monotonic() - restarted, 1)
    figures["node_restart_to_all_back_s"] = round(time.monotonic() - start, 1)
    # The node really restarted (its /run is new) and so did every container.
    assert not host.file("/run/sitekit-test-before-restart").exists
    assert all(_started_at(host, n) != before[n] for n in before)
    assert host.check_output("findmnt --noheadings --output PROPAGATION /") == "shared"
    _wait(lambda: host.run("systemctl is-system-running --wait").rc in (0, 1), 60)
    results, ready = vobox_check()
    assert ready, json.dumps(results, indent=1)
