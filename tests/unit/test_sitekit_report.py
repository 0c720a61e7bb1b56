"""tools/sitekit_report.py: the readiness report, checked as HTML text, as a terminal table, and as pixels.

The browser tests render the example summary (tests/unit/data/report/summary-example.json) in Debian's headless
Chromium, take a screenshot and decode it here (stdlib PNG decoder below), and look at it: every table cell must
be painted in the colour of its node's result for that control (green ok, amber drift, red fail, grey unknown,
light grey not applicable), the expected colours must be the right hues, nothing else may be painted in them,
the remedies must be drawn inside their red cells, and the nodes with problems must come first. Where each cell
is comes from the same Chromium run: a copy of the page carries a small script that records the cells' boxes and
``--dump-dom`` prints them with the page. A second run breaks one CSS colour and expects the check to say so.
"""

from __future__ import annotations

import copy
import json
import re
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from html.parser import HTMLParser
from itertools import accumulate
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
if str(TOP / "tools") not in sys.path:
    sys.path.insert(0, str(TOP / "tools"))

import sitekit_report  # noqa: E402
from sitekit_report import COLOURS, SummaryError, render_html, render_table, validate  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent / "data" / "report" / "summary-example.json"
CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1400, 900)
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing: install Debian's chromium package (./run installs it, see HOST_PACKAGES)",
)


@pytest.fixture
def example():
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def expected_state(node: dict, control_id: str) -> str:
    """What the cell of (node, control) must show, worked out from the summary alone (not from the renderer)."""
    if control_id in node.get("results", {}):
        return node["results"][control_id]["status"]
    return "unknown" if node["status"] == "unreachable" else "na"


# --------------------------------------------------------------------------------------------------- HTML text


