"""kernel_compat: the verdict on every recorded platform tree, and main() as Ansible runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import combinations

import kernel_compat
import pytest
import sitekit_kernel
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from conftest import REPO, load_tree_spec, platform_case_paths

RESULT_KEYS = {
    "platform",
    "kernel",
    "kernel_version",
    "kernel_build",
    "userns_enabled",
    "apparmor_userns_profile",
    "mode",
    "overlay",
    "sif",
    "fuse_in_userns",
    "cvmfsexec_modes",
    "apptainer",
    "automount",
    "remediation",
    "advice",
    "notes",
    "ready",
    "facts",
}
# Expectations every case must state, so that no case passes by saying nothing.
REQUIRED_EXPECT = {
    "platform",
    "userns_enabled",
    "mode",
    "overlay",
    "sif",
    "fuse_in_userns",
    "cvmfsexec_modes",
    "remediation_kinds",
}
# Expectations computed from the result rather than read from it.
DERIVED_EXPECT = {
    "remediation_kinds": lambda r: [s["kind"] for s in r["remediation"]],
    "remediation_keys": lambda r: [s["key"] for s in r["remediation"]],
    "advice_keys": lambda r: [s["key"] for s in r["advice"]],
}
KNOWN_EXPECT = (RESULT_KEYS - {"facts", "remediation", "advice", "notes", "apptainer", "automount"}) | set(
    DERIVED_EXPECT
)
KNOWN_EXPECT |= {"apptainer", "automount", "notes_contain"}
STEP_KEYS = {"kind", "key", "value", "action", "reason"}
REMEDIATION_KINDS = {"sysctl", "boot_arg", "apparmor", "package", "device", "kernel_upgrade", "os_upgrade", "reboot"}


def run_main(capsys, args):
    """Run the module's main() with ``args``; return (exit code, parsed JSON result)."""
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        kernel_compat.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------------------------------------
# The recorded platform trees
# ---------------------------------------------------------------------------------------------
def test_platform_case(platform_case, make_tree):
    expect = platform_case["expect"]
    assert set(expect) >= REQUIRED_EXPECT, f"state {sorted(REQUIRED_EXPECT - set(expect))} in the case"
    assert set(expect) <= KNOWN_EXPECT, f"unknown expectations {sorted(set(expect) - KNOWN_EXPECT)}"

    result = sitekit_kernel.check_node(str(make_tree(platform_case)))

    assert set(result) == RESULT_KEYS
    for key, wanted in expect.items():
        if key in DERIVED_EXPECT:
            assert DERIVED_EXPECT[key](result) == wanted, key
        elif key in ("apptainer", "automount"):
            assert {k: result[key][k] for k in wanted} == wanted, key
        elif key == "notes_contain":
            for text in wanted:
                assert any(text in note for note in result["notes"]), (text, result["notes"])
        else:
            assert result[key] == wanted, key


def test_platform_case_shape(platform_case, make_tree):
    """Every result has the documented shape, whatever the platform."""
    result = sitekit_kernel.check_node(str(make_tree(platform_case)))
    assert result["ready"] is (result["mode"] == "unprivileged")
    fuse_open = result["facts"]["dev_fuse"] and int(result["facts"]["dev_fuse_mode"] or "0666", 8) & 0o006 == 0o006
    assert result["sif"] is (result["fuse_in_userns"] and result["userns_enabled"] and fuse_open)
    assert result["cvmfsexec_modes"] == sorted(set(result["cvmfsexec_modes"]))
    assert set(result["apptainer"]) == {"path", "version", "starter", "setuid_starter"}
    for step in result["remediation"]:
        assert set(step) == STEP_KEYS
        assert step["kind"] in REMEDIATION_KINDS
        assert step["action"] and "\n" not in step["action"]
    for step in result["advice"]:
        assert set(step) == STEP_KEYS
    automount = result["automount"]
    assert set(automount) == {"available", "loaded", "module", "reason", "remedy"}
    assert automount["reason"] and (automount["remedy"] is None) is automount["loaded"]
    assert not automount["loaded"] or automount["available"]
    kinds = [s["kind"] for s in result["remediation"]]
    if "reboot" in kinds:
        assert kinds[-1] == "reboot", "the reboot comes last"
    # A node that needs nothing is one that runs unprivileged with SIF (or has no /dev/fuse to blame).
    assert (not result["remediation"]) == (result["userns_enabled"] and result["sif"])
    json.dumps(result)  # what the module returns must serialise


