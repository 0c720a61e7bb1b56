#!/usr/bin/env python3
"""Render the compliance run's JSON summary as a readiness report: one static HTML page and a terminal table.

usage: tools/sitekit_report.py SUMMARY.json [--html OUT.html] [--table] [--width N] [--all-rows]

With neither ``--html`` nor ``--table`` the table is printed. The HTML page needs no server, no network and no
JavaScript: inline CSS only, it opens from file://. One row per node (nodes with problems first), one column per
control, each cell coloured by its result (green ok, amber drift, red fail or not ready, grey skipped or unknown,
light grey not applicable) with its remedy as visible text in every red and amber cell.

Importable: ``render_html(summary) -> str``, ``render_table(summary, width=120) -> str``,
``validate(summary) -> dict`` (raises ``SummaryError``) and ``load(path) -> dict``.

The summary (version 1) is written by tools/compliance.py::

    {"version": 1, "site": "...", "generated": "2026-11-22T10:40:00Z", "command": "...", "verdict": "pass|fail",
     "controls": [{"id": "SK-KERNEL-01", "title": "Kernel verdict", "group": "readiness"}, ...],
     "nodes": [{"name": "wn1", "status": "ok|drift|fail|unreachable|stale", "groups": [...],
                "results": {"SK-KERNEL-01": {"status": "ok|drift|fail|skip", "value": "", "detail": "",
                                             "remedy": ""}},
                "detail": "", "remedy": ""}],          # optional: why a node is unreachable, and the fix
     "totals": {"nodes": 1, "ok": 1, "drift": 0, "fail": 0, "unreachable": 0, "stale": 0}}

``stale`` (the fleet view, tools/compliance.py --from-ara): the node's last record is older than two of its
intervals; its cells are that record's. A control missing from a node's ``results`` is not applicable to that
node (shown "-"), or unknown ("?") when the node was unreachable. A result whose control is not in ``controls``
gets a column of its own at the end, so nothing the runner found is ever hidden.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

SCHEMA_VERSION = 1
NODE_STATUSES = ("ok", "drift", "fail", "unreachable", "stale")
RESULT_STATUSES = ("ok", "drift", "fail", "skip")
VERDICTS = ("pass", "fail")
REQUIRED_KEYS = ("version", "site", "generated", "verdict", "controls", "nodes", "totals")

# Cell colours (background, text). The CSS is generated from this table, and the Chromium test samples the
# screenshot for exactly these backgrounds. "na": the control does not apply to the node; "unknown": the node
# was unreachable, so its result is not known.
COLOURS = {
    "ok": ("#a3ddb0", "#0e3b1a"),
    "drift": ("#ffc53d", "#3f2b00"),
    "fail": ("#d93a32", "#ffffff"),
    "skip": ("#cfd3d8", "#3b4046"),
    "unknown": ("#cfd3d8", "#3b4046"),
    "na": ("#eef0f2", "#8a9097"),
}
# Node status -> the colour of its status cell (an unreachable node is not ready: red).
# A stale node (fleet view: its last record is older than two of its intervals) is not known to be ready: red.
NODE_COLOUR = {"ok": "ok", "drift": "drift", "fail": "fail", "unreachable": "fail", "stale": "fail"}
# Nodes with problems first: fail, unreachable, stale, drift, then ok; by natural name order within each.
NODE_RANK = {"fail": 0, "unreachable": 1, "stale": 2, "drift": 3, "ok": 4}
# What a cell says in the page; a node's verdict, in the page and in the terminal.
CELL_WORD = {"ok": "ok", "drift": "DRIFT", "fail": "FAIL", "skip": "skip", "unknown": "?", "na": "-"}
NODE_WORD = {"ok": "ok", "drift": "DRIFT", "fail": "FAIL", "unreachable": "UNREACHABLE", "stale": "STALE"}

DETAIL_MAX = 2000  # characters of a result's detail kept in the page (the JSON summary has all of it)
TABLE_OK_ROWS = 20  # ok nodes listed in the terminal table before the rest are counted on one line


class SummaryError(ValueError):
    """The summary is not a valid version-1 readiness summary; the message names the key and what is wrong."""


# --------------------------------------------------------------------------------------------------- input


def _text(value, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SummaryError(f"{where}: expected a string, got {type(value).__name__}")
    return str(value)


def _choice(value, choices, where: str) -> str:
    if value not in choices:
        raise SummaryError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def validate(summary) -> dict:
    """Check a version-1 summary and return a normalised copy (texts as str, optional keys filled in).

    Raises SummaryError naming the offending key: wrong version, a missing required key, an unknown status, a
    node listed twice, totals that do not match the nodes.
    """
    if not isinstance(summary, dict):
        raise SummaryError(f"the summary must be a JSON object, got {type(summary).__name__}")
    if "version" not in summary:
        raise SummaryError("missing key 'version' (this renderer reads version 1 summaries)")
    if summary["version"] != SCHEMA_VERSION:
        raise SummaryError(f"version: this renderer reads version {SCHEMA_VERSION}, got {summary['version']!r}")
    missing = [key for key in REQUIRED_KEYS if key not in summary]
    if missing:
        raise SummaryError(f"missing required key(s): {', '.join(missing)} (needs {', '.join(REQUIRED_KEYS)})")
    out = {
        "version": SCHEMA_VERSION,
        "site": _text(summary["site"], "site"),
        "generated": _text(summary["generated"], "generated"),
        "command": _text(summary.get("command"), "command"),
        "verdict": _choice(summary["verdict"], VERDICTS, "verdict"),
    }
    if not isinstance(summary["controls"], list):
        raise SummaryError("controls: expected a list of {id, title, group}")
    controls, seen = [], set()
    for i, control in enumerate(summary["controls"]):
        where = f"controls[{i}]"
        if not isinstance(control, dict) or not isinstance(control.get("id"), str) or not control["id"]:
            raise SummaryError(f"{where}: expected an object with a non-empty string 'id', got {control!r}")
        if control["id"] in seen:
            raise SummaryError(f"{where}: control {control['id']!r} is listed twice")
        seen.add(control["id"])
        controls.append(
            {
                "id": control["id"],
                "title": _text(control.get("title"), f"{where}.title") or control["id"],
                "group": _text(control.get("group"), f"{where}.group"),
            }
        )
    if not isinstance(summary["nodes"], list):
        raise SummaryError("nodes: expected a list of nodes")
    nodes, names = [], set()
    for i, node in enumerate(summary["nodes"]):
        where = f"nodes[{i}]"
        if not isinstance(node, dict) or not isinstance(node.get("name"), str) or not node["name"]:
            raise SummaryError(f"{where}: expected an object with a non-empty string 'name'")
        where = f"nodes[{i}] ({node['name']})"
        if node["name"] in names:
            raise SummaryError(f"{where}: node {node['name']!r} is listed twice")
        names.add(node["name"])
        results = node.get("results", {})
        if not isinstance(results, dict):
            raise SummaryError(f"{where}.results: expected an object keyed by control id")
        clean = {}
        for cid, result in results.items():
            rwhere = f"{where}.results[{cid!r}]"
            if not isinstance(result, dict):
                raise SummaryError(f"{rwhere}: expected an object with 'status', got {result!r}")
            clean[cid] = {
                "status": _choice(result.get("status"), RESULT_STATUSES, f"{rwhere}.status"),
                "value": _text(result.get("value"), f"{rwhere}.value"),
                "detail": _text(result.get("detail"), f"{rwhere}.detail"),
                "remedy": _text(result.get("remedy"), f"{rwhere}.remedy"),
            }
            if cid not in seen:  # a result for a control the list does not name: a column of its own
                seen.add(cid)
                controls.append({"id": cid, "title": cid, "group": ""})
        groups = node.get("groups", [])
        if not isinstance(groups, list):
            raise SummaryError(f"{where}.groups: expected a list of group names")
        nodes.append(
            {
                "name": node["name"],
                "status": _choice(node.get("status"), NODE_STATUSES, f"{where}.status"),
                "groups": [_text(g, f"{where}.groups") for g in groups],
                "results": clean,
                "detail": _text(node.get("detail"), f"{where}.detail"),
                "remedy": _text(node.get("remedy"), f"{where}.remedy"),
            }
        )
    totals = summary["totals"]
    if not isinstance(totals, dict):
        raise SummaryError("totals: expected an object {nodes, ok, drift, fail, unreachable}")
    counted = {"nodes": len(nodes), **{s: sum(n["status"] == s for n in nodes) for s in NODE_STATUSES}}
    wrong = [f"{k} is {totals[k]!r}, the nodes say {v}" for k, v in counted.items() if k in totals and totals[k] != v]
    if wrong:
        raise SummaryError(f"totals do not match the nodes: {'; '.join(wrong)}")
    out.update(controls=controls, nodes=nodes, totals=counted)
    return out


def load(path) -> dict:
    """Read and validate a summary file; SummaryError names the file on bad JSON."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SummaryError(f"{path}: not valid JSON: {exc}") from None
    return validate(data)


