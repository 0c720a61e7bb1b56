"""Apptainer as the apptainer role leaves it, and the readiness check (playbooks/validate.yml) on real nodes."""

import re
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[3]
IMAGE = "/srv/sitekit-origin/images.sitekit.lab/debian12"


def _workers(hostvars):
    if "worker_nodes" not in hostvars.get("group_names", []):
        pytest.skip("Apptainer runs on worker nodes")
    if not hostvars.get("apptainer_enabled", True):
        pytest.skip("Apptainer is off for this distribution in the lab (its libc is older than Apptainer 1.4 needs)")


def test_apptainer_runs_without_setuid(host, hostvars):
    _workers(hostvars)
    conf = host.file("/etc/apptainer/apptainer.conf").content_string
    assert re.search(r"^allow setuid = no$", conf, re.M), "user namespaces work here: setuid must be off"
    setuid = host.run("find / -xdev -perm -4000 -path '*apptainer*'").stdout.split()
    assert setuid == []


def test_bind_paths_and_mount_slave_follow_the_inventory(host, hostvars):
    _workers(hostvars)
    conf = host.file("/etc/apptainer/apptainer.conf").content_string
    binds = re.findall(r"^bind path = (.+)$", conf, re.M)
    wanted = hostvars.get("apptainer_bind_paths", ["/etc/hosts", "/etc/localtime"])
    assert binds[: len(wanted)] == wanted
    assert ("/cvmfs" in binds) == host.file("/cvmfs").exists
    assert re.search(r"^mount slave = yes$", conf, re.M)


def test_validate_launches_a_real_container_as_an_unprivileged_user(hostvars, playbook):
    _workers(hostvars)
    run = playbook("playbooks/validate.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.strip().startswith(hostvars["inventory_hostname"] + " ")]
    assert rows, run.stdout[-3000:]
    row = rows[0]
    assert "unprivileged" in row
    assert "Debian GNU/Linux 12 (bookworm)" in row  # the image's OS, not the node's
    assert float(re.search(r"unprivileged\s+([0-9.]+)", row).group(1)) < 10


def test_host_path_entries_missing_in_the_image_are_reported(host, hostvars, playbook):
    _workers(hostvars)
    run = playbook("playbooks/validate.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    # The PATH modules see on the node (Ubuntu's /etc/environment adds /snap/bin, /usr/games...).
    node_path = host.run("sh -c '. /etc/environment 2>/dev/null; echo $PATH'").stdout.strip().split(":")
    missing = [d for d in node_path if d and not host.file(f"{IMAGE}{d}").exists]
    if missing:
        assert "missing in the image" in run.stdout and all(d in run.stdout for d in missing), run.stdout[-3000:]
    else:
        assert "missing in the image" not in run.stdout


def test_a_node_with_user_namespaces_off_is_not_ready_with_the_remedy(hostvars, confined, playbook):
    _workers(hostvars)
    run = playbook("playbooks/validate.yml", "-e", f"ansible_python_interpreter={confined(0)}")
    assert run.returncode != 0
    assert "is not ready" in run.stdout
    assert "user.max_user_namespaces" in run.stdout, run.stdout[-3000:]


MISSING_STORAGE = "/srv/sitekit-no-such-storage"


def test_a_bind_path_missing_on_the_node_fails_before_any_change(host, hostvars, apply_role):
    """Apptainer skips a bind path whose source is missing without a word (exit 0), so jobs would silently lack the
    site's storage: the role refuses it, naming the variable and the path, and changes nothing. A present source in
    the src:dst:ro form is taken."""
    _workers(hostvars)
    assert not host.file(MISSING_STORAGE).exists
    state = "sha256sum /etc/apptainer/apptainer.conf; ls -l /etc/profile.d"
    before = host.check_output(state)
    bad = [f"{MISSING_STORAGE}/store:/store:ro"]
    run = apply_role("apptainer", {"apptainer_bind_paths_extra": ["/etc/hostname:/etc/site-hostname:ro", *bad]})
    out = re.sub(r"\s+", " ", run.stdout + run.stderr)
    assert run.returncode != 0, out[-2000:]
    assert (
        f'apptainer_bind_paths_extra has "{bad[0]}", but {MISSING_STORAGE}/store does not exist on '
        f"{hostvars['inventory_hostname']}" in out
    ), out[-3000:]
    assert "/etc/site-hostname" not in out.split("FAILED!")[-1]
    recap = re.search(rf"{re.escape(hostvars['inventory_hostname'])}\s*: ok=\d+ changed=(\d+)", out)
    assert recap and recap.group(1) == "0", out[-1500:]
    assert host.check_output(state) == before


def test_htcondors_bind_path_missing_on_the_node_fails_before_any_change(host, hostvars, apply_role):
    """The same for the binds HTCondor gives every job (SINGULARITY_BIND_EXPR): refused before HTCondor is even
    installed (this scenario's nodes have none)."""
    _workers(hostvars)
    extra = {
        "htcondor_apptainer_bind_paths": ["/cvmfs", f"{MISSING_STORAGE}:/storage"],
        "htcondor_apptainer_default_image": "/cvmfs/images.sitekit.lab/debian12",
    }
    run = apply_role("htcondor_apptainer", extra)
    out = re.sub(r"\s+", " ", run.stdout + run.stderr)
    assert run.returncode != 0, out[-2000:]
    wanted = f'htcondor_apptainer_bind_paths has "{MISSING_STORAGE}:/storage", but {MISSING_STORAGE} does not exist'
    assert wanted in out, out[-3000:]
    recap = re.search(rf"{re.escape(hostvars['inventory_hostname'])}\s*: ok=\d+ changed=(\d+)", out)
    assert recap and recap.group(1) == "0", out[-1500:]
    assert not host.file("/etc/condor").exists


def test_an_apptainer_below_the_minimum_is_refused_with_the_advisory_and_the_upgrade(
    host, hostvars, apply_role, playbook
):
    """The lab's Apptainer passes the default minimum (the converge did); against a minimum above it, the role fails
    the node before apptainer.conf is touched, and the launch check (validate.yml) says the node is not ready, each
    with the version as the cause and the node's upgrade command as the remedy."""
    _workers(hostvars)
    version = host.check_output("apptainer --version").split()[-1]
    before = host.check_output("sha256sum /etc/apptainer/apptainer.conf")
    run = apply_role("apptainer", {"apptainer_minimum_version": "99.0"})
    out = re.sub(r"\s+", " ", run.stdout + run.stderr)
    assert run.returncode != 0, out[-2000:]
    assert f"apptainer: Apptainer {version} is older than the site minimum, 99.0" in out, out[-3000:]
    assert "Fix: upgrade Apptainer to 99.0 or newer: apt-get update && apt-get install --only-upgrade apptainer" in out
    recap = re.search(rf"{re.escape(hostvars['inventory_hostname'])}\s*: ok=\d+ changed=(\d+)", out)
    assert recap and recap.group(1) == "0", out[-1500:]
    assert host.check_output("sha256sum /etc/apptainer/apptainer.conf") == before
    check = playbook("playbooks/validate.yml", "-e", "apptainer_minimum_version=99.0")
    flat = re.sub(r"\s+", " ", check.stdout + check.stderr)
    assert check.returncode != 0, flat[-2000:]
    assert f"is not ready: Apptainer {version} is older than the site minimum, 99.0" in flat, flat[-3000:]
    assert "Remedy: upgrade Apptainer to 99.0 or newer: apt-get update" in flat
    default = playbook("playbooks/validate.yml")
    assert default.returncode == 0, default.stdout[-3000:]
