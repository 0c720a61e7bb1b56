"""sitekit_paths on a scratch tree: what each path is, links followed, in the order given."""

import json

import sitekit_paths
from conftest import ansible_doc, run_module


def run(capsys, paths):
    return run_module(capsys, sitekit_paths.main, {"paths": paths}, check=True)


def test_each_path_is_described_following_links(capsys, tmp_path):
    (tmp_path / "cvmfs").mkdir()
    tool = tmp_path / "classad_eval"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (tmp_path / "apptainer").symlink_to(tool)
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    conf = tmp_path / "condor_config_val"
    conf.write_text("not executable\n")
    names = ["cvmfs", "classad_eval", "apptainer", "dangling", "condor_config_val", "missing"]
    code, out = run(capsys, [str(tmp_path / n) for n in names])
    assert code == 0 and out["changed"] is False
    got = {p.rsplit("/", 1)[1]: v for p, v in out["paths"].items()}
    assert list(got) == names  # the order given
    assert got["cvmfs"] == {"exists": True, "isdir": True, "isreg": False, "executable": True}
    assert got["classad_eval"] == {"exists": True, "isdir": False, "isreg": True, "executable": True}
    assert got["apptainer"] == got["classad_eval"]  # a link to an executable is one
    assert got["dangling"]["exists"] is False  # Apptainer cannot bind it either
    assert got["condor_config_val"]["isreg"] is True and got["condor_config_val"]["executable"] is False
    assert got["missing"] == {"exists": False, "isdir": False, "isreg": False, "executable": False}


def test_a_relative_path_is_refused_naming_it(capsys):
    code, out = run(capsys, ["/usr/bin", "scratch/pilot"])
    assert code == 1
    assert "scratch/pilot" in out["msg"] and "absolute" in out["msg"]


def test_ansible_doc_shows_a_read_only_module():
    doc = json.loads(ansible_doc("--json", "sitekit_paths").stdout)["sitekit_paths"]["doc"]
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "none"


def test_files_are_read_and_patterns_matched_in_the_same_run(capsys, tmp_path):
    conf = tmp_path / "90-sitekit-userns.conf"
    conf.write_text("user.max_user_namespaces = 15000\n")
    for unit in ("cron.service.d", "ssh.service.d", "other.service.d"):
        (tmp_path / unit).mkdir()
    for unit in ("ssh.service.d", "cron.service.d"):
        (tmp_path / unit / "90-sitekit.conf").write_text("[Service]\n")
    pattern = str(tmp_path / "*" / "90-sitekit.conf")
    code, out = run_module(
        capsys,
        sitekit_paths.main,
        {"read": [str(conf), str(tmp_path / "absent.conf")], "globs": [pattern, str(tmp_path / "none-*")]},
        check=True,
    )
    assert code == 0 and out["changed"] is False and out["paths"] == {}
    assert out["contents"] == {str(conf): "user.max_user_namespaces = 15000\n", str(tmp_path / "absent.conf"): None}
    assert out["matches"] == {
        pattern: [
            str(tmp_path / "cron.service.d" / "90-sitekit.conf"),
            str(tmp_path / "ssh.service.d" / "90-sitekit.conf"),
        ],
        str(tmp_path / "none-*"): [],
    }


def test_a_file_that_cannot_be_read_fails_naming_it(capsys, tmp_path):
    code, out = run_module(capsys, sitekit_paths.main, {"read": [str(tmp_path)]}, check=True)
    assert code == 1 and f"cannot read {tmp_path}" in out["msg"]
    code, out = run_module(capsys, sitekit_paths.main, {"globs": ["etc/*"]}, check=True)
    assert code == 1 and "globs must be absolute" in out["msg"]