class TableParser(HTMLParser):
    """The report's table as data: column control ids, and per row the node and its cells (class, span, text)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.columns, self.rows, self.scripts, self.links = [], [], 0, []
        self._cell = None
        self._in_tbody = False
        self._skip_text = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag in ("link", "img", "iframe") or (tag == "a" and "href" in attrs):
            self.links.append((tag, attrs))
        if tag == "th" and "data-control" in attrs:
            self.columns.append(attrs["data-control"])
        elif tag == "tbody":
            self._in_tbody = True
        elif tag == "tr" and self._in_tbody and "data-node" in attrs:
            self.rows.append({"node": attrs["data-node"], "cls": attrs.get("class", ""), "cells": []})
        elif tag == "td" and self._in_tbody and self.rows:
            self._cell = {
                "cls": attrs.get("class", ""),
                "span": int(attrs.get("colspan", 1)),
                "title": attrs.get("title", ""),
                "text": "",
                "fix": "",
                "detail": "",
            }
            self.rows[-1]["cells"].append(self._cell)
        elif self._cell is not None and tag == "span" and "fix" in attrs.get("class", "").split():
            self._skip_text = "fix"
        elif self._cell is not None and tag == "pre":
            self._skip_text = "detail"

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "tbody":
            self._in_tbody = False
        elif tag in ("span", "pre"):
            self._skip_text = 0

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[self._skip_text or "text"] += data


def parse(page: str) -> TableParser:
    parser = TableParser()
    parser.feed(page)
    parser.close()
    return parser


def cell_of(table: TableParser, node: str, control: str) -> dict:
    row = next(r for r in table.rows if r["node"] == node)
    col = 0
    for cell in row["cells"][2:]:
        if col <= table.columns.index(control) < col + cell["span"]:
            return cell
        col += cell["span"]
    raise AssertionError(f"no cell for {node} / {control}")


def test_every_node_row_and_control_column_is_present_in_order(example):
    table = parse(render_html(example))
    assert table.columns == [c["id"] for c in example["controls"]]
    assert [r["node"] for r in table.rows] == ["wn3", "wn4", "wn2", "wn1"]  # fail, unreachable, drift, ok
    for row in table.rows:
        assert sum(c["span"] for c in row["cells"]) == 2 + len(table.columns), row["node"]


def test_each_cell_has_the_class_and_text_of_its_result(example):
    table = parse(render_html(example))
    for node in example["nodes"]:
        for control in example["controls"]:
            cell = cell_of(table, node["name"], control["id"])
            state = expected_state(node, control["id"])
            assert f"s-{state}" in cell["cls"].split(), (node["name"], control["id"], cell)
            result = node["results"].get(control["id"])
            if result and result["value"]:
                assert result["value"] in cell["text"]
            if state in ("fail", "drift"):
                assert cell["text"].startswith(state.upper())


def test_every_red_and_amber_cell_shows_its_remedy_as_text(example):
    table = parse(render_html(example))
    found = 0
    for node in example["nodes"]:
        for cid, result in node["results"].items():
            if result["status"] in ("fail", "drift"):
                cell = cell_of(table, node["name"], cid)
                assert cell["fix"] == result["remedy"], (node["name"], cid)  # visible text, not only a tooltip
                assert cell["detail"].strip() == result["detail"].strip()
                found += 1
    assert found == 4
    status = next(r for r in table.rows if r["node"] == "wn4")["cells"][1]
    assert "s-fail" in status["cls"] and "UNREACHABLE" in status["text"]
    assert status["fix"] == example["nodes"][3]["remedy"] and "No route to host" in status["text"]


def test_the_header_names_site_time_totals_and_verdict(example):
    page = render_html(example)
    assert "<title>sitekit readiness: inventories/lab/hosts.yml: FAIL</title>" in page
    assert '<span class="verdict s-fail">FAIL</span>' in page
    assert "2026-11-22 10:40:00 UTC" in page
    for chip in ("4 nodes", "1 ok", "1 drift", "1 fail", "1 unreachable"):
        assert f">{chip}</span>" in page
    example["verdict"] = "pass"
    assert '<span class="verdict s-ok">PASS</span>' in render_html(example)


def test_the_page_is_self_contained(example):
    page = render_html(example)
    table = parse(page)
    assert table.scripts == 0, "the page needs no JavaScript"
    assert table.links == [], "the page loads nothing: no links, images or frames"
    assert "url(" not in page and "@import" not in page and "http" not in page.split("<body>")[0]


NASTY = "<script>alert('x')</script> & \"quoted\""


def test_everything_is_escaped(example):
    node = example["nodes"][2]
    node["name"] = 'wn3<b>&"x'
    node["groups"] = ["<grp>"]
    node["results"]["SK-LAUNCH-01"].update(value=NASTY, detail=NASTY + "\n</pre></details></td>", remedy=NASTY)
    example["site"] = "<site & co>"
    example["command"] = NASTY
    example["controls"][3]["title"] = "<Launch>"
    page = render_html(example)
    assert "<script>" not in page and "</pre></details></td>\n" not in page
    assert "<b>" not in page and "<grp>" not in page and "<site" not in page and "<Launch>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    table = parse(page)
    assert table.scripts == 0
    cell = cell_of(table, 'wn3<b>&"x', "SK-LAUNCH-01")  # the parser gets the original text back
    assert NASTY in cell["text"] and cell["fix"] == NASTY and NASTY in cell["detail"]
    assert len(table.rows) == 4 and len(table.columns) == 7


def test_a_long_detail_is_cut_and_collapsed(example):
    example["nodes"][1]["results"]["SK-APPT-02"]["detail"] = "+x = y\n" * 5000
    page = render_html(example)
    assert len(page) < 20000
    cell = cell_of(parse(page), "wn2", "SK-APPT-02")
    assert len(cell["detail"]) < sitekit_report.DETAIL_MAX + 100
    assert "more characters in the JSON summary" in cell["detail"]
    assert "<details><summary>detail</summary><pre>" in page


def test_missing_skipped_and_unknown_results(example):
    example["nodes"][0]["results"]["SK-PROXY-01"] = {"status": "skip", "value": "no squid", "detail": "", "remedy": ""}
    example["nodes"][3]["results"] = {"SK-KERNEL-01": {"status": "ok", "value": "cached verdict"}}
    table = parse(render_html(example))
    assert "s-skip" in cell_of(table, "wn1", "SK-PROXY-01")["cls"]
    assert "s-na" in cell_of(table, "wn2", "SK-HTC-01")["cls"]  # missing on a reachable node: not applicable
    assert "s-ok" in cell_of(table, "wn4", "SK-KERNEL-01")["cls"]  # partial results: one cell each
    assert "s-unknown" in cell_of(table, "wn4", "SK-HTC-01")["cls"]
    assert cell_of(table, "wn4", "SK-HTC-01")["span"] == 1


def test_a_result_for_an_unlisted_control_gets_its_own_column(example):
    example["nodes"][2]["results"]["SK-EXTRA-09"] = {"status": "fail", "value": "x", "remedy": "do y"}
    table = parse(render_html(example))
    assert table.columns[-1] == "SK-EXTRA-09"
    assert cell_of(table, "wn3", "SK-EXTRA-09")["fix"] == "do y"
    assert "s-na" in cell_of(table, "wn1", "SK-EXTRA-09")["cls"]


def big_site(n: int, broken: set[int]) -> dict:
    controls = [{"id": f"SK-C-{i:02d}", "title": f"Control {i}", "group": "readiness"} for i in range(8)]
    nodes = []
    for i in range(1, n + 1):
        bad = i in broken
        results = {c["id"]: {"status": "ok", "value": "ok", "detail": "", "remedy": ""} for c in controls}
        if bad:
            results["SK-C-03"] = {"status": "fail", "value": "no", "detail": "err", "remedy": f"fix wn{i}"}
        nodes.append({"name": f"wn{i}", "status": "fail" if bad else "ok", "groups": [], "results": results})
    totals = {"nodes": n, "ok": n - len(broken), "drift": 0, "fail": len(broken), "unreachable": 0}
    head = {"version": 1, "site": "big", "generated": "2026-11-22T10:40:00Z", "command": "", "verdict": "fail"}
    return {**head, "controls": controls, "nodes": nodes, "totals": totals}


def test_a_thousand_nodes_stay_compact_with_failing_nodes_first():
    summary = big_site(1000, {7, 500, 999})
    started = time.monotonic()
    page = render_html(summary)
    assert time.monotonic() - started < 5
    table = parse(page)
    assert [r["node"] for r in table.rows[:4]] == ["wn7", "wn500", "wn999", "wn1"]  # natural order: wn2 < wn10
    assert [r["node"] for r in table.rows[4:7]] == ["wn2", "wn3", "wn4"]
    assert len(table.rows) == 1000
    assert len(page) / 1000 < 700, "an ok row should cost a few hundred bytes"
    assert "position:sticky" in page  # the header row (and node column) stay in view while scrolling
    assert "#only-problems:checked ~ .grid tr.n-ok{display:none}" in page  # CSS-only filter, no script


# --------------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(version=2), "version: this renderer reads version 1, got 2"),
        (lambda s: s.pop("version"), "missing key 'version'"),
        (lambda s: s.pop("nodes"), "missing required key(s): nodes"),
        (lambda s: s.pop("totals") and s.pop("site"), "missing required key(s): site, totals"),
        (lambda s: s.update(verdict="maybe"), "verdict: expected one of pass, fail, got 'maybe'"),
        (lambda s: s["nodes"][1].update(status="broken"), "nodes[1] (wn2).status: expected one of ok, drift"),
        (
            lambda s: s["nodes"][2]["results"]["SK-LAUNCH-01"].update(status="bad"),
            "nodes[2] (wn3).results['SK-LAUNCH-01'].status: expected one of ok, drift, fail, skip, got 'bad'",
        ),
        (lambda s: s["nodes"][0]["results"].update({"SK-X": "ok"}), "results['SK-X']: expected an object"),
        (lambda s: s["nodes"][0].update(name=""), "nodes[0]: expected an object with a non-empty string 'name'"),
        (lambda s: s["nodes"].append(copy.deepcopy(s["nodes"][0])), "node 'wn1' is listed twice"),
        (lambda s: s["controls"].append({"title": "no id"}), "controls[7]: expected an object with a non-empty"),
        (lambda s: s["controls"].append(dict(s["controls"][0])), "control 'SK-KERNEL-01' is listed twice"),
        (lambda s: s["totals"].update(fail=0), "totals do not match the nodes: fail is 0, the nodes say 1"),
        (lambda s: s["nodes"][0]["results"]["SK-KERNEL-01"].update(value=["x"]), "value: expected a string"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(example, change, message):
    change(example)
    with pytest.raises(SummaryError) as err:
        validate(example)
    assert message in str(err.value)
    with pytest.raises(SummaryError):
        render_html(example)
    with pytest.raises(SummaryError):
        render_table(example)


def test_not_an_object():
    with pytest.raises(SummaryError, match="must be a JSON object, got list"):
        validate([])


# --------------------------------------------------------------------------------------------------- table


def test_terminal_table(example):
    """A line per node (verdict and counts), then a line per problem with its control's title and remedy."""
    text = render_table(example)
    lines = text.splitlines()
    assert lines[0] == "sitekit readiness: inventories/lab/hosts.yml  2026-11-22 10:40:00 UTC  verdict FAIL"
    assert lines[1] == "4 nodes: 1 ok, 1 drift, 1 fail, 1 unreachable; 7 controls (the report has the grid)"
    assert lines[3].split() == ["node", "verdict", "ok", "drift", "fail", "n/a"]
    rows = [line.split() for line in lines[4:8]]
    assert rows == [
        ["wn3", "FAIL", "4", "0", "3", "0"],
        ["wn4", "UNREACHABLE", "-", "-", "-", "-"],
        ["wn2", "DRIFT", "5", "1", "0", "1"],
        ["wn1", "ok", "7", "0", "0", "0"],
    ]
    # Every control of a reachable node is counted once.
    assert all(sum(map(int, r[2:])) == len(example["controls"]) for r in rows if r[1] != "UNREACHABLE")
    assert all(len(line) <= 120 for line in lines[:8])
    titles = {c["id"]: c["title"] for c in example["controls"]}
    problems = lines[lines.index("5 problem(s), with their remedies:") + 1 :]
    assert [p.split()[:2] for p in problems] == [
        ["wn3", "FAIL"],
        ["wn3", "FAIL"],
        ["wn3", "FAIL"],
        ["wn4", "UNREACHABLE"],
        ["wn2", "DRIFT"],
    ]
    for line, cid in zip(problems, ["SK-USERNS-01", "SK-LAUNCH-01", "SK-HTC-01", None, "SK-APPT-02"]):
        assert cid is None or f"{titles[cid]} [{cid}]: " in line, line
    assert problems[1].endswith(example["nodes"][2]["results"]["SK-LAUNCH-01"]["remedy"])
    assert problems[3].split(None, 2)[2].startswith("(node): bring wn4 back")
    assert problems[4].endswith("apptainer.conf [SK-APPT-02]: run playbooks/site.yml --limit wn2 --tags apptainer")


