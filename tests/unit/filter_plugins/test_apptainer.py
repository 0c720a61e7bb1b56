"""The apptainer role's apptainer.conf settings from the site's variables and the kernel verdict."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "filter_plugins"))
from apptainer import apptainer_bind_missing, apptainer_bind_sources, apptainer_conf_settings, apptainer_version_check


def test_defaults_turn_setuid_off_and_bind_the_site_paths_once():
    settings = apptainer_conf_settings(["/etc/hosts", "/etc/localtime", "/cvmfs", "/etc/hosts"])
    assert settings["allow setuid"] is False
    assert settings["bind path"] == ["/etc/hosts", "/etc/localtime", "/cvmfs"]
    assert settings["mount slave"] is True
    assert settings["limit container paths"] is None
    assert all(settings[f"allow container {f}"] for f in ("sif", "encrypted", "squashfs", "extfs", "dir"))


@pytest.mark.parametrize(
    ("overlay", "underlay"), [("kernel", "yes"), ("fuse-overlayfs", "yes"), ("underlay", "preferred")]
)
def test_underlay_is_preferred_where_no_overlay_works(overlay, underlay):
    assert apptainer_conf_settings(["/etc/hosts"], overlay=overlay)["enable underlay"] == underlay


def test_site_restrictions_and_extra_keys():
    settings = apptainer_conf_settings(
        ["/etc/hosts"],
        limit_container_paths=["/cvmfs", "/srv/images"],
        allow_container={"encrypted": False, "extfs": False},
        extra={"max loop devices": 64},
    )
    assert settings["limit container paths"] == "/cvmfs, /srv/images"
    assert settings["allow container encrypted"] is False
    assert settings["allow container sif"] is True
    assert settings["max loop devices"] == 64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bind_paths": ["relative/path"]}, "bind_paths must be a list of absolute paths"),
        ({"bind_paths": ["/x"], "overlay": "aufs"}, "overlay must be kernel, fuse-overlayfs or underlay"),
        ({"bind_paths": ["/x"], "allow_container": {"docker": True}}, "allow_container takes sif"),
        ({"bind_paths": ["/x"], "allow_container": {"sif": "yes"}}, "allow_container takes sif"),
        ({"bind_paths": ["/x"], "extra": ["max loop devices"]}, "extra must be a dict"),
    ],
)
def test_bad_input_names_the_setting(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        apptainer_conf_settings(**kwargs)


@pytest.mark.parametrize(
    ("spec", "source", "target"),
    [
        ("/data", "/data", "/data"),
        ("/data/store:/store", "/data/store", "/store"),
        ("/data/store:/store:ro", "/data/store", "/store"),
        ("/data/store::rw", "/data/store", "/data/store"),
    ],
)
def test_the_host_side_of_each_bind_is_the_path_to_check(spec, source, target):
    assert apptainer_bind_sources([spec], "apptainer_bind_paths_extra") == [
        {"variable": "apptainer_bind_paths_extra", "spec": spec, "source": source, "target": target}
    ]


@pytest.mark.parametrize(
    ("binds", "message"),
    [
        (["data"], "apptainer_bind_paths_extra: bind 'data': 'data' is not an absolute path"),
        (["/a:b"], "'b' is not an absolute path"),
        (["/a,/b"], "one bind per list element (no commas)"),
        (["/a:/b:noexec"], "the option must be ro or rw, got 'noexec'"),
        (["/a:/b:ro:x"], "expected src, src:dst or src:dst:ro|rw"),
        ([""], "give src or src:dst"),
        ("/data", "must be a list of binds"),
    ],
)
def test_a_malformed_bind_fails_naming_the_variable_and_the_bind(binds, message):
    with pytest.raises(AnsibleFilterError, match="apptainer_bind_sources: apptainer_bind_paths_extra") as err:
        apptainer_bind_sources(binds, "apptainer_bind_paths_extra")
    assert message in str(err.value)


def test_the_role_check_is_the_launch_checks_own_verdict():
    verdict = apptainer_version_check("apptainer version 1.4.4-1\n", "1.4.5", "Debian", "/usr/bin/apptainer")
    assert verdict["ok"] is False and "GHSA-j3rw-fx6g-q46j" in verdict["cause"]
    assert "apt-get install --only-upgrade apptainer" in verdict["remedy"]
    assert apptainer_version_check("apptainer version 1.4.5", "1.4.5", "RedHat")["ok"] is True
    assert apptainer_version_check("apptainer version 1.0.0", "")["ok"] is True


@pytest.mark.parametrize(
    ("output", "minimum", "message"),
    [
        (None, "1.4.5", "expected the text apptainer --version prints, got NoneType"),
        ("apptainer version 1.4.5", "soon please", "apptainer_minimum_version: expected a version string"),
    ],
)
def test_the_role_check_refuses_input_that_is_no_version(output, minimum, message):
    with pytest.raises(AnsibleFilterError, match=message):
        apptainer_version_check(output, minimum)


def test_a_dict_gives_the_binds_of_every_variable_in_order_each_with_its_name():
    got = apptainer_bind_sources({"apptainer_bind_paths": ["/etc/hosts"], "apptainer_bindpath_env": ["/d:/e:ro", "/f"]})
    assert [(b["variable"], b["source"]) for b in got] == [
        ("apptainer_bind_paths", "/etc/hosts"),
        ("apptainer_bindpath_env", "/d"),
        ("apptainer_bindpath_env", "/f"),
    ]
    with pytest.raises(AnsibleFilterError, match="apptainer_bind_sources: apptainer_bindpath_env: bind 'x'"):
        apptainer_bind_sources({"apptainer_bind_paths": [], "apptainer_bindpath_env": ["x"]})


def test_the_binds_whose_source_is_missing_are_those_sitekit_paths_found_absent_in_order():
    sources = apptainer_bind_sources(["/data/store:/store:ro", "/cvmfs", "/cvmfs/cms.cern.ch:/cms", "/etc/hosts"], "b")
    paths = {
        "/data/store": {"exists": False},
        "/cvmfs": {"exists": False},
        "/cvmfs/cms.cern.ch": {"exists": False},
        "/etc/hosts": {"exists": True},
    }
    assert [b["spec"] for b in apptainer_bind_missing(sources, paths)] == [
        "/data/store:/store:ro",
        "/cvmfs",
        "/cvmfs/cms.cern.ch:/cms",
    ]
    # In check mode the cvmfs role has not made /cvmfs yet: at or below it, nothing is reported; /cvmfsx is not below.
    assert [b["spec"] for b in apptainer_bind_missing(sources, paths, ["/cvmfs/"])] == ["/data/store:/store:ro"]
    other = apptainer_bind_sources(["/cvmfsx"], "b")
    assert apptainer_bind_missing(other, {"/cvmfsx": {"exists": False}}, ["/cvmfs"]) == other
    # A source the probe was not asked about cannot be shown to exist.
    assert apptainer_bind_missing(apptainer_bind_sources(["/srv"], "b"), {}) == apptainer_bind_sources(["/srv"], "b")


def test_bind_missing_refuses_input_that_is_not_the_sources_and_the_probe():
    with pytest.raises(AnsibleFilterError, match="expected apptainer_bind_sources' items"):
        apptainer_bind_missing(["/srv"], {})
    with pytest.raises(AnsibleFilterError, match="expected sitekit_paths' paths"):
        apptainer_bind_missing([], ["/srv"])
