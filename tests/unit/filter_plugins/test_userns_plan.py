"""The userns role's plan on recorded platform trees: what it would persist, set and report."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "filter_plugins"))
import sitekit_kernel
from userns import sysctl_conf_values, userns_plan

EL7_ARG = "namespace.unpriv_enable=1"


@pytest.fixture
def verdict(make_tree):
    def judge(case, **overrides):
        root = make_tree(case)
        if overrides:
            for rel, value in overrides.items():
                (Path(root) / rel).write_text(f"{value}\n")
        return sitekit_kernel.check_node(str(root))

    return judge


# case, expected sysctls, expected boot args, whether an AppArmor profile is planned, manual kinds
PLANS = [
    ("el7.5-off", {"user.max_user_namespaces": 15000}, [EL7_ARG], False, ["kernel_upgrade"]),
    ("el7.5-sysctl-only", {"user.max_user_namespaces": 15000}, [EL7_ARG], False, ["kernel_upgrade"]),
    ("el7.7-off", {"user.max_user_namespaces": 15000}, [], False, ["kernel_upgrade"]),
    # EL7 boots with 0: the value is persisted even while it is on now.
    ("el7.9-enabled", {"user.max_user_namespaces": 15000}, [], False, []),
    ("el7.9-off", {"user.max_user_namespaces": 15000}, [], False, []),
    ("el7.1", {}, [], False, ["kernel_upgrade"]),
    ("el6", {}, [], False, ["os_upgrade"]),
    # EL8/EL9: the kernel's own non-zero value is kept; 0 is replaced.
    ("el8", {}, [], False, []),
    ("el8-max0", {"user.max_user_namespaces": 15000}, [], False, []),
    ("el9", {}, [], False, []),
    # Debian's switch, wherever the kernel has it.
    ("debian12", {"kernel.unprivileged_userns_clone": 1}, [], False, []),
    ("debian12-clone0", {"kernel.unprivileged_userns_clone": 1}, [], False, []),
    ("ubuntu24.04-restricted-noprofile", {"kernel.unprivileged_userns_clone": 1}, [], True, []),
    ("ubuntu24.04-restricted-profile", {"kernel.unprivileged_userns_clone": 1}, [], True, []),
]


@pytest.mark.parametrize(("case", "sysctl", "boot_args", "apparmor", "manual"), PLANS, ids=[p[0] for p in PLANS])
def test_plan_on_recorded_platforms(verdict, case, sysctl, boot_args, apparmor, manual):
    plan = userns_plan(verdict(case))
    assert plan["sysctl"] == sysctl
    assert plan["boot_args"] == boot_args
    assert bool(plan["apparmor_starter"]) is apparmor
    assert [step["kind"] for step in plan["manual"]] == manual
    assert plan["errors"] == []


def test_profile_names_the_starter_actually_installed(verdict):
    compat = verdict("ubuntu24.04-restricted-noprofile")
    plan = userns_plan(compat)
    assert plan["apparmor_starter"] == compat["apptainer"]["starter"]
    assert plan["apparmor_starter"].endswith("/apptainer/bin/starter")
    assert userns_plan(compat, starter="/opt/apptainer/libexec/apptainer/bin/starter")["apparmor_starter"] == (
        "/opt/apptainer/libexec/apptainer/bin/starter"
    )


def test_without_apptainer_the_profile_waits_and_says_why(verdict):
    plan = userns_plan(verdict("ubuntu24.04-restricted-noapptainer"))
    assert plan["apparmor_starter"] == ""
    assert any("no Apptainer starter is installed" in note for note in plan["notes"])


def test_sysctl_method_lifts_the_restriction_for_every_program(verdict):
    plan = userns_plan(verdict("ubuntu24.04-restricted-noprofile"), apparmor_method="sysctl")
    assert plan["sysctl"]["kernel.apparmor_restrict_unprivileged_userns"] == 0
    assert plan["apparmor_starter"] == ""


def test_a_value_lower_than_the_kernels_is_refused_with_the_fix(verdict):
    compat = verdict("el7.9-enabled", **{"proc/sys/user/max_user_namespaces": 30000})
    plan = userns_plan(compat, max_user_namespaces=15000)
    assert "user.max_user_namespaces" not in plan["sysctl"]
    assert plan["errors"] == [
        "userns_max_user_namespaces=15000 would lower the kernel's user.max_user_namespaces=30000: "
        "set userns_max_user_namespaces to 30000 or more (sitekit never lowers it)"
    ]
    assert userns_plan(compat, max_user_namespaces=30000)["sysctl"]["user.max_user_namespaces"] == 30000


def test_a_value_sitekit_persisted_stays_managed(verdict):
    # EL8 after sitekit replaced a 0: the kernel now has 15000, which is sitekit's own value.
    compat = verdict("el8-max0", **{"proc/sys/user/max_user_namespaces": 15000})
    plan = userns_plan(compat, persisted={"user.max_user_namespaces": "15000"})
    assert plan["sysctl"] == {"user.max_user_namespaces": 15000}
    assert plan["absent"] == []


def test_net_namespaces_off_and_back_on(verdict):
    compat = verdict("el9")
    assert userns_plan(compat, disable_net_namespaces=True)["sysctl"] == {"user.max_net_namespaces": 0}
    back = userns_plan(compat, persisted={"user.max_net_namespaces": "0"})
    assert back["sysctl"] == {}
    assert back["absent"] == ["user.max_net_namespaces"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_user_namespaces": 0}, "max_user_namespaces must be a positive integer"),
        ({"max_user_namespaces": "15000"}, "max_user_namespaces must be a positive integer"),
        ({"apparmor_method": "off"}, "apparmor_method must be 'profile' or 'sysctl'"),
    ],
)
def test_bad_settings_are_rejected(verdict, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        userns_plan(verdict("el9"), **kwargs)


def test_input_that_is_not_a_verdict_is_rejected():
    with pytest.raises(AnsibleFilterError, match="expected the kernel_compat module's result"):
        userns_plan({"platform": "el9"})


def test_sysctl_conf_values_reads_a_sysctl_file():
    text = "# managed\nuser.max_user_namespaces = 15000\n; old\n-kernel.unprivileged_userns_clone=1\n\n"
    assert sysctl_conf_values(text) == {"user.max_user_namespaces": "15000", "kernel.unprivileged_userns_clone": "1"}
    assert sysctl_conf_values(None) == {}