# --------------------------------------------------------------------------------------------------- shared


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def ordered_nodes(nodes: list) -> list:
    """Nodes with problems first (fail, unreachable, stale, drift), then ok; natural name order (wn2 before wn10)."""
    return sorted(nodes, key=lambda n: (NODE_RANK[n["status"]], _natural_key(n["name"])))


def cell_state(node: dict, control_id: str) -> str:
    """ok | drift | fail | skip for a result; na when the control does not apply; unknown if unreachable."""
    result = node["results"].get(control_id)
    if result is not None:
        return result["status"]
    return "unknown" if node["status"] == "unreachable" else "na"


def _when(generated: str) -> str:
    try:
        stamp = datetime.fromisoformat(generated.replace("Z", "+00:00"))
    except ValueError:
        return generated
    if stamp.tzinfo is None:
        return stamp.strftime("%Y-%m-%d %H:%M:%S")
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def problems(summary: dict) -> list:
    """(node, control id, status, remedy) for every red and amber cell and every unreachable node, in row order."""
    out = []
    for node in ordered_nodes(summary["nodes"]):
        if node["status"] == "unreachable":
            out.append((node["name"], "(node)", "unreachable", node["remedy"] or node["detail"]))
        for control in summary["controls"]:
            result = node["results"].get(control["id"])
            if result and result["status"] in ("fail", "drift"):
                out.append((node["name"], control["id"], result["status"], result["remedy"]))
    return out


