"""A site bind path that does not exist on the node is refused before any change, by the apptainer role and by the
htcondor_apptainer role, naming the variable and the path (Apptainer and HTCondor skip it without a word).

The roles' own validation tasks run on this machine (connection local): stat and assert only, nothing is written.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[3]
PLAY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - name: Validate the role's variables with its own tasks
      ansible.builtin.include_role:
        name: {role}
        tasks_from: validate
"""


def validate(tmp_path, role, extra, check=True):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(role=role))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local"]
    argv += ["--check"] if check else []
    argv += [str(playbook), "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps(extra)]
    env = {"ANSIBLE_CONFIG": str(TOP / "ansible.cfg"), "PATH": "/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1"}
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=TOP, timeout=300)
    return run, re.sub(r"\s+", " ", run.stdout)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store"
    path.mkdir()
    return str(path)


def test_apptainer_refuses_each_missing_source_naming_its_variable(tmp_path, store):
    extra = {
        "apptainer_bind_paths_extra": [f"{store}:/store:ro", f"{store}/missing:/data"],
        "apptainer_bindpath_env": ["/nonexistent-sitekit"],
    }
    run, out = validate(tmp_path, "apptainer", extra)
    assert run.returncode != 0
    assert f'apptainer_bind_paths_extra has "{store}/missing:/data", but {store}/missing does not exist' in out, out
    assert 'apptainer_bindpath_env has "/nonexistent-sitekit", but /nonexistent-sitekit does not exist' in out
    assert f"{store}:/store:ro" not in out.split("FAILED!")[1]
    assert "Fix: create or mount the path on the node" in out


def test_apptainer_takes_every_form_of_a_present_source(tmp_path, store):
    (Path(store) / "link").symlink_to(store)
    binds = [store, f"{store}:/store", f"{store}:/store:ro", f"{store}/link:/l:rw"]
    run, out = validate(tmp_path, "apptainer", {"apptainer_bind_paths_extra": binds})
    assert run.returncode == 0, out[-3000:]


def test_a_dangling_symlink_is_a_missing_source(tmp_path, store):
    (Path(store) / "dangling").symlink_to(Path(store) / "gone")
    run, out = validate(tmp_path, "apptainer", {"apptainer_bind_paths_extra": [f"{store}/dangling"]})
    assert run.returncode != 0 and f"but {store}/dangling does not exist" in out, out[-3000:]


@pytest.mark.skipif(Path("/cvmfs").exists(), reason="this machine has /cvmfs")
def test_check_mode_leaves_paths_below_cvmfs_to_the_real_run(tmp_path):
    extra = {"apptainer_bind_paths_extra": ["/cvmfs/sw.example.org"]}
    run, out = validate(tmp_path, "apptainer", extra, check=True)
    assert run.returncode == 0, out[-3000:]
    run, out = validate(tmp_path, "apptainer", extra, check=False)
    assert run.returncode != 0 and "but /cvmfs/sw.example.org does not exist" in out


def test_htcondor_refuses_a_missing_source_of_the_jobs_binds(tmp_path, store):
    extra = {
        "htcondor_apptainer_bind_paths": [store, f"{store}/missing:/data:ro"],
        "htcondor_apptainer_default_image": "/cvmfs/images.example.org/el9",
        "htcondor_apptainer_apptainer_path": "/bin/true",
        "htcondor_apptainer_source": "distribution",
    }
    run, out = validate(tmp_path, "htcondor_apptainer", extra)
    assert run.returncode != 0
    assert f'htcondor_apptainer_bind_paths has "{store}/missing:/data:ro", but {store}/missing does not exist' in out
    assert "remove it from htcondor_apptainer_bind_paths" in out
    run, out = validate(tmp_path, "htcondor_apptainer", dict(extra, htcondor_apptainer_bind_paths=[store]))
    assert "does not exist on" not in out, out[-3000:]
