"""node_selfcheck: main() as Ansible runs it; the checks themselves are tested in test_sitekit_selfcheck.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import node_selfcheck
import pytest
import sitekit_selfcheck as sc
from ansible.module_utils.testing import patch_module_args
from conftest import REPO

KEYS = {
    "ready",
    "reason",
    "failed_check",
    "kernel_verdict",
    "platform",
    "launch_seconds",
    "image",
    "checked_at",
    "seconds",
    "checks",
    "classad",
    "changed",
}


def run_main(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        node_selfcheck.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def fake_run(monkeypatch):
    """Replace the checks with a result whose readiness the test picks; record the settings they were given."""
    seen = {}

    def install(ready):
        def run(config):
            seen.update(config)
            launch = sc._step(
                "launch",
                ready,
                "launched" if ready else "failed",
                None if ready else "it broke",
                None if ready else "fix it",
                seconds=0.1,
                checks={},
                image=config["image"],
            )
            kernel = sc._step("kernel", True, "fine", mode="unprivileged", platform="debian13")
            return sc.summarize(kernel, sc._step("cvmfs", True, "fine"), launch, 5, 0.2)

        monkeypatch.setattr(node_selfcheck.selfcheck, "run", run)
        return seen

    return install


def test_a_ready_node(capsys, fake_run):
    seen = fake_run(True)
    code, result = run_main(capsys, {"image": "/cvmfs/i", "repositories": ["a.example.org"], "binds": ["/cvmfs"]})
    assert code == 0 and set(result) >= KEYS and result["changed"] is False
    assert result["ready"] and result["classad"].startswith("SitekitReady = true\n")
    assert seen["repositories"] == ["a.example.org"] and seen["user"] == "sitekit-probe" and seen["apptainer"] is None


def test_not_ready_is_reported_unless_asked_to_fail(capsys, fake_run):
    fake_run(False)
    code, result = run_main(capsys, {"image": "/cvmfs/i"})
    assert code == 0 and not result["ready"] and result["reason"] == "launch: it broke. Remedy: fix it"
    code, result = run_main(capsys, {"image": "/cvmfs/i", "fail_on_error": True})
    assert code == 1 and result["msg"] == "node_selfcheck: the node is not ready: launch: it broke. Remedy: fix it"


def test_check_mode_runs_the_same_checks(capsys, fake_run):
    fake_run(True)
    _, normal = run_main(capsys, {"image": "/cvmfs/i"})
    _, checked = run_main(capsys, {"image": "/cvmfs/i", "_ansible_check_mode": True})
    assert checked["changed"] is False and checked["ready"] == normal["ready"]


def test_diff_mode_has_nothing_to_show(capsys, fake_run):
    fake_run(True)
    _, result = run_main(capsys, {"image": "/cvmfs/i", "_ansible_diff": True})
    assert "diff" not in result


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"image": "/i", "timeout": 0}, "node_selfcheck: timeout: give a positive number of seconds"),
        ({"image": "/i", "repositories": ["x"]}, "is not a fully qualified repository name"),
        ({"image": "/i", "binds": ["a:b"]}, "is not an absolute path"),
        ({"image": ""}, "node_selfcheck: image: give the site image"),
    ],
)
def test_bad_arguments_fail_naming_them(capsys, args, message):
    code, result = run_main(capsys, args)
    assert code == 1 and message in result["msg"]


def test_runs_standalone_with_an_args_file(tmp_path):
    """Without Apptainer on this machine the launch fails with its remedy; the module still answers (real checks)."""
    (tmp_path / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"image": str(tmp_path), "timeout": 5}}))
    run = subprocess.run(
        [sys.executable, str(REPO / "library" / "node_selfcheck.py"), str(tmp_path / "args.json")],
        env={**os.environ, "PYTHONPATH": str(REPO / "module_utils")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    result = json.loads(run.stdout)
    assert set(result) >= KEYS
    assert result["checks"]["cvmfs"]["ok"] and result["checks"]["kernel"]["platform"]
