"""callback_plugins/sitekit_preload: a worker forked after the playbook starts templates with filters without loading
any plugin file itself (every task of every node runs in such a worker)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# Counts the plugin files loaded in a process forked as Ansible forks a task's worker, which then templates with one
# of sitekit's filters and one of ansible's; its exit status is that count (255: the template gave a wrong value).
WORKER = """
import os, sys
from ansible.plugins import loader
loaded = []
original = loader.PluginLoader._load_module_source
def counting(self, *args, **kwargs):
    loaded.append(args)
    return original(self, *args, **kwargs)
loader.PluginLoader._load_module_source = counting
if sys.argv[1] == "preload":
    sys.path.insert(0, "callback_plugins")
    import sitekit_preload
    sitekit_preload.CallbackModule().v2_playbook_on_start(None)
pid = os.fork()
if pid == 0:
    del loaded[:]
    from ansible.template import Templar, trust_as_template
    value = Templar(loader=None).template(trust_as_template("{{ [{'node': 'wn1'}] | sitekit_table | to_json }}"))
    os._exit(min(len(loaded), 254) if value == '["node", "----", "wn1"]' else 255)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def worker_loads(mode):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    run = subprocess.run([sys.executable, "-c", WORKER, mode], cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode != 255, f"the worker's template gave a wrong value: {run.stderr[-1500:]}"
    return run.returncode


def test_a_forked_worker_loads_no_plugin_file_after_the_preload():
    assert worker_loads("preload") == 0


def test_without_the_preload_every_worker_loads_the_plugin_files_again():
    # The cost the callback removes: without it, each worker loads the filter plugin files (sitekit's and ansible's).
    assert worker_loads("none") > 5