def test_terminal_table_stays_readable_with_many_controls_and_nodes():
    """No column per control: the width does not grow with the controls (the lab has 40 and more)."""
    summary = big_site(300, {42})
    summary["controls"][0]["id"] = "SK-CVMFS-PROBE:very-long-repository-name.example.org"
    for node in summary["nodes"]:
        node["results"][summary["controls"][0]["id"]] = node["results"].pop("SK-C-00")
    many = json.loads(json.dumps(summary))
    for i in range(60):
        many["controls"].append({"id": f"SK-X-{i:02d}", "title": f"extra control {i}", "group": "config"})
    for text in (render_table(summary, width=80), render_table(many, width=80)):
        lines = text.splitlines()
        table = lines[3 : lines.index("1 problem(s), with their remedies:") - 1]
        assert len(table) == 1 + 1 + 20 + 1  # head, the failing node, 20 ok nodes, the count of the rest
        assert all(len(line) <= 80 for line in table)
        assert table[1].split()[:2] == ["wn42", "FAIL"]
        assert table[-1] == "... and 279 more ok node(s) (--all-rows lists them)"
    assert len(render_table(summary, all_rows=True).splitlines()) > 300


# --------------------------------------------------------------------------------------------------- CLI


def test_cli_writes_the_page_and_prints_the_table(tmp_path):
    out = tmp_path / "report.html"
    tool = TOP / "tools" / "sitekit_report.py"
    res = subprocess.run(
        [sys.executable, str(tool), str(EXAMPLE), "--html", str(out), "--table"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert out.read_text(encoding="utf-8") == render_html(json.loads(EXAMPLE.read_text()))
    assert res.stdout == render_table(json.loads(EXAMPLE.read_text()))
    assert f"report: {out.resolve().as_uri()}" in res.stderr


def test_cli_refuses_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 7}')
    assert sitekit_report.main([str(bad)]) == 2
    assert "bad.json: version: this renderer reads version 1, got 7" in capsys.readouterr().err
    bad.write_text("{not json")
    assert sitekit_report.main([str(bad), "--table"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert sitekit_report.main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- PNG


def _add_rows(a: bytes, b: bytes) -> bytes:
    """Bytewise (a + b) mod 256 over a whole row at once (carry-free addition on Python ints)."""
    n = len(a)
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    low, high = int.from_bytes(b"\x7f" * n, "big"), int.from_bytes(b"\x80" * n, "big")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "big")


def decode_png(data: bytes):
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA non-interlaced PNG (filter types 0-4)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, ctype, _, _, interlace = header
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: bit depth {depth}, colour type {ctype}, interlace {interlace}")
    bpp = 3 if ctype == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    prev, rows = bytes(stride), []
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], raw[start + 1 : start + 1 + stride]
        if ftype == 0:
            cur = line
        elif ftype == 1:  # Sub: a running sum per channel
            out = bytearray(line)
            for c in range(bpp):
                out[c::bpp] = bytes(accumulate(line[c::bpp], lambda a, b: (a + b) & 255))
            cur = bytes(out)
        elif ftype == 2:  # Up
            cur = _add_rows(line, prev)
        elif ftype in (3, 4):  # Average, Paeth
            out = bytearray(line)
            for i in range(stride):
                a = out[i - bpp] if i >= bpp else 0
                b = prev[i]
                if ftype == 3:
                    out[i] = (out[i] + ((a + b) >> 1)) & 255
                    continue
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = bytes(out)
        else:
            raise ValueError(f"row {y}: unknown PNG filter type {ftype}")
        rows.append(cur)
        prev = cur
    if bpp == 4:
        rows = [bytes(b for i, b in enumerate(row) if i % 4 != 3) for row in rows]
    return width, height, rows


def _encode_png(pixels: list, filters: list, ctype: int = 2) -> bytes:
    """A PNG with the given filter type on each row (for testing the decoder against every filter)."""
    bpp = 3 if ctype == 2 else 4
    height, width = len(pixels), len(pixels[0]) // bpp
    raw, prev = b"", bytes(width * bpp)
    for row, ftype in zip(pixels, filters):
        enc = bytearray(row)
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            pred = [0, a, b, (a + b) >> 1, paeth][ftype]
            enc[i] = (row[i] - pred) & 255
        raw += bytes([ftype]) + bytes(enc)
        prev = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, ctype, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("ctype", [2, 6])
def test_png_decoder_handles_every_filter_type(ctype):
    bpp = 3 if ctype == 2 else 4
    pixels = [bytes((x * 37 + y * 91 + (x * y) % 13) & 255 for x in range(17 * bpp)) for y in range(10)]
    width, height, rows = decode_png(_encode_png(pixels, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0], ctype))
    assert (width, height) == (17, 10)
    assert rows == [bytes(b for i, b in enumerate(row) if i % bpp < 3) for row in pixels]


