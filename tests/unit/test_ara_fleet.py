"""The fleet view: the site report built from ARA's records (tools/compliance.py --from-ara, tools/ara_fleet.py).

The ARA answers under tests/unit/data/ara/ are real: recorded from the ARA server of molecule scenario ``pull``
(ARA 1.8.0) by ``compliance.py --from-ara --ara-record``, after the pull node's own compliance pass (``ok``) and
after a pass that followed a change made by hand to its squid.conf (``drift``).
"""

import datetime as dt
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "tools"))
import ara_fleet  # noqa: E402
import compliance  # noqa: E402
import sitekit_report  # noqa: E402

DATA = TOP / "tests" / "unit" / "data" / "ara"
NODE = "sk-pull-squid1"


def _client(state):
    return ara_fleet.ReplayClient(DATA / state)


def _last_pass(state):
    passes, _ = ara_fleet.latest_passes(_client(state))
    [node] = [p for p in passes if p["name"] == NODE]
    return node


def _ended(state):
    playbook = _last_pass(state)["playbook"]
    return ara_fleet.parse_time(playbook["ended"])


def _summary(state, after=60, default_interval=3600):
    return compliance.from_ara(_client(state), None, _ended(state) + dt.timedelta(seconds=after), default_interval, 1)


def _node(summary):
    [node] = [n for n in summary["nodes"] if n["name"] == NODE]
    return node


def test_the_recorded_pass_carries_the_label_and_the_interval_the_node_runs_with():
    playbook = _last_pass("ok")["playbook"]
    assert ara_fleet.LABEL in [label["name"] for label in playbook["labels"]]
    # molecule/pull/molecule.yml: ansible_pull_compliance_interval: 1min.
    assert ara_fleet.interval_of(playbook) == 60
    assert playbook["status"] == "completed"


def test_a_compliant_node_passes_with_every_control_the_site_playbook_checks_on_it(tmp_path):
    summary = _summary("ok")
    node = _node(summary)
    assert node["status"] == "ok" and summary["verdict"] == "pass"
    results = node["results"]
    # The proxy node's controls, read from the task names ARA recorded: base, squid, PAC file; and its record.
    assert {"SK-SQUID-02", "SK-WPAD-02", "SK-BASE-01", "SK-PULL-04"} <= set(results), sorted(results)
    assert {r["status"] for r in results.values()} <= {"ok", "skip"}
    assert results["SK-PULL-04"]["value"] == "1 min ago"
    # The same three files as a push run, and the schema the renderer checks.
    compliance.write_reports(summary, tmp_path)
    sitekit_report.validate(json.loads((tmp_path / "compliance.json").read_text()))
    cases = ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    assert {c.get("classname") for c in cases} == {NODE}
    assert "PASS" in (tmp_path / "report.html").read_text()


# "drift": a pass read from its tasks (a node without the summary record); "record-drift": the same kind of pass
# read from its summary record.
@pytest.mark.parametrize("state", ["drift", "record-drift"])
def test_a_drift_made_on_the_node_is_named_with_its_diff_and_remedy(state):
    summary = _summary(state)
    node = _node(summary)
    assert node["status"] == "drift" and summary["verdict"] == "fail"
    squid = node["results"]["SK-SQUID-02"]
    assert squid["status"] == "drift"
    # The diff ARA kept in the result's content: the node's value against the site's.
    assert "-cache_mem 32 MB" in squid["detail"] and "+cache_mem" in squid["detail"]
    assert squid["remedy"] == f"run playbooks/site.yml --limit {NODE} --tags squid"
    drifted = {cid for cid, r in node["results"].items() if r["status"] == "drift"}
    assert drifted == {"SK-SQUID-02"}, drifted


@pytest.mark.parametrize(
    ("after", "stale"),
    [(60, False), (120, False), (121, True), (3 * 3600, True)],
)
def test_a_node_is_stale_once_its_last_record_is_older_than_two_of_its_intervals(after, stale):
    summary = _summary("ok", after=after)
    node = _node(summary)
    freshness = node["results"]["SK-PULL-04"]
    assert (node["status"] == "stale") is stale
    assert freshness["status"] == ("fail" if stale else "ok")
    if stale:
        assert freshness["value"].startswith("stale: ")
        assert "systemctl list-timers sitekit-compliance.timer" in freshness["remedy"]
        assert summary["verdict"] == "fail" and summary["totals"]["stale"] == 1
        # The last results stay visible.
        assert node["results"]["SK-SQUID-02"]["status"] == "ok"
        assert "STALE" in sitekit_report.render_table(summary)


def test_a_record_without_an_interval_label_is_judged_by_the_default_interval():
    node = _last_pass("ok")
    unlabelled = dict(node["playbook"], labels=[{"name": ara_fleet.LABEL}])
    now = _ended("ok") + dt.timedelta(seconds=3 * 60)
    assert ara_fleet.freshness({**node, "playbook": unlabelled}, now, 3600)["stale"] is False
    assert ara_fleet.freshness({**node, "playbook": unlabelled}, now, 60)["stale"] is True
    assert ara_fleet.freshness(node, now, 3600)["stale"] is True  # its own label (60 s) wins


def test_only_compliance_passes_count_and_limit_selects_nodes():
    passes, other = ara_fleet.latest_passes(_client("ok"), limit="sk-pull-*")
    assert [p["name"] for p in passes] == [NODE] and other == []
    assert ara_fleet.latest_passes(_client("ok"), limit="wn*") == ([], [])


def test_an_answer_that_was_never_recorded_is_an_error_naming_the_request():
    with pytest.raises(ara_fleet.AraError, match="/api/v1/results/999999"):
        _client("ok").get("/api/v1/results/999999")


def test_a_server_url_that_is_not_http_is_refused():
    with pytest.raises(ara_fleet.AraError, match="http:// or https://"):
        ara_fleet.AraClient("ara1.example.org:8000")
