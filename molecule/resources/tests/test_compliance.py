"""The compliance gate on a site with one drifted node and one broken node: it exits non-zero, its JUnit and
report name exactly those nodes and controls with their remedies, and it changes no byte on any node.

The proxy node drifts (a line added to squid.conf by hand); the worker node breaks the way real nodes break
(its CVMFS repository cannot be mounted any more: the lab's stand-in points at a missing source, so the
repository and the image on it are gone; with static mounts the unmounted repository is also drift, since its
fstab line says mounted). Both are restored afterwards.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import lab_cvmfs
import pytest

TOP = Path(__file__).resolve().parents[3]

# Every file that configuration lives in; logs, caches and spools change by themselves.
HASH = (
    "find /etc /usr /opt /var/lib /srv /root -xdev -type f ! -path '/srv/sitekit-origin/*' -print0 2>/dev/null"
    " | sort -z | xargs -0 sha256sum"
)


def _sh(node, command, check=True):
    run = subprocess.run(["podman", "exec", node, "sh", "-c", command], capture_output=True, text=True)
    if check:
        assert run.returncode == 0, f"{node}: {command}: {run.stderr}"
    return run.stdout


@pytest.fixture
def drifted_and_broken_site(hostvars):
    if "worker_nodes" not in hostvars.get("group_names", []):
        pytest.skip("runs once, from the worker node's parametrization")
    groups = hostvars["groups"]
    proxy, worker = groups["squids"][0], hostvars["inventory_hostname"]
    repo = hostvars["cvmfs_repositories"][0]
    squid_conf = _sh(proxy, "cat /etc/squid/squid.conf")

    def on_worker(command, check=True):
        return _sh(worker, command, check)

    mode = lab_cvmfs.node_mode(on_worker)
    _sh(proxy, "echo 'client_db off' >> /etc/squid/squid.conf")
    repair = lab_cvmfs.break_repository(on_worker, repo)
    try:
        yield {"proxy": proxy, "worker": worker, "repo": repo, "nodes": groups["all"], "mode": mode}
    finally:
        _sh(proxy, f"printf %s {shlex.quote(squid_conf)} > /etc/squid/squid.conf")
        repair()


def test_compliance_names_the_drifted_and_the_broken_node_and_changes_nothing(drifted_and_broken_site, tmp_path):
    site = drifted_and_broken_site
    before = {node: _sh(node, HASH) for node in site["nodes"]}
    argv = [sys.executable, str(TOP / "tools" / "compliance.py"), "-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    run = subprocess.run([*argv, "--out", str(tmp_path)], capture_output=True, text=True, timeout=1200)
    after = {node: _sh(node, HASH) for node in site["nodes"]}
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]

    # Nothing changed on any node (configuration, binaries, state under /var/lib).
    for node in site["nodes"]:
        changed = set(before[node].splitlines()) ^ set(after[node].splitlines())
        assert not changed, f"{node}: the compliance run changed {sorted(changed)[:10]}"

    # JUnit: exactly those nodes and controls fail, each with its remedy.
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    failing = {}
    for case in suite.iter("testcase"):
        failure = case.find("failure")
        if failure is not None:
            failing[(case.get("classname"), case.get("name").split()[0])] = failure.get("message")
    expected = {
        (site["proxy"], "SK-SQUID-02"),
        (site["worker"], f"SK-CVMFS-05:{site['repo']}"),
        (site["worker"], "SK-LAUNCH-01"),
    }
    if site["mode"] == "static":
        expected.add((site["worker"], "SK-CVMFS-03"))
    assert set(failing) == expected, json.dumps(sorted(failing.items()), indent=1)
    assert "--tags squid" in failing[(site["proxy"], "SK-SQUID-02")]
    assert "cvmfs_config probe" in failing[(site["worker"], f"SK-CVMFS-05:{site['repo']}")]
    assert failing[(site["worker"], "SK-LAUNCH-01")]
    assert int(suite.get("failures")) == len(expected)

    # The JSON summary and the report say the same.
    summary = json.loads((tmp_path / "compliance.json").read_text())
    status = {n["name"]: n["status"] for n in summary["nodes"]}
    assert status[site["proxy"]] == "drift" and status[site["worker"]] == "fail"
    assert summary["verdict"] == "fail"
    # One test case per node and control that applies to it.
    assert int(suite.get("tests")) == sum(len(n["results"]) for n in summary["nodes"]) > 20
    drift = summary["nodes"][[n["name"] for n in summary["nodes"]].index(site["proxy"])]["results"]["SK-SQUID-02"]
    assert "+client_db off" not in drift["detail"] and "-client_db off" in drift["detail"]
    html = (tmp_path / "report.html").read_text()
    assert site["worker"] in html and "SK-LAUNCH-01" in html
