"""Bad input fails before any change, with a message that names the variable and the fix."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[3]

CASES = [
    ("userns", {"userns_max_user_namespaces": "lots"}, "userns_max_user_namespaces"),
    (
        "userns",
        {"userns_max_user_namespaces": -5},
        "userns_max_user_namespaces=-5 and userns_reboot_timeout=900 must be positive integers",
    ),
    ("userns", {"userns_apparmor_method": "off"}, "userns_apparmor_method"),
    ("userns", {"userns_require": "root"}, "userns_require"),
    (
        "apptainer",
        {"apptainer_source": "url", "apptainer_package_urls": []},
        "apptainer_source=url needs apptainer_package_urls",
    ),
    ("apptainer", {"apptainer_source": "none"}, "apptainer_path (absolute path"),
    ("apptainer", {"apptainer_bind_paths_extra": ["scratch"]}, "must be absolute paths (got ['scratch'])"),
    ("apptainer", {"apptainer_conf_extra": {"enable magic": True}}, "'enable magic': not a key this file documents"),
    ("apptainer", {"apptainer_allow_container": "sif"}, "apptainer_allow_container"),
]


@pytest.mark.parametrize(("role", "bad", "message"), CASES, ids=[f"{c[0]}-{next(iter(c[1]))}" for c in CASES])
def test_bad_input_fails_before_any_change(hostvars, role, bad, message):
    if "worker_nodes" not in hostvars.get("group_names", []):
        pytest.skip("the roles under test run on worker nodes")
    if role == "apptainer" and not hostvars.get("apptainer_enabled", True):
        pytest.skip("Apptainer is off for this distribution in the lab")
    env = dict(os.environ, ANSIBLE_NOCOLOR="true", ANSIBLE_FORCE_COLOR="false")
    for var, sub in (("ANSIBLE_LIBRARY", "library"), ("ANSIBLE_MODULE_UTILS", "module_utils")):
        env[var] = str(TOP / sub)
    env["ANSIBLE_FILTER_PLUGINS"] = str(TOP / "filter_plugins")
    env["ANSIBLE_ROLES_PATH"] = str(TOP / "roles")
    extra = json.dumps({"sitekit_test_role": role, **bad})
    argv = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-l", hostvars["inventory_hostname"]]
    argv += [str(TOP / "molecule" / "resources" / "apply-role.yml"), "-e", extra]
    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    out = re.sub(r"\s+", " ", run.stdout + run.stderr)
    assert run.returncode != 0, out[-2000:]
    assert re.sub(r"\s+", " ", message) in out, out[-3000:]
    recap = re.search(rf"{re.escape(hostvars['inventory_hostname'])}\s*: ok=\d+ changed=(\d+)", out)
    assert recap and recap.group(1) == "0", "bad input must fail before any change: " + out[-1500:]
