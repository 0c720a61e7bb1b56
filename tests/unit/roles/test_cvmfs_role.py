"""The cvmfs role's new pieces: default.local as the role renders it on a node (CVMFS_PAC_URLS with auto,
CVMFS_NFILES within the node's open-file limit) and the condition under which a configuration change reloads the
running clients.

The rendering runs the role's validate tasks on this machine (connection local, check mode: nothing is written) with
the role's defaults. The reload condition is the handler's own `when`, evaluated on the recorded mount tables of
tests/unit/data/cvmfs/: the lab's stand-in has no cvmfs_config, so the reload itself runs only where a client does.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import sitekit_cvmfs
import yaml
from conftest import run_play

TOP = Path(__file__).resolve().parents[3]
ROLE = TOP / "roles" / "cvmfs"
DATA = TOP / "tests" / "unit" / "data" / "cvmfs"
PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    cvmfs_repositories: [software.sitekit.lab]
    cvmfs_source: none
  tasks:
    - name: Render default.local with the role's own tasks
      ansible.builtin.include_role:
        name: cvmfs
        tasks_from: validate
    - name: Show it
      ansible.builtin.debug:
        msg: "BEGIN{{ __cvmfs_default_local }}END"
    - name: Show the override files
      ansible.builtin.debug:
        msg: >-
          FILES{{ __cvmfs_override_files | to_json | b64encode }}SELIF
"""


def render(tmp_path, extra=None):
    run = run_play(tmp_path, PLAY, extra, check=True)
    found = re.search(r"BEGIN(.*?)END", run.stdout.encode().decode("unicode_escape"), re.S)
    return run, (found.group(1) if found else None)


