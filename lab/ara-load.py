#!/usr/bin/env python3
"""Load a synthetic fleet into an ARA server's database through ARA's Django ORM (lab/bench.py --only fleet).

usage: ara-load.py SEED.json[.gz] NODES OUT.json      (run with the ARA server's Python, ARA_BASE_DIR set)
       ara-load.py --delete-records                   (every pass as a node from before the summary record)

SEED is the JSON callback's output of a real compliance run of the lab (tests/unit/data/compliance/). Each of the
NODES synthetic nodes (node0001, ...) gets one compliance pass recorded the way ARA's callback records a pass of a
pull-mode node (labels sitekit-compliance and interval:3600, its own playbook, play, tasks, host and results with
their content), replicating one recorded node: most nodes the ready worker node, every 50th the broken one, every
100th the drifted proxy. Every 200th node's pass ended 3 h ago (stale); the others within the last hour. Each pass
carries the summary record the node attaches after its pass (key sitekit-compliance-summary), made from the recorded
node's results by the node's own code (tools/compliance_record.py: compliance.collect).
OUT gets the same records as the JSON callback would have printed them for all the nodes: the baseline.
"""

import datetime as dt
import gzip
import json
import os
import sys
import uuid
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import ara_fleet  # tools/ is not a package
import compliance_record

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ara.server.settings")
import django

django.setup()
from ara.api import models  # noqa: E402
from django.db import transaction  # noqa: E402

INTERVAL = 3600


def _z(data) -> bytes:
    return zlib.compress(json.dumps(data).encode())


def _status(result: dict) -> tuple[str, bool]:
    if result.get("unreachable"):
        return "unreachable", False
    if result.get("skipped"):
        return "skipped", False
    if result.get("failed"):
        return "failed", False
    return "ok", bool(result.get("changed"))


def template(seed: dict, host: str) -> list:
    """[(play name, task name, action, result)] of one recorded node, in run order."""
    out = []
    for play in seed["plays"]:
        for task in play["tasks"]:
            result = task["hosts"].get(host)
            if result is not None:
                out.append((play["play"]["name"], task["task"]["name"], result.get("action", ""), result))
    return out


def choose(index: int, names: dict) -> str:
    if index % 100 == 3:
        return names["drift"]
    if index % 50 == 7:
        return names["fail"]
    return names["ok"]


def main() -> None:
    if sys.argv[1:] == ["--delete-records"]:
        deleted, _ = models.Record.objects.all().delete()
        print(json.dumps({"deleted records": deleted}))
        return
    seed_path, count, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    opener = gzip.open if seed_path.endswith(".gz") else open
    with opener(seed_path, "rt") as seed_file:
        seed = json.load(seed_file)
    stats = seed["stats"]
    # The recorded nodes: the one that drifted, the one that failed, and a ready worker node.
    names = {
        "drift": next(h for h, s in stats.items() if s["changed"] and not s["failures"]),
        "ok": next(h for h, s in sorted(stats.items()) if not s["changed"] and not s["failures"] and h != "wn2"),
        "fail": "wn2",
    }
    templates = {name: template(seed, name) for name in set(names.values())}
    now = dt.datetime.now(dt.UTC)
    labels = [models.Label.objects.get_or_create(name=n)[0] for n in ("sitekit-compliance", f"interval:{INTERVAL}")]
    content, _ = models.FileContent.objects.get_or_create(sha1="0" * 40, defaults={"contents": zlib.compress(b"")})
    baseline = {"plays": [{"play": {"name": "replicated"}, "tasks": []}], "stats": {}}
    with transaction.atomic():
        for i in range(1, count + 1):
            name = f"node{i:04d}"
            source = choose(i, names)
            rows = templates[source]
            ended = now - dt.timedelta(seconds=3 * INTERVAL if i % 200 == 11 else (i * 37) % (INTERVAL - 120))
            started = ended - dt.timedelta(seconds=60)
            playbook = models.Playbook.objects.create(
                name=f"sitekit compliance pass of {name}",
                ansible_version="2.19.11",
                client_version="1.8.0",
                status="failed" if stats[source]["failures"] else "completed",
                arguments=_z({"check": True, "diff": True}),
                path="/var/lib/sitekit/ansible-pull/playbooks/compliance.yml",
                controller=name,
                started=started,
                ended=ended,
            )
            playbook.labels.set(labels)
            file = models.File.objects.create(path=playbook.path, content=content, playbook=playbook)
            plays = {}
            for play_name in dict.fromkeys(r[0] for r in rows):
                plays[play_name] = models.Play.objects.create(
                    name=play_name,
                    uuid=uuid.uuid4(),
                    playbook=playbook,
                    status="completed",
                    started=started,
                    ended=ended,
                )
            tasks = models.Task.objects.bulk_create(
                [
                    models.Task(
                        name=task_name,
                        action=action,
                        lineno=1,
                        tags=_z([]),
                        handler=False,
                        status="completed",
                        play=plays[play_name],
                        file=file,
                        playbook=playbook,
                        started=started,
                        ended=ended,
                    )
                    for play_name, task_name, action, _ in rows
                ]
            )
            counts = dict.fromkeys(("changed", "failed", "ok", "skipped", "unreachable"), 0)
            results = []
            for task, (_, _, _, result) in zip(tasks, rows):
                status, changed = _status(result)
                counts["changed" if changed else status] += 1
                results.append((task, status, changed, result))
            host = models.Host.objects.create(name=name, facts=_z({}), playbook=playbook, **counts)
            models.Result.objects.bulk_create(
                [
                    models.Result(
                        status=status,
                        changed=changed,
                        ignore_errors=False,
                        content=_z(result),
                        host=host,
                        task=task,
                        play=task.play,
                        playbook=playbook,
                        started=started,
                        ended=ended,
                    )
                    for task, status, changed, result in results
                ]
            )
            models.LatestHost.objects.update_or_create(name=name, defaults={"host": host})
            output = [{"task": {"name": task_name}, "hosts": {name: result}} for _, task_name, _, result in rows]
            node_stats = {
                "ok": counts["ok"], "changed": counts["changed"], "failures": counts["failed"],
                "skipped": counts["skipped"], "unreachable": counts["unreachable"],
            }  # fmt: skip
            # The node's summary record, from its own JSON output, as the node makes it after its pass.
            summary = compliance_record.node_record({"plays": [{"tasks": output}], "stats": {name: node_stats}}, name)
            models.Record.objects.create(key=ara_fleet.SUMMARY_KEY, value=_z(summary), type="json", playbook=playbook)
            baseline["plays"][0]["tasks"].extend(output)
            baseline["stats"][name] = node_stats
    with open(out_path, "w") as out:
        json.dump(baseline, out)
    records = models.Record.objects.count()
    print(
        json.dumps({"nodes": count, "results": models.Result.objects.count(), "records": records, "templates": names})
    )


if __name__ == "__main__":
    main()
