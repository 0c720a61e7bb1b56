"""The pull scenario's testinfra fixtures.

``host`` and ``hostvars`` are the shared ones (molecule/resources/tests/conftest.py): commands go through
``podman exec`` (``podman://`` hosts), expected values come from Molecule's inventory. ``pull`` starts the node's
sitekit-ansible-pull.service once and returns what that run did; ``repo`` runs git in the site repository the node
pulls from and ``publish`` commits a change of one file there; ``pull_playbook`` runs playbooks/pull.yml from the
controller with extra variables; ``figures`` collects the measured figures, prints them at the end and writes them
to .lab/pull/figures.json.
"""

import importlib.util
import json
import os
import re
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
host = _shared.host

UNIT = "sitekit-ansible-pull"
# The bare repository prepare.yml publishes the working tree to (the node sees it at /srv/sitekit-pull).
REPO = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "sitekit.git"
FIGURES = TOP / ".lab" / "pull" / "figures.json"


class PullRun:
    """One run of the service: its outcome from systemd and its own lines from the journal."""

    def __init__(self, rc, seconds, load, props, journal):
        self.rc, self.seconds, self.load, self.props, self.journal = rc, seconds, load, props, journal

    def figure(self):
        """The run's wall time, with the machine's load (the nodes share its kernel and its two cores)."""
        return f"{self.seconds:.1f} s (load average {self.load})"

    def recap(self, name):
        """The PLAY RECAP counters of inventory host NAME, as a dict of ints (empty when there is none)."""
        line = re.search(rf"^{re.escape(name)}\s*:\s*(.*)$", self.journal, re.M)
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.group(1))} if line else {}


@pytest.fixture
def pull(host):
    """Start the service and wait for it (a oneshot service: systemctl start returns when the run is over)."""

    def run():
        t0 = time.monotonic()
        started = host.run(f"systemctl start {UNIT}.service")
        seconds = time.monotonic() - t0
        load = host.check_output("cut -d' ' -f1 /proc/loadavg")
        show = host.check_output(f"systemctl show -p Result -p ExecMainStatus -p InvocationID {UNIT}.service")
        props = dict(line.split("=", 1) for line in show.splitlines())
        # journald may take a moment to write the last lines of the run.
        journal = ""
        for _ in range(20):
            journal = host.run(f"journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={props['InvocationID']}").stdout
            if "PLAY RECAP" in journal or props["Result"] != "success":
                break
            time.sleep(0.5)
        return PullRun(started.rc, seconds, load, props, journal)

    return run


def _git(*args, index=None, stdin=None):
    env = dict(os.environ, GIT_DIR=str(REPO))
    if index:
        env["GIT_INDEX_FILE"] = str(index)
    res = subprocess.run(["git", *args], env=env, input=stdin, capture_output=True, text=True, check=True)
    return res.stdout.strip()


@pytest.fixture
def repo():
    """Run git on the site repository (the bare repository the node pulls from); returns its output."""
    return _git


@pytest.fixture
def publish():
    """Commit new content for one path of the site repository's branch, as a site admin's push would."""

    def commit(path, content, message):
        branch = "refs/heads/" + _git("symbolic-ref", "--short", "HEAD")
        index = REPO / "test-commit.index"
        try:
            _git("read-tree", branch, index=index)
            blob = _git("hash-object", "-w", "--stdin", stdin=content)
            _git("update-index", "--cacheinfo", f"100644,{blob},{path}", index=index)
            tree = _git("write-tree", index=index)
        finally:
            index.unlink(missing_ok=True)
        new = _git(
            "-c", "user.name=sitekit-molecule", "-c", "user.email=molecule@sitekit.invalid",
            "commit-tree", "-p", branch, "-m", message, tree,
        )  # fmt: skip
        _git("update-ref", branch, new)
        return new

    return commit


def playbook_env():
    return lab_nodes.ansible_env(ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")


@pytest.fixture
def pull_playbook(hostvars):
    """Start playbooks/pull.yml on this node with extra variables (Molecule's inventory); returns the process.

    ``units_only`` applies only the service and the timer (and the validation): what a changed setting touches.
    """

    def start(extra, units_only=False):
        argv = [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            "-l",
            hostvars["inventory_hostname"],
            str(TOP / "playbooks/pull.yml"),
            "-e",
            json.dumps(extra),
            *(["--tags", "ansible_pull_units"] if units_only else []),
        ]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=playbook_env())

    return start


_FIGURES = {}


@pytest.fixture(scope="session")
def figures():
    return _FIGURES


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(_FIGURES, indent=2) + "\n")
    terminalreporter.write_sep("-", f"pull scenario figures (also in {FIGURES.relative_to(TOP)})")
    for name, value in _FIGURES.items():
        terminalreporter.write_line(f"{name}: {value}")


def pytest_collection_modifyitems(config, items):
    """The tests run against the pull node; the ARA node (sk-pull-ara1) is reached from them."""
    kept = [item for item in items if not hasattr(item, "callspec") or "sk-pull-ara1" not in item.callspec.id]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
