"""sitekit_kernel: the parsers and the rules the recorded platform trees don't reach on their own."""

from __future__ import annotations

import sys

import pytest
from conftest import load_tree_spec
from sitekit_kernel import (
    apparmor_attachment_matches,
    apparmor_profiles_for,
    check_node,
    kernel_build,
    kernel_version,
    parse_apptainer_conf,
    parse_dpkg_status,
    parse_os_release,
    parse_version_output,
    platform_info,
    read_node,
    requirement_failure,
)

CENTOS7 = {"ID": "centos", "ID_LIKE": "rhel fedora", "VERSION_ID": "7"}


@pytest.mark.parametrize(
    ("os_release", "redhat_release", "platform"),
    [
        (None, "CentOS release 6.10 (Final)", "el6"),
        (None, "Scientific Linux release 6.10 (Carbon)", "el6"),
        (CENTOS7, "CentOS Linux release 7.9.2009 (Core)", "el7.9"),
        (CENTOS7, "CentOS Linux release 7.4.1708 (Core) ", "el7.4"),
        (CENTOS7, None, "el7"),
        ({"ID": "rhel", "VERSION_ID": "7.6"}, None, "el7.6"),
        ({"ID": "rhel", "VERSION_ID": "7.6"}, "Red Hat Enterprise Linux Server release 7.6 (Maipo)", "el7.6"),
        ({"ID": "rocky", "VERSION_ID": "9.5"}, "Rocky Linux release 9.5 (Blue Onyx)", "el9"),
        ({"ID": "ol", "VERSION_ID": "8.10"}, None, "el8"),
        ({"ID": "centos", "VERSION_ID": "9"}, "CentOS Stream release 9", "el9"),
        ({"ID": "circle", "ID_LIKE": "rhel fedora", "VERSION_ID": "8.9"}, None, "el8"),
        ({"ID": "debian", "VERSION_ID": "12", "VERSION_CODENAME": "bookworm"}, None, "debian12"),
        ({"ID": "debian", "VERSION_CODENAME": "trixie"}, None, "debian13"),
        ({"ID": "debian", "VERSION_CODENAME": "duke"}, None, "debian-duke"),
        ({"ID": "ubuntu", "VERSION_ID": "24.04"}, None, "ubuntu24.04"),
        ({"ID": "fedora", "VERSION_ID": "41"}, None, "fedora41"),
        ({"ID": "arch"}, None, "arch"),
        ({}, None, "unknown"),
        (None, None, "unknown"),
    ],
)
def test_platform_info(os_release, redhat_release, platform):
    assert platform_info(os_release, redhat_release)[0] == platform


@pytest.mark.parametrize(
    ("release", "version", "build"),
    [
        ("3.10.0-1160.119.1.el7.x86_64", [3, 10, 0], 1160),
        ("2.6.32-754.35.1.el6.x86_64", [2, 6, 32], 754),
        ("4.18.0-553.el8_10.x86_64", [4, 18, 0], 553),
        ("6.12.57+deb13-amd64", [6, 12, 57], None),
        ("6.8.0-49-generic", [6, 8, 0], 49),
        ("6.18", [6, 18, 0], None),
        (None, None, None),
        ("garbage", None, None),
    ],
)
def test_kernel_version_and_build(release, version, build):
    assert kernel_version(release) == version
    assert kernel_build(release) == build


def test_parse_os_release():
    text = "NAME=\"CentOS Linux\"\n# comment\nID=centos\nVERSION_ID='7'\n\nBROKEN LINE\n"
    assert parse_os_release(text) == {"NAME": "CentOS Linux", "ID": "centos", "VERSION_ID": "7"}
    assert parse_os_release(None) is None


def test_parse_apptainer_conf():
    text = "# allow setuid = no\nallow  setuid = No   # trailing\nENABLE OVERLAY=driver\nmount proc = yes\n"
    assert parse_apptainer_conf(text) == {"allow setuid": "no", "enable overlay": "driver"}
    assert parse_apptainer_conf(None) == {}