# --------------------------------------------------------------------------------------------------- Chromium

# Added to a copy of the page for the screenshot run: records where Chromium put each cell (CSS pixels) into a
# JSON script element, which --dump-dom prints. It adds nothing that is drawn, so the layout is the page's own.
PROBE = """<script>
addEventListener("load", () => {
  const box = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const columns = [...document.querySelectorAll("thead th")].map((th) => th.dataset.control || "");
  const rows = [...document.querySelectorAll("tbody tr[data-node]")].map((tr) => {
    let col = 0;
    const cells = [...tr.cells].map((td) => {
      const cell = {col, span: td.colSpan, box: box(td), fix: [...td.querySelectorAll(".fix")].map(box)};
      col += td.colSpan;
      return cell;
    });
    return {node: tr.dataset.node, box: box(tr), cells};
  });
  const painted = {};
  for (const s of Object.keys(%(states)s)) painted[s] = [...document.querySelectorAll(".s-" + s)].map(box);
  const out = document.createElement("script");
  out.type = "application/json";
  out.id = "sitekit-probe";
  out.textContent = JSON.stringify({viewport: [innerWidth, innerHeight], dpr: devicePixelRatio, columns, rows,
                                    painted, verdict: box(document.querySelector(".verdict"))});
  document.head.appendChild(out);
});
</script>
"""


