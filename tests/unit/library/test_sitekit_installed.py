"""sitekit_installed against this machine's real dpkg database; rpm's path on text in the form rpm -q prints
(no EL userland here: that path is not run)."""

import json
import shutil

import pytest
import sitekit_installed
import yaml
from conftest import ansible_doc, run_module

needs_dpkg = pytest.mark.skipif(not shutil.which("dpkg-query"), reason="this machine has no dpkg database")


def run(capsys, **args):
    return run_module(capsys, sitekit_installed.main, args, check=True)


@needs_dpkg
def test_the_missing_packages_are_those_dpkg_does_not_have_installed_in_the_order_given(capsys):
    # dpkg and coreutils are installed on every Debian system; the other two names exist in no archive.
    code, out = run(capsys, packages=["sitekit-no-such-package", "dpkg", "coreutils", "sitekit-nor-this"])
    assert code == 0 and out["changed"] is False
    assert out["manager"] == "dpkg"
    assert out["packages"] == ["sitekit-no-such-package", "dpkg", "coreutils", "sitekit-nor-this"]
    assert out["missing"] == ["sitekit-no-such-package", "sitekit-nor-this"]


@needs_dpkg
def test_nothing_is_missing_when_every_package_is_installed(capsys):
    code, out = run(capsys, packages=["dpkg"])
    assert code == 0 and out["missing"] == []


def test_only_ii_counts_as_installed_a_package_removed_with_its_configuration_is_missing():
    # dpkg-query -W -f='${Package}=${db:Status-Abbrev}\n' on a node where cvmfs was removed (configuration kept).
    assert sitekit_installed.installed("apptainer=ii \ncvmfs=rc \nautofs=ii \n") == {"apptainer", "autofs"}


def test_rpm_lists_the_packages_it_lacks_and_exits_with_their_number():
    # The form of rpm -q --qf '%{NAME}=ii\n' condor htcondor-release apptainer with two missing (exit status 2).
    stdout = "package condor is not installed\npackage htcondor-release is not installed\napptainer=ii\n"
    assert sitekit_installed.installed(stdout) == {"apptainer"}
    assert sitekit_installed.problem("rpm", 2, stdout, "") is None


def test_a_database_error_is_reported_not_taken_for_missing_packages():
    stderr = "dpkg-query: no packages found matching cvmfs\ndpkg-query: error: parsing file '/var/lib/dpkg/status'\n"
    assert sitekit_installed.problem("dpkg", 1, "", stderr) == "dpkg-query: error: parsing file '/var/lib/dpkg/status'"
    assert sitekit_installed.problem("dpkg", 1, "", "dpkg-query: no packages found matching cvmfs\n") is None
    assert sitekit_installed.problem("dpkg", 2, "", "") == "exit status 2"


@pytest.mark.parametrize("bad", ["", "-a", "two words"])
def test_a_name_that_is_no_package_name_is_refused_naming_it(capsys, bad):
    code, out = run(capsys, packages=["dpkg", bad])
    assert code == 1 and repr(bad) in out["msg"] and "package names" in out["msg"]


def test_the_documentation_shows_in_ansible_doc():
    doc = json.loads(ansible_doc("--json", "sitekit_installed").stdout)["sitekit_installed"]
    assert doc["doc"]["short_description"] == "Report which of the given packages are installed, in one module run"
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert set(yaml.safe_load(sitekit_installed.RETURN)) == {"packages", "missing", "manager"}