# --------------------------------------------------------------------------------------------------- HTML


def _css() -> str:
    rules = []
    for state, (bg, fg) in COLOURS.items():
        rules.append(f".s-{state}{{background:{bg};color:{fg}}}")
    return (
        """
*{box-sizing:border-box}
body{margin:0;font:13px/1.3 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2125;
 background:#fff}
header{padding:10px 14px 8px;border-bottom:1px solid #d7dadf;background:#f7f8fa}
h1{margin:0 0 4px;font-size:18px;font-weight:600}
h1 .site{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-weight:500}
.meta{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center}
.verdict{display:inline-block;padding:3px 12px;border-radius:3px;font-weight:700;font-size:15px;letter-spacing:.04em}
.chip{display:inline-block;padding:1px 7px;border-radius:3px;font-weight:600}
.cmd{margin-top:4px;font:11px/1.3 ui-monospace,"DejaVu Sans Mono",monospace;color:#5a6169;overflow-wrap:anywhere}
.legend{margin-top:6px;font-size:11px;color:#5a6169}
.legend .chip{font-weight:400;margin-right:4px}
.filter{font-size:12px;color:#3b4046}
#only-problems{margin:8px 4px 0 14px;vertical-align:middle}
#only-problems:checked ~ .grid tr.n-ok{display:none}
.grid{padding:6px 8px 16px}
table{border-collapse:separate;border-spacing:2px}
th,td{padding:3px 6px;text-align:left;vertical-align:top}
thead th{position:sticky;top:0;z-index:2;background:#eceef1;font-weight:600;min-width:8.5em;max-width:16em;
 border-bottom:2px solid #aeb4bb}
thead th.node{z-index:3;left:0}
th .cid{display:block;font:10px ui-monospace,"DejaVu Sans Mono",monospace;font-weight:400;color:#5a6169;
 overflow-wrap:anywhere}
th .count{display:block;font-size:10px;font-weight:400;color:#5a6169}
td{height:24px;min-width:8.5em;max-width:16em;overflow-wrap:anywhere}
td.node{position:sticky;left:0;z-index:1;background:#fff;font:600 12px ui-monospace,"DejaVu Sans Mono",monospace;
 min-width:7em;white-space:nowrap}
td.node .groups{display:block;font:400 10px system-ui,sans-serif;color:#6b727a}
td.status{min-width:6.5em;max-width:18em}
td.status .nw{font-weight:700;white-space:nowrap}
td.status .n{display:block;font-size:11px}
td .w{font-weight:700;font-size:11px;margin-right:4px}
td .fix{display:block;margin-top:2px;font:11px/1.25 ui-monospace,"DejaVu Sans Mono",monospace}
td .fix::before{content:"fix: ";font-weight:700}
td .why{display:block;margin-top:2px;font-size:11px;font-weight:400}
details{margin-top:2px;font-size:11px}
summary{cursor:pointer;opacity:.85}
details pre{margin:2px 0 0;max-width:30em;max-height:14em;overflow:auto;padding:4px;background:#fbfbfc;
 color:#1d2125;border:1px solid #c6cbd1;font:10.5px/1.3 ui-monospace,"DejaVu Sans Mono",monospace;white-space:pre}
.empty{padding:14px;color:#5a6169}
footer{padding:4px 14px 14px;font-size:11px;color:#6b727a}
"""
        + "\n".join(rules)
        + "\n"
    )


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _detail_html(detail: str) -> str:
    if not detail:
        return ""
    shown = detail
    if len(detail) > DETAIL_MAX:
        shown = detail[:DETAIL_MAX] + f"\n... ({len(detail) - DETAIL_MAX} more characters in the JSON summary)"
    return f"<details><summary>detail</summary><pre>{_esc(shown)}</pre></details>"


