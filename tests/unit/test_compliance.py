"""tools/compliance.py on a recorded run: the lab with squid1 drifted (a line added to squid.conf) and wn2 broken
(its CVMFS repository unmountable), recorded with `./run compliance` (ansible.posix.json callback output) on
2026-11-22. Also: every task of every role carries a known control id."""

import gzip
import json
import re
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "tools"))
import compliance  # noqa: E402 (tools/ is not a package)

DATA = TOP / "tests" / "unit" / "data" / "compliance"
RECORDED = json.loads(gzip.decompress((DATA / "lab-drifted-and-broken.json.gz").read_bytes()))
GROUPS = {"squids": ["squid1"], "worker_nodes": ["wn1", "wn2"]}


@pytest.fixture(scope="module")
def summary():
    nodes = compliance.collect(RECORDED)
    return compliance.summarise(nodes, RECORDED["stats"], "lab", "recorded", GROUPS)


def failing(summary):
    return {
        (n["name"], cid): r
        for n in summary["nodes"]
        for cid, r in n["results"].items()
        if r["status"] in ("drift", "fail")
    }


def test_exactly_the_drifted_and_the_broken_node_are_named(summary):
    assert set(failing(summary)) == {
        ("squid1", "SK-SQUID-02"),
        ("wn2", "SK-LAUNCH-01"),
        ("wn2", "SK-CVMFS-05:images.sitekit.lab"),
    }
    assert {n["name"]: n["status"] for n in summary["nodes"]} == {"squid1": "drift", "wn1": "ok", "wn2": "fail"}
    assert summary["verdict"] == "fail"
    assert summary["totals"] == {"nodes": 3, "ok": 1, "drift": 1, "fail": 1, "unreachable": 0}


def test_drift_carries_the_diff_and_the_remedy(summary):
    drift = failing(summary)[("squid1", "SK-SQUID-02")]
    assert "-client_db off" in drift["detail"] and "/etc/squid/squid.conf" in drift["detail"]
    assert drift["remedy"] == "run playbooks/site.yml --limit squid1 --tags squid"


def test_readiness_cells_carry_the_modules_cause_and_remedy(summary):
    launch = failing(summary)[("wn2", "SK-LAUNCH-01")]
    assert "does not exist" in launch["detail"] and launch["remedy"].startswith("point image at")
    repo = failing(summary)[("wn2", "SK-CVMFS-05:images.sitekit.lab")]
    assert repo["value"] == "ENOENT" and "cvmfs_config probe images.sitekit.lab" in repo["remedy"]
    wn1 = next(n for n in summary["nodes"] if n["name"] == "wn1")["results"]
    assert wn1["SK-KERNEL-01"]["value"] == "unprivileged" and wn1["SK-USERNS-10"]["value"] == "on"
    assert re.fullmatch(r"\d\.\d\d s", wn1["SK-LAUNCH-01"]["value"])
    assert wn1["SK-PROXY-01"]["status"] == "ok"


def test_columns_are_known_controls_readiness_first(summary):
    ids = [c["id"] for c in summary["controls"]]
    assert "SK-CVMFS-05" not in ids  # only per repository
    assert ids[:3] == ["SK-KERNEL-01", "SK-USERNS-10", "SK-LAUNCH-01"]
    assert all(i.partition(":")[0] in compliance.CONTROLS for i in ids)


def test_junit_has_one_case_per_node_and_control_and_fails_exactly_those(summary):
    suite = compliance.junit(summary).getroot().find("testsuite")
    cases = list(suite.iter("testcase"))
    assert len({(c.get("classname"), c.get("name")) for c in cases}) == len(cases) == int(suite.get("tests"))
    failed = {(c.get("classname"), c.get("name").split()[0]) for c in cases if c.find("failure") is not None}
    assert failed == set(failing(summary)) and suite.get("failures") == "3"


