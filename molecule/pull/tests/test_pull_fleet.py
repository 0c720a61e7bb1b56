"""The fleet view: the pull node records its compliance pass in the scenario's ARA server on its own timer, attaches
the pass's summary record to it (tools/compliance_record.py), and tools/compliance.py --from-ara builds the site
report from those records, with no playbook run from here.

Runs after test_pull.py (file name order): the node has converged from its own pull runs. The compliance timer runs
every minute once the first pass started (ansible_pull_compliance_interval in molecule.yml).
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra

TOP = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(TOP / "tools"))
import ara_fleet  # noqa: E402
import compliance  # noqa: E402

UNIT = "sitekit-compliance"
RECORDED = TOP / ".lab" / "pull" / "ara"


@pytest.fixture(scope="module")
def ara():
    return testinfra.get_host("podman://sk-pull-ara1")


@pytest.fixture(scope="module")
def server(ara):
    address = subprocess.run(
        ["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "sk-pull-ara1"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return f"http://{address}:8000"


def last_pass(server, name):
    client = ara_fleet.AraClient(server)
    passes, _ = ara_fleet.latest_passes(client, name)
    return passes[0]["playbook"] if passes else None


def report(server, tmp_path, record=None):
    out = tmp_path / "report"
    argv = [sys.executable, str(TOP / "tools/compliance.py"), "--from-ara", server, "--out", str(out)]
    argv += ["--ara-record", str(record)] if record else []
    run = subprocess.run(argv, capture_output=True, text=True)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    return run, json.loads((out / "compliance.json").read_text())


def wait_for_new_pass(server, name, after_id, seconds=240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        playbook = last_pass(server, name)
        if playbook and playbook["id"] > after_id and playbook["status"] != "running":
            return playbook
        time.sleep(5)
    raise AssertionError(f"no new compliance pass of {name} in ARA within {seconds} s")


def record_tasks(server, name, directory):
    """Also record the answers of the task path for the node's last pass (the unit tests read the same pass both
    ways: its record, and its tasks when a record is set aside)."""
    client = ara_fleet.AraClient(server, record=directory)
    passes, _ = ara_fleet.latest_passes(client, name)
    ara_fleet.node_results(client, passes[0], set(compliance.READERS))


def summary_record(server, playbook):
    """The summary record ARA holds for a pass's playbook (its detail, with the value), or None."""
    client = ara_fleet.AraClient(server)
    listed = client.get(f"/api/v1/records?playbook={playbook['id']}&key={ara_fleet.SUMMARY_KEY}")["results"]
    return client.get(f"/api/v1/records/{listed[0]['id']}") if listed else None


def test_the_pass_records_into_ara_and_the_report_is_built_from_it(host, hostvars, server, tmp_path, figures):
    name = hostvars["inventory_hostname"]
    t0 = time.monotonic()
    run = host.run(f"systemctl start {UNIT}.service")
    figures["compliance pass on the pull node, recorded in ARA"] = f"{time.monotonic() - t0:.1f} s"
    journal = host.run(f"journalctl --no-pager -o cat -u {UNIT} -n 200").stdout
    assert run.rc == 0, journal[-3000:]
    assert "recording into http://sk-pull-ara1:8000" in journal
    playbook = last_pass(server, name)
    assert playbook and "interval:60" in [label["name"] for label in playbook["labels"]]
    # The pass attached its own verdicts to its playbook, and printed them in its journal.
    assert f"attached to ARA playbook {playbook['id']}" in journal, journal[-3000:]
    assert f"{name}  ok " in journal, journal[-3000:]
    record = summary_record(server, playbook)
    assert record and record["value"]["node"] == name and record["value"]["version"] == ara_fleet.SUMMARY_VERSION
    assert record["value"]["results"]["SK-SQUID-02"]["status"] == "ok"
    run, summary = report(server, tmp_path, record=RECORDED / "record-ok")
    record_tasks(server, name, RECORDED / "record-ok")
    [node] = [n for n in summary["nodes"] if n["name"] == name]
    assert summary["from_records"] == 1 and summary["warnings"] == [], run.stdout
    assert node["status"] == "ok", run.stdout
    assert node["results"]["SK-PULL-04"]["status"] == "ok"
    assert node["results"]["SK-SQUID-02"]["status"] == "ok"