def test_cases_distinguish_their_states():
    """No two recorded cases expect the same thing: each one records a state the others don't."""
    expects = {p.stem: load_tree_spec(p)["expect"] for p in platform_case_paths()}
    same = [(a, b) for a, b in combinations(expects, 2) if expects[a] == expects[b]]
    assert not same


def test_cases_cover_every_outcome():
    expects = [load_tree_spec(p)["expect"] for p in platform_case_paths()]
    assert {e["mode"] for e in expects} == {"unprivileged", "setuid", "unsupported"}
    assert {e["overlay"] for e in expects} == {"kernel", "fuse-overlayfs", "underlay"}
    assert {k for e in expects for k in e["remediation_kinds"]} == REMEDIATION_KINDS
    assert {m for e in expects for m in e["cvmfsexec_modes"]} == {1, 2, 3, 4}
    assert {e["sif"] for e in expects} == {True, False}
    # autofs loaded, a module not loaded yet, a module that may not load (nomodule), a kernel without autofs.
    automount = {
        (e["automount"]["available"], e["automount"]["loaded"], bool(e["automount"].get("module")))
        for e in expects
        if "automount" in e
    }
    assert automount >= {(True, True, False), (True, False, True), (False, False, True), (False, False, False)}


def test_el7_overlay_line_is_ignored(make_tree):
    """The overlay line in el7.9-enabled's proc/filesystems is there, and still no kernel overlay."""
    result = sitekit_kernel.check_node(str(make_tree("el7.9-enabled")))
    assert "overlay" in result["facts"]["filesystems"]
    assert result["overlay"] == "underlay"


def test_el7_remediation_commands(make_tree):
    steps = sitekit_kernel.check_node(str(make_tree("el7.5-off")))["remediation"]
    assert [s["action"] for s in steps] == [
        "echo 'user.max_user_namespaces = 15000' >> /etc/sysctl.d/90-sitekit-userns.conf"
        " && sysctl -w user.max_user_namespaces=15000",
        "grubby --update-kernel=ALL --args=namespace.unpriv_enable=1",
        "yum -y update kernel",
        "systemctl reboot",
    ]
    assert steps[2]["value"] == "3.10.0-1160"


def test_el7_old_kernel_sysctl_waits_for_the_reboot(make_tree):
    """EL7.3's kernel has no user.max_user_namespaces: the file is written, applied at the reboot."""
    sysctl = sitekit_kernel.check_node(str(make_tree("el7.3")))["remediation"][0]
    assert sysctl["kind"] == "sysctl"
    assert "sysctl -p" not in sysctl["action"]
    assert "reboot" in sysctl["reason"]


def test_el8_sysctl_never_lowers(make_tree):
    step = sitekit_kernel.check_node(str(make_tree("el8-max0")))["remediation"][0]
    assert (step["key"], step["value"]) == ("user.max_user_namespaces", "15000")
    assert "Never lower a non-zero kernel value" in step["reason"]


def test_ubuntu_profile_remediation_names_the_installed_starter(make_tree, tmp_path):
    step = sitekit_kernel.check_node(str(make_tree("ubuntu24.04-restricted-noprofile")))["remediation"][0]
    assert step["action"] == (
        "write the value to /etc/apparmor.d/apptainer-userns, then run: "
        "apparmor_parser -r /etc/apparmor.d/apptainer-userns"
    )
    assert "kernel.apparmor_restrict_unprivileged_userns = 0" in step["reason"]
    # The profile it proposes is one the module itself accepts.
    spec = load_tree_spec("ubuntu24.04-restricted-noprofile")
    spec["files"]["etc/apparmor.d/apptainer-userns"] = step["value"]
    fixed = sitekit_kernel.check_node(str(make_tree(spec, name="fixed")))
    assert fixed["userns_enabled"] is True
    assert fixed["apparmor_userns_profile"] == "/etc/apparmor.d/apptainer-userns"