def test_the_command_exits_1_and_writes_its_files(tmp_path):
    raw = tmp_path / "ansible.json"
    raw.write_text(json.dumps(RECORDED))
    code = compliance.main(["--from-json", str(raw), "--out", str(tmp_path / "out")])
    assert code == 1
    ET.parse(tmp_path / "out" / "junit.xml")
    assert json.loads((tmp_path / "out" / "compliance.json").read_text())["verdict"] == "fail"
    assert "wn2" in (tmp_path / "out" / "report.html").read_text()


def test_a_clean_run_passes():
    clean = json.loads(json.dumps(RECORDED))
    for play in clean["plays"]:
        for task in play["tasks"]:
            for res in task["hosts"].values():
                for item in res.get("results", [res]) if isinstance(res.get("results"), list) else [res]:
                    item.pop("changed", None)
                    if "readable" in json.dumps(item) and "repositories" in item:
                        for repo in item["repositories"]:
                            repo["readable"] = True
                    if "launch_seconds" in item:
                        item["ready"] = True
    summary = compliance.summarise(compliance.collect(clean), {}, "lab", "edited", GROUPS)
    assert summary["verdict"] == "pass", failing(summary)


def _tasks(path):
    for task in yaml.safe_load(path.read_text()) or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from (t for t in task.get(key, []))


ROLE_TASKS = sorted(p for p in (TOP / "roles").glob("*/tasks/*.yml"))


