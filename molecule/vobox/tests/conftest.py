"""The vobox scenario's testinfra fixtures: the shared ones (molecule/resources/tests/conftest.py) and the node's.

``host`` drives the VO-box node through ``podman exec`` (the inventory reaches it over SSH); ``vobox_check`` runs the
vobox_check module on it through Ansible, with the inventory's services; ``figures`` collects the measured times and
writes them to $MOLECULE_EPHEMERAL_DIRECTORY/vobox-figures.json (and prints them at the end of the session).
"""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("sitekit_shared_conftest", TOP / "molecule/resources/tests/conftest.py")
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)
_spec = importlib.util.spec_from_file_location("lab_nodes", TOP / "molecule/resources/tests/lab_nodes.py")
lab_nodes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab_nodes)
hostvars = _shared.hostvars
playbook = _shared.playbook
apply_role = _shared.apply_role

FIGURES = {}


@pytest.fixture(scope="module")
def host(hostvars):
    """The node through podman exec: Ansible reaches it over SSH, testinfra need not (it is faster so)."""
    return lab_nodes.podman_host(hostvars["inventory_hostname"])


@pytest.fixture(scope="module")
def services(hostvars):
    """The inventory's services, as the role's filter normalises them."""
    import sys

    sys.path.insert(0, str(TOP / "module_utils"))
    import sitekit_vobox

    # The archive path is a template in the inventory (the tests need no archive).
    return sitekit_vobox.plan([{**s, "archive": ""} for s in hostvars["vobox_services_list"]])


@pytest.fixture
def vobox_check(hostvars, services):
    """Run the vobox_check module on the node (fail_on_error false); returns {service name: result} and ready."""

    def run(selected=None):
        chosen = [s for s in services if selected is None or s["name"] in selected]
        args = json.dumps({"services": chosen, "fail_on_error": False, "timeout": 20})
        env = lab_nodes.ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="true", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        argv = ["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], hostvars["inventory_hostname"]]
        done = subprocess.run(
            [*argv, "-m", "vobox_check", "-a", args], capture_output=True, text=True, env=env, timeout=300
        )
        data = json.loads(done.stdout[done.stdout.index("{") :])
        result = data["plays"][0]["tasks"][0]["hosts"][hostvars["inventory_hostname"]]
        assert "services" in result, result
        return {s["name"]: s for s in result["services"]}, result["ready"]

    return run


@pytest.fixture
def break_repository():
    """break_repository(testinfra host, repository) -> repair(): the lab's CVMFS broken on the node, in its mode."""

    return lab_nodes.break_repository


@pytest.fixture(scope="session")
def figures():
    yield FIGURES
    if FIGURES:
        out = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / "vobox-figures.json"
        out.write_text(json.dumps(FIGURES, indent=1, sort_keys=True) + "\n")
        print("\nmeasured figures (" + str(out) + "):\n" + json.dumps(FIGURES, indent=1, sort_keys=True))