# ---------------------------------------------------------------------------------------------
# main(), as Ansible runs it
# ---------------------------------------------------------------------------------------------
def test_main_reports_and_sets_the_fact(capsys, make_tree):
    code, out = run_main(capsys, {"root": str(make_tree("el9"))})
    assert code == 0
    assert out["changed"] is False
    assert "failed" not in out
    fact = out["ansible_facts"]["kernel_compat"]
    assert set(fact) == RESULT_KEYS
    assert {k: out[k] for k in RESULT_KEYS} == fact
    assert (fact["platform"], fact["mode"], fact["overlay"], fact["sif"]) == ("el9", "unprivileged", "kernel", True)


def test_main_check_mode_gives_the_same_verdict(capsys, make_tree):
    root = str(make_tree("el7.5-off"))
    _, normal = run_main(capsys, {"root": root})
    code, checked = run_main(capsys, {"root": root, "_ansible_check_mode": True})
    assert code == 0
    assert checked["changed"] is False
    assert checked["ansible_facts"] == normal["ansible_facts"]


def test_main_diff_mode_has_nothing_to_show(capsys, make_tree):
    """diff_mode support is none: the module changes nothing, so it returns no diff."""
    code, out = run_main(capsys, {"root": str(make_tree("el9")), "_ansible_diff": True})
    assert code == 0
    assert "diff" not in out
    assert out["changed"] is False


def test_main_require_unprivileged_fails_with_the_remediation_in_order(capsys, make_tree):
    code, out = run_main(capsys, {"root": str(make_tree("el7.5-off")), "require": "unprivileged"})
    assert code == 1
    assert out["failed"] is True
    assert out["changed"] is False
    msg = out["msg"]
    assert "cannot run unprivileged containers" in msg
    positions = [
        msg.index("1) echo 'user.max_user_namespaces = 15000'"),
        msg.index("2) grubby --update-kernel=ALL --args=namespace.unpriv_enable=1"),
        msg.index("3) yum -y update kernel"),
        msg.index("4) systemctl reboot"),
    ]
    assert positions == sorted(positions)
    assert set(out) >= RESULT_KEYS
    assert out["mode"] == "unsupported"


@pytest.mark.parametrize(
    ("case", "require", "fails"),
    [
        ("el7.3-setuid", "setuid", False),
        ("el7.3-setuid", "unprivileged", True),
        ("el7.3-setuid-disallowed", "setuid", True),
        ("el6", "setuid", True),
        ("el7.5-off", "none", False),
        ("debian12", "unprivileged", False),
    ],
)
def test_main_require_levels(capsys, make_tree, case, require, fails):
    code, out = run_main(capsys, {"root": str(make_tree(case)), "require": require})
    assert (code == 1) is fails
    assert out.get("failed", False) is fails
    if fails and require == "setuid" and case != "el6":
        assert "apptainer-suid" in out["msg"]


def test_main_root_not_a_directory(capsys, tmp_path):
    missing = tmp_path / "no-such-tree"
    code, out = run_main(capsys, {"root": str(missing)})
    assert code == 1
    assert out["failed"] is True
    assert f"root '{missing}' is not a directory" in out["msg"]
    assert "Set root to /" in out["msg"]


def test_main_rejects_an_unknown_requirement(capsys, make_tree):
    code, out = run_main(capsys, {"root": str(make_tree("el9")), "require": "rootless"})
    assert code == 1
    assert "require" in out["msg"]
    assert "unprivileged" in out["msg"]