def rgb(hex_colour: str) -> tuple:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


class Screenshot:
    def __init__(self, png: bytes):
        self.width, self.height, self.rows = decode_png(png)

    def pixels(self, box, inset: int = 1) -> Counter:
        """Counter of RGB tuples inside a CSS-pixel box [left, top, right, bottom] (clipped, ``inset`` px in)."""
        x0, y0 = max(int(box[0] + 0.999) + inset, 0), max(int(box[1] + 0.999) + inset, 0)
        x1, y1 = min(int(box[2]) - inset, self.width), min(int(box[3]) - inset, self.height)
        counts = Counter()
        for y in range(y0, y1):
            seg = self.rows[y][3 * x0 : 3 * x1]
            counts.update(zip(seg[0::3], seg[1::3], seg[2::3]))
        return counts

    def all_pixels(self) -> Counter:
        return self.pixels([0, 0, self.width, self.height], inset=0)


def near(counts: Counter, colour: tuple, tol: int = 6) -> int:
    return sum(n for c, n in counts.items() if all(abs(a - b) <= tol for a, b in zip(c, colour)))


def shoot(page: str, workdir: Path):
    """Screenshot ``page`` in headless Chromium; (Screenshot, probe data, seconds). One Chromium run."""
    workdir.mkdir(parents=True, exist_ok=True)
    states = json.dumps({s: 1 for s in COLOURS})
    probe_page = page.replace("</body>", PROBE % {"states": states} + "</body>")
    html_file, png_file = workdir / "report-probe.html", workdir / "shot.png"
    html_file.write_text(probe_page, encoding="utf-8")
    cmd = [
        str(CHROMIUM),
        "--headless=new",
        "--no-sandbox",  # as root
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={workdir / 'profile'}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--screenshot={png_file}",
        "--dump-dom",
        html_file.as_uri(),
    ]
    started = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    assert res.returncode == 0 and png_file.exists(), f"chromium failed ({res.returncode}):\n{res.stderr[-3000:]}"
    found = re.search(r'<script type="application/json" id="sitekit-probe">(.*?)</script>', res.stdout, re.S)
    assert found, f"the probe left no layout data in the dumped DOM:\n{res.stdout[:2000]}"
    return Screenshot(png_file.read_bytes()), json.loads(found.group(1)), seconds