def _cell_html(node: dict, control: dict) -> str:
    state = cell_state(node, control["id"])
    result = node["results"].get(control["id"])
    if result is None:
        tip = "not applicable" if state == "na" else "unknown: the node was unreachable"
        return f'<td class="c s-{state}" title="{_esc(control["id"])}: {tip}">{CELL_WORD[state]}</td>'
    value = _esc(result["value"])
    if state == "ok":  # the common cell: kept small, a page of 1000 nodes is mostly these
        return f'<td class="c s-ok">{value or "ok"}</td>'
    parts = [f'<span class="w">{CELL_WORD[state]}</span>{value}']
    if result["remedy"] and state in ("fail", "drift"):
        parts.append(f'<span class="fix">{_esc(result["remedy"])}</span>')
    parts.append(_detail_html(result["detail"]))
    tip = _esc(f"{control['id']} on {node['name']}: {result['status']}")
    return f'<td class="c s-{state}" title="{tip}">{"".join(parts)}</td>'


def _node_row(node: dict, controls: list) -> str:
    status = node["status"]
    groups = f'<span class="groups">{_esc(", ".join(node["groups"]))}</span>' if node["groups"] else ""
    status_cell = f'<span class="nw">{NODE_WORD[status]}</span>'
    states = [cell_state(node, c["id"]) for c in controls]
    counts = " · ".join(f"{states.count(s)} {s}" for s in ("fail", "drift") if states.count(s))
    if counts:
        status_cell += f'<span class="n">{counts}</span>'
    if node["detail"]:
        status_cell += f'<span class="why">{_esc(node["detail"])}</span>'
    if node["remedy"]:
        status_cell += f'<span class="fix">{_esc(node["remedy"])}</span>'
    if status == "unreachable" and not node["results"] and controls:  # nothing known: one grey cell
        cells = (
            f'<td class="c s-unknown" colspan="{len(controls)}"><span class="w">?</span>'
            "no results: the node was unreachable</td>"
        )
    else:
        cells = "".join(_cell_html(node, control) for control in controls)
    return (
        f'<tr class="n-{status}" data-node="{_esc(node["name"])}">'
        f'<td class="node">{_esc(node["name"])}{groups}</td>'
        f'<td class="status s-{NODE_COLOUR[status]}">{status_cell}</td>{cells}</tr>'
    )


