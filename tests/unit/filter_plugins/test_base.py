"""base_library_files: the node library's files as sitekit_files entries, in one module run with the directory."""

import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "filter_plugins"))
from base import FilterModule, base_library_files

TOP = Path(__file__).resolve().parents[3]


@pytest.fixture
def sources(tmp_path):
    paths = []
    for name, text in (("sitekit_a.py", "A = 1\n"), ("sitekit_b.py", "B = 'é'\n\n")):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


def test_each_file_becomes_an_entry_in_the_directory_with_its_exact_text(sources):
    assert base_library_files(sources, "/usr/local/lib/sitekit/") == [
        {"path": "/usr/local/lib/sitekit/sitekit_a.py", "content": "A = 1\n", "mode": "0644"},
        # The text as it is, trailing blank line and all (a lookup would strip it).
        {"path": "/usr/local/lib/sitekit/sitekit_b.py", "content": "B = 'é'\n\n", "mode": "0644"},
    ]
    assert base_library_files(sources[:1], "/opt/lib", "0600")[0]["mode"] == "0600"


def test_the_library_the_roles_ship_is_every_sitekit_module_util():
    shipped = base_library_files(sorted(str(p) for p in (TOP / "module_utils").glob("sitekit_*.py")), "/x")
    assert {e["path"] for e in shipped} >= {"/x/sitekit_kernel.py", "/x/sitekit_cvmfs.py", "/x/sitekit_selfcheck.py"}


@pytest.mark.parametrize(
    ("sources", "directory", "message"),
    [
        ("sitekit_a.py", "/x", "expected a list of controller paths"),
        (["/nonexistent/sitekit_x.py"], "/x", "cannot read /nonexistent/sitekit_x.py"),
        ([], "usr/local/lib", "must be an absolute path, got 'usr/local/lib'"),
    ],
)
def test_bad_input_is_refused_with_the_reason(sources, directory, message):
    with pytest.raises(AnsibleFilterError, match=message):
        base_library_files(sources, directory)


def test_the_filter_is_registered_and_documented():
    assert set(FilterModule().filters()) == {"base_library_files"}
    doc = yaml.safe_load((TOP / "filter_plugins" / "base_library_files.yml").read_text(encoding="utf-8"))
    assert doc["DOCUMENTATION"]["name"] == "base_library_files"
    assert set(doc["DOCUMENTATION"]["options"]) == {"_input", "directory", "mode"}