def test_the_defaults_with_auto_name_the_sites_wpad_and_fit_the_open_file_limit(tmp_path):
    run, text = render(tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    params = sitekit_cvmfs.parse_parameters(text)
    assert params["CVMFS_HTTP_PROXY"] == "auto;DIRECT"
    assert params["CVMFS_PAC_URLS"] == "http://grid-wpad/wpad.dat;http://wpad/wpad.dat"
    facts = sitekit_cvmfs.read_nofile_facts()
    nfiles = int(params.get("CVMFS_NFILES", sitekit_cvmfs.DEFAULT_NFILES))
    assert sitekit_cvmfs.judge_nfiles(nfiles, facts)["ok"]


def test_no_pac_urls_without_auto_and_the_sites_own(tmp_path):
    run, text = render(tmp_path, '{"cvmfs_http_proxy": ["http://squid1:3128", "DIRECT"]}')
    assert run.returncode == 0 and "CVMFS_PAC_URLS" not in text
    run, text = render(tmp_path, '{"cvmfs_pac_urls": ["http://pac.example.org/site.pac"]}')
    assert "CVMFS_PAC_URLS='http://pac.example.org/site.pac'" in text


def test_a_bad_pac_url_and_an_impossible_nfiles_fail_naming_the_variable(tmp_path):
    run, _ = render(tmp_path, '{"cvmfs_pac_urls": ["http://wpad"]}')
    assert run.returncode != 0 and "cvmfs_pac_urls: item 1 ('http://wpad')" in run.stdout
    # Above any kernel's fs.nr_open ceiling: no node can give the client this many.
    run, _ = render(tmp_path, '{"cvmfs_nfiles": 2147483648}')
    assert run.returncode != 0 and "cvmfs_nfiles: cvmfs_nfiles=2147483648: Failed to set maximum" in run.stdout


def test_a_quota_the_cache_filesystem_cannot_hold_fails_before_any_change_naming_the_variable(tmp_path):
    """The role's own validation on this machine: its real mount table and statvfs, nothing written (check mode)."""
    cache = sitekit_cvmfs.read_cache({"CVMFS_CACHE_BASE": str(tmp_path)})
    if cache["kind"] != "local":
        pytest.skip(f"tmp_path is on {cache['filesystem']}: the type fails before the size")
    too_big = cache["size_mb"]
    run, _ = render(tmp_path, json.dumps({"cvmfs_quota_limit": too_big, "cvmfs_cache_base": str(tmp_path / "c")}))
    out = re.sub(r"\s+", " ", run.stdout)
    assert run.returncode != 0
    assert f"cvmfs: cvmfs_quota_limit={too_big} with cvmfs_cache_base={tmp_path / 'c'}: the filesystem" in out
    assert f"too small for CVMFS_QUOTA_LIMIT={too_big} MB plus the client's margin of 20 % + 1024 MB" in out
    assert f"Fix: set cvmfs_quota_limit to at most {cache['suggested_quota']} MB, or give the cache" in out
    assert "BEGIN" not in out  # it stopped in validation


def test_a_cache_on_a_memory_filesystem_fails_naming_cvmfs_cache_base(tmp_path):
    mounts = sitekit_cvmfs.parse_mountinfo(sitekit_cvmfs.read_mountinfo())
    tmpfs = next(
        (m["mount_point"] for m in mounts if m["fstype"] == "tmpfs" and os.access(m["mount_point"], os.R_OK)), None
    )
    if tmpfs is None:
        pytest.skip("no tmpfs mounted on this machine")
    run, _ = render(tmp_path, json.dumps({"cvmfs_cache_base": f"{tmpfs.rstrip('/')}/sitekit-cvmfs-cache"}))
    out = re.sub(r"\s+", " ", run.stdout)
    assert run.returncode != 0 and "is on a memory filesystem (tmpfs" in out
    assert "Fix: set cvmfs_cache_base to a directory on a local disk" in out


def override_files(run):
    """{'config.d': {repository: text}, 'domain.d': {domain: text}} from the role's list of files to write."""
    found = re.search(r"FILES(.*?)SELIF", run.stdout)
    if not found:
        return None
    files = {"config.d": {}, "domain.d": {}}
    for entry in json.loads(base64.b64decode(found.group(1))):
        directory, name = entry["path"].split("/")[-2:]
        assert entry["path"] == f"/etc/cvmfs/{directory}/{name}" and name.endswith(".local")
        files[directory][name.removesuffix(".local")] = entry["content"]
    return files


EXPERIMENT = {
    "cvmfs_default_local_extra": {"CMS_LOCAL_SITE": "T2_XX_Default"},
    "cvmfs_repository_config": {"cms.cern.ch": {"CMS_LOCAL_SITE": "T2_XX_Lab", "CVMFS_QUOTA_LIMIT": 4000}},
    "cvmfs_domain_config": {"cern.ch": {"CMS_LOCAL_SITE": "T2_XX_Domain"}},
}


def test_an_experiments_variable_is_written_to_default_local_and_to_the_override_files(tmp_path):
    run, text = render(tmp_path, json.dumps(EXPERIMENT))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert sitekit_cvmfs.parse_parameters(text)["CMS_LOCAL_SITE"] == "T2_XX_Default"
    files = override_files(run)
    assert sitekit_cvmfs.parse_parameters(files["config.d"]["cms.cern.ch"]) == {
        "CMS_LOCAL_SITE": "T2_XX_Lab",
        "CVMFS_QUOTA_LIMIT": "4000",
    }
    assert sitekit_cvmfs.parse_parameters(files["domain.d"]["cern.ch"]) == {"CMS_LOCAL_SITE": "T2_XX_Domain"}
    for text in files["config.d"].values():
        assert text.startswith("# ")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"cvmfs_default_local_extra": {"CMS-SITE": "x"}}, "cvmfs_default_local_extra: parameter name 'CMS-SITE'"),
        (
            {"cvmfs_repository_config": {"cms.cern.ch": {"IFS": ":"}}},
            "cvmfs_repository_config[cms.cern.ch]: parameter name IFS is a variable the shell itself uses",
        ),
        (
            {"cvmfs_domain_config": {"cern.ch": {"CMS_LOCAL_SITE": "T2 *"}}},
            "cvmfs_domain_config[cern.ch]: CMS_LOCAL_SITE: value 'T2 *' contains * ? or [",
        ),
        (
            {"cvmfs_repository_config": {"../../etc/x": {"A": 1}}},
            "cvmfs_repository_config: key '../../etc/x' is not a fully qualified repository name",
        ),
        ({"cvmfs_domain_config": {"CERN.CH": {"A": 1}}}, "cvmfs_domain_config: key 'CERN.CH' is not a domain"),
    ],
    ids=["name-default-local", "shell-name-repository", "value-domain", "repository-key", "domain-key"],
)
def test_a_bad_name_value_or_key_fails_in_validation_naming_the_variable_and_the_key(tmp_path, extra, message):
    run, _ = render(tmp_path, json.dumps(extra))
    assert run.returncode != 0
    assert message in re.sub(r"\s+", " ", run.stdout), run.stdout[-3000:]


# --- the reload handler --------------------------------------------------------------------------

HANDLERS = yaml.safe_load((ROLE / "handlers" / "main.yml").read_text())
TOPIC = "Apply the CVMFS configuration"


def handler(name):
    return next(h for h in HANDLERS if h["name"] == name)


def condition(when, variables):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["b64decode"] = lambda text: base64.b64decode(text).decode()
    env.filters["cvmfs_mounted_repositories"] = sitekit_cvmfs.mounted_repositories
    conditions = when if isinstance(when, list) else [when]
    # all() stops at the first false condition, as Ansible does.
    return all(env.from_string("{{ (" + c + ") | string }}").render(**variables) == "True" for c in conditions)


