"""One node, one launch verdict: validate.yml, the compliance gate and the startd cron job's self-check agree.

The recorded launch debian12-pilot (tests/unit/data/launch/) worked, but host PATH/LD_LIBRARY_PATH entries a pilot
forwarded are missing in the image: a host-path warning. Each caller judges it through sitekit_launch with the one
default host_path_policy and must give the same verdict; with host_path_policy=fail all of them refuse the node.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jinja2
import pytest
import sitekit_launch as sl
import sitekit_selfcheck as sc
import yaml

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "tools"))
import compliance  # noqa: E402 (tools/ is not a package)

RECORD = json.loads((TOP / "tests" / "unit" / "data" / "launch" / "debian12-pilot.json").read_text())


def judged(policy):
    """``container_launch``'s result for the record, as ``sitekit_launch.launch`` judges it under ``policy``."""
    inputs = RECORD["inputs"]
    run = {k: RECORD[k] for k in ("rc", "stdout", "stderr", "seconds", "timed_out", "leftover")}
    result = sl.empty_result(inputs["image"], inputs["user"], bool(inputs["command"]))
    result["command"] = RECORD["argv"]
    problem = sl.judge(
        result,
        run,
        sl.parse_probe_output(RECORD["stdout"], RECORD["token"]),
        marker=RECORD["token"],
        scratch=RECORD["scratch"],
        timeout=inputs["timeout"],
        bind_targets=[sl.parse_bind(b)[1] for b in inputs["binds"]],
        host_paths={var: sl.split_path_list(inputs["host_env"].get(var, "")) for var in sl.HOST_PATH_VARS},
        host_processes=RECORD["host_processes"],
        command_given=bool(inputs["command"]),
        **({"host_path_policy": policy} if policy else {}),
    )
    return result, problem


def validate_playbook_verdict(result):
    """What playbooks/validate.yml (the readiness role's launch check) records as the node's readiness."""
    play = yaml.safe_load((TOP / "playbooks" / "validate.yml").read_text())[0]
    assert [t["ansible.builtin.include_role"] for t in play["tasks"]] == [{"name": "readiness", "tasks_from": "launch"}]
    tasks = yaml.safe_load((TOP / "roles" / "readiness" / "tasks" / "launch.yml").read_text())
    record = next(t for t in tasks if "__readiness_launch_summary" in t.get("ansible.builtin.set_fact", {}))
    expression = record["ansible.builtin.set_fact"]["__readiness_launch_summary"]["ready"]
    text = jinja2.Template(expression).render(__readiness_launch_kernel={"ready": True}, __readiness_launch=result)
    return text == "True"


def compliance_verdict(result):
    task = {"task": {"name": "Launch [SK-LAUNCH-01]"}, "hosts": {"wn1": {"action": "container_launch", **result}}}
    return compliance.collect({"plays": [{"tasks": [task]}]})["wn1"]["SK-LAUNCH-01"]["status"] == "ok"


def selfcheck_verdict(result, problem):
    return sc.judge_launch(result, problem)["ok"]


def test_the_record_has_a_host_path_warning_and_nothing_else():
    result, problem = judged(None)
    assert problem is None
    assert [name for name, check in result["checks"].items() if not check["ok"]] == ["host_paths"]
    assert sl.HOST_PATH_POLICY == "warn"


@pytest.mark.parametrize(("policy", "ready"), [(None, True), ("warn", True), ("fail", False)])
def test_every_caller_gives_the_same_verdict(policy, ready):
    result, problem = judged(policy)
    assert result["ready"] is ready
    verdicts = {
        "validate.yml": validate_playbook_verdict(result),
        "compliance gate": compliance_verdict(result),
        "self-check": selfcheck_verdict(result, problem),
    }
    assert verdicts == dict.fromkeys(verdicts, ready)


def test_the_default_policy_is_the_same_everywhere():
    import container_launch
    import node_selfcheck

    launch_doc = yaml.safe_load(container_launch.DOCUMENTATION)
    selfcheck_doc = yaml.safe_load(node_selfcheck.DOCUMENTATION)
    assert launch_doc["options"]["host_path_policy"]["default"] == sl.HOST_PATH_POLICY
    assert selfcheck_doc["options"]["host_path_policy"]["default"] == sl.HOST_PATH_POLICY
    assert sc.DEFAULTS["host_path_policy"] == sl.HOST_PATH_POLICY
