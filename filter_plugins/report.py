"""Filters that turn per-node results into the tables sitekit prints."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def _cell(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value) or "-"
    return str(value)


def sitekit_table(rows, columns=None):
    """Render ``rows`` (a list of dicts) as aligned text lines."""
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, dict) for r in rows):
        raise AnsibleFilterError(f"sitekit_table: expected a list of dicts, got {type(rows).__name__}: {rows!r:.80}")
    if columns is None:
        columns = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
    elif not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
        raise AnsibleFilterError(f"sitekit_table: columns must be a list of strings, got {columns!r:.80}")
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells)
    return lines


def sitekit_summary_rows(hosts, hostvars, roles):
    """One row per host, merging each role's ``__<role>_summary`` fact in the order of ``roles``.

    A host with no summary at all (its roles failed, or it was unreachable) is marked as failed.
    """
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError(f"sitekit_summary_rows: expected a list of host names, got {hosts!r:.80}")
    if not isinstance(roles, (list, tuple)) or not all(isinstance(r, str) for r in roles):
        raise AnsibleFilterError(f"sitekit_summary_rows: roles must be a list of role names, got {roles!r:.80}")
    rows = []
    for host in hosts:
        hv = hostvars.get(host) or {}
        row = {"node": host, "status": "FAILED or unreachable"}
        for role in roles:
            summary = hv.get(f"__{role}_summary")
            if isinstance(summary, dict):
                row["status"] = "ok"
                row.update(summary)
        rows.append(row)
    return rows


class FilterModule:
    """sitekit report filters."""

    def filters(self):
        return {"sitekit_table": sitekit_table, "sitekit_summary_rows": sitekit_summary_rows}