def look(summary: dict, shot: Screenshot, probe: dict) -> list:
    """Everything wrong with the screenshot of ``summary``'s report; empty when it looks right."""
    wrong = []
    colour = {state: rgb(bg) for state, (bg, _) in COLOURS.items()}
    if (shot.width, shot.height) != WINDOW or probe["dpr"] != 1:
        wrong.append(f"screenshot is {shot.width}x{shot.height} at {probe['dpr']}x, expected {WINDOW} at 1x")
    everything = shot.all_pixels()
    total = shot.width * shot.height
    white = near(everything, (255, 255, 255), 3)
    if total - white < 0.05 * total or len(everything) < 50:
        wrong.append(f"the page looks blank: {total - white} non-white pixels, {len(everything)} colours")

    nodes = {n["name"]: n for n in summary["nodes"]}
    rows = {r["node"]: r for r in probe["rows"]}
    if list(rows) != ["wn3", "wn4", "wn2", "wn1"] or any(
        a["box"][1] >= b["box"][1] for a, b in zip(probe["rows"], probe["rows"][1:])
    ):
        drawn = [(r["node"], round(r["box"][1])) for r in probe["rows"]]
        wrong.append(f"rows are not drawn top to bottom as wn3, wn4, wn2, wn1 (fail, unreachable, drift, ok): {drawn}")
    expected_area = Counter()
    for name, row in rows.items():
        node = nodes[name]
        status_state = {"ok": "ok", "drift": "drift", "fail": "fail", "unreachable": "fail"}[node["status"]]
        checks = [("status", status_state, row["cells"][1])]
        for cell in row["cells"][2:]:
            ids = probe["columns"][cell["col"] : cell["col"] + cell["span"]]  # columns 0, 1: node, status
            states = {expected_state(node, cid) for cid in ids}
            checks.append((",".join(ids), states.pop() if len(states) == 1 else "mixed", cell))
        for what, state, cell in checks:
            if state == "mixed":
                wrong.append(f"{name} {what}: one cell spans results that differ")
                continue
            counts = shot.pixels(cell["box"])
            area = sum(counts.values())
            share = near(counts, colour[state]) / max(area, 1)
            expected_area[colour[state]] += area
            if share < 0.5:  # text and a remedy cover some of a cell, never half of it
                top = ", ".join(f"#{r:02x}{g:02x}{b:02x}" for (r, g, b), _ in counts.most_common(2))
                wrong.append(f"{name} {what}: expected {state} {COLOURS[state][0]}, {share:.0%} of it is; has {top}")
            for fix in cell["fix"]:  # the remedy is drawn: text pixels inside its box, inside the cell
                inside = cell["box"][0] <= fix[0] and fix[2] <= cell["box"][2] + 0.5 and fix[3] <= cell["box"][3] + 0.5
                ink = shot.pixels(fix, inset=0)
                drawn = sum(ink.values()) - near(ink, colour[state], 10)
                if not inside or fix[2] - fix[0] < 20 or drawn < 0.05 * max(sum(ink.values()), 1):
                    wrong.append(f"{name} {what}: the remedy is not drawn inside the cell ({fix} in {cell['box']})")
            if state in ("fail", "drift") and what != "status" and not cell["fix"]:
                wrong.append(f"{name} {what}: a {state} cell without a remedy line")
    # Each colour, over the whole screenshot: at least half of the area of the cells that must have it, and
    # nowhere outside the elements that are meant to be painted with it (+ antialiased edges).
    for state in ("ok", "drift", "fail", "unknown"):
        c = colour[state]
        boxes = [b for s, bs in probe["painted"].items() if colour[s] == c for b in bs]
        allowed = sum(max(min(b[2], shot.width) - b[0], 0) * max(min(b[3], shot.height) - b[1], 0) for b in boxes)
        got = near(everything, c)
        if not 0.5 * expected_area[c] <= got <= allowed * 1.02 + 200:
            wrong.append(f"{state} {COLOURS[state][0]}: {got} pixels, expected {expected_area[c] // 2}..{allowed:.0f}")
    if near(shot.pixels(probe["verdict"]), colour["fail" if summary["verdict"] == "fail" else "ok"]) < 100:
        wrong.append("the verdict badge is not painted in the verdict's colour")
    return wrong


