"""The ansible_pull role's input shapes (vars/main.yml) and its systemd units rendered from settings.

The role checks its values on the controller with the regular expressions of vars/main.yml; these tests feed them the
URL, path and time-span forms a site writes, and render the units as the role would. The units run for real in the
molecule scenario ``pull`` (Debian 13).
"""

import os
import re
import shlex
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import comment, to_bool

TOP = Path(__file__).resolve().parents[3]
ROLE = TOP / "roles" / "ansible_pull"
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
# The two expressions vars/main.yml builds with Jinja, built the same way here.
URL_RE = "^(" + "|".join(VARS["__ansible_pull_url_forms"]) + ")$"
TIMESPAN_RE = "^ *([0-9]+ *(" + "|".join(u for u in VARS["__ansible_pull_timespan_seconds"] if u) + ")? *)+$"
assert "{{" in VARS["__ansible_pull_url_re"] and "{{" in VARS["__ansible_pull_timespan_re"]


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.org/grid/sitekit-mysite.git",
        "http://10.0.0.5/site",
        "ssh://git@git.example.org:2222/grid/site.git",
        "git+ssh://git.example.org/grid/site",
        "git://git.example.org/site.git",
        "git@github.com:grid/site.git",
        "file:///srv/git/site.git",
        "https://git.example.org/grid/my%20site.git",
    ],
)
def test_git_urls_are_accepted(url):
    assert re.match(URL_RE, url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "github.com/grid/site",
        "/srv/git/site.git",
        "file://srv/git/site.git",
        "https://git.example.org",
        "ftp://git.example.org/site.git",
        "https://git.example.org/site.git;reboot",
        "https://git.example.org/$(reboot)",
        "https://git.example.org/my site.git",
        "'https://git.example.org/site.git'",
        "--upload-pack=touch@x:y",
    ],
)
def test_malformed_or_unsafe_urls_are_refused(url):
    assert not re.match(URL_RE, url)


@pytest.mark.parametrize(
    ("span", "seconds"),
    [("1h", 3600), ("30min", 1800), ("2h 30min", 9000), ("90", 90), ("1d", 86400), ("0", 0), ("5 min", 300)],
)
def test_time_spans_are_read_as_systemd_reads_them(span, seconds):
    assert re.match(TIMESPAN_RE, span)
    units = VARS["__ansible_pull_timespan_seconds"]
    assert sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+) *([a-z]*)", span)) == seconds


@pytest.mark.parametrize("span", ["", "soon", "hourly", "-1h", "1.5h", "1 fortnight", "1h;reboot"])
def test_other_time_spans_are_refused(span):
    assert not re.match(TIMESPAN_RE, span)


@pytest.mark.parametrize(
    ("pattern", "value", "ok"),
    [
        ("__ansible_pull_relpath_re", "inventories/mysite/hosts.yml", True),
        ("__ansible_pull_relpath_re", "inventories/mysite", True),
        ("__ansible_pull_relpath_re", "/etc/ansible/hosts", False),
        ("__ansible_pull_relpath_re", "-i/etc/hosts", False),
        ("__ansible_pull_abspath_re", "/var/lib/sitekit/ansible-pull", True),
        ("__ansible_pull_abspath_re", "/", False),
        ("__ansible_pull_abspath_re", "var/lib/x", False),
        ("__ansible_pull_ref_re", "production", True),
        ("__ansible_pull_ref_re", "release/2026.11", True),
        ("__ansible_pull_ref_re", "--force", False),
        ("__ansible_pull_limit_re", "wn0042.example.org", True),
        ("__ansible_pull_limit_re", "rack1:&gpu", True),
        ("__ansible_pull_limit_re", "wn1 wn2", False),
        ("__ansible_pull_limit_re", '"wn1"', False),
        ("__ansible_pull_arg_re", "--vault-password-file", True),
        ("__ansible_pull_arg_re", "--tags=squid", True),
        ("__ansible_pull_arg_re", "--tags squid", False),
        ("__ansible_pull_arg_re", "$(reboot)", False),
    ],
)
def test_paths_refs_limits_and_arguments(pattern, value, ok):
    assert bool(re.match(VARS[pattern], value)) is ok


def render(name, **settings):
    # Ansible's template settings: trim_blocks, so a {% if %} line leaves no line of its own.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"), keep_trailing_newline=True, trim_blocks=True
    )
    env.filters.update(comment=comment, bool=to_bool)
    context = {**DEFAULTS, **VARS, "ansible_managed": "Managed by sitekit", **settings}
    context.setdefault("ansible_pull_limit", "wn1")
    if "{{" in str(context["ansible_pull_limit"]):
        context["ansible_pull_limit"] = "wn1"
    return env.get_template(name).render(context)


def exec_start(text):
    """ExecStart's arguments as systemd reads them: continued lines joined, %% unescaped."""
    joined = re.sub(r"\\\n", " ", text)
    line = re.search(r"^ExecStart=(.*)$", joined, re.M).group(1)
    return [arg.replace("%%", "%") for arg in shlex.split(line)]


