"""sitekit_version: package version order, the release a package was built from, and the Apptainer minimum verdict.

The order is checked against dpkg itself (``dpkg --compare-versions``) where it is installed; the version strings are
ones Apptainer packages carry (Debian's 1.4.5-2 in the lab, EPEL/OSG's 1.3.6-1.el9, release candidates 1.4.0~rc.1)
and what ``apptainer --version`` printed on the lab's nodes (tests/unit/data/launch/).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import sitekit_launch
import sitekit_version as sv
import yaml

TOP = Path(__file__).resolve().parents[3]
LAUNCH_DATA = TOP / "tests" / "unit" / "data" / "launch"

ORDERED = [
    "1.3.1",
    "1.3.6-1.el9",
    "1.3.6-2.el9",
    "1.4.0~rc.1",
    "1.4.0~rc.2-1",
    "1.4.0",
    "1.4.0-1",
    "1.4.1-1",
    "1.4.4-1.el8",
    "1.4.5",
    "1.4.5-1",
    "1.4.5-2",
    "1.4.5-10",
    "1.4.5+ds1-1",
    "1.4.10",
    "1.5.2-1.el9",
    "1:0.9",
]
PAIRS = [(a, b) for i, a in enumerate(ORDERED) for b in ORDERED[i + 1 :]]


@pytest.mark.parametrize(("older", "newer"), PAIRS)
def test_versions_sort_as_packages_do(older, newer):
    assert sv.compare(older, newer) == -1
    assert sv.compare(newer, older) == 1
    assert sv.compare(older, older) == 0


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
def test_the_order_is_dpkgs():
    for older, newer in PAIRS:
        run = subprocess.run(["dpkg", "--compare-versions", older, "lt", newer], check=False)
        assert run.returncode == 0, (older, newer)


@pytest.mark.parametrize(
    ("version", "release"),
    [
        ("1.4.5-2", "1.4.5"),
        ("1.3.6-1.el9", "1.3.6"),
        ("1:1.4.4-1", "1.4.4"),
        ("1.4.0~rc.1", "1.4.0~rc.1"),
        ("1.4.0~rc.1-1", "1.4.0~rc.1"),
        ("1.4.0-rc.1", "1.4.0~rc.1"),
        ("1.4.0rc1", "1.4.0~rc1"),
        ("1.4.5+ds1-1", "1.4.5+ds1"),
        ("1.4.5", "1.4.5"),
    ],
)
def test_the_release_a_package_was_built_from(version, release):
    assert sv.upstream(version) == release


@pytest.mark.parametrize(
    ("installed", "ok"),
    [
        ("1.4.5", True),
        ("1.4.5-2", True),
        ("1.4.5-1.el9", True),
        ("1.4.10", True),
        ("1.5.2-1.el9", True),
        ("1.4.4-1", False),
        ("1:1.4.4-1", False),  # an epoch is packaging, not a newer release
        ("1.4.5~rc.1", False),
        ("1.4.5-rc.1", False),
        ("1.3.6-1.el9", False),
    ],
)
def test_at_least_leaves_the_package_revision_out(installed, ok):
    assert sv.at_least(installed, "1.4.5") is ok


@pytest.mark.parametrize("bad", ["", " ", "one", "1.4 5", None, True, ["1.4.5"]])
def test_no_version_is_refused(bad):
    with pytest.raises(ValueError, match=r"expected a version string such as 1\.4\.5"):
        sv.compare(bad, "1.4.5")


def test_the_lab_and_every_recorded_launch_pass_the_default_minimum():
    """The lab's Apptainer (Debian's 1.4.5-2; it prints 1.4.5) is not failed by the default."""
    outputs = {json.loads(p.read_text())["recorded"].get("apptainer") for p in LAUNCH_DATA.glob("*.json")}
    outputs.discard(None)
    assert outputs == {"apptainer version 1.4.5"}
    for text in outputs | {"apptainer version 1.4.5-2"}:
        assert sv.judge_apptainer(text)["ok"], text


@pytest.mark.parametrize(
    ("family", "command"),
    [
        ("Debian", "apt-get update && apt-get install --only-upgrade apptainer"),
        ("RedHat", "dnf upgrade apptainer"),
        (None, "Debian: apt-get update && apt-get install --only-upgrade apptainer or RedHat: dnf upgrade"),
    ],
)
def test_below_the_minimum_the_cause_names_the_advisory_and_the_remedy_the_upgrade(family, command):
    verdict = sv.judge_apptainer("apptainer version 1.4.4-1.el9\n", family=family, path="/usr/bin/apptainer")
    assert verdict["ok"] is False
    assert (verdict["version"], verdict["minimum"]) == ("1.4.4-1.el9", "1.4.5")
    assert verdict["cause"] == (
        "Apptainer 1.4.4-1.el9 has a published hole: 1.4.5 fixed GHSA-j3rw-fx6g-q46j (CVE-2025-65105)"
    )
    assert command in verdict["remedy"] and "apptainer_package_state: latest" in verdict["remedy"]


def test_an_apptainer_on_cvmfs_is_upgraded_by_pointing_at_a_newer_build():
    path = "/cvmfs/oasis.opensciencegrid.org/mis/apptainer/1.3.6/bin/apptainer"
    verdict = sv.judge_apptainer("apptainer version 1.3.6", family="Debian", path=path)
    assert not verdict["ok"] and verdict["remedy"].startswith(f"point the Apptainer jobs use ({path}) at a build")


def test_a_site_minimum_names_no_advisory_it_did_not_fix():
    verdict = sv.judge_apptainer("apptainer version 1.4.5-2", "1.5.0", family="Debian")
    assert not verdict["ok"] and verdict["cause"] == "Apptainer 1.4.5-2 is older than the site minimum, 1.5.0"


@pytest.mark.parametrize(
    ("output", "ok", "detail"),
    [
        ("apptainer version 1.4.5-2", True, "Apptainer 1.4.5-2, at least 1.4.5"),
        ("singularity-ce version 4.1.1-noble", True, "singularity-ce 4.1.1-noble is not Apptainer"),
        ("1.4.5", True, "Apptainer 1.4.5, at least 1.4.5"),
        ("", False, "apptainer --version printed nothing"),
        ("apptainer version unknown", False, "which is no version"),
    ],
)
def test_what_version_output_gives(output, ok, detail):
    verdict = sv.judge_apptainer(output)
    assert verdict["ok"] is ok and detail in verdict["detail"], verdict


def test_an_empty_minimum_leaves_the_version_unjudged():
    verdict = sv.judge_apptainer("apptainer version 1.0.0", "")
    assert verdict["ok"] and verdict["minimum"] is None and "no minimum version set" in verdict["detail"]


def test_one_default_everywhere():
    """The role's default, the module's documented default and the launch check's are the one constant."""
    defaults = yaml.safe_load((TOP / "roles/apptainer/defaults/main.yml").read_text())
    assert defaults["apptainer_minimum_version"] == sv.APPTAINER_MINIMUM
    for module in ("container_launch", "node_selfcheck"):
        doc = yaml.safe_load(__import__(module).DOCUMENTATION)
        assert doc["options"]["minimum_version"]["default"] == sv.APPTAINER_MINIMUM, module
    assert sv.APPTAINER_ADVISORY.split()[0] in (TOP / "roles/apptainer/defaults/main.yml").read_text()