def test_the_colours_mean_what_they_say():
    (r, g, b), (ar, ag, ab), (gr, gg, gb) = rgb(COLOURS["fail"][0]), rgb(COLOURS["drift"][0]), rgb(COLOURS["ok"][0])
    assert r >= 180 and r - max(g, b) >= 100, "fail must be red"
    assert ar >= 200 and 120 <= ag <= 220 and ab <= 100 and ar > ag, "drift must be amber"
    assert gg > gr + 20 and gg > gb + 20, "ok must be green"
    for state in ("skip", "unknown", "na"):
        grey = rgb(COLOURS[state][0])
        assert max(grey) - min(grey) <= 16, f"{state} must be grey"
    assert sum(rgb(COLOURS["na"][0])) > sum(rgb(COLOURS["skip"][0])), "not applicable is lighter than skipped"
    main = [rgb(COLOURS[s][0]) for s in ("ok", "drift", "fail", "skip")]
    for i, a in enumerate(main):
        for b_ in main[i + 1 :]:
            assert sum(abs(x - y) for x, y in zip(a, b_)) > 80, "the status colours must be told apart at a glance"


@pytest.fixture(scope="module")
def example_shot(tmp_path_factory):
    summary = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    shot, probe, seconds = shoot(render_html(summary), tmp_path_factory.mktemp("chromium"))
    print(f"chromium screenshot of the example report: {seconds:.2f} s")
    return summary, shot, probe