def _column_head(control: dict, nodes: list) -> str:
    counts = {
        s: sum(n["results"].get(control["id"], {}).get("status") == s for n in nodes) for s in ("fail", "drift", "skip")
    }
    count = " · ".join(f"{v} {k}" for k, v in counts.items() if v) or "all ok"
    if not any(control["id"] in n["results"] for n in nodes):
        count = "no results"
    tip = f' title="{_esc(control["group"])}"' if control["group"] else ""
    return (
        f'<th data-control="{_esc(control["id"])}"{tip}>{_esc(control["title"])}'
        f'<span class="cid">{_esc(control["id"])}</span><span class="count">{count}</span></th>'
    )


def render_html(summary: dict) -> str:
    """The whole report as one self-contained HTML page (validates ``summary`` first)."""
    s = validate(summary)
    totals, nodes, controls = s["totals"], ordered_nodes(s["nodes"]), s["controls"]
    verdict_state = "ok" if s["verdict"] == "pass" else "fail"
    chips = [f'<span class="chip">{totals["nodes"]} nodes</span>']
    for status in NODE_STATUSES:
        if totals[status]:
            chips.append(f'<span class="chip s-{NODE_COLOUR[status]}">{totals[status]} {status}</span>')
    legend = " ".join(
        f'<span class="chip s-{state}">{label}</span>'
        for state, label in (
            ("ok", "ok"),
            ("drift", "DRIFT: would change (remedy shown)"),
            ("fail", "FAIL / not ready (remedy shown)"),
            ("skip", "skipped / ? unknown"),
            ("na", "- not applicable"),
        )
    )
    head = '<th class="node">node</th><th>status</th>' + "".join(_column_head(c, nodes) for c in controls)
    if nodes:
        body = "\n".join(_node_row(n, controls) for n in nodes)
    else:
        body = f'<tr><td class="empty" colspan="{len(controls) + 2}">The summary lists no nodes.</td></tr>'
    title = f"sitekit readiness: {s['site']}: {s['verdict'].upper()}"
    problem_nodes = totals["nodes"] - totals["ok"]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="sitekit tools/sitekit_report.py">
