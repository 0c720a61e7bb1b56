#!/usr/bin/env python3
"""A compliance pass's summary record: run on a pull-mode node after its pass (sitekit-compliance, roles/ansible_pull).

usage: tools/compliance_record.py --node NAME --since TIME [--server URL] [--timeout S] RESULTS.json

Reads the JSON callback's output of the node's compliance pass (RESULTS.json), sorts it into controls with the
report's own code (compliance.collect), prints the node's table (the pass's log in the journal), and with --server
attaches the verdicts to the pass's ARA playbook as one record (key sitekit-compliance-summary, type json,
ara_fleet.summary_value), so the fleet report reads one record per node instead of every task of every node.

The pass's playbook is the newest ARA playbook with the label sitekit-compliance whose controller is NAME (the pass
records with ARA_RECORD_CONTROLLER_NAME=NAME) and that started at or after TIME (ISO 8601, taken before the pass
started; passes of one node never overlap: they hold the pull run's lock).

Exit status: 0 when the record was attached (or no --server), 1 when it was not: the reason on stderr. The pass's
own exit status is the caller's.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / "tools"))
import ara_fleet  # noqa: E402 (tools/ is not a package)
import compliance  # noqa: E402
import sitekit_report  # noqa: E402


def node_record(data: dict, node: str) -> dict:
    """The summary record's value of NODE's pass from the JSON callback's output; ValueError when the pass did not
    run on NODE."""
    if node not in data.get("stats", {}):
        raise ValueError(f"the pass's results name no host {node!r} (hosts: {', '.join(data.get('stats', {}))})")
    return ara_fleet.summary_value(node, compliance.collect(data).get(node, {}))


def pass_playbook(client, node: str, since: str) -> dict:
    """The ARA playbook of NODE's pass that started at or after SINCE; AraError when ARA holds none."""
    query = urllib.parse.urlencode(
        {"label": ara_fleet.LABEL, "controller": node, "started_after": since, "order": "-id", "limit": 20}
    )
    found = [p for p in client.get(f"/api/v1/playbooks?{query}")["results"] if p.get("controller") == node]
    if not found:
        raise ara_fleet.AraError(f"{client.server} holds no compliance pass of {node} started since {since}")
    return found[0]


def attach(client, value: dict, playbook: int) -> dict:
    """POST the record to the playbook; the record ARA created."""
    record = {"playbook": playbook, "key": ara_fleet.SUMMARY_KEY, "value": value, "type": "json"}
    return client.post("/api/v1/records", record)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="the JSON callback's output of the pass")
    parser.add_argument("--node", required=True, help="the node's inventory name (the pass's ARA controller)")
    parser.add_argument("--since", required=True, help="ISO 8601 time taken before the pass started")
    parser.add_argument("--server", help="the ARA API server the pass recorded into")
    parser.add_argument("--timeout", type=float, default=10, help="seconds per request to ARA")
    args = parser.parse_args(argv)
    try:
        text = Path(args.results).read_text()
        data = json.loads(text[text.index("{") :])  # the JSON callback's output, after any line printed before it
        value = node_record(data, args.node)
    except (OSError, ValueError) as exc:
        print(f"compliance_record: no summary of this pass: {exc}", file=sys.stderr)
        return 1
    summary = compliance.summarise({args.node: value["results"]}, data["stats"], args.node, "compliance pass", {})
    print(sitekit_report.render_table(summary), end="")
    if not args.server:
        return 0
    try:
        client = ara_fleet.AraClient(args.server, timeout=args.timeout)
        playbook = pass_playbook(client, args.node, args.since)
        record = attach(client, value, playbook["id"])
    except ara_fleet.AraError as exc:
        print(f"compliance_record: the summary record was not attached: {exc}", file=sys.stderr)
        return 1
    print(f"compliance_record: summary record {record['id']} attached to ARA playbook {playbook['id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