def test_a_drift_on_the_node_shows_after_its_next_pass(host, hostvars, server, tmp_path):
    name = hostvars["inventory_hostname"]
    before = last_pass(server, name)["id"]
    host.run_expect([0], "sed -i 's/^cache_mem .*/cache_mem 32 MB/' /etc/squid/squid.conf")
    # No playbook from here: the node's own timer runs the next pass.
    playbook = wait_for_new_pass(server, name, before)
    run, summary = report(server, tmp_path, record=RECORDED / "record-drift")
    record_tasks(server, name, RECORDED / "record-drift")
    [node] = [n for n in summary["nodes"] if n["name"] == name]
    # Read from the pass's own summary record (the report asked for no task of it).
    assert summary["from_records"] == 1 and summary_record(server, playbook), run.stdout
    assert node["status"] == "drift", run.stdout
    squid = node["results"]["SK-SQUID-02"]
    assert squid["status"] == "drift" and "cache_mem" in squid["detail"], squid
    assert f"--limit {name} --tags squid" in squid["remedy"]
    assert run.returncode == 1 and "DRIFT" in run.stdout


def test_an_unreachable_ara_server_breaks_neither_the_converge_nor_the_pass(host, hostvars, ara, pull):
    ara.run_expect([0], "systemctl stop ara-server")
    try:
        run = pull()
        assert run.rc == 0 and run.props["Result"] == "success", run.journal[-3000:]
        # The converge corrected the drift.
        assert "cache_mem 32 MB" not in host.file("/etc/squid/squid.conf").content_string
        checked = host.run(f"systemctl start {UNIT}.service")
        journal = host.run(f"journalctl --no-pager -o cat -u {UNIT} -n 300").stdout
        assert checked.rc == 0, journal[-3000:]
        assert "does not answer: this pass is not recorded" in journal
        # The pass's verdicts are still in its journal.
        assert f"{hostvars['inventory_hostname']}  ok " in journal, journal[-3000:]
    finally:
        ara.run_expect([0], "systemctl start ara-server")


def test_a_record_that_cannot_be_attached_leaves_the_pass_and_its_status_alone(host, hostvars, ara, server):
    """ARA answers when the pass starts and is gone when the pass attaches its summary: the pass still ends as it ran,
    and its journal says why it has no record."""
    name = hostvars["inventory_hostname"]
    host.run_expect([0], f"systemctl stop {UNIT}.timer")
    try:
        for _ in range(60):  # a pass the timer started finishes first
            if host.run(f"systemctl is-active {UNIT}.service").stdout.strip() != "activating":
                break
            time.sleep(5)
        before = last_pass(server, name)["id"]
        since = host.run("date +%s").stdout.strip()
        host.run_expect([0], f"systemctl start --no-block {UNIT}.service")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            playbook = last_pass(server, name)
            if playbook["id"] > before:
                break
            time.sleep(1)
        else:
            raise AssertionError("the pass did not start recording in ARA")
        ara.run_expect([0], "systemctl stop ara-server")
        for _ in range(120):
            if host.run(f"systemctl is-active {UNIT}.service").stdout.strip() != "activating":
                break
            time.sleep(3)
        result = host.run(f"systemctl show -P Result {UNIT}.service").stdout.strip()
        journal = host.run(f"journalctl --no-pager -o cat -u {UNIT} --since @{since}").stdout
        assert result == "success", journal[-3000:]
        assert "the summary record was not attached" in journal, journal[-3000:]
        assert "this pass has no summary record" in journal
        assert f"{name}  ok " in journal, journal[-3000:]
    finally:
        ara.run_expect([0], "systemctl start ara-server")
        host.run_expect([0], f"systemctl start {UNIT}.timer")


def test_a_node_that_stops_reporting_is_stale(host, hostvars, server, tmp_path):
    name = hostvars["inventory_hostname"]
    host.run_expect([0], f"systemctl stop {UNIT}.timer")
    try:
        # A pass the timer started before it stopped finishes first (and records).
        for _ in range(60):
            if host.run(f"systemctl is-active {UNIT}.service").stdout.strip() != "activating":
                break
            time.sleep(5)
        playbook = last_pass(server, name)
        ended = ara_fleet.parse_time(playbook["ended"] or playbook["started"])
        # Two intervals of 60 s after the last record, and a little more.
        wait = 2 * 60 + 5 - (time.time() - ended.timestamp())
        if wait > 0:
            time.sleep(wait)
        run, summary = report(server, tmp_path)
        [node] = [n for n in summary["nodes"] if n["name"] == name]
        assert node["status"] == "stale", run.stdout
        fresh = node["results"]["SK-PULL-04"]
        assert fresh["status"] == "fail" and fresh["value"].startswith("stale: ")
        assert "systemctl list-timers sitekit-compliance.timer" in fresh["remedy"]
        assert summary["verdict"] == "fail" and summary["totals"]["stale"] == 1
        assert run.returncode == 1 and "STALE" in run.stdout
    finally:
        host.run_expect([0], f"systemctl start {UNIT}.timer")
