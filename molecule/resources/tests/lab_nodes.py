"""What the scenarios' tests need to reach the lab's nodes, shared by their conftest.py files.

- ``ansible_env(**extra)``: the environment for ansible / ansible-playbook run from a test: this repository's
  modules, module_utils, filters and roles, no colours, plus ``extra``.
- ``podman_host(name)``: a testinfra host driving a node through ``podman exec`` (Ansible reaches the nodes over
  SSH; testinfra need not, and is faster so).
- ``break_repository(node_host, repo)``: lab_cvmfs.break_repository on a testinfra host; returns the repair.

Loaded by path (``importlib.util.spec_from_file_location``) like lab_cvmfs.py: molecule/ is not a package.
"""

import importlib.util
import os
from pathlib import Path

import testinfra

TOP = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("lab_cvmfs", TOP / "molecule/resources/tests/lab_cvmfs.py")
lab_cvmfs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab_cvmfs)


def ansible_env(**extra):
    """os.environ for an Ansible command run on this repository's code, without colours."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="true", ANSIBLE_FORCE_COLOR="false")
    for var, sub in (
        ("ANSIBLE_LIBRARY", "library"),
        ("ANSIBLE_MODULE_UTILS", "module_utils"),
        ("ANSIBLE_FILTER_PLUGINS", "filter_plugins"),
        ("ANSIBLE_ROLES_PATH", "roles"),
    ):
        env[var] = str(TOP / sub)
    env.update(extra)
    return env


def podman_host(name):
    """The node (container) ``name`` as a testinfra host, through podman exec."""
    return testinfra.get_host(f"podman://{name}")


def break_repository(node_host, repo):
    """Break ``repo`` on the node the way real nodes break (lab_cvmfs, in the node's mode); returns repair()."""

    def sh(command, check=True):
        return (node_host.run_expect([0], command) if check else node_host.run(command)).stdout

    return lab_cvmfs.break_repository(sh, repo)
