"""Every filter shows in `ansible-doc -t filter NAME`, as the README says: each has its documentation file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from conftest import ansible_doc

TOP = Path(__file__).resolve().parents[3]
FILTERS_DIR = TOP / "filter_plugins"


def _filters():
    names = []
    for path in sorted(FILTERS_DIR.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"sitekit_filters_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        names += sorted(module.FilterModule().filters())
    return names


FILTERS = _filters()


@pytest.mark.parametrize("name", FILTERS)
def test_every_filter_has_its_documentation_file(name):
    doc = yaml.safe_load((FILTERS_DIR / f"{name}.yml").read_text())
    assert doc["DOCUMENTATION"]["name"] == name
    assert doc["DOCUMENTATION"]["short_description"] and doc["DOCUMENTATION"]["options"]["_input"]
    assert doc["EXAMPLES"] and doc["RETURN"]["_value"]


def test_ansible_doc_shows_every_filter():
    shown = json.loads(ansible_doc("-t", "filter", "--json", *FILTERS).stdout)
    assert sorted(shown) == sorted(FILTERS)
    assert all(entry["doc"]["short_description"] for entry in shown.values())
