"""The squid role's templates rendered from settings squid_config accepted: access rules in a safe order for
Debian's squid.conf, and a frontier-squid customize.sh that bash accepts and that edits the right directives.

Real squid parses squid.conf in the molecule scenario (Debian 13, Ubuntu 24.04); frontier-squid is not available
here, so customize.sh is checked only as rendered text (README: support matrix).
"""

import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
from ansible.plugins.filter.core import comment

TOP = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(TOP / "filter_plugins"))
from squid import squid_config  # noqa: E402 (the filter plugins are not a package)

SETTINGS = {
    "squid_port": 3128,
    "squid_client_networks": ["10.1.0.0/16", "192.168.5.0/24"],
    "squid_cache_dir": "/var/cache/squid",
    "squid_cvmfs_domains": [".cern.ch", ".opensciencegrid.org"],
    "squid_frontier_domains": [".fnal.gov"],
    "squid_monitor_networks": ["10.2.0.0/24"],
    "squid_extra_directives": ["request_header_access X-Debug deny all"],
}


def render(name, **extra):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TOP / "roles" / "squid" / "templates"), keep_trailing_newline=True
    )
    env.filters["comment"] = comment
    env.filters["basename"] = lambda path: path.rsplit("/", 1)[-1]
    context = {
        "ansible_managed": "Managed by sitekit",
        "__squid": squid_config(SETTINGS),
        "__squid_logrotate_file": "/etc/logrotate.d/squid",
        "__squid_customize_check": "/usr/local/libexec/sitekit-squid-check-customize",
        "__squid_facts": {"log_dir": "/var/log/squid"},
        **extra,
    }
    return env.get_template(name).render(context)


def test_squid_conf_denies_other_destinations_before_it_allows_clients():
    text = render("squid.conf.j2")
    access = [line for line in text.splitlines() if line.startswith("http_access ")]
    assert access.index("http_access deny !SITEKIT_DEST") < access.index("http_access allow NET_LOCAL")
    assert access.index("http_access deny CONNECT") == 0
    assert access[-1] == "http_access deny all"
    assert "acl NET_LOCAL src 10.1.0.0/16 192.168.5.0/24" in text
    assert "acl SITEKIT_DEST dstdomain .cern.ch .opensciencegrid.org .fnal.gov" in text
    assert "acl HOST_MONITOR src 127.0.0.1/32 10.2.0.0/24" in text
    assert "cache_dir ufs /var/cache/squid 10000 16 256" in text
    # Every ACL is defined before a rule uses it.
    defined = set()
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["acl"]:
            defined.add(words[1])
        elif words[:1] in (["http_access"], ["snmp_access"]):
            for name in words[2:]:
                assert name.lstrip("!") in defined | {"localhost", "manager", "all"}, line


def test_customize_sh_is_valid_bash_and_edits_the_frontier_defaults():
    text = render("customize.sh.j2")
    check = subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    program = re.search(r"--source '(.*)'", text, re.S).group(1)
    assert "'" not in program  # the awk program is one single-quoted bash word
    assert 'setoption("acl NET_LOCAL src", "10.1.0.0/16 192.168.5.0/24")' in program
    assert 'setoptionparameter("cache_dir", 3, "10000")' in program
    calls = re.findall(r'insertline\("\^http_access allow NET_LOCAL", "([^"]*)"\)', program)
    assert calls == [
        "acl SITEKIT_DEST dstdomain .cern.ch .opensciencegrid.org .fnal.gov",
        "http_access deny !SITEKIT_DEST",
    ]
    assert 'insertline("^http_access deny all", "request_header_access X-Debug deny all")' in program


@pytest.mark.parametrize("template", ["check-customize.sh.j2", "logrotate.j2"])
def test_helpers_render(template):
    text = render(template)
    if template.endswith(".sh.j2"):
        assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0
    else:
        assert "rotate 7" in text and "/var/log/squid/*.log" in text