def test_the_service_runs_ansible_pull_on_the_nodes_own_part_over_the_local_connection():
    text = render(
        "sitekit-ansible-pull.service.j2",
        ansible_pull_repo_url="https://git.example.org/grid/my%20site.git",
        ansible_pull_ref="production",
        ansible_pull_inventory="inventories/mysite/hosts.yml",
        ansible_pull_limit="wn0042",
        ansible_pull_extra_args=["--vault-password-file", "/etc/sitekit/vault-pass"],
    )
    args = exec_start(text)
    # One run at a time with the compliance pass: both take the same lock.
    assert args[:2] == ["/usr/bin/flock", VARS["__ansible_pull_lock"]]
    assert args[2] == "/usr/bin/ansible-pull" and args[-1] == "playbooks/site.yml"

    def value(flag):
        return args[args.index(flag) + 1]

    # A literal % reaches ansible-pull once systemd has read the unit.
    assert value("--url") == "https://git.example.org/grid/my%20site.git"
    assert "%%20" in text
    assert value("--checkout") == "production"
    assert value("--directory") == "/var/lib/sitekit/ansible-pull"
    assert value("--inventory") == "inventories/mysite/hosts.yml"
    assert value("--limit") == "wn0042"
    assert value("--extra-vars") == "ansible_connection=local"
    assert value("--vault-password-file") == "/etc/sitekit/vault-pass"
    assert "--clean" in args and "--only-if-changed" not in args and "--accept-host-key" not in args
    # A missing inventory fails the run instead of falling back to the repository's ansible.cfg.
    assert "Environment=ANSIBLE_INVENTORY=/var/lib/sitekit/ansible-pull/inventories/mysite/hosts.yml" in text
    assert "Environment=ANSIBLE_INVENTORY_UNPARSED_FAILED=true" in text
    assert "WorkingDirectory=/\n" in text
    assert "TimeoutStartSec=1h" in text


def test_optional_flags_appear_only_when_asked_for():
    args = exec_start(
        render(
            "sitekit-ansible-pull.service.j2",
            ansible_pull_repo_url="git@git.example.org:grid/site.git",
            ansible_pull_inventory="inventories/mysite",
            ansible_pull_clean=False,
            ansible_pull_only_if_changed=True,
            ansible_pull_accept_host_key=True,
            ansible_pull_private_key_file="/root/.ssh/sitekit_deploy",
        )
    )
    assert "--checkout" not in args and "--clean" not in args
    assert {"--only-if-changed", "--accept-host-key"} <= set(args)
    assert args[args.index("--private-key") + 1] == "/root/.ssh/sitekit_deploy"


def test_the_timer_waits_the_initial_delay_then_runs_every_interval_with_a_random_splay():
    text = render("sitekit-ansible-pull.timer.j2", ansible_pull_interval="2h 30min")
    assert "OnActiveSec=5min\n" in text
    assert "OnUnitActiveSec=2h 30min\n" in text
    assert "RandomizedDelaySec=10min\n" in text
    assert "WantedBy=timers.target" in text


def _compliance(**settings):
    from ansible.plugins.filter.core import quote

    env_settings = {"__ansible_pull_seconds": {"compliance_interval": 3600}, **settings}
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"), keep_trailing_newline=True, trim_blocks=True
    )
    env.filters.update(comment=comment, bool=to_bool, quote=quote, dirname=os.path.dirname)
    context = {**DEFAULTS, **VARS, "ansible_managed": "Managed by sitekit", "ansible_pull_limit": "wn1"}
    context.update(ansible_pull_inventory="inventories/mysite/hosts.yml", **env_settings)
    return {
        name: env.get_template(f"sitekit-compliance.{name}.j2").render(context) for name in ("sh", "service", "timer")
    }


def test_the_compliance_pass_is_valid_bash_and_records_its_label_and_interval(tmp_path):
    import subprocess

    text = _compliance(ansible_pull_compliance_ara_server="http://ara1.example.org:8000")["sh"]
    script = tmp_path / "sitekit-compliance"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "ARA_DEFAULT_LABELS=sitekit-compliance,interval:3600" in text
    assert "ARA_API_SERVER=$ara_server" in text and "ara_server=http://ara1.example.org:8000" in text
    # Check mode, limited to the node, over the local connection, from the checkout.
    assert re.search(r'--check --diff --limit "\$limit" --extra-vars ansible_connection=local', text)
    assert 'inventory="$checkout"/inventories/mysite/hosts.yml' in text
    # The ARA client of the pip source is on the path; the distribution's package needs nothing.
    assert "export PYTHONPATH=/opt/sitekit/ara-client" in text
    assert "PYTHONPATH" not in _compliance(ansible_pull_compliance_ara_source="package")["sh"]


def test_the_compliance_pass_takes_the_pull_runs_lock_and_runs_on_its_own_timer():
    units = _compliance(ansible_pull_compliance_interval="30min", ansible_pull_compliance_splay="5min")
    args = exec_start(units["service"])
    assert args == ["/usr/bin/flock", VARS["__ansible_pull_lock"], VARS["__ansible_pull_compliance_command"]]
    assert "SuccessExitStatus=2\n" in units["service"]
    assert "OnUnitActiveSec=30min\n" in units["timer"] and "RandomizedDelaySec=5min\n" in units["timer"]
    assert "OnActiveSec=15min\n" in units["timer"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://ara1.example.org:8000", True),
        ("https://ara.example.org/ara", True),
        ("http://10.0.0.5:8000/", True),
        ("ara1.example.org:8000", False),
        ("http://ara1:8000;reboot", False),
        ("http://ara1:8000/$(reboot)", False),
    ],
)
def test_ara_server_urls(url, ok):
    assert bool(re.match(VARS["__ansible_pull_ara_url_re"], url)) is ok
