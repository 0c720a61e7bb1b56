"""kernel_compat's verdict agrees with what the kernel really does, on the node and in a confined view of it.

Lab nodes share the machine's kernel: a test never changes a machine-wide setting. To see a node
with user namespaces off, the test gives a process its own user namespace (every uid of the node
mapped to itself) and sets user.max_user_namespaces = 0 there: that limit is per user namespace, so only
processes inside it are affected, and it is gone when they exit.
"""

import json
import shlex

import pytest
from conftest import CONFINED, NOBODY


def _workers(hostvars):
    if "worker_nodes" not in hostvars.get("group_names", []):
        pytest.skip("kernel checks run on worker nodes")


def _compat(ansible_host, interpreter=None):
    extra = {"extra_vars": {"ansible_python_interpreter": interpreter}} if interpreter else {}
    result = ansible_host.ansible("kernel_compat", "", check=False, become=True, **extra)
    assert "platform" in result, result
    return result


def _userns_works(host, prefix=""):
    """Whether nobody can create a user namespace with a mount namespace, as Apptainer needs (``prefix``: a view)."""
    return host.run(f"{prefix} {NOBODY} unshare --user --map-root-user --mount true").rc == 0


def _overlay_works(host):
    script = (
        "d=$(mktemp -d) && mkdir $d/l $d/u $d/w $d/m && "
        "unshare --user --map-root-user --mount sh -c "
        + shlex.quote('mount -t overlay overlay -o lowerdir="$0/l,upperdir=$0/u,workdir=$0/w" "$0/m"')
        + " $d; rc=$?; rm -rf $d; exit $rc"
    )
    return host.run(f"{NOBODY} sh -c {shlex.quote(script)}").rc == 0


def test_verdict_agrees_with_the_kernel_on_the_node(host, hostvars, _testinfra_host):
    _workers(hostvars)
    verdict = _compat(_testinfra_host)
    assert verdict["userns_enabled"] == _userns_works(host)
    assert (verdict["mode"] == "unprivileged") == verdict["userns_enabled"]
    # Apptainer's unprivileged overlay choice: kernel overlayfs exactly when an unprivileged mount works.
    assert (verdict["overlay"] == "kernel") == _overlay_works(host)


def test_userns_off_is_reported_with_the_remedy_that_fixes_it(host, hostvars, _testinfra_host, confined):
    _workers(hostvars)
    verdict = _compat(_testinfra_host, interpreter=confined(0))
    assert verdict["facts"]["max_user_namespaces"] == 0
    assert verdict["userns_enabled"] is False
    assert verdict["mode"] != "unprivileged"
    assert not _userns_works(host, CONFINED), "the confined view must really have user namespaces off"
    sysctl = [step for step in verdict["remediation"] if step["kind"] == "sysctl"]
    assert sysctl and sysctl[0]["key"] == "user.max_user_namespaces", json.dumps(verdict["remediation"])

    # Apply the remedy as the verdict states it, in a confined view: user namespaces work again,
    # and the verdict there agrees and asks for nothing more about them.
    value = int(sysctl[0]["value"])
    assert _userns_works(host, f"env SITEKIT_MAX_USERNS={value} {CONFINED}")
    fixed = _compat(_testinfra_host, interpreter=confined(value))
    assert fixed["facts"]["max_user_namespaces"] == value
    assert fixed["userns_enabled"] is True
    assert not [step for step in fixed["remediation"] if step["key"] == "user.max_user_namespaces"]
