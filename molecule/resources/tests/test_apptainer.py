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