@needs_chromium
def test_chromium_shows_each_cell_in_the_colour_of_its_result(example_shot):
    summary, shot, probe = example_shot
    assert look(summary, shot, probe) == []


@needs_chromium
def test_chromium_the_broken_node_row_is_red_where_expected(example_shot):
    _, shot, probe = example_shot
    red, green = rgb(COLOURS["fail"][0]), rgb(COLOURS["ok"][0])
    row = next(r for r in probe["rows"] if r["node"] == "wn3")
    by_control = {probe["columns"][cell["col"]]: cell for cell in row["cells"]}
    for cid, want in [("SK-LAUNCH-01", red), ("SK-USERNS-01", red), ("SK-HTC-01", red), ("SK-KERNEL-01", green)]:
        box = by_control[cid]["box"]
        # the cell's top-left corner, just inside its padding: background, never text
        x, y = int(box[0]) + 2, int(box[1]) + 2
        assert tuple(shot.rows[y][3 * x : 3 * x + 3]) == want, (cid, x, y)
    launch = by_control["SK-LAUNCH-01"]
    assert launch["fix"], "the launch cell has a visible remedy line"
    assert near(shot.pixels(launch["fix"][0], inset=0), (255, 255, 255), 60) > 50, "its text is drawn (white on red)"
    assert by_control["SK-LAUNCH-01"]["box"][3] - by_control["SK-LAUNCH-01"]["box"][1] < 400, "cells stay compact"


@needs_chromium
def test_chromium_check_fails_when_the_css_colours_break(example_shot, tmp_path):
    summary, _, _ = example_shot
    fail_bg, ok_bg = COLOURS["fail"][0], COLOURS["ok"][0]
    page = render_html(summary)
    assert f".s-fail{{background:{fail_bg}" in page
    broken = page.replace(f".s-fail{{background:{fail_bg}", f".s-fail{{background:{ok_bg}")
    shot, probe, _ = shoot(broken, tmp_path)
    wrong = look(summary, shot, probe)
    assert any(w.startswith("wn3 SK-LAUNCH-01: expected fail") for w in wrong), wrong
    assert any(w.startswith("fail #") for w in wrong), wrong
