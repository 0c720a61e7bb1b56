"""The fleet view's summary record: each compliance pass attaches its own verdicts to its ARA playbook
(tools/compliance_record.py), and the fleet report reads that one record instead of every task (tools/ara_fleet.py).

``record-ok`` and ``record-drift`` under tests/unit/data/ara/ are real answers of ARA 1.8.0, recorded by molecule
scenario ``pull`` (``compliance.py --from-ara --ara-record``, then the same pass's task path) after passes that posted
their summary record: the node as converged, then with a change made by hand to its squid.conf. ``ok`` and ``drift``
are passes of a node from before the record (the task path).
"""

import copy
import datetime as dt
import gzip
import json
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "tools"))
import ara_fleet  # noqa: E402
import compliance  # noqa: E402
import compliance_record  # noqa: E402

DATA = TOP / "tests" / "unit" / "data" / "ara"
NODE = "sk-pull-squid1"
SEED = json.loads(gzip.decompress((TOP / "tests/unit/data/compliance/lab-drifted-and-broken.json.gz").read_bytes()))


class Altered(ara_fleet.ReplayClient):
    """Recorded answers, with the summary record's detail changed by ``change`` (a record a node got wrong)."""

    def __init__(self, directory, change):
        super().__init__(directory)
        self.change, self.asked = change, []

    def get(self, path):
        self.asked.append(path)
        answer = super().get(path)
        if path.startswith("/api/v1/records/"):
            answer = copy.deepcopy(answer)
            self.change(answer)
        return answer


def _pass(client):
    passes, _ = ara_fleet.latest_passes(client)
    [node] = [p for p in passes if p["name"] == NODE]
    return node


def _summary(client, after=60, cache=None):
    ended = ara_fleet.parse_time(_pass(client)["playbook"]["ended"])
    return compliance.from_ara(client, None, ended + dt.timedelta(seconds=after), 3600, 1, cache=cache)


def _node(summary):
    [node] = [n for n in summary["nodes"] if n["name"] == NODE]
    return node


def _verdicts(node, skips=True):
    return {
        c: r for c, r in node["results"].items() if c != ara_fleet.STALE_CONTROL and (skips or r["status"] != "skip")
    }


@pytest.mark.parametrize("state", ["record-ok", "record-drift"])
def test_a_pass_with_its_record_is_read_from_it_with_two_requests(state):
    client = Altered(DATA / state, lambda record: None)
    summary = _summary(client)
    assert summary["from_records"] == 1 and summary["warnings"] == []
    playbook = _pass(client)["playbook"]["id"]
    node_requests = [p for p in client.asked if not p.startswith("/api/v1/latesthosts")]
    assert len(node_requests) == 2 and node_requests[0].startswith(f"/api/v1/records?playbook={playbook}&")
    assert not any(p.startswith(("/api/v1/tasks", "/api/v1/results")) for p in client.asked)


@pytest.mark.parametrize("state", ["record-ok", "record-drift"])
def test_the_record_and_the_tasks_of_the_same_pass_give_the_same_verdicts(state):
    from_record = _node(_summary(ara_fleet.ReplayClient(DATA / state)))

    def version_2(record):
        record["value"]["version"] = 2

    from_tasks = _summary(Altered(DATA / state, version_2))
    assert from_tasks["from_records"] == 0
    # The task path rebuilds a skipped result from its status alone; the record has the node's own skips.
    assert _verdicts(from_record, skips=False) == _verdicts(_node(from_tasks), skips=False)
    assert from_record["status"] == _node(from_tasks)["status"]


def _other_playbook(record):
    record["playbook"]["id"] += 1


def _other_node(record):
    record["value"]["node"] = "wn1"


def _unknown_status(record):
    next(iter(record["value"]["results"].values()))["status"] = "green"


def _text_value(record):
    record["value"], record["type"] = "ok", "text"