def test_parse_dpkg_status_keeps_installed_packages_only():
    text = (
        "Package: apptainer\nStatus: deinstall ok config-files\nVersion: 1.2.0\n\n"
        "Package: singularity-ce\nStatus: install ok installed\nVersion: 4.1.1+ds4-1\n"
        "Description: x\n Version: not a field\n"
    )
    assert parse_dpkg_status(text, ("apptainer", "singularity-ce")) == {"singularity-ce": "4.1.1+ds4-1"}
    assert parse_dpkg_status(None, ("apptainer",)) == {}


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("apptainer version 1.3.6-1.el9\n", "1.3.6-1.el9"),
        ("singularity-ce version 4.1.1\n", "4.1.1"),
        ("3.8.7-1.el7\n", "3.8.7-1.el7"),
        ("", None),
    ],
)
def test_parse_version_output(output, version):
    assert parse_version_output(output) == version


@pytest.mark.parametrize(
    ("attachment", "path", "matches"),
    [
        ("/usr/libexec/apptainer/bin/starter{,-suid}", "/usr/libexec/apptainer/bin/starter", True),
        ("/usr/libexec/apptainer/bin/starter{,-suid}", "/usr/libexec/apptainer/bin/starter-suid", True),
        ("/usr/libexec/apptainer/bin/starter{,-suid}", "/usr/local/libexec/apptainer/bin/starter", False),
        ("/usr/local/libexec/apptainer/bin/starter{,-suid}", "/usr/libexec/apptainer/bin/starter", False),
        (
            "/usr/lib/@{multiarch}/apptainer/bin/starter{,-suid}",
            "/usr/lib/x86_64-linux-gnu/apptainer/bin/starter",
            True,
        ),
        ("/usr/{lib,libexec}/apptainer/bin/starter", "/usr/libexec/apptainer/bin/starter", True),
        ("/usr/libexec/*/bin/starter", "/usr/libexec/apptainer/bin/starter", True),
        ("/usr/*/starter", "/usr/libexec/apptainer/bin/starter", False),
        ("/usr/**/starter", "/usr/libexec/apptainer/bin/starter", True),
        ("/usr/libexec/apptainer/bin/starter", "/usr/libexec/apptainer/bin/starter-suid", False),
    ],
)
def test_apparmor_attachment_matches(attachment, path, matches):
    assert apparmor_attachment_matches(attachment, path) is matches


STARTER = "/usr/libexec/apptainer/bin/starter"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (f"profile apptainer {STARTER}{{,-suid}} flags=(unconfined) {{\n  userns,\n}}\n", [("apptainer", True)]),
        (f"{STARTER} flags=(unconfined) {{\n  userns create,\n}}\n", [(STARTER, True)]),
        (f"profile {STARTER} {{\n  audit allow userns,\n}}\n", [(STARTER, True)]),
        (f"profile apptainer {STARTER} {{\n  deny userns,\n}}\n", [("apptainer", False)]),
        (f"profile apptainer {STARTER} {{\n  # userns,\n}}\n", [("apptainer", False)]),
        (f"# profile apptainer {STARTER} {{\n#  userns,\n# }}\n", []),
        ("profile unprivileged_userns flags=(attach_disconnected) {\n  allow userns,\n}\n", []),
        # The userns rule belongs to another profile in the same file.
        (
            f"profile apptainer {STARTER} {{\n  capability,\n}}\nprofile other /usr/bin/other {{\n  userns,\n}}\n",
            [("apptainer", False)],
        ),
    ],
)
def test_apparmor_profiles_for(text, found):
    assert apparmor_profiles_for(text, STARTER) == found


def test_a_disabled_apparmor_profile_does_not_count(make_tree):
    spec = load_tree_spec("ubuntu24.04-restricted-profile")
    spec["links"] = {"etc/apparmor.d/disable/apptainer": "../apptainer"}
    result = check_node(str(make_tree(spec)))
    assert result["userns_enabled"] is False
    assert result["apparmor_userns_profile"] is None


def test_a_symlink_out_of_the_tree_is_absent(make_tree):
    """The module reads only under root: an absolute symlink on a tree does not reach the controller's files."""
    spec = load_tree_spec("debian12")
    spec["links"] = {"usr/bin/apptainer": sys.executable}
    facts = read_node(str(make_tree(spec)))
    assert facts["apptainer_binary"] is None