def test_every_configuration_task_notifies_the_topic_the_reload_listens_to():
    notified = set()
    for path in (ROLE / "tasks").glob("*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            written = task.get("ansible.builtin.copy", {}).get("dest") or task.get("sitekit_files", {}).get("files")
            if "/etc/cvmfs" in str(written or ""):
                notified.add(task.get("notify"))
    assert notified == {TOPIC}
    listeners = [h["name"] for h in HANDLERS if h.get("listen") == TOPIC]
    assert listeners == [
        "Set up the CVMFS client",
        "Read the mount table for running CVMFS clients",
        "Reload the running CVMFS clients",
    ]
    assert handler("Reload the running CVMFS clients")["ansible.builtin.command"]["argv"] == ["cvmfs_config", "reload"]


MOUNT_TABLES = {
    "mountinfo-el9-cvmfs-static.yml": True,
    "mountinfo-el9-cvmfs-autofs.yml": True,
    "mountinfo-wn2-plain.yml": False,  # the stand-in before any access: nothing mounted
    "mountinfo-wn2-autofs.yml": False,  # the stand-in's bind mounts are no CVMFS client
}


@pytest.mark.parametrize("name", sorted(MOUNT_TABLES))
@pytest.mark.parametrize("client", [True, False], ids=["client", "no-client"])
def test_the_reload_runs_only_where_a_client_serves_a_repository(name, client):
    data = yaml.safe_load((DATA / name).read_text())
    text = data.get("mountinfo") or data["after"]
    when = handler("Reload the running CVMFS clients")["when"]
    variables = {
        "__cvmfs_client": {"paths": {"/usr/bin/cvmfs_config": {"exists": client}}},
        # With no client the slurp is skipped: its result has no content, and the condition must not reach it.
        "__cvmfs_mountinfo": {"content": base64.b64encode(text.encode()).decode()} if client else {"skipped": True},
    }
    assert condition(when, variables) is (client and MOUNT_TABLES[name])
    read = handler("Read the mount table for running CVMFS clients")["when"]
    assert read == "__cvmfs_client.paths['/usr/bin/cvmfs_config'].exists"


# --- the probe command ------------------------------------------------------------------------------


def test_the_probe_command_judges_the_cache_of_another_configuration_root(tmp_path):
    """sitekit-cvmfs-probe as the role renders it, with sitekit's node library beside it, run for real: a planned
    configuration (--config-root) whose quota the cache filesystem cannot hold fails with the cause and remedy."""
    from ansible.plugins.filter.core import comment

    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("sitekit_cvmfs.py", "sitekit_proc.py"):
        (lib / name).write_text((TOP / "module_utils" / name).read_text())
    (tmp_path / "cvmfs" / "good.example.org").mkdir(parents=True)
    (tmp_path / "cvmfs" / "good.example.org" / "README").write_text("x\n")
    settings = {"repositories": ["good.example.org"], "mountpoint": str(tmp_path / "cvmfs"), "timeout": 10}
    (lib / "cvmfs-probe.json").write_text(json.dumps(settings))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), keep_trailing_newline=True)
    env.filters["comment"] = comment
    command = tmp_path / "sitekit-cvmfs-probe"
    command.write_text(
        env.get_template("sitekit-cvmfs-probe.j2").render(ansible_managed="Managed by sitekit", __cvmfs_libdir=lib)
    )
    cache = sitekit_cvmfs.read_cache({"CVMFS_CACHE_BASE": str(tmp_path)})
    if cache["kind"] != "local":
        pytest.skip(f"tmp_path is on {cache['filesystem']}: the type fails before the size")
    config = tmp_path / "etc-cvmfs"
    config.mkdir()

    def probe(quota):
        # CVMFS_NFILES within any machine's open-file limit: only the cache decides.
        text = f"CVMFS_CACHE_BASE={tmp_path / 'cache'}\nCVMFS_QUOTA_LIMIT={quota}\nCVMFS_NFILES=1024\n"
        (config / "default.local").write_text(text)
        argv = [sys.executable, str(command), "--config-root", str(config)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    run = probe(cache["size_mb"])
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["repositories"][0]["readable"]
    assert run.stderr.startswith(
        "cvmfs_probe: the cache cannot serve as configured. CVMFS cache: Cause: the filesystem"
    )
    assert f"Remedy: set CVMFS_QUOTA_LIMIT to at most {cache['suggested_quota']} MB" in run.stderr
    run = probe(1000)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["cache"]["quota_limit"] == 1000
    bad = subprocess.run([sys.executable, str(command), "--config-root"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "--config-root needs a directory" in bad.stderr