<title>{_esc(title)}</title>
<style>{_css()}</style>
</head>
<body>
<header>
<h1>sitekit readiness: <span class="site">{_esc(s["site"])}</span></h1>
<div class="meta">
<span class="verdict s-{verdict_state}">{s["verdict"].upper()}</span>
<span class="when">{_esc(_when(s["generated"]))}</span>
{" ".join(chips)}
</div>
<div class="cmd">{_esc(s["command"])}</div>
<div class="legend">{legend}</div>
</header>
<main>
<input type="checkbox" id="only-problems"><label for="only-problems" class="filter">\
show only the {problem_nodes} node(s) with problems</label>
<div class="grid">
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
</div>
</main>
<footer>Rows: nodes with problems first (fail, unreachable, stale, drift), then ok. Columns: controls in the order of \
the summary. Rendered by tools/sitekit_report.py from a version {SCHEMA_VERSION} summary.</footer>
</body>
</html>
"""


# --------------------------------------------------------------------------------------------------- table


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "~"


def render_table(summary: dict, width: int = 120, all_rows: bool = False) -> str:
    """What an admin reads in a terminal: a line per node (its verdict and how many controls are ok, drifted,
    failed, not applicable), then a line per problem (node, status, the control's title and id, the remedy).

    The grid of every control is the HTML report's. Nodes with problems come first; beyond TABLE_OK_ROWS ok nodes
    the rest are counted on one line unless ``all_rows``. Node names are cut to fit ``width``; remedy lines are
    not wrapped (a remedy is often a command to copy).
    """
    s = validate(summary)
    controls, nodes, totals = s["controls"], ordered_nodes(s["nodes"]), s["totals"]
    titles = {c["id"]: c["title"] for c in controls}
    counted = ("ok", "drift", "fail", "skip")
    node_w = min(max([4, *(len(n["name"]) for n in nodes)]), max(8, width - 50))
    status_w = max([7, *(len(NODE_WORD[n["status"]]) for n in nodes)])

    def row(name, verdict, cells):
        return f"{_fit(name, node_w):<{node_w}}  {verdict:<{status_w}}" + "".join(f"  {c:>5}" for c in cells)

    counts = ", ".join(f"{totals[k]} {k}" for k in NODE_STATUSES if totals[k]) or "none"
    lines = [
        f"sitekit readiness: {s['site']}  {_when(s['generated'])}  verdict {s['verdict'].upper()}",
        f"{totals['nodes']} nodes: {counts}; {len(controls)} controls (the report has the grid)",
        "",
        row("node", "verdict", ["ok", "drift", "fail", "n/a"]),
    ]
    ok_shown = hidden = 0
    for node in nodes:
        if node["status"] == "ok" and not all_rows and ok_shown >= TABLE_OK_ROWS:
            hidden += 1
            continue
        ok_shown += node["status"] == "ok"
        if node["status"] == "unreachable":
            cells = ["-"] * len(counted)
        else:
            states = [cell_state(node, c["id"]) for c in controls]
            cells = [str(states.count(k) + (states.count("na") if k == "skip" else 0)) for k in counted]
        lines.append(row(node["name"], NODE_WORD[node["status"]], cells).rstrip())
    if hidden:
        lines.append(f"... and {hidden} more ok node(s) (--all-rows lists them)")
    if not nodes:
        lines.append("(the summary lists no nodes)")
    found = problems(s)
    if found:
        name_w = min(max(len(p[0]) for p in found), node_w)
        st_w = max(len(p[2]) for p in found)
        lines += ["", f"{len(found)} problem(s), with their remedies:"]
        for name, cid, status, remedy in found:
            what = f"{titles[cid]} [{cid}]" if cid in titles else cid
            lines.append(
                f"{_fit(name, name_w):<{name_w}}  {status.upper():<{st_w}}  {what}: {remedy or '(no remedy given)'}"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="sitekit_report.py",
        description="Render a sitekit compliance summary (JSON, version 1) as an HTML page and/or a terminal table.",
    )
    parser.add_argument("summary", help="the JSON summary written by tools/compliance.py")
    parser.add_argument("--html", metavar="OUT.html", help="write the static HTML report here")
    parser.add_argument("--table", action="store_true", help="print the terminal table (the default without --html)")
    parser.add_argument("--width", type=int, default=120, help="terminal table width (default 120)")
    parser.add_argument("--all-rows", action="store_true", help=f"list every ok node (default: {TABLE_OK_ROWS})")
    args = parser.parse_args(argv)
    try:
        summary = load(args.summary)
    except OSError as exc:
        print(f"sitekit_report: cannot read {args.summary}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except SummaryError as exc:
        print(f"sitekit_report: {args.summary}: {exc}", file=sys.stderr)
        return 2
    if args.html:
        out = Path(args.html)
        out.write_text(render_html(summary), encoding="utf-8")
        print(f"report: {out.resolve().as_uri()}", file=sys.stderr)
    if args.table or not args.html:
        sys.stdout.write(render_table(summary, width=args.width, all_rows=args.all_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