@pytest.mark.parametrize("path", ROLE_TASKS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_role_task_carries_a_known_control_id(path):
    for task in _tasks(path):
        name = task.get("name", "")
        match = compliance.CONTROL_ID.search(name) or re.search(r"\[\{\{ base_install_control \}\}\]", name)
        assert match, f"{path.relative_to(TOP)}: task without a control id: {name!r}"
        if compliance.CONTROL_ID.search(name):
            assert match.group(1) in compliance.CONTROLS, f"{name!r}: unknown control {match.group(1)}"


# --- the running CVMFS client against its configuration (SK-CVMFS-06) and its open files (SK-CVMFS-07) ---


def _real_probe(node, nfiles=None):
    """cvmfs_probe's result on the real 2.12.0 client of ``node``, judged by today's module_utils."""
    sys.path.insert(0, str(TOP / "module_utils"))
    import sitekit_cvmfs as cv

    real = DATA.parent / "cvmfs" / "real-2.12.0"
    recorded = json.loads((real / f"probe-{node}.json").read_text())["repositories"][0]
    params = cv.parse_parameters(next(real.glob(f"showconfig-{node}-*.txt")).read_text())
    state = {"mounted": True, "autofs": False, "filesystem": "cvmfs2"}
    access = {"step": None, "xattrs": recorded["xattrs"], "file": recorded["file"], "seconds": recorded["seconds"]}
    repo = cv.repository_result(recorded["name"], "/cvmfs", state, state, access, params)
    facts = cv.nofile_facts(yaml.safe_load((real / "proc-wn2.yml").read_text())["files"])
    limit = cv.judge_nfiles(nfiles or int(params["CVMFS_NFILES"]), facts)
    # The JSON callback records the module that produced each result (the tool dispatches on it).
    result = {"changed": False, "ok": repo["ok"] and limit["ok"], "repositories": [repo], "nfiles": limit}
    return dict(result, action="cvmfs_probe")


def test_the_running_client_is_compared_with_its_files():
    task = {"task": {"name": "Report | Probe every repository [SK-CVMFS-05]"}}
    task["hosts"] = {"wn1": _real_probe("wn1"), "wn2": _real_probe("wn2", nfiles=131072)}
    data = {"plays": [{"tasks": [task]}], "stats": {"wn1": {}, "wn2": {}}}
    summary = compliance.summarise(compliance.collect(data), data["stats"], "lab", "recorded", GROUPS)
    nodes = {n["name"]: n["results"] for n in summary["nodes"]}
    wn1, wn2 = nodes["wn1"], nodes["wn2"]
    assert wn1["SK-CVMFS-05:software.sitekit.lab"]["status"] == wn2["SK-CVMFS-05:software.sitekit.lab"]["status"]
    assert wn1["SK-CVMFS-06:software.sitekit.lab"] == {
        "status": "ok",
        "value": "proxy http://10.89.77.10:3128",
        "detail": "proxy: uses http://10.89.77.10:3128; host: uses http://stratum1.sitekit.lab/cvmfs/"
        "software.sitekit.lab; revision: revision 2, valid 2 more min",
        "remedy": "",
    }
    direct = wn2["SK-CVMFS-06:software.sitekit.lab"]
    assert (direct["status"], direct["value"]) == ("fail", "proxy")
    assert "CVMFS_PAC_URLS is not set" in direct["detail"] and "proxy: uses DIRECT" in direct["detail"]
    assert "cvmfs_pac_urls" in direct["remedy"]
    assert wn1["SK-CVMFS-07"]["status"] == "ok" and wn1["SK-CVMFS-07"]["value"] == "16384 / 20000"
    assert wn2["SK-CVMFS-07"]["status"] == "fail" and "e.g. 16384" in wn2["SK-CVMFS-07"]["remedy"]
    assert {n["name"]: n["status"] for n in summary["nodes"]} == {"wn1": "ok", "wn2": "fail"}
    titles = {c["id"]: c["title"] for c in summary["controls"]}
    assert titles["SK-CVMFS-06:software.sitekit.lab"] == "CVMFS client as configured software.sitekit.lab"


def test_a_client_running_an_older_configuration_is_drift():
    probe = _real_probe("wn1")
    repo = probe["repositories"][0]
    host = next(c for c in repo["client"]["checks"] if c["name"] == "host")
    host.update(status="drift", detail="uses http://old/cvmfs/x, not one of CVMFS_SERVER_URL")
    repo["client"].update(status="drift", cause="it runs an older configuration", remedy="run `cvmfs_config reload`")
    task = {"task": {"name": "Report | Probe every repository [SK-CVMFS-05]"}, "hosts": {"wn1": probe}}
    nodes = compliance.collect({"plays": [{"tasks": [task]}]})
    cell = nodes["wn1"]["SK-CVMFS-06:software.sitekit.lab"]
    assert (cell["status"], cell["value"], cell["remedy"]) == ("drift", "host", "run `cvmfs_config reload`")


def _recorded_cache(name):
    """cvmfs_probe's cache verdict for a recorded cache case (tests/unit/data/cvmfs/cache-*.yml)."""
    sys.path.insert(0, str(TOP / "module_utils"))
    import sitekit_cvmfs as cv

    spec = yaml.safe_load((DATA.parent / "cvmfs" / name).read_text())
    params = cv.parse_parameters(spec["files"]["etc/cvmfs/default.local"])
    settings = cv.cache_settings(params)
    entry = cv.cache_mount(cv.parse_mountinfo(spec["files"]["proc/self/mountinfo"]), settings["base"])
    numbers = next(iter(spec["statvfs"].values()))
    sizes = {
        k: numbers[b] * numbers["frsize"] // cv.MIB for k, b in (("size_mb", "blocks"), ("available_mb", "bavail"))
    }
    return cv.judge_cache(settings, entry, sizes)


def test_the_cache_control_names_the_filesystem_the_sizes_and_the_fix():
    task = {"task": {"name": "Validate | Judge the cache filesystem against cvmfs_quota_limit [SK-CVMFS-08]"}}
    small, lab, tmpfs = (
        _recorded_cache(n) for n in ("cache-too-small.yml", "cache-lab-wn2-overlay.yml", "cache-tmpfs.yml")
    )
    result = {"changed": False, "repositories": [], "nfiles": None, "action": "cvmfs_probe"}
    task["hosts"] = {name: dict(result, cache=c) for name, c in (("wn1", lab), ("wn2", small), ("wn3", tmpfs))}
    nodes = compliance.collect({"plays": [{"tasks": [task]}]})
    assert nodes["wn1"]["SK-CVMFS-08"] == {"status": "ok", "value": "overlay 258019 MB / 25024 MB",
                                          "detail": lab["detail"], "remedy": ""}  # fmt: skip
    cell = nodes["wn2"]["SK-CVMFS-08"]
    assert (cell["status"], cell["value"]) == ("fail", "ext4 10240 MB / 25024 MB")
    assert "CVMFS_QUOTA_LIMIT=20000 MB" in cell["detail"] and "at most 7600 MB" in cell["remedy"]
    assert (
        nodes["wn3"]["SK-CVMFS-08"]["status"] == "fail" and "memory filesystem" in nodes["wn3"]["SK-CVMFS-08"]["detail"]
    )
    assert compliance.CONTROLS["SK-CVMFS-08"] == ("CVMFS cache", "readiness")


PLAYBOOKS = sorted((TOP / "playbooks").glob("*.yml"))


@pytest.mark.parametrize("path", PLAYBOOKS, ids=lambda p: p.name)
def test_every_control_id_in_a_playbook_has_a_title(path):
    for play in yaml.safe_load(path.read_text()) or []:
        for task in play.get("tasks", []):
            match = compliance.CONTROL_ID.search(task.get("name", ""))
            if match:
                assert match.group(1) in compliance.CONTROLS, f"{path.name}: {task['name']!r}: no title"


def test_each_control_is_declared_once_next_to_its_role():
    seen = {}
    for role in compliance.ROLE_ORDER:
        for control in yaml.safe_load((TOP / "roles" / role / "meta" / "controls.yml").read_text()):
            assert control["id"] not in seen, f"{control['id']} in {role} and {seen.get(control['id'])}"
            assert set(control) <= {"id", "title", "readiness"} and control["title"], control
            seen[control["id"]] = role
    assert set(seen) == set(compliance.CONTROLS) == set(compliance.CONTROL_ROLE)
    assert sorted(p.parent.parent.name for p in (TOP / "roles").glob("*/meta/controls.yml")) == sorted(
        compliance.ROLE_ORDER
    )


def test_readiness_is_read_by_the_recorded_action_not_by_the_keys():
    """A set_fact that records a launch's keys is bookkeeping; the container_launch result is the verdict."""
    launch = {"ready": False, "launch_seconds": None, "checks": {}, "image": "/i", "cause": "c", "remedy": "r"}

    def run(action):
        task = {"task": {"name": "Launch [SK-LAUNCH-01]"}, "hosts": {"wn1": {"action": action, **launch}}}
        return compliance.collect({"plays": [{"tasks": [task]}]})["wn1"]

    assert run("container_launch")["SK-LAUNCH-01"]["status"] == "fail"
    assert run("sitekit.grid.container_launch")["SK-LAUNCH-01"]["remedy"] == "r"
    assert "SK-LAUNCH-01" not in run("ansible.builtin.set_fact")


def test_an_apptainer_below_the_minimum_fails_its_own_control_with_the_advisory_and_the_upgrade():
    """container_launch's version check fills SK-APPT-05 (and the launch's own verdict is not ready)."""
    sys.path.insert(0, str(TOP / "module_utils"))
    import sitekit_launch

    result = sitekit_launch.empty_result("/i", "sitekit-probe")
    result["checks"] = {name: {"ok": True, "detail": "ok"} for name in result["checks"]}
    result.update(ready=True, launch_seconds=0.12, apptainer={"path": "/usr/bin/apptainer", "version": "1.4.4-1"})
    check = sitekit_launch.version_check("apptainer version 1.4.4-1", "1.4.5", family="Debian")
    sitekit_launch.add_version_check(result, check)
    task = {"task": {"name": "Launch [SK-LAUNCH-01]"}, "hosts": {"wn1": {"action": "container_launch", **result}}}
    cells = compliance.collect({"plays": [{"tasks": [task]}]})["wn1"]
    cell = cells["SK-APPT-05"]
    assert (cell["status"], cell["value"]) == ("fail", "1.4.4-1")
    assert "GHSA-j3rw-fx6g-q46j (CVE-2025-65105)" in cell["detail"]
    assert cell["remedy"].startswith("upgrade Apptainer to 1.4.5 or newer: apt-get update && apt-get install")
    assert cells["SK-LAUNCH-01"]["status"] == "fail" and "version: Apptainer 1.4.4-1" in cells["SK-LAUNCH-01"]["detail"]
    result["checks"]["version"] = sitekit_launch.version_check("apptainer version 1.4.5", "1.4.5")
    result.update(ready=True, cause=None, remedy=None)
    task["hosts"]["wn1"] = {"action": "container_launch", **result}
    cells = compliance.collect({"plays": [{"tasks": [task]}]})["wn1"]
    assert cells["SK-APPT-05"]["status"] == "ok" and cells["SK-LAUNCH-01"]["status"] == "ok"


def test_vobox_check_fills_one_control_per_service_and_check():
    """vobox_check's result becomes SK-VOBOX-10..13:<service>: here vobox-web held back by the CVMFS probe (no
    container) and vobox-agent running with a resolver edited inside its container."""
    sys.path.insert(0, str(TOP / "module_utils"))
    import sitekit_vobox

    image, image_id = "localhost/sitekit-node:trixie", "c" * 64
    resolv = "nameserver 10.89.3.1\n"
    show = "-p ActiveState,SubState,Result,NRestarts"
    answers = {
        f"systemctl show vobox-agent.service {show}": "ActiveState=active\nSubState=running\n",
        f"systemctl show vobox-web.service {show}": "ActiveState=activating\nSubState=auto-restart\n",
        "journalctl -u vobox-web.service -n 8 -o cat --no-pager": "cvmfs_probe: ... Remedy: mount it.",
        "podman container inspect vobox-agent": json.dumps([{"Image": image_id, "State": {"Running": True}}]),
        f"podman image inspect {image}": json.dumps([{"Id": image_id}]),
        "podman exec vobox-agent ls -A /cvmfs/images.sitekit.lab": ".cvmfsdirtab\n",
        "ls -A /cvmfs/images.sitekit.lab": ".cvmfsdirtab\n",
        "podman exec vobox-agent cat /etc/resolv.conf": "nameserver 198.51.100.1\n",
        "podman exec vobox-agent cat /etc/hosts": "",
    }

    def run(argv, timeout):
        key = " ".join(argv)
        return (0, answers[key], "") if key in answers else (125, "", "Error: no such container")

    services = [
        sitekit_vobox.check_service(
            {"name": n, "image": image, "repositories": ["images.sitekit.lab"]}, run, resolv, ""
        )
        for n in ("vobox-agent", "vobox-web")
    ]
    recorded = {
        "plays": [
            {
                "tasks": [
                    {
                        "task": {"name": "vobox_services : Report | Check every service [SK-VOBOX-10]"},
                        "hosts": {"vobox1": {"action": "vobox_check", "ready": False, "services": services}},
                    }
                ]
            }
        ],
        "stats": {"vobox1": {"failures": 0, "unreachable": 0}},
    }
    summary = compliance.summarise(compliance.collect(recorded), recorded["stats"], "lab", "recorded", {})
    (node,) = summary["nodes"]
    assert {cid: r["status"] for cid, r in node["results"].items()} == {
        "SK-VOBOX-10:vobox-agent": "ok",
        "SK-VOBOX-11:vobox-agent": "ok",
        "SK-VOBOX-12:vobox-agent": "ok",
        "SK-VOBOX-13:vobox-agent": "fail",
        "SK-VOBOX-10:vobox-web": "fail",
        "SK-VOBOX-11:vobox-web": "fail",
        "SK-VOBOX-12:vobox-web": "fail",
        "SK-VOBOX-13:vobox-web": "fail",
    }
    assert "Remedy: mount it" in node["results"]["SK-VOBOX-10:vobox-web"]["detail"]
    assert "198.51.100.1" in node["results"]["SK-VOBOX-13:vobox-agent"]["detail"]
    assert node["results"]["SK-VOBOX-13:vobox-agent"]["remedy"].startswith("systemctl restart vobox-agent.service")
    assert node["status"] == "fail" and summary["controls"][0]["title"] == "VO-box service unit vobox-agent"