def test_run_version_is_used_when_given(make_tree):
    root = str(make_tree("el8"))
    calls = []

    def run_version(path):
        calls.append(path)
        return "1.3.6-1.el8"

    assert read_node(root, run_version)["apptainer_version"] == "1.3.6-1.el8"
    assert calls == ["/usr/bin/apptainer"]
    assert read_node(root)["apptainer_version"] is None


def test_unreadable_kernel_is_not_enabled(make_tree):
    spec = load_tree_spec("el9")
    del spec["files"]["proc/sys/kernel/osrelease"]
    result = check_node(str(make_tree(spec)))
    assert (result["kernel"], result["userns_enabled"], result["sif"]) == (None, False, False)
    assert any("unreadable" in note for note in result["notes"])


def test_el7_with_a_mainline_kernel_is_judged_by_version(make_tree):
    spec = load_tree_spec("el7.9-off")
    spec["files"]["proc/sys/kernel/osrelease"] = "5.4.278-1.el7.elrepo.x86_64\n"
    spec["files"]["proc/sys/user/max_user_namespaces"] = 15000
    result = check_node(str(make_tree(spec)))
    assert (result["userns_enabled"], result["fuse_in_userns"], result["overlay"]) == (True, True, "fuse-overlayfs")
    assert any("non-EL7 kernel" in note for note in result["notes"])


@pytest.mark.parametrize(("conf", "overlay"), [("driver", "fuse-overlayfs"), ("try", "kernel"), ("no", "underlay")])
def test_enable_overlay_setting(make_tree, conf, overlay):
    spec = load_tree_spec("el9")
    key = "etc/apptainer/apptainer.conf"
    spec["files"][key] = spec["files"][key].replace("enable overlay = yes", f"enable overlay = {conf}")
    assert check_node(str(make_tree(spec)))["overlay"] == overlay


@pytest.mark.parametrize(
    ("version", "setuid", "modes"),
    [
        ("3.3.0-1", True, [1, 2, 3]),  # --fusemount came in 3.4
        ("3.5.3-1", False, [1, 2, 3]),  # unprivileged singcvmfs needs 3.6
        ("3.5.3-1", True, [1, 2, 3, 4]),
        ("4.1.1+ds4-1", False, [1, 2, 3, 4]),
    ],
)
def test_singcvmfs_with_singularity(make_tree, version, setuid, modes):
    spec = load_tree_spec("debian12")
    spec["files"].update(
        {
            "usr/bin/singularity": "#!recorded\n",
            "usr/libexec/singularity/bin/starter": "#!recorded\n",
            "var/lib/dpkg/status": f"Package: singularity-ce\nStatus: install ok installed\nVersion: {version}\n",
        }
    )
    if setuid:
        spec["files"]["usr/libexec/singularity/bin/starter-suid"] = "#!recorded\n"
        spec["modes"]["usr/libexec/singularity/bin/starter-suid"] = "4755"
    result = check_node(str(make_tree(spec)))
    assert result["apptainer"]["version"] == version
    assert result["cvmfsexec_modes"] == modes


def _result(mode, remediation=(), platform="el7.5"):
    return {"mode": mode, "platform": platform, "kernel": "3.10.0-862.el7.x86_64", "remediation": list(remediation)}


@pytest.mark.parametrize(
    ("mode", "require", "fails"),
    [
        ("unprivileged", "unprivileged", False),
        ("setuid", "unprivileged", True),
        ("setuid", "setuid", False),
        ("unprivileged", "setuid", False),
        ("unsupported", "setuid", True),
        ("unsupported", "none", False),
    ],
)
def test_requirement_failure_levels(mode, require, fails):
    assert (requirement_failure(_result(mode), require) is not None) is fails


def test_requirement_failure_lists_the_steps_in_order():
    steps = [
        {"kind": "sysctl", "key": "user.max_user_namespaces", "action": "first"},
        {"kind": "reboot", "key": "reboot", "action": "second"},
    ]
    msg = requirement_failure(_result("unsupported", steps), "unprivileged")
    assert msg.endswith("in order: 1) first [sysctl user.max_user_namespaces] 2) second [reboot reboot]")
