"""The apptainer role's apptainer.conf settings from the site's variables and the kernel verdict."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "filter_plugins"))
from apptainer import apptainer_conf_settings


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