def test_main_runs_the_binary_only_on_the_running_system(capsys, make_tree, monkeypatch):
    """On root=/ the version comes from `<bin> --version` with LANG=C; on a tree nothing is run."""
    calls = []

    def fake_run_command(self, args, **kwargs):
        calls.append((args, kwargs.get("environ_update")))
        return 0, "apptainer version 1.3.6-1.el9\n", ""

    seen = {}
    tree = str(make_tree("el9"))
    check_node = sitekit_kernel.check_node

    def fake_check_node(root, run_version):
        seen["root"], seen["run_version"] = root, run_version
        return check_node(tree, run_version)

    monkeypatch.setattr(AnsibleModule, "run_command", fake_run_command)
    _, out = run_main(capsys, {"root": tree})
    assert calls == []
    assert out["apptainer"]["version"] is None  # an rpm tree: no dpkg record

    monkeypatch.setattr(kernel_compat.kernel, "check_node", fake_check_node)
    _, out = run_main(capsys, {"root": "/"})
    assert seen["root"] == "/"
    assert calls == [(["/usr/bin/apptainer", "--version"], {"LANG": "C", "LC_ALL": "C"})]
    assert out["apptainer"]["version"] == "1.3.6-1.el9"
    assert out["facts"]["apptainer_version_source"] == "command"


def test_module_runs_standalone_with_an_args_file(make_tree, tmp_path):
    """`python library/kernel_compat.py ARGS.json` from the repository, without Ansible's bundling."""
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"root": str(make_tree("debian13"))}}))
    proc = subprocess.run(
        [sys.executable, "library/kernel_compat.py", str(args)],
        env={**os.environ, "PYTHONPATH": str(REPO / "module_utils")},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["changed"] is False
    assert out["platform"] == "debian13"
    assert out["apptainer"]["version"] == "1.4.5-2"
    assert out["ansible_facts"]["kernel_compat"]["mode"] == "unprivileged"


# ---------------------------------------------------------------------------------------------
# Automount
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("files", "available", "loaded", "module"),
    [
        # Built in and listed in modules.builtin, registered: loaded.
        (
            {"lib/modules/5.14.0-503.el9.x86_64/modules.builtin": "kernel/fs/autofs/autofs4.ko\n"},
            True,
            False,
            "builtin",
        ),
        # A compressed module file (.ko.xz, as Debian 13 and EL ship them).
        ({"lib/modules/5.14.0-503.el9.x86_64/kernel/fs/autofs/autofs4.ko.xz": ""}, True, False, None),
        # Merged /usr: the modules under usr/lib/modules.
        ({"usr/lib/modules/5.14.0-503.el9.x86_64/kernel/fs/autofs/autofs4.ko.zst": ""}, True, False, None),
        # Another kernel's module does not count.
        ({"lib/modules/5.14.0-427.el9.x86_64/kernel/fs/autofs/autofs4.ko": ""}, False, False, None),
        ({}, False, False, None),
    ],
)
def test_automount_module_for_the_running_kernel(make_tree, files, available, loaded, module):
    spec = load_tree_spec("el9")
    spec = dict(spec, files={**spec["files"], **files})
    spec["files"]["proc/filesystems"] = "\n".join(
        line for line in spec["files"]["proc/filesystems"].splitlines() if not line.endswith("autofs")
    )
    spec["files"]["proc/sys/kernel/osrelease"] = "5.14.0-503.el9.x86_64\n"
    result = sitekit_kernel.check_node(str(make_tree(spec)))["automount"]
    assert (result["available"], result["loaded"]) == (available, loaded)
    if module == "builtin":
        assert result["module"] == "builtin"
    elif available:
        assert result["module"] == "/" + next(iter(files))
        assert "modprobe autofs4" in result["remedy"]
    else:
        assert result["module"] is None and "cvmfs_mount_mode: static" in result["remedy"]


def test_automount_unknown_without_proc_filesystems():
    facts = {"filesystems": None, "autofs_module": None, "kernel_release": "6.1.0", "cmdline": ""}
    verdict = sitekit_kernel.automount_verdict(facts)
    assert not verdict["available"] and "unknown" in verdict["reason"]
