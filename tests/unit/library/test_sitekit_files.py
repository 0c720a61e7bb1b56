"""sitekit_files on a scratch tree: what check mode reports, what a run writes, and that a second changes nothing."""

import grp
import json
import os
import pwd
import stat

import pytest
import sitekit_files
from conftest import ansible_doc, run_module

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name
CVMFS_CONF = "CVMFS_REPOSITORIES='images.sitekit.lab'\nCVMFS_HTTP_PROXY='http://squid1:3128'\n"


def run(capsys, files, check=False, diff=True):
    args = {"files": [{"owner": ME, "group": MY_GROUP, **f} for f in files]}
    return run_module(capsys, sitekit_files.main, args, check=check, diff=diff)


def site(tmp_path):
    return [
        {"path": str(tmp_path / "cvmfs"), "state": "directory"},
        {"path": str(tmp_path / "cvmfs" / "default.local"), "content": CVMFS_CONF},
        {"path": str(tmp_path / "probe"), "content": "#!/bin/sh\nexit 0\n", "mode": "0755"},
    ]


def test_check_mode_on_a_fresh_node_reports_every_path_and_writes_nothing(capsys, tmp_path):
    code, out = run(capsys, site(tmp_path), check=True)
    assert code == 0
    assert out["changed"] is True
    assert out["changed_paths"] == [f["path"] for f in site(tmp_path)]
    assert not (tmp_path / "cvmfs").exists()
    assert not (tmp_path / "probe").exists()
    added = [d for d in out["diff"] if d.get("after") == CVMFS_CONF]
    assert added and added[0]["before"] == ""


def test_a_run_writes_content_and_mode_then_a_second_changes_nothing(capsys, tmp_path):
    code, out = run(capsys, site(tmp_path))
    assert code == 0 and out["changed"] is True
    assert (tmp_path / "cvmfs" / "default.local").read_text() == CVMFS_CONF
    assert stat.S_IMODE((tmp_path / "probe").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "cvmfs" / "default.local").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "cvmfs").stat().st_mode) == 0o755
    code, out = run(capsys, site(tmp_path))
    assert code == 0
    assert out == {**out, "changed": False, "changed_paths": []}
    assert "diff" not in out
    code, out = run(capsys, site(tmp_path), check=True)
    assert out["changed"] is False


def test_drift_in_content_and_mode_is_reported_as_a_diff_and_repaired(capsys, tmp_path):
    run(capsys, site(tmp_path))
    conf = tmp_path / "cvmfs" / "default.local"
    conf.write_text(CVMFS_CONF + "CVMFS_QUOTA_LIMIT=-1\n")
    (tmp_path / "probe").chmod(0o640)
    _, out = run(capsys, site(tmp_path), check=True)
    assert out["changed_paths"] == [str(conf), str(tmp_path / "probe")]
    text = next(d for d in out["diff"] if d["before_header"] == str(conf))
    assert text["before"].endswith("CVMFS_QUOTA_LIMIT=-1\n") and text["after"] == CVMFS_CONF
    mode = next(d for d in out["diff"] if d["before_header"] == str(tmp_path / "probe"))
    assert mode["before"] == {"mode": "0640"} and mode["after"] == {"mode": "0755"}
    assert conf.read_text().endswith("-1\n")  # check mode wrote nothing
    run(capsys, site(tmp_path))
    assert conf.read_text() == CVMFS_CONF
    assert stat.S_IMODE((tmp_path / "probe").stat().st_mode) == 0o755


def test_absent_removes_a_file_once(capsys, tmp_path):
    old = tmp_path / "apptainer-binds.sh"
    old.write_text("export APPTAINER_BINDPATH=/scratch\n")
    _, out = run(capsys, [{"path": str(old), "state": "absent"}], check=True)
    assert out["changed"] is True and old.exists()
    run(capsys, [{"path": str(old), "state": "absent"}])
    assert not old.exists()
    _, out = run(capsys, [{"path": str(old), "state": "absent"}])
    assert out["changed"] is False


def test_a_validate_failure_keeps_the_old_file_and_names_the_path(capsys, tmp_path):
    conf = tmp_path / "pool.conf"
    conf.write_text("CONDOR_HOST = cm1\n")
    code, out = run(capsys, [{"path": str(conf), "content": "if true\n", "validate": "grep -q ^CONDOR_HOST %s"}])
    assert code == 1
    assert str(conf) in out["msg"] and "fails" in out["msg"]
    assert conf.read_text() == "CONDOR_HOST = cm1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pool.conf"]  # no temporary file left behind
    code, out = run(
        capsys, [{"path": str(conf), "content": "CONDOR_HOST = cm2\n", "validate": "grep -q ^CONDOR_HOST %s"}]
    )
    assert code == 0 and conf.read_text() == "CONDOR_HOST = cm2\n"


def test_a_secret_is_masked_in_the_result_and_the_diff(capsys, tmp_path):
    key = tmp_path / "POOL"
    key.write_text("old-pool-password")
    _, out = run(
        capsys, [{"path": str(key), "content": "new-pool-password", "mode": "0600", "secret": True}], check=True
    )
    assert out["changed"] is True
    text = json.dumps(out)
    assert "new-pool-password" not in text and "old-pool-password" not in text
    assert out["diff"][0]["before"] != out["diff"][0]["after"]  # the drift still shows as a differing line


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"path": "relative/file", "content": "x"}, "absolute path"),
        ({"path": "/tmp/x", "content": "x", "mode": "rw-r--r--"}, "octal"),
        ({"path": "/tmp/x"}, "content is required"),
    ],
)
def test_bad_entries_fail_before_anything_is_written_naming_the_path(capsys, tmp_path, entry, fragment):
    first = tmp_path / "first"
    code, out = run(capsys, [{"path": str(first), "content": "x"}, entry])
    assert code == 1
    assert fragment in out["msg"] and entry["path"] in out["msg"]
    assert not first.exists()  # every entry is checked before the first is applied


def test_a_directory_where_a_file_is_wanted_is_refused(capsys, tmp_path):
    (tmp_path / "default.local").mkdir()
    code, out = run(capsys, [{"path": str(tmp_path / "default.local"), "content": "x"}])
    assert code == 1 and "is a directory" in out["msg"]


def test_contents_do_not_travel_back_in_the_result(capsys, tmp_path):
    _, out = run(capsys, site(tmp_path), diff=False)
    assert out["invocation"] == {"module_args": {"files": [f["path"] for f in site(tmp_path)]}}
    assert CVMFS_CONF not in json.dumps(out)


def test_ansible_doc_shows_the_module_with_check_and_diff_mode():
    doc = json.loads(ansible_doc("--json", "sitekit_files").stdout)["sitekit_files"]["doc"]
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "full"
    assert set(doc["options"]["files"]["suboptions"]) >= {"path", "state", "content", "mode", "validate", "secret"}