def _no_format(record):
    del record["value"]["format"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_other_playbook, "belongs to ARA playbook"),
        (_other_node, "of node 'wn1'"),
        (_unknown_status, "with a known status"),
        (_text_value, "of type 'text'"),
        (_no_format, "not a sitekit-compliance-summary object"),
        (lambda r: r["value"].update(version=2), "format version 2; this reader reads version 1"),
    ],
)
def test_a_malformed_record_is_set_aside_with_a_warning_and_the_tasks_are_read(change, why):
    client = Altered(DATA / "record-drift", change)
    summary = _summary(client)
    node = _node(summary)
    assert summary["from_records"] == 0
    [warning] = summary["warnings"]
    assert warning.startswith(f"{NODE}: summary record ") and why in warning and warning.endswith("tasks read")
    assert why in node["results"][ara_fleet.STALE_CONTROL]["detail"]
    assert any(p.startswith("/api/v1/tasks?playbook=") for p in client.asked)
    # The report still names the drift, from the pass's tasks.
    assert node["status"] == "drift" and node["results"]["SK-SQUID-02"]["status"] == "drift"


def test_a_pass_without_a_record_is_read_from_its_tasks_without_asking_for_records():
    client = Altered(DATA / "drift", lambda record: None)
    summary = _summary(client)
    assert _pass(client)["playbook"]["items"]["records"] == 0
    assert summary["from_records"] == 0 and summary["warnings"] == []
    assert not any(p.startswith("/api/v1/records") for p in client.asked)
    assert _node(summary)["results"]["SK-SQUID-02"]["status"] == "drift"


@pytest.mark.parametrize(("after", "stale"), [(120, False), (121, True)])
def test_a_pass_read_from_its_record_turns_stale_after_two_intervals(after, stale):
    summary = _summary(ara_fleet.ReplayClient(DATA / "record-drift"), after=after)
    node = _node(summary)
    assert (node["status"] == "stale") is stale
    assert node["results"][ara_fleet.STALE_CONTROL]["status"] == ("fail" if stale else "ok")
    assert node["results"]["SK-SQUID-02"]["status"] == "drift"  # the last results stay visible


def test_the_cache_keeps_a_pass_read_from_its_record_and_one_read_from_its_tasks(tmp_path):
    cache = tmp_path / "ara-cache.json"
    first = _summary(ara_fleet.ReplayClient(DATA / "record-drift"), cache=cache)
    kept = json.loads(cache.read_text())[NODE]
    assert first["fetched"] == 1 and "results" in kept and "tasks" not in kept

    class Nothing(ara_fleet.ReplayClient):  # only the list of last passes may be asked for now
        def get(self, path):
            assert path.startswith("/api/v1/latesthosts"), path
            return super().get(path)

    again = _summary(Nothing(DATA / "record-drift"), cache=cache)
    assert again["fetched"] == 0 and again["from_records"] == 1
    assert _node(again)["results"] == _node(first)["results"]
    # A cache written before the record (the task path's entries) is still read.
    old = tmp_path / "old-cache.json"
    _summary(ara_fleet.ReplayClient(DATA / "drift"), cache=old)
    assert _summary(Nothing(DATA / "drift"), cache=old)["fetched"] == 0


def test_the_node_summarises_its_pass_with_the_reports_own_code():
    value = compliance_record.node_record(SEED, "squid1")
    assert value == ara_fleet.summary_value("squid1", compliance.collect(SEED)["squid1"])
    record = {"playbook": {"id": 7}, "key": ara_fleet.SUMMARY_KEY, "type": "json", "value": value}
    assert ara_fleet.check_summary(record, 7, "squid1")["SK-SQUID-02"]["status"] == "drift"
    with pytest.raises(ValueError, match="name no host 'wn9'"):
        compliance_record.node_record(SEED, "wn9")


def test_the_pass_prints_its_verdicts_without_an_ara_server(tmp_path, capsys):
    results = tmp_path / "pass.json"
    results.write_text("a line before the JSON output\n" + json.dumps(SEED))
    assert compliance_record.main([str(results), "--node", "squid1", "--since", "2026-12-06T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "squid1  DRIFT" in out and "--limit squid1 --tags squid" in out


def test_output_that_is_not_a_pass_gives_no_record_and_says_why(tmp_path, capsys):
    results = tmp_path / "pass.json"
    results.write_text("ERROR! the playbook could not be parsed\n")
    argv = [str(results), "--node", "squid1", "--since", "2026-12-06T00:00:00Z", "--server", "http://127.0.0.1:9"]
    assert compliance_record.main(argv) == 1
    assert "no summary of this pass" in capsys.readouterr().err