# --- the launch check's use of it --------------------------------------------------------------------


def _result(ready=True, cause=None):
    result = sitekit_launch.empty_result("/img", "sitekit-probe")
    result["checks"] = {name: {"ok": True, "detail": "ok"} for name in result["checks"]}
    result.update(ready=ready, cause=cause, remedy="launch remedy" if cause else None)
    return result


def test_a_vulnerable_apptainer_makes_a_node_that_launched_not_ready_with_cause_and_remedy():
    result = _result()
    check = sitekit_launch.version_check("apptainer version 1.4.4-1", "1.4.5", family="Debian")
    sitekit_launch.add_version_check(result, check)
    assert result["ready"] is False and list(result["checks"])[-1] == "version"
    assert not result["checks"]["version"]["ok"]
    assert "GHSA-j3rw-fx6g-q46j" in result["cause"]
    assert "apt-get install --only-upgrade apptainer" in result["remedy"]


def test_a_launch_failure_keeps_its_own_cause_and_the_version_check_is_still_reported():
    result = _result(ready=False, cause="user namespaces are off")
    sitekit_launch.add_version_check(result, sitekit_launch.version_check("apptainer version 1.3.1", "1.4.5"))
    assert result["cause"] == "user namespaces are off" and result["remedy"] == "launch remedy"
    assert result["checks"]["version"]["remedy"].startswith("upgrade Apptainer to 1.4.5 or newer")


def test_a_current_apptainer_changes_nothing():
    result = _result()
    sitekit_launch.add_version_check(result, sitekit_launch.version_check("apptainer version 1.4.5", "1.4.5"))
    assert result["ready"] is True and result["cause"] is None and result["checks"]["version"]["ok"]


@pytest.mark.parametrize(
    ("tools", "family"),
    [({"apt-get"}, "Debian"), ({"dnf"}, "RedHat"), ({"yum"}, "RedHat"), (set(), None)],
)
def test_the_package_family_comes_from_the_package_tool_found(tools, family):
    assert sitekit_launch.package_family(lambda name: f"/usr/bin/{name}" if name in tools else None) == family
