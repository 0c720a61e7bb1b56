#!/usr/bin/env python3
"""sitekit's compliance gate: the site playbook in check mode, read result by result.

usage: tools/compliance.py [-i INVENTORY] [--out DIR] [--limit PATTERN] [--playbook PLAYBOOK]
                           [--from-json RESULTS.json]
       tools/compliance.py --from-ara http://ARA-SERVER:8000 [--out DIR] [--limit PATTERN] [--workers N]

Runs ``ansible-playbook PLAYBOOK --check --diff`` (default playbooks/compliance.yml: the site playbook,
then a real container launch and a proxy check on every worker node) with the JSON callback, and
sorts every task result into a control by the id in the task's name (``[SK-SQUID-02]``):

* a control is ``drift`` on a node when one of its tasks would change something (check mode reports
  ``changed``; ansible-playbook itself exits 0 then), ``fail`` when one failed, and ``ok`` otherwise;
* readiness controls read the modules' own verdicts: the kernel (``kernel_compat``), each CVMFS
  repository (``cvmfs_probe``: readable; its running client against its configuration files, SK-CVMFS-06;
  CVMFS_NFILES against the open-file limit, SK-CVMFS-07; the cache's filesystem and size, SK-CVMFS-08), the
  container launch (``container_launch``; its Apptainer against the minimum version, SK-APPT-05), the proxies
  (``proxy_check``), the HTCondor readiness attribute (``SitekitReady``) and each VO-box service (``vobox_check``:
  its unit, its image, /cvmfs and DNS inside its container).

Writes DIR/compliance.json (the summary), DIR/junit.xml (one test case per node and control),
DIR/report.html (tools/sitekit_report.py) and DIR/ansible.json (the raw results), prints a short table,
and exits 0 when every node is compliant and ready, 1 when one is not, 2 when the run itself broke.

``--from-ara SERVER`` runs no playbook: it builds the same report from the last compliance pass each pull-mode node
recorded in that ARA server (tools/ara_fleet.py); a node whose last record is older than two of its intervals is
``stale`` (control SK-PULL-04) and fails the gate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree as ET

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / "tools"))
import ara_fleet  # noqa: E402 (tools/ is not a package)
import sitekit_report  # noqa: E402
import yaml  # noqa: E402

CONTROL_ID = re.compile(r"\[(SK-[A-Z]+-\d+)\]")
# The roles in report order; each one's controls (id, title, and for a readiness control its column) are in
# roles/<role>/meta/controls.yml, next to the tasks that carry the ids.
ROLE_ORDER = (
    "base",
    "userns",
    "cvmfs",
    "apptainer",
    "squid",
    "wpad",
    "htcondor_apptainer",
    "ansible_pull",
    "ara_server",
    "vobox_services",
    "readiness",
)


def load_controls(roles_dir: Path = TOP / "roles") -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """({control id: (title, group)} readiness first, by column, then configuration in role order; {id: role})."""
    readiness, config, role_of = [], [], {}
    for role in ROLE_ORDER:
        path = roles_dir / role / "meta" / "controls.yml"
        for control in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            role_of[control["id"]] = role
            if "readiness" in control:
                readiness.append((control["readiness"], control["id"], control["title"]))
            else:
                config.append((control["id"], control["title"]))
    controls = {cid: (title, "readiness") for _rank, cid, title in sorted(readiness)}
    controls.update((cid, (title, "config")) for cid, title in config)
    return controls, role_of


# Titles and columns in report order, and the role (so the site playbook's tag) behind each control: the drift remedy.
CONTROLS, CONTROL_ROLE = load_controls()
# Controls whose cells come from a module's verdict, not from the tasks' changed/ok.
READINESS = {cid for cid, (_, group) in CONTROLS.items() if group == "readiness"}
RANK = {"skip": 0, "ok": 1, "drift": 2, "fail": 3}


def _title(cid: str) -> tuple[str, str]:
    base, _, instance = cid.partition(":")
    title, group = CONTROLS.get(base, (base, "config"))
    return (f"{title} {instance}" if instance else title), group


def _merge(results: dict, cid: str, status: str, value: str = "", detail: str = "", remedy: str = "") -> None:
    have = results.get(cid)
    if have is None or RANK[status] > RANK[have["status"]]:
        results[cid] = {"status": status, "value": value, "detail": detail, "remedy": remedy}
    elif have and RANK[status] == RANK[have["status"]] and detail and detail not in have["detail"]:
        have["detail"] = (have["detail"] + "\n" + detail).strip()


def _diff_text(result: dict) -> str:
    diffs = result.get("diff")
    if isinstance(diffs, dict):
        diffs = [diffs]
    out = []
    for d in diffs or []:
        if d.get("prepared"):
            out.append(str(d["prepared"]))
            continue
        if "before" in d or "after" in d:
            header = d.get("before_header") or d.get("after_header") or ""
            before, after = d.get("before", ""), d.get("after", "")
            if isinstance(before, dict) or isinstance(after, dict):
                out.append(f"{header}: {json.dumps(before, sort_keys=True)} -> {json.dumps(after, sort_keys=True)}")
            else:
                out.extend(
                    difflib.unified_diff(
                        str(before).splitlines(),
                        str(after).splitlines(),
                        f"{header} (node)",
                        f"{header} (site)",
                        lineterm="",
                    )
                )
    if not out and result.get("msg"):
        out.append(str(result["msg"]))
    return "\n".join(out)[:4000]


def _selfcheck(cid: str, result: dict, results: dict) -> None:
    """node_selfcheck: what the startd cron job publishes."""
    ready = bool(result.get("ready"))
    _merge(
        results,
        cid,
        "ok" if ready else "fail",
        "SitekitReady" if ready else f"not ready ({result.get('failed_check') or '?'})",
        "" if ready else str(result.get("reason") or ""),
        "" if ready else str(result.get("reason") or ""),
    )


def _kernel(cid: str, result: dict, results: dict) -> None:
    """kernel_compat: the kernel verdict and user namespaces."""
    remedies = result.get("remediation") or []
    first = remedies[0] if remedies else {}
    remedy = first.get("action") or first.get("command") or first.get("reason") or ""
    ok = bool(result.get("ready", result.get("mode") == "unprivileged"))
    _merge(results, "SK-KERNEL-01", "ok" if ok else "fail", str(result.get("mode")), first.get("reason", ""), remedy)
    _merge(
        results,
        "SK-USERNS-10",
        "ok" if result["userns_enabled"] else "fail",
        "on" if result["userns_enabled"] else "off",
        first.get("reason", ""),
        remedy,
    )


def _cvmfs(cid: str, result: dict, results: dict) -> None:
    """cvmfs_probe: each repository, its running client (SK-CVMFS-06), the open-file limit (SK-CVMFS-07) and the
    cache (SK-CVMFS-08: skip when the client's cache could not be judged)."""
    for repo in result["repositories"]:
        status = "ok" if repo.get("readable") else "fail"
        value = f"{repo.get('seconds', 0):.2f} s" if repo.get("readable") else str(repo.get("errno") or "error")
        _merge(
            results,
            f"SK-CVMFS-05:{repo['name']}",
            status,
            value,
            f"{repo.get('error') or ''}\n{repo.get('cause') or ''}".strip(),
            repo.get("remedy") or "",
        )
        if isinstance(repo.get("client"), dict):
            _client_control(results, repo)
    limit = result.get("nfiles")
    if isinstance(limit, dict):
        _merge(
            results,
            "SK-CVMFS-07",
            "ok" if limit.get("ok") else "fail",
            f"{limit.get('nfiles')} / {limit.get('hard_limit') or 'unlimited'}",
            limit.get("cause") or "",
            limit.get("remedy") or "",
        )
    cache = result.get("cache")
    if isinstance(cache, dict):
        status = {"ok": "ok", "fail": "fail"}.get(cache.get("status"), "skip")
        size = cache.get("size_mb")
        quota = cache.get("quota_limit")
        value = f"{cache.get('filesystem') or '?'}" + (f" {size} MB" if size is not None else "")
        if quota is not None and quota > 0 and not cache.get("alien"):
            value += f" / {cache.get('required_mb')} MB"
        _merge(
            results,
            "SK-CVMFS-08",
            status,
            value,
            cache.get("cause") or cache.get("detail") or "",
            cache.get("remedy") or "",
        )


def _launch(cid: str, result: dict, results: dict) -> None:
    """container_launch: its own verdict (host paths count as its host_path_policy says)."""
    ready = bool(result.get("ready"))
    failed = [f"{k}: {v.get('detail')}" for k, v in (result.get("checks") or {}).items() if not v.get("ok")]
    seconds = result.get("launch_seconds")
    _merge(
        results,
        "SK-LAUNCH-01",
        "ok" if ready else "fail",
        f"{seconds:.2f} s" if isinstance(seconds, (int, float)) else "not ready",
        "\n".join([result.get("cause") or "", *failed, result.get("error") or ""]).strip(),
        result.get("remedy") or "",
    )
    _version(result, results)


def _version(result: dict, results: dict) -> None:
    """container_launch's version check: the Apptainer found against the minimum (SK-APPT-05)."""
    check = (result.get("checks") or {}).get("version")
    if not isinstance(check, dict):
        return
    found = (result.get("apptainer") or {}).get("version") or "unknown"
    ok = bool(check.get("ok"))
    detail = check.get("detail") or ""
    cause = "" if ok else str(check.get("cause") or "")
    remedy = check.get("remedy") or ""
    _merge(results, "SK-APPT-05", "ok" if ok else "fail", found, (cause + "\n" + detail).strip(), remedy)


def _proxy(cid: str, result: dict, results: dict) -> None:
    """proxy_check: one squid."""
    problems = result.get("problems") or []
    second = result.get("second") or {}
    _merge(
        results,
        "SK-PROXY-01",
        "ok" if result.get("ok") else "fail",
        f"{result['proxy']} hit {second.get('seconds', 0) * 1000:.1f} ms" if result.get("cached") else result["proxy"],
        "; ".join(p["problem"] for p in problems),
        "; ".join(p["remedy"] for p in problems),
    )


# vobox_check's checks, each a control per service (SK-VOBOX-1x:<service>).
VOBOX_CONTROLS = {"unit": "SK-VOBOX-10", "image": "SK-VOBOX-11", "cvmfs": "SK-VOBOX-12", "dns": "SK-VOBOX-13"}


def _vobox(cid: str, result: dict, results: dict) -> None:
    """vobox_check: each service's unit, image, /cvmfs inside and DNS inside."""
    for service in result["services"]:
        for check, control in VOBOX_CONTROLS.items():
            verdict = (service.get("checks") or {}).get(check) or {}
            ok = bool(verdict.get("ok"))
            _merge(
                results,
                f"{control}:{service['name']}",
                "ok" if ok else "fail",
                "ok" if ok else "not ready",
                "\n".join(x for x in (verdict.get("detail"), verdict.get("cause")) if x),
                verdict.get("remedy") or "",
            )


# The modules whose results are readiness verdicts, by the action the JSON callback records, with a key every one of
# their results has (a module that crashed has none, and counts as a failed task).
READERS = {
    "node_selfcheck": ("classad", _selfcheck),
    "kernel_compat": ("userns_enabled", _kernel),
    "cvmfs_probe": ("repositories", _cvmfs),
    "container_launch": ("checks", _launch),
    "proxy_check": ("problems", _proxy),
    "vobox_check": ("services", _vobox),
}


def _readiness(cid: str, action: str, result: dict, results: dict) -> bool:
    """Fill readiness controls from a module's own verdict; True when the result was one of them."""
    key, reader = READERS.get(action.rpartition(".")[2], (None, None))
    if reader is None or key not in result:
        return False
    reader(cid, result, results)
    return True


def _client_control(results: dict, repo: dict) -> None:
    """SK-CVMFS-06:<repo>: what the running client uses (its xattrs) against what its files say.

    fail: it goes DIRECT although proxies are configured; drift: it runs an older configuration or a stale
    revision (the remedy reloads it); skip: no xattrs to judge (a stand-in, an unreadable repository).
    """
    client = repo["client"]
    checks = {c.get("name"): c for c in client.get("checks") or []}
    status = {"ok": "ok", "fail": "fail", "drift": "drift"}.get(client.get("status"), "skip")
    proxy = (checks.get("proxy") or {}).get("running")
    if status in ("fail", "drift"):
        bad = [f"{name}: {c.get('detail')}" for name, c in checks.items() if c.get("status") == client["status"]]
        value = ", ".join(name for name, c in checks.items() if c.get("status") == client["status"])
        detail = "\n".join([client.get("cause") or "", *bad]).strip()
    else:
        value = f"proxy {proxy}" if proxy else "unknown"
        detail = "; ".join(f"{name}: {c.get('detail')}" for name, c in checks.items())
    _merge(results, f"SK-CVMFS-06:{repo['name']}", status, value, detail, client.get("remedy") or "")


def collect(data: dict) -> dict[str, dict]:
    """{host: {control id: result}} from the JSON callback's output."""
    nodes: dict[str, dict] = {}
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            name = task.get("task", {}).get("name", "")
            match = CONTROL_ID.search(name)
            for host, res in task.get("hosts", {}).items():
                action = str(res.get("action") or "")
                results = nodes.setdefault(host, {})
                if not match:
                    continue
                cid = match.group(1)
                items = res.get("results") if isinstance(res.get("results"), list) else [res]
                for item in items:
                    if item.get("skipped"):
                        results.setdefault(cid, {"status": "skip", "value": "", "detail": "", "remedy": ""})
                        continue
                    if _readiness(cid, action, item, results):
                        continue
                    if cid in READINESS and not item.get("failed"):
                        continue  # a readiness control's bookkeeping tasks (set_fact...): its verdict comes above
                    tag = CONTROL_ROLE.get(cid, "")
                    fix = f"run playbooks/site.yml --limit {host}" + (f" --tags {tag}" if tag else "")
                    if item.get("unreachable"):
                        _merge(results, "UNREACHABLE", "fail", "unreachable", str(item.get("msg", "")), "")
                    elif item.get("failed"):
                        _merge(results, cid, "fail", "failed", str(item.get("msg", ""))[:2000], _remedy_from(item))
                    elif item.get("changed"):
                        _merge(results, cid, "drift", "drift", f"{name}\n{_diff_text(item)}".strip(), fix)
                    else:
                        _merge(results, cid, "ok")
    return nodes


def _remedy_from(item: dict) -> str:
    msg = str(item.get("msg", ""))
    for marker in ("Fix:", "Remedy:", "remedy:"):
        if marker in msg:
            return msg.split(marker, 1)[1].strip()[:500]
    return msg[:300]


def summarise(nodes: dict, stats: dict, site: str, command: str, groups: dict[str, list[str]]) -> dict:
    ids = set()
    for results in nodes.values():
        ids.update(results)
    ids.discard("UNREACHABLE")
    order = list(CONTROLS)

    def key(cid):
        base, _, inst = cid.partition(":")
        return (order.index(base) if base in order else len(order), inst, cid)

    controls = [{"id": c, "title": _title(c)[0], "group": _title(c)[1]} for c in sorted(ids, key=key)]
    out_nodes = []
    for host in sorted(set(nodes) | set(stats)):
        results = nodes.get(host, {})
        unreachable = "UNREACHABLE" in results or stats.get(host, {}).get("unreachable", 0) > 0
        statuses = [r["status"] for c, r in results.items() if c != "UNREACHABLE"]
        status = (
            "unreachable"
            if unreachable
            else "fail"
            if "fail" in statuses or stats.get(host, {}).get("failures", 0)
            else "drift"
            if "drift" in statuses
            else "ok"
        )
        out_nodes.append(
            {
                "name": host,
                "status": status,
                "groups": sorted(
                    g for g, members in groups.items() if host in members and g not in ("all", "ungrouped")
                ),
                "results": {c: r for c, r in results.items() if c != "UNREACHABLE"},
            }
        )
    totals = {"nodes": len(out_nodes)}
    for s in ("ok", "drift", "fail", "unreachable"):
        totals[s] = sum(n["status"] == s for n in out_nodes)
    return {
        "version": 1,
        "site": site,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "verdict": "pass" if totals["ok"] == totals["nodes"] and out_nodes else "fail",
        "controls": controls,
        "nodes": out_nodes,
        "totals": totals,
    }


def junit(summary: dict) -> ET.ElementTree:
    suite = ET.Element("testsuite", name="sitekit-compliance", timestamp=summary["generated"])
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    titles = {c["id"]: c["title"] for c in summary["controls"]}
    for node in summary["nodes"]:
        for cid in [c["id"] for c in summary["controls"]]:
            res = node["results"].get(cid)
            if res is None and node["status"] != "unreachable":
                continue
            case = ET.SubElement(suite, "testcase", classname=node["name"], name=f"{cid} {titles[cid]}")
            counts["tests"] += 1
            if node["status"] == "unreachable":
                ET.SubElement(case, "failure", message="node unreachable", type="unreachable")
                counts["failures"] += 1
            elif res["status"] in ("drift", "fail"):
                failure = ET.SubElement(case, "failure", message=res["remedy"] or res["status"], type=res["status"])
                failure.text = res["detail"]
                counts["failures"] += 1
            elif res["status"] == "skip":
                ET.SubElement(case, "skipped", message="not applicable on this node")
                counts["skipped"] += 1
    for k, v in counts.items():
        suite.set(k, str(v))
    root = ET.Element("testsuites", name="sitekit")
    root.append(suite)
    ET.indent(root)
    return ET.ElementTree(root)


def _tool_env() -> dict[str, str]:
    """This environment, with the directory of the Python running this tool first on PATH (a virtual environment's
    bin holds its ansible-playbook and ansible-inventory); the tools are then found on PATH."""
    path = os.environ.get("PATH", "")
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{path}" if path else str(Path(sys.executable).parent))


def inventory_groups(inventory: str) -> dict[str, list[str]]:
    run = subprocess.run(
        ["ansible-inventory", "-i", inventory, "--list"],
        env=_tool_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(run.stdout)
    return {g: body.get("hosts", []) for g, body in data.items() if isinstance(body, dict) and "hosts" in body}


def run_playbook(inventory: str, playbook: str, limit: str | None, extra: list[str]) -> tuple[dict, str, float]:
    # The tasks that only record a role's summary for the converge output (tag sitekit_report) decide no control.
    argv = ["ansible-playbook", "-i", inventory, playbook, "--check", "--diff", "--skip-tags", "sitekit_report", *extra]
    if limit:
        argv += ["--limit", limit]
    env = dict(_tool_env(), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(TOP / "ansible.cfg"))
    started = time.monotonic()
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=TOP)
    wall = time.monotonic() - started
    try:
        data = json.loads(run.stdout[run.stdout.index("{") :])
    except ValueError:
        sys.stderr.write(run.stdout[-3000:] + run.stderr[-3000:])
        raise SystemExit(f"compliance: ansible-playbook gave no JSON result (exit {run.returncode})") from None
    return data, " ".join(argv), wall


def from_ara(
    client, limit: str | None, now: dt.datetime, default_interval: int, workers: int, groups=None, cache=None
) -> dict:
    """The summary of every node's last compliance pass in ARA, stale nodes marked (SK-PULL-04, status stale)."""
    readers = set(READERS)
    found = ara_fleet.fleet(client, readers, limit=limit, workers=workers, cache=cache)
    nodes = collect(found["data"])
    nodes.update({name: dict(results) for name, results in found["summaries"].items()})  # each pass's own record
    fresh = {}
    for node in found["passes"]:
        fresh[node["name"]] = state = ara_fleet.freshness(node, now, default_interval)
        warning = found["warnings"].get(node["name"])
        nodes.setdefault(node["name"], {})[ara_fleet.STALE_CONTROL] = {
            "status": "fail" if state["stale"] else "ok",
            "value": ("stale: " if state["stale"] else "") + state["value"],
            "detail": state["detail"] + (f"; warning: {warning}" if warning else ""),
            "remedy": state["remedy"],
        }
    command = f"(from ARA {client.server}: the last compliance pass of each node)"
    summary = summarise(nodes, found["data"]["stats"], client.server, command, groups or {})
    for node in summary["nodes"]:
        if fresh.get(node["name"], {}).get("stale"):
            node["status"] = "stale"
    summary["totals"] = {"nodes": len(summary["nodes"])}
    for s in sitekit_report.NODE_STATUSES:
        summary["totals"][s] = sum(n["status"] == s for n in summary["nodes"])
    summary["verdict"] = "pass" if summary["nodes"] and summary["totals"]["ok"] == len(summary["nodes"]) else "fail"
    summary["ignored"] = found["other"]  # nodes whose last ARA record is not a compliance pass
    summary["fetched"] = found["fetched"]  # nodes whose pass was read from ARA (the others: from the cache)
    summary["from_records"] = len(found["summaries"])  # nodes read from their pass's summary record
    summary["warnings"] = [f"{name}: {why}" for name, why in sorted(found["warnings"].items())]
    return summary


def write_reports(summary: dict, out: Path) -> None:
    (out / "compliance.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    junit(summary).write(out / "junit.xml", encoding="utf-8", xml_declaration=True)
    (out / "report.html").write_text(sitekit_report.render_html(summary))


def finish(summary: dict, out: Path, wall: float) -> int:
    """Write the three files, print the table and the verdict line; the exit status (0 pass, 1 fail)."""
    summary["seconds"] = round(wall, 1)
    write_reports(summary, out)
    print(sitekit_report.render_table(summary), end="")
    t = summary["totals"]
    counts = f"{t['ok']} ok, {t['drift']} drifted, {t['fail']} failed, {t['unreachable']} unreachable"
    source = ""
    if "fetched" in summary:  # the fleet view
        counts += f", {t['stale']} stale"
        source = f" (from ARA, {summary['fetched']} new passes read, {summary['from_records']} from summary records)"
        for warning in summary["warnings"]:
            print(f"warning: {warning}")
    print(
        f"\ncompliance{source}: {summary['verdict'].upper()}: {counts} of {t['nodes']} nodes in {wall:.1f} s; "
        f"{out}/report.html, {out}/junit.xml, {out}/compliance.json"
    )
    return 0 if summary["verdict"] == "pass" else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", default=str(TOP / "inventories" / "lab" / "hosts.yml"))
    parser.add_argument("--playbook", default=str(TOP / "playbooks" / "compliance.yml"))
    parser.add_argument("--out", default=str(TOP / ".compliance"))
    parser.add_argument("--limit")
    parser.add_argument("--from-json", help="summarise saved ansible JSON output instead of running the playbook")
    parser.add_argument("--from-ara", metavar="SERVER", help="build the report from the ARA server's records")
    parser.add_argument("--stale-interval", type=int, default=3600, help="seconds; for records without interval")
    parser.add_argument("--workers", type=int, default=8, help="requests to ARA side by side (default 8)")
    parser.add_argument("--ara-record", metavar="DIR", help="also write every ARA answer to DIR (test data)")
    parser.add_argument(
        "--ara-cache", metavar="FILE", help="keep finished passes here between builds (default OUT/ara-cache.json)"
    )
    parser.add_argument("extra", nargs="*", help="more ansible-playbook arguments (after --)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_ara:
        started = time.monotonic()
        try:
            client = ara_fleet.AraClient(args.from_ara, record=Path(args.ara_record) if args.ara_record else None)
            cache = Path(args.ara_cache) if args.ara_cache else out / "ara-cache.json"
            summary = from_ara(
                client, args.limit, dt.datetime.now(dt.UTC), args.stale_interval, args.workers, cache=cache
            )
        except ara_fleet.AraError as exc:
            print(f"compliance: {exc}", file=sys.stderr)
            return 2
        return finish(summary, out, time.monotonic() - started)
    if args.from_json:
        data, command, wall = json.loads(Path(args.from_json).read_text()), f"(from {args.from_json})", 0.0
    else:
        data, command, wall = run_playbook(args.inventory, args.playbook, args.limit, args.extra)
        (out / "ansible.json").write_text(json.dumps(data))
    nodes = collect(data)
    summary = summarise(nodes, data.get("stats", {}), args.inventory, command, inventory_groups(args.inventory))
    return finish(summary, out, wall)


if __name__ == "__main__":
    sys.exit(main())
