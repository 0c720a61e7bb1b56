"""The htcondor scenario's testinfra fixtures: the shared ones (molecule/resources/tests/conftest.py), and the pool.

``host`` always drives the node through ``podman exec`` (the inventory reaches it over SSH).

``node`` reaches any node of the scenario by its inventory name through ``podman exec``; ``submit`` submits jobs
on the central manager as an unprivileged user and waits for them; ``figures`` collects the measured figures and
writes them to $MOLECULE_EPHEMERAL_DIRECTORY/htcondor-figures.json (and prints them at the end of the session).
"""

import importlib.util
import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("sitekit_shared_conftest", TOP / "molecule/resources/tests/conftest.py")
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)
_spec = importlib.util.spec_from_file_location("lab_nodes", TOP / "molecule/resources/tests/lab_nodes.py")
lab_nodes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab_nodes)
# The shared fixtures, under their own names (pytest collects fixtures found in a conftest's namespace).
hostvars = _shared.hostvars
playbook = _shared.playbook
apply_role = _shared.apply_role


@pytest.fixture(scope="module")
def host(hostvars):
    """The node through podman exec: Ansible reaches these nodes over SSH, testinfra need not (it is faster so)."""
    return lab_nodes.podman_host(hostvars["inventory_hostname"])


@pytest.fixture
def apply_role_started(hostvars):
    """Start molecule/resources/apply-role.yml on this node with extra variables; returns the running process.

    The same command and environment as the shared ``playbook`` fixture, without waiting, so that several bad-input
    runs (which only read the node) go side by side.
    """

    def start(role, extra):
        env = lab_nodes.ansible_env(ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
        argv = [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            "-l",
            hostvars["inventory_hostname"],
            str(TOP / "molecule/resources/apply-role.yml"),
            "-e",
            json.dumps({"sitekit_test_role": role, **extra}),
        ]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    return start


SUBMITTER = "sitekit-submit"
FIGURES = {}


@pytest.fixture(scope="session")
def node():
    """node(name) -> a testinfra host for the scenario node with that inventory name (podman exec)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = lab_nodes.podman_host(name)
        return cache[name]

    return get


@pytest.fixture
def break_repository():
    """break_repository(testinfra host, repository) -> repair(): the lab's CVMFS broken on one node, in its mode."""

    return lab_nodes.break_repository


@pytest.fixture(scope="session")
def figures():
    yield FIGURES
    if FIGURES:
        out = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / "htcondor-figures.json"
        out.write_text(json.dumps(FIGURES, indent=1, sort_keys=True) + "\n")
        print("\nmeasured figures (" + str(out) + "):\n" + json.dumps(FIGURES, indent=1, sort_keys=True))


JOB = r"""#!/bin/sh
# What the job sees, one fact per line (the test reads them back).
echo "os=$(. /etc/os-release; echo "$PRETTY_NAME")"
echo "cwd=$(pwd)"
n=0; for d in /proc/[0-9]*; do n=$((n+1)); done; echo "procs=$n"
echo "ps=$(ps -e -o comm= | tr '\n' ' ')"
echo "pid1=$(cat /proc/1/comm)"
echo "cvmfs=$(ls /cvmfs/images.sitekit.lab 2>&1 | tr '\n' ' ')"
echo "machine=$(sed -n 's/^Machine = "\(.*\)"$/\1/p' "$_CONDOR_MACHINE_AD")"
echo "tmp=$(stat -c %U /tmp)"
echo "image=$(cat /etc/sitekit-test-image 2>/dev/null)"
"""


class Pool:
    """Jobs on the central manager, submitted as an unprivileged user (the schedd refuses root)."""

    def __init__(self, cm):
        self.cm = cm
        self.home = f"/home/{SUBMITTER}"
        cm.run_expect([0], f"id {SUBMITTER} || useradd -m {SUBMITTER}")
        cm.run_expect([0], f"printf %s {shlex.quote(JOB)} > {self.home}/job.sh && chmod 0755 {self.home}/job.sh")
        cm.run_expect([0], f"chown {SUBMITTER}: {self.home}/job.sh")

    def status(self, constraint, *attrs):
        out = self.cm.check_output(f"condor_status -constraint {shlex.quote(constraint)} -af {' '.join(attrs)}")
        return [line.split() for line in out.splitlines()]

    def submit(self, count=1, extra=""):
        """Submit ``count`` jobs; returns the cluster id."""
        sub = (
            "executable = job.sh\noutput = out.$(Cluster).$(Process)\nerror = err.$(Cluster).$(Process)\n"
            "log = job.$(Cluster).log\nshould_transfer_files = YES\nwhen_to_transfer_output = ON_EXIT\n"
            f"request_memory = 64\nrequest_disk = 1024\n{extra}queue {count}\n"
        )
        cmd = f"cd {self.home} && printf %s {shlex.quote(sub)} | condor_submit -terse -"
        out = self.cm.check_output(f"su {SUBMITTER} -s /bin/sh -c {shlex.quote(cmd)}")
        return int(re.match(r"(\d+)\.", out.strip()).group(1))

    def state(self, cluster):
        """The cluster's first job's JobStatus (1 idle, 2 running, 5 held), or None once it left the queue."""
        out = self.cm.check_output(f"condor_q {cluster} -af JobStatus").split()
        return int(out[0]) if out else None

    def remove(self, cluster):
        self.cm.run(f"condor_rm {cluster}")

    def wait(self, cluster, count, limit=180):
        """Wait until the cluster's jobs left the queue; returns their history ads (ProcId order)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            left = self.cm.check_output(f"condor_q {cluster} -af ProcId JobStatus HoldReason")
            if not left.strip():
                break
            if re.search(r"^\d+ 5 ", left, re.M):
                pytest.fail(f"job held: {left}")
            time.sleep(0.5)
        else:
            pytest.fail(f"cluster {cluster} did not finish within {limit} s: {left}")
        attrs = "ProcId ExitCode LastRemoteHost QDate JobCurrentStartDate CompletionDate"
        rows = self.cm.check_output(f"condor_history {cluster} -match {count} -af {attrs}").splitlines()
        return sorted((dict(zip(attrs.split(), r.split())) for r in rows), key=lambda r: int(r["ProcId"]))

    def output(self, cluster, proc):
        text = self.cm.file(f"{self.home}/out.{cluster}.{proc}").content_string
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def pool(node):
    return Pool(node("sk-htcondor-cm"))
