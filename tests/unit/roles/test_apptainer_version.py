"""The apptainer role's own version check [SK-APPT-05], run on this machine (connection local) with its locate tasks
against a stand-in binary that prints a recorded ``apptainer --version`` line: read-only tasks (stat, the version
command, assert)."""

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
    - name: Locate and judge the Apptainer with the role's own tasks
      ansible.builtin.include_role:
        name: apptainer
        tasks_from: locate
"""


def locate(tmp_path, printed, extra=None, check=False):
    binary = tmp_path / "apptainer"
    binary.write_text(f"#!/bin/sh\necho '{printed}'\n")
    binary.chmod(0o755)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    argv += ["--check"] if check else []
    argv += ["-e", f"ansible_python_interpreter={sys.executable}"]
    argv += ["-e", json.dumps({"apptainer_path": str(binary), "apptainer_source": "none", **(extra or {})})]
    env = {"ANSIBLE_CONFIG": str(TOP / "ansible.cfg"), "PATH": "/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1"}
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=TOP, timeout=300)
    return run, re.sub(r"\s+", " ", run.stdout).replace("''", "'"), str(binary)


def test_an_apptainer_below_the_minimum_fails_the_node_with_the_advisory_and_the_upgrade(tmp_path):
    run, out, binary = locate(tmp_path, "apptainer version 1.4.4-1")
    assert run.returncode != 0
    assert "[SK-APPT-05]" in out
    assert (
        "apptainer: Apptainer 1.4.4-1 has a published hole: 1.4.5 fixed GHSA-j3rw-fx6g-q46j (CVE-2025-65105) "
        f"({binary} on localhost). Fix: upgrade Apptainer to 1.4.5 or newer:" in out
    ), out[-3000:]


@pytest.mark.parametrize(
    ("printed", "extra"),
    [
        ("apptainer version 1.4.5-2", {}),
        ("apptainer version 1.5.2-1.el9", {}),
        ("apptainer version 1.3.6-1.el9", {"apptainer_minimum_version": ""}),
        ("apptainer version 1.3.6-1.el9", {"apptainer_minimum_version": "1.3.6"}),
    ],
)
def test_the_minimum_or_newer_passes(tmp_path, printed, extra):
    run, out, _ = locate(tmp_path, printed, extra)
    assert run.returncode == 0, out[-3000:]


def test_check_mode_leaves_the_verdict_to_the_launch_check(tmp_path):
    run, out, _ = locate(tmp_path, "apptainer version 1.4.4-1", check=True)
    assert run.returncode == 0, out[-3000:]
    assert re.search(r"TASK \[apptainer : Locate \| Fail where the Apptainer is older .*?\] \**\s*skipping", out)
