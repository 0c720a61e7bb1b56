"""base_files_to_ship: one find on the node decides which library files a run copies."""

import hashlib
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "filter_plugins"))
from base import base_files_to_ship


@pytest.fixture
def sources(tmp_path):
    paths = []
    for name, text in (("sitekit_a.py", "A = 1\n"), ("sitekit_b.py", "B = 2\n")):
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    return paths


def held(path, **over):
    """A find result for the node copy of the controller file at path, as find reports an exact copy."""
    entry = {
        "path": f"/usr/local/lib/sitekit/{Path(path).name}",
        "checksum": hashlib.sha1(Path(path).read_bytes()).hexdigest(),
        "mode": "0644",
        "pw_name": "root",
    }
    entry.update(over)
    return entry


def test_nothing_to_ship_when_every_copy_matches(sources):
    assert base_files_to_ship(sources, [held(p) for p in sources]) == []


def test_every_file_ships_to_an_empty_directory(sources):
    assert base_files_to_ship(sources, []) == sources


@pytest.mark.parametrize(
    "change", [{"checksum": "0" * 40}, {"mode": "0664"}, {"pw_name": "nobody"}], ids=["content", "mode", "owner"]
)
def test_a_copy_that_differs_ships_again(sources, change):
    assert base_files_to_ship(sources, [held(sources[0], **change), held(sources[1])]) == [sources[0]]


def test_a_file_edited_on_the_controller_ships(sources):
    found = [held(p) for p in sources]
    Path(sources[1]).write_text("B = 3\n")
    assert base_files_to_ship(sources, found) == [sources[1]]


def test_bad_input_names_the_filter_and_what_it_wants(sources):
    with pytest.raises(AnsibleFilterError, match=r"expected the files list of ansible\.builtin\.find"):
        base_files_to_ship(sources, {"files": []})
    with pytest.raises(AnsibleFilterError, match=r"cannot read /nonexistent/sitekit_x\.py"):
        base_files_to_ship(["/nonexistent/sitekit_x.py"], [])
