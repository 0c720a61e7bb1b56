"""The summary table filters: what an admin reads at the end of every site run."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "filter_plugins"))
from report import sitekit_summary_rows, sitekit_table


def test_table_aligns_columns_and_marks_missing_values():
    lines = sitekit_table([{"node": "wn1", "ready": True}, {"node": "squid10", "ready": False, "extra": None}])
    assert lines == [
        "node     ready  extra",
        "-------  -----  -----",
        "wn1      yes    -",
        "squid10  no     -",
    ]


def test_table_keeps_the_requested_columns_in_order():
    assert sitekit_table([{"a": 1, "b": [1, 2]}], ["b", "a"]) == ["b    a", "---  -", "1,2  1"]


@pytest.mark.parametrize("bad", ["text", [1, 2], None])
def test_table_rejects_rows_that_are_not_dicts(bad):
    with pytest.raises(AnsibleFilterError, match="sitekit_table: expected a list of dicts"):
        sitekit_table(bad)


def test_summary_marks_a_node_without_summary_as_failed():
    hostvars = {
        "wn1": {"__base_summary": {"platform": "debian13"}, "__userns_summary": {"userns": "on"}},
        "wn2": {},
    }
    rows = sitekit_summary_rows(["wn1", "wn2", "gone"], hostvars, ["base", "userns"])
    assert rows[0] == {"node": "wn1", "status": "ok", "platform": "debian13", "userns": "on"}
    assert rows[1]["status"] == rows[2]["status"] == "FAILED or unreachable"


def test_summary_rejects_roles_that_are_not_a_list():
    with pytest.raises(AnsibleFilterError, match="roles must be a list"):
        sitekit_summary_rows(["wn1"], {}, "base")
