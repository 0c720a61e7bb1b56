#!/usr/bin/env python3
"""The fleet view: the site's compliance report built from what pull-mode nodes recorded in ARA.

Pull-mode nodes run the compliance playbook in check mode on their own timer (roles/ansible_pull,
``ansible_pull_compliance_enabled``) and record it in an ARA server (roles/ara_server) with the labels
``sitekit-compliance`` and ``interval:SECONDS``. This module reads the last such record of every node through ARA's
REST API and turns it into the results the JSON callback gives for a push run, so that tools/compliance.py reads
them with the same code (``compliance.collect``) into the same JSON summary, JUnit and HTML report.

What it asks ARA, per site and per node:

* ``/api/v1/latesthosts``: every node's last record (its playbook, labels, times, counters and how many records the
  playbook carries), paged;
* per node whose pass carries records: ``/api/v1/records?playbook=ID&key=sitekit-compliance-summary`` (ARA lists
  records without their value) and ``/api/v1/records/ID``: the pass's own summary of its verdicts, which the node
  made from its JSON output with compliance.collect and attached to its playbook (tools/compliance_record.py). Two
  requests per node, whatever the number of tasks. The record is read only when it belongs to the pass's playbook,
  names the node and carries a known format and version; a malformed one is set aside with a warning in the report
  and the node is read as below;
* per node without a summary record (a node from before the record, a pass whose record post failed), its tasks:
  ``/api/v1/tasks?playbook=ID`` (task names, which carry the control ids, and modules) and
  ``/api/v1/results?playbook=ID&host=ID`` (each result's status);
* ``/api/v1/results/ID`` (a result's whole content) only where the content decides: a readiness module's verdict, a
  change (its diff) and a failure (its message).

A node whose last record ended more than two of its intervals ago is **stale** (control SK-PULL-04, node status
``stale``): its last results are shown, but it does not pass. Requests run side by side (``workers``) over
keep-alive connections.

Recorded responses: ``AraClient(record=DIR)`` writes every response it reads to DIR, ``ReplayClient(DIR)`` answers
from such a directory (the unit tests read recorded responses of a real server that way).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import http.client
import json
import re
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LABEL = "sitekit-compliance"
INTERVAL_LABEL = re.compile(r"^interval:(\d+)$")
STALE_CONTROL = "SK-PULL-04"
PAGE = 500
# The record a pass attaches to its ARA playbook: its verdicts per control, as compliance.collect gives them.
SUMMARY_KEY = "sitekit-compliance-summary"
SUMMARY_FORMAT = "sitekit-compliance-summary"
SUMMARY_VERSION = 1
SUMMARY_STATUSES = ("ok", "drift", "fail", "skip")
SUMMARY_FIELDS = ("status", "value", "detail", "remedy")


class AraError(RuntimeError):
    """ARA did not answer as expected; the message names the URL and what came back."""


def _record_name(path: str) -> str:
    """The file a response is recorded under: its path, readable, and a hash of the whole request."""
    readable = re.sub(r"[^A-Za-z0-9]+", "_", path.strip("/"))[:80]
    return f"{readable}-{hashlib.sha1(path.encode()).hexdigest()[:10]}.json"


class AraClient:
    """GETs against an ARA API server over keep-alive connections, one per thread; optionally records answers."""

    def __init__(self, server: str, timeout: float = 30, record: Path | None = None):
        url = urllib.parse.urlsplit(server.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise AraError(f"the ARA server must be an http:// or https:// URL; got {server!r}")
        self.server, self.timeout, self.record = server.rstrip("/"), timeout, record
        self._url, self._local = url, threading.local()
        if record:
            Path(record).mkdir(parents=True, exist_ok=True)

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._url.scheme == "https" else http.client.HTTPConnection
            conn = self._local.conn = cls(self._url.hostname, self._url.port, timeout=self.timeout)
        return conn

    def _request(self, method: str, path: str, expect: int, attempts: int, body: bytes | None = None) -> bytes:
        """The body of the answer to METHOD path; AraError unless it came with status EXPECT. A keep-alive connection
        the server closed meanwhile is opened again, up to ATTEMPTS tries in all."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(1, attempts + 1):
            conn = self._connection()
            try:
                conn.request(method, self._url.path + path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                break
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                self._local.conn = None
                if attempt == attempts:
                    raise AraError(f"{self.server}{path}: {exc}") from None
        if answer.status != expect:
            raise AraError(f"{self.server}{path}: HTTP {answer.status}: {data[:300].decode(errors='replace')}")
        return data

    def get(self, path: str) -> dict:
        """The JSON answer to GET path (path starts with /api/v1/)."""
        body = self._request("GET", path, 200, attempts=2)
        if self.record:
            (Path(self.record) / _record_name(path)).write_bytes(body)
        return json.loads(body)

    def post(self, path: str, data: dict) -> dict:
        """POST data as JSON to path (path starts with /api/v1/); the created object ARA answers with (HTTP 201). Sent
        once: a POST is not repeated on a broken connection."""
        return json.loads(self._request("POST", path, 201, attempts=1, body=json.dumps(data).encode()))


class ReplayClient:
    """Answers from responses recorded by ``AraClient(record=DIR)``; a request never recorded is an AraError."""

    def __init__(self, directory: Path):
        self.directory, self.server = Path(directory), f"(recorded in {directory})"

    def get(self, path: str) -> dict:
        file = self.directory / _record_name(path)
        if not file.exists():
            raise AraError(f"no recorded answer for {path} in {self.directory}")
        return json.loads(file.read_text())


def pages(client, path: str, workers: int = 1) -> list:
    """Every item of a paged ARA list (limit/offset pagination), in the server's order; pages after the first are
    asked ``workers`` at a time."""
    sep = "&" if "?" in path else "?"
    first = client.get(f"{path}{sep}limit={PAGE}&offset=0")
    items = list(first["results"])
    if not first.get("next") or not items:
        return items
    offsets = range(len(items), int(first["count"]), PAGE)
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        for page in pool.map(lambda o: client.get(f"{path}{sep}limit={PAGE}&offset={o}"), offsets):
            items.extend(page["results"])
    return items


def _labels(playbook: dict) -> list[str]:
    return [label["name"] if isinstance(label, dict) else str(label) for label in playbook.get("labels") or []]


def interval_of(playbook: dict) -> int | None:
    """The pass's interval in seconds, from its label interval:SECONDS (None when it has none)."""
    for label in _labels(playbook):
        match = INTERVAL_LABEL.match(label)
        if match:
            return int(match.group(1))
    return None


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def latest_passes(client, limit: str | None = None, workers: int = 1) -> tuple[list[dict], list[str]]:
    """([{name, host, playbook}] of every node whose last record is a compliance pass, [names whose is not])."""
    passes, other = [], []
    for entry in pages(client, "/api/v1/latesthosts?order=name", workers):
        host = entry["host"]
        name = host["name"]
        if limit and not any(fnmatch.fnmatchcase(name, p) for p in re.split(r"[,:]", limit) if p):
            continue
        if LABEL in _labels(host["playbook"]):
            passes.append({"name": name, "host": host, "playbook": host["playbook"]})
        else:
            other.append(name)
    return passes, other


def _short(action: str) -> str:
    return str(action or "").rpartition(".")[2]


def node_results(client, node: dict, readers: set[str], workers: int = 1) -> list[dict]:
    """The node's tasks in run order, each {"task": {"name"}, "hosts": {node: result}}: the JSON callback's shape.

    A result's content is fetched where it decides the control: a readiness module's result (``readers``: module
    names), a change and a failure. Other results are rebuilt from their status alone.
    """
    playbook, host = node["playbook"]["id"], node["host"]["id"]
    tasks = {t["id"]: t for t in pages(client, f"/api/v1/tasks?playbook={playbook}&order=id")}
    listed = pages(client, f"/api/v1/results?playbook={playbook}&host={host}&order=id")
    wanted = [
        r["id"]
        for r in listed
        if r["status"] in ("changed", "failed", "unreachable", "ignored")
        or (r["status"] != "skipped" and _short(tasks.get(r["task"], {}).get("action")) in readers)
    ]
    if workers > 1 and len(wanted) > 1:
        with ThreadPoolExecutor(workers) as pool:
            contents = dict(zip(wanted, pool.map(lambda rid: client.get(f"/api/v1/results/{rid}")["content"], wanted)))
    else:
        contents = {rid: client.get(f"/api/v1/results/{rid}")["content"] for rid in wanted}
    out = []
    for result in listed:
        task = tasks.get(result["task"], {"name": "", "action": ""})
        status = result["status"]
        content = contents.get(result["id"])
        item = dict(content) if isinstance(content, dict) else {}
        item.setdefault("action", task.get("action") or "")
        item["changed"] = status == "changed"
        if status == "failed":
            item["failed"] = True
        elif status == "ignored":  # a failure the task ignores (ignore_errors): not a failed check
            item.pop("failed", None)
        if status == "skipped":
            item["skipped"] = True
        if status == "unreachable":
            item["unreachable"] = True
        out.append({"task": {"name": task.get("name") or ""}, "hosts": {node["name"]: item}})
    return out


def summary_value(node: str, results: dict) -> dict:
    """The summary record of one node's pass: {control id: {status, value, detail, remedy}} as compliance.collect
    reads them from the pass's JSON output, with the record's format, version and node."""
    return {"format": SUMMARY_FORMAT, "version": SUMMARY_VERSION, "node": node, "results": results}


def check_summary(record: dict, playbook: int, node: str) -> dict:
    """The results a summary record carries; ValueError naming what is wrong when it is not one to trust: a record of
    another playbook, another key or type, another node, an unknown format or version, or results of another shape."""
    owner = record.get("playbook")
    owner = owner.get("id") if isinstance(owner, dict) else owner
    if owner != playbook:
        raise ValueError(f"the record belongs to ARA playbook {owner}, not to the pass's playbook {playbook}")
    if record.get("key") != SUMMARY_KEY or record.get("type") != "json":
        raise ValueError(f"record {record.get('key')!r} of type {record.get('type')!r}, not {SUMMARY_KEY!r} of json")
    value = record.get("value")
    if not isinstance(value, dict) or value.get("format") != SUMMARY_FORMAT:
        raise ValueError(f"the value is not a {SUMMARY_FORMAT} object")
    if value.get("version") != SUMMARY_VERSION:
        raise ValueError(f"format version {value.get('version')!r}; this reader reads version {SUMMARY_VERSION}")
    if value.get("node") != node:
        raise ValueError(f"the summary is of node {value.get('node')!r}, not of {node!r}")
    results = value.get("results")
    if not isinstance(results, dict):
        raise ValueError("'results' is not an object of controls")
    for cid, result in results.items():
        if (
            not isinstance(result, dict)
            or set(result) != set(SUMMARY_FIELDS)
            or result["status"] not in SUMMARY_STATUSES
            or not all(isinstance(result[f], str | int | float | None) for f in SUMMARY_FIELDS[1:])
        ):
            raise ValueError(f"control {cid!r}: expected {{{', '.join(SUMMARY_FIELDS)}}} with a known status")
    return results


def node_summary(client, node: dict) -> tuple[dict | None, str]:
    """(the results of the pass's summary record, "") when it has one to trust; (None, why not) when the record is
    malformed; (None, "") when the pass carries none (ARA counts a playbook's records: no request then)."""
    playbook = node["playbook"]["id"]
    if not (node["playbook"].get("items") or {}).get("records"):
        return None, ""
    listed = client.get(f"/api/v1/records?playbook={playbook}&key={SUMMARY_KEY}")["results"]
    if not listed:
        return None, ""
    record = client.get(f"/api/v1/records/{listed[0]['id']}")
    try:
        return check_summary(record, playbook, node["name"]), ""
    except ValueError as exc:
        return None, f"summary record {listed[0]['id']} of ARA playbook {playbook} set aside ({exc}); tasks read"


def node_entry(client, node: dict, readers: set[str]) -> dict:
    """One node's last pass as the report needs it: {"results": ...} from its summary record, else {"tasks": ...}
    (node_results); "warning" when a malformed record was set aside."""
    results, warning = node_summary(client, node)
    if results is not None:
        return {"results": results}
    entry = {"tasks": node_results(client, node, readers)}
    if warning:
        entry["warning"] = warning
    return entry


def freshness(node: dict, now: dt.datetime, default_interval: int) -> dict:
    """SK-PULL-04 for a node: ok while its last pass ended within two intervals, fail (stale) after."""
    playbook = node["playbook"]
    interval = interval_of(playbook) or default_interval
    ended = parse_time(playbook.get("ended")) or parse_time(playbook.get("started"))
    age = (now - ended).total_seconds() if ended else float("inf")
    when = ended.strftime("%Y-%m-%d %H:%M:%S UTC") if ended else "never"
    value = f"{_span(age)} ago" if ended else "no record"
    running = playbook.get("status") == "running"
    stale = age > 2 * interval
    detail = (
        f"last compliance pass {'started' if running else 'ended'} {when} ({playbook.get('status')}); "
        f"interval {_span(interval)}, stale after {_span(2 * interval)}; ARA playbook {playbook['id']}"
    )
    if running and not stale:
        detail += "; the pass was still running: its results so far"
    remedy = (
        f"the node stopped recording its compliance pass: on {node['name']}: "
        "systemctl list-timers sitekit-compliance.timer; journalctl -u sitekit-compliance -e "
        "(an ARA server that does not answer is logged there)"
        if stale
        else ""
    )
    return {"stale": stale, "age": age, "interval": interval, "ended": when, "value": value, "detail": detail,
            "remedy": remedy}  # fmt: skip


def _span(seconds: float) -> str:
    """A duration as people read it: 45 s, 12 min, 2.5 h, 3.0 d."""
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def fleet(client, readers: set[str], limit: str | None = None, workers: int = 8, cache: Path | None = None) -> dict:
    """Every node's last pass: {"data": JSON-callback-shaped results of the passes read from their tasks,
    "summaries": {node: results} of the passes read from their summary record, "warnings": {node: why a record was
    set aside}, "stats": ..., "passes": [...], "other": [...], "fetched": nodes asked for}.

    ``cache``: a file keeping each node's converted pass by ARA playbook id. A finished pass never changes, so a
    node whose last pass is the one cached is not asked again; only nodes with a new pass are (the steady state of a
    report built more often than the nodes pass). A pass still running is never cached.
    """
    passes, other = latest_passes(client, limit, workers)
    kept = {}
    if cache and Path(cache).exists():
        try:
            kept = json.loads(Path(cache).read_text())
        except ValueError:
            kept = {}
    todo = [n for n in passes if kept.get(n["name"], {}).get("playbook") != n["playbook"]["id"]]
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        fetched = dict(zip((n["name"] for n in todo), pool.map(lambda n: node_entry(client, n, readers), todo)))
    per_node = {n["name"]: fetched.get(n["name"]) or kept[n["name"]] for n in passes}
    if cache:
        done = {n["name"]: n for n in passes if n["playbook"].get("status") != "running"}
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        Path(cache).write_text(
            json.dumps({name: {**per_node[name], "playbook": done[name]["playbook"]["id"]} for name in done})
        )
    tasks = [task for name in per_node for task in per_node[name].get("tasks", [])]
    summaries = {name: entry["results"] for name, entry in per_node.items() if "results" in entry}
    warnings = {name: entry["warning"] for name, entry in per_node.items() if entry.get("warning")}
    stats = {
        n["name"]: {
            "ok": n["host"].get("ok", 0),
            "changed": n["host"].get("changed", 0),
            "failures": n["host"].get("failed", 0),
            "skipped": n["host"].get("skipped", 0),
            "unreachable": n["host"].get("unreachable", 0),
        }
        for n in passes
    }
    data = {"plays": [{"tasks": tasks}], "stats": stats}
    return {"data": data, "summaries": summaries, "warnings": warnings, "passes": passes, "other": other,
            "fetched": len(todo)}  # fmt: skip
