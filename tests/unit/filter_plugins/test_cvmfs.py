"""The CVMFS client filters: CVMFS_HTTP_PROXY syntax and the text of /etc/cvmfs/default.local.

The shell tests read the rendered file back twice: with bash, as ``cvmfs_config`` does, and the way the
client itself does (cvmfs/options.cc pipes the file into /bin/sh and reads each value with ``echo $KEY``).
"""

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sitekit_cvmfs
import yaml
from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import comment

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "filter_plugins"))
from cvmfs import FilterModule, _shell_quote, cvmfs_default_local, cvmfs_http_proxy, cvmfs_override_files

FILTER_DIR = Path(__file__).resolve().parents[3] / "filter_plugins"

# --- cvmfs_http_proxy -----------------------------------------------------------------------------

GOOD_PROXIES = [
    pytest.param(
        [["http://a:3128", "http://b:3128"], "http://c:3128", "DIRECT"],
        "http://a:3128|http://b:3128;http://c:3128;DIRECT",
        id="balanced-then-failover-then-direct",
    ),
    pytest.param(["DIRECT"], "DIRECT", id="direct-only"),
    pytest.param(["auto", "DIRECT"], "auto;DIRECT", id="client-profile-single"),
    pytest.param(["http://a:3128", "auto", "http://b:3128"], "http://a:3128;auto;http://b:3128", id="auto-in-middle"),
    pytest.param(["DIRECT", "http://c:3128"], "DIRECT;http://c:3128", id="direct-first-order-kept"),
    pytest.param(["http://squid:3128"], "http://squid:3128", id="short-host-name"),
    pytest.param([["http://10.0.0.1:3128"]], "http://10.0.0.1:3128", id="group-of-one"),
    pytest.param(
        ["http://[2001:db8::1]:3128", "http://192.168.1.2:8080/"],
        "http://[2001:db8::1]:3128;http://192.168.1.2:8080/",
        id="ipv6-and-trailing-slash",
    ),
    pytest.param(["http://Squid-1.Example.org:3128"], "http://Squid-1.Example.org:3128", id="case-of-host-kept"),
    pytest.param(
        (("http://a:1", "http://b:65535"), "auto"), "http://a:1|http://b:65535;auto", id="tuples-and-port-bounds"
    ),
]


@pytest.mark.parametrize(("groups", "expected"), GOOD_PROXIES)
def test_http_proxy_joins_groups(groups, expected):
    assert cvmfs_http_proxy(groups) == expected


BAD_PROXIES = [
    pytest.param("http://a:3128", "expected a list of fail-over groups", id="string-input"),
    pytest.param("http://a:3128", "wrap a single proxy in a list", id="string-input-hint"),
    pytest.param(None, "got NoneType: None", id="none-input"),
    pytest.param({"http://a:3128": 1}, "got dict", id="dict-input"),
    pytest.param([], "expected a list of fail-over groups, each a proxy URL", id="empty-list"),
    pytest.param([[]], "item 1 ([]): a load-balanced group needs at least one proxy URL", id="empty-group"),
    pytest.param(
        ["http://c:3128", ()], "item 2 (()): a load-balanced group needs at least one", id="empty-tuple-group"
    ),
    pytest.param(
        [["http://a:3128", "DIRECT"]],
        "item 1, entry 2 ('DIRECT'): DIRECT cannot be part of a load-balanced group; give it as a fail-over group",
        id="direct-in-group",
    ),
    pytest.param(
        [["auto"]], "item 1, entry 1 ('auto'): auto cannot be part of a load-balanced group", id="auto-in-group"
    ),
    pytest.param(["direct"], "item 1 ('direct'): CVMFS only knows the exact spelling: write DIRECT", id="direct-case"),
    pytest.param(
        ["http://a:3128", "AUTO"], "item 2 ('AUTO'): CVMFS only knows the exact spelling: write auto", id="auto-case"
    ),
    pytest.param(
        [["http://a:3128", "Direct"]], "item 1, entry 2 ('Direct'): CVMFS only knows", id="direct-case-in-group"
    ),
    pytest.param(["https://a:3128"], "item 1 ('https://a:3128'): CVMFS talks plain HTTP", id="https"),
    pytest.param(["a:3128"], "item 1 ('a:3128'): missing the http:// scheme", id="no-scheme"),
    pytest.param(["socks5://a:1080"], "scheme socks5:// is not supported, use http://", id="socks"),
    pytest.param(["HTTP://a:3128"], "scheme HTTP:// is not supported", id="scheme-case"),
    pytest.param(["http://a"], "item 1 ('http://a'): the port is required, e.g. :3128", id="no-port"),
    pytest.param(["http://a:/"], "the port is required", id="empty-port"),
    pytest.param(["http://[::1]"], "the port is required", id="ipv6-no-port"),
    pytest.param(["http://a:0"], "port '0' is not a number from 1 to 65535", id="port-0"),
    pytest.param(["http://a:65536"], "port '65536' is not a number from 1 to 65535", id="port-too-big"),
    pytest.param(["http://a:03128"], "port '03128' is not a number", id="port-leading-zero"),
    pytest.param(["http://a:31x"], "port '31x' is not a number", id="port-not-digits"),
    pytest.param(["http://a:3128/squid"], "a proxy URL has no path (only an optional trailing /)", id="path"),
    pytest.param(["http://a:3128//"], "a proxy URL has no path", id="double-slash"),
    pytest.param(["http://user:pw@a:3128"], "credentials (user:password@) are not supported", id="credentials"),
    pytest.param(["http://a:3128?x=1"], "a proxy URL has no query or fragment", id="query"),
    pytest.param(["http://2001:db8::1:3128"], "write an IPv6 address in brackets", id="ipv6-unbracketed"),
    pytest.param(["http://[2001:db8::zz]:3128"], "[2001:db8::zz] is not a valid IPv6 address", id="ipv6-bad"),
    pytest.param(["http://[::1:3128"], "an IPv6 address needs its closing ]", id="ipv6-unclosed"),
    pytest.param(["http://256.1.1.1:3128"], "256.1.1.1 is not a valid IPv4 address", id="ipv4-bad"),
    pytest.param(["http://10.0.1:3128"], "10.0.1 is not a valid IPv4 address", id="ipv4-short"),
    pytest.param(["http://squid_1:3128"], "'squid_1' is not a DNS name", id="underscore-host"),
    pytest.param(["http://-squid:3128"], "'-squid' is not a DNS name", id="hyphen-first"),
    pytest.param(["http://a..b:3128"], "'a..b' is not a DNS name", id="empty-label"),
    pytest.param(["http://:3128"], "'' is not a DNS name", id="no-host"),
    pytest.param(["http://a:3128|http://b:3128"], "give a load-balanced group as a list of URLs", id="pipe-joined"),
    pytest.param(["http://a:3128;DIRECT"], "give a load-balanced group as a list of URLs", id="semicolon-joined"),
    pytest.param([" http://a:3128"], "item 1 (' http://a:3128'): contains whitespace", id="whitespace"),
    pytest.param([3128], "item 1 (3128): a proxy must be a string, got int", id="int-item"),
    pytest.param([[None]], "item 1, entry 1 (None): a proxy must be a string, got NoneType", id="none-entry"),
    pytest.param([""], "item 1 (''): empty string", id="empty-string"),
    pytest.param(
        ["http://a:3128", ["http://b:3128", "http://A:3128/"]],
        "item 2, entry 2 ('http://A:3128/'): a:3128 was already given as item 1",
        id="duplicate-proxy",
    ),
    pytest.param(["auto", "DIRECT", "auto"], "item 3 ('auto'): auto was already given as item 1", id="duplicate-auto"),
    pytest.param(["DIRECT", "DIRECT"], "item 2 ('DIRECT'): DIRECT was already given as item 1", id="duplicate-direct"),
]


@pytest.mark.parametrize(("groups", "message"), BAD_PROXIES)
def test_http_proxy_rejects_bad_input(groups, message):
    with pytest.raises(AnsibleFilterError, match=re.escape("cvmfs_http_proxy: ")) as err:
        cvmfs_http_proxy(groups)
    assert message in str(err.value)


@pytest.mark.parametrize("url", ["http://a", "https://a:3128", "http://a:3128/x", "direct"])
def test_http_proxy_errors_state_the_expected_form(url):
    with pytest.raises(AnsibleFilterError) as err:
        cvmfs_http_proxy(["http://ok:3128", url])
    assert str(err.value).startswith(f"cvmfs_http_proxy: item 2 ({url!r}): ")
    assert str(err.value).endswith(
        "expected http://HOST:PORT (HOST a DNS name, an IPv4 address or [IPv6]; "
        "PORT 1-65535; at most a trailing /), DIRECT or auto"
    )


# --- cvmfs_default_local --------------------------------------------------------------------------

GOOD_FILES = [
    pytest.param(
        {
            "CVMFS_REPOSITORIES": ["atlas.cern.ch", "cms.cern.ch", "oasis.opensciencegrid.org"],
            "CVMFS_HTTP_PROXY": "http://a:3128|http://b:3128;DIRECT",
            "CVMFS_QUOTA_LIMIT": 20000,
            "CVMFS_CACHE_BASE": "/var/lib/cvmfs",
            "CVMFS_CLIENT_PROFILE": None,
        },
        "CVMFS_REPOSITORIES='atlas.cern.ch,cms.cern.ch,oasis.opensciencegrid.org'\n"
        "CVMFS_HTTP_PROXY='http://a:3128|http://b:3128;DIRECT'\n"
        "CVMFS_QUOTA_LIMIT='20000'\n"
        "CVMFS_CACHE_BASE='/var/lib/cvmfs'\n",
        id="typical-worker-node",
    ),
    pytest.param(
        {"CVMFS_QUOTA_LIMIT": "4000", "CVMFS_REPOSITORIES": "b.example.org,a.example.org"},
        "CVMFS_QUOTA_LIMIT='4000'\nCVMFS_REPOSITORIES='b.example.org,a.example.org'\n",
        id="order-and-strings-kept",
    ),
    pytest.param(
        {"CVMFS_ALIEN_CACHE": "/shared/cvmfs", "CVMFS_SHARED_CACHE": False, "CVMFS_QUOTA_LIMIT": -1},
        "CVMFS_ALIEN_CACHE='/shared/cvmfs'\nCVMFS_SHARED_CACHE='no'\nCVMFS_QUOTA_LIMIT='-1'\n",
        id="alien-cache",
    ),
    pytest.param(
        {"CVMFS_QUOTA_LIMIT": "-1", "CVMFS_SHARED_CACHE": "OFF"},
        "CVMFS_QUOTA_LIMIT='-1'\nCVMFS_SHARED_CACHE='OFF'\n",
        id="no-quota-exclusive-cache",
    ),
    pytest.param({"CVMFS_CLIENT_PROFILE": "single"}, "CVMFS_CLIENT_PROFILE='single'\n", id="client-profile"),
    pytest.param({"CVMFS_HTTP_PROXY": "auto;DIRECT"}, "CVMFS_HTTP_PROXY='auto;DIRECT'\n", id="auto-direct"),
    pytest.param({"CVMFS_X": "it's"}, "CVMFS_X='it'\\''s'\n", id="single-quote-escaped"),
    pytest.param(
        {"CVMFS_STRICT_MOUNT": True, "CVMFS_NFILES": 131072},
        "CVMFS_STRICT_MOUNT='yes'\nCVMFS_NFILES='131072'\n",
        id="bool-int",
    ),
    pytest.param({"CVMFS_CPU_AFFINITY": [0, 1, 2]}, "CVMFS_CPU_AFFINITY='0,1,2'\n", id="comma-list"),
    pytest.param(
        {"CVMFS_SERVER_URL": "http://s1.example.org/cvmfs/@fqrn@;http://s2.example.org/cvmfs/@fqrn@"},
        "CVMFS_SERVER_URL='http://s1.example.org/cvmfs/@fqrn@;http://s2.example.org/cvmfs/@fqrn@'\n",
        id="server-url-string",
    ),
    pytest.param({"CVMFS_CONFIG_REPOSITORY": ""}, "CVMFS_CONFIG_REPOSITORY=''\n", id="empty-value"),
    pytest.param({"CVMFS_QUOTA_LIMIT": None}, "", id="all-none"),
    pytest.param({}, "", id="empty"),
]


@pytest.mark.parametrize(("params", "expected"), GOOD_FILES)
def test_default_local_renders_exact_text(params, expected):
    assert cvmfs_default_local(params) == expected


def test_default_local_puts_the_ansible_managed_comment_first():
    header = comment("Ansible managed")  # what {{ ansible_managed | comment }} gives: "#\n# Ansible managed\n#"
    text = cvmfs_default_local({"CVMFS_QUOTA_LIMIT": 4000}, header)
    assert text == "#\n# Ansible managed\n#\nCVMFS_QUOTA_LIMIT='4000'\n"
    assert cvmfs_default_local({"CVMFS_QUOTA_LIMIT": 4000}, "# one\n\n# two\n") == (
        "# one\n\n# two\nCVMFS_QUOTA_LIMIT='4000'\n"
    )
    assert cvmfs_default_local({}, "# only\n") == "# only\n"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Ansible managed", "header must be shell comment lines (each starting with #)"),
        ("# ok\nrm -rf /", "got the line 'rm -rf /'"),
        (["# a"], "header must be a string of comment lines, got list"),
    ],
)
def test_default_local_rejects_a_header_the_shell_would_run(header, message):
    with pytest.raises(AnsibleFilterError, match=re.escape("cvmfs_default_local: header must be ")) as err:
        cvmfs_default_local({"CVMFS_QUOTA_LIMIT": 4000}, header)
    assert message in str(err.value)


BAD_FILES = [
    pytest.param("CVMFS_QUOTA_LIMIT=4000", "expected a dict of CVMFS parameters, got str", id="string"),
    pytest.param([("CVMFS_QUOTA_LIMIT", 1)], "expected a dict of CVMFS parameters, got list", id="list"),
    pytest.param({"1CMS_SITE": "x"}, "parameter name '1CMS_SITE' is not a shell variable name", id="digit-first"),
    pytest.param({"CMS-LOCAL-SITE": "x"}, "parameter name 'CMS-LOCAL-SITE' is not a shell variable", id="hyphen-key"),
    pytest.param({"CMS LOCAL": "x"}, "parameter name 'CMS LOCAL' is not a shell variable", id="space-key"),
    pytest.param({"": "x"}, "parameter name '' is not a shell variable name", id="empty-key"),
    pytest.param({"IFS": ":"}, "parameter name IFS is a variable the shell itself uses", id="shell-IFS"),
    pytest.param({"PATH": "/opt"}, "parameter name PATH is a variable the shell itself uses", id="shell-PATH"),
    pytest.param({"LD_PRELOAD": "/x.so"}, "LD_PRELOAD is a variable the shell itself uses", id="loader-preload"),
    pytest.param({"CVMFS_": "x"}, "parameter name CVMFS_ must be upper case after CVMFS_", id="bare-prefix"),
    pytest.param(
        {"CVMFS_CACHE_myCache_TYPE": "posix"}, "parameter name CVMFS_CACHE_myCache_TYPE must be upper", id="mixed-case"
    ),
    pytest.param({1: "x"}, "parameter name 1 is not a shell variable name", id="int-key"),
    pytest.param({"CMS_LOCAL_SITE": "T2 *"}, "CMS_LOCAL_SITE: value 'T2 *' contains * ? or [", id="experiment-glob"),
    pytest.param({"CMS_LOCAL_SITE": "a\nb"}, "CMS_LOCAL_SITE: value 'a\\nb' contains a control", id="experiment-nl"),
    pytest.param({"CMS_LOCAL_SITE": ["a", "b"]}, "CMS_LOCAL_SITE: a list is only taken", id="experiment-list"),
    pytest.param({"CMS_LOCAL_SITE": {"a": 1}}, "CMS_LOCAL_SITE: expected a string", id="experiment-dict"),
    pytest.param(
        {"CVMFS_REPOSITORIES": ["atlas"]},
        "CVMFS_REPOSITORIES: 'atlas' is not a fully qualified repository name",
        id="repo-unqualified",
    ),
    pytest.param({"CVMFS_REPOSITORIES": ["Atlas.cern.ch"]}, "(repository names are lowercase)", id="repo-uppercase"),
    pytest.param(
        {"CVMFS_REPOSITORIES": ["atlas.cern.ch."]}, "'atlas.cern.ch.' is not a fully qualified", id="repo-trailing-dot"
    ),
    pytest.param(
        {"CVMFS_REPOSITORIES": ["a..cern.ch"]}, "'a..cern.ch' is not a fully qualified", id="repo-empty-label"
    ),
    pytest.param(
        {"CVMFS_REPOSITORIES": ["-a.cern.ch"]}, "'-a.cern.ch' is not a fully qualified", id="repo-hyphen-first"
    ),
    pytest.param(
        {"CVMFS_REPOSITORIES": ["a_b.cern.ch"]}, "'a_b.cern.ch' is not a fully qualified", id="repo-underscore"
    ),
    pytest.param(
        {"CVMFS_REPOSITORIES": "atlas.cern.ch cms.cern.ch"},
        "'atlas.cern.ch cms.cern.ch' is not",
        id="repo-space-separated",
    ),
    pytest.param({"CVMFS_REPOSITORIES": "atlas.cern.ch,"}, "'' is not a fully qualified", id="repo-trailing-comma"),
    pytest.param({"CVMFS_REPOSITORIES": [1]}, "1 is not a fully qualified", id="repo-int"),
    pytest.param({"CVMFS_REPOSITORIES": []}, "CVMFS_REPOSITORIES: the list is empty", id="repo-empty-list"),
    pytest.param({"CVMFS_REPOSITORIES": ""}, "CVMFS_REPOSITORIES: the list is empty", id="repo-empty-string"),
    pytest.param({"CVMFS_REPOSITORIES": ["a.b", "c.d", "a.b"]}, "a.b listed more than once", id="repo-duplicate"),
    pytest.param({"CVMFS_REPOSITORIES": {"a.b": 1}}, "expected a list of repository names, got dict", id="repo-dict"),
    pytest.param(
        {"CVMFS_QUOTA_LIMIT": 0},
        "CVMFS_QUOTA_LIMIT: expected a positive number of MB (e.g. 20000), or -1",
        id="quota-0",
    ),
    pytest.param({"CVMFS_QUOTA_LIMIT": -2}, "got -2", id="quota-negative"),
    pytest.param({"CVMFS_QUOTA_LIMIT": "20 GB"}, "got '20 GB'", id="quota-unit"),
    pytest.param({"CVMFS_QUOTA_LIMIT": 2.5}, "got 2.5", id="quota-float"),
    pytest.param({"CVMFS_QUOTA_LIMIT": True}, "got True", id="quota-bool"),
    pytest.param(
        {"CVMFS_QUOTA_LIMIT": -1},
        "CVMFS_QUOTA_LIMIT: -1 (no quota) is only valid with CVMFS_SHARED_CACHE set to no",
        id="no-quota-shared-default",
    ),
    pytest.param(
        {"CVMFS_QUOTA_LIMIT": -1, "CVMFS_SHARED_CACHE": "yes"},
        "is only valid with CVMFS_SHARED_CACHE",
        id="no-quota-shared",
    ),
    pytest.param(
        {"CVMFS_QUOTA_LIMIT": -1, "CVMFS_SHARED_CACHE": True},
        "is only valid with CVMFS_SHARED_CACHE",
        id="no-quota-shared-bool",
    ),
    pytest.param(
        {"CVMFS_SHARED_CACHE": "nope"}, "CVMFS_SHARED_CACHE: expected yes or no, got 'nope'", id="shared-typo"
    ),
    pytest.param(
        {"CVMFS_ALIEN_CACHE": "/shared/cvmfs", "CVMFS_SHARED_CACHE": "no"},
        "CVMFS_ALIEN_CACHE: an alien cache requires CVMFS_QUOTA_LIMIT: -1 and CVMFS_SHARED_CACHE: 'no'",
        id="alien-without-quota",
    ),
    pytest.param(
        {"CVMFS_ALIEN_CACHE": "/shared/cvmfs", "CVMFS_QUOTA_LIMIT": 4000, "CVMFS_SHARED_CACHE": "no"},
        "an alien cache requires",
        id="alien-with-quota",
    ),
    pytest.param(
        {"CVMFS_ALIEN_CACHE": "shared/cvmfs"}, "CVMFS_ALIEN_CACHE: expected an absolute path", id="alien-relative"
    ),
    pytest.param(
        {"CVMFS_CACHE_BASE": "var/lib/cvmfs"},
        "CVMFS_CACHE_BASE: expected an absolute path (starting with /)",
        id="cache-relative",
    ),
    pytest.param({"CVMFS_CACHE_BASE": ""}, "CVMFS_CACHE_BASE: expected an absolute path", id="cache-empty"),
    pytest.param({"CVMFS_CACHE_BASE": ["/a"]}, "CVMFS_CACHE_BASE: expected an absolute path", id="cache-list"),
    pytest.param(
        {"CVMFS_HTTP_PROXY": ""}, "CVMFS_HTTP_PROXY: is empty, and CVMFS cannot mount without it", id="proxy-empty"
    ),
    pytest.param(
        {"CVMFS_HTTP_PROXY": ["DIRECT"]}, "turn a list of proxy groups into one with cvmfs_http_proxy", id="proxy-list"
    ),
    pytest.param(
        {"CVMFS_HTTP_PROXY": None, "CVMFS_X": 1.5},
        "CVMFS_X: expected a string, an integer or a boolean, got float",
        id="float",
    ),
    pytest.param(
        {"CVMFS_HTTP_PROXY": "http://a:3128|DIRECT"},
        "DIRECT cannot be part of a load-balanced group",
        id="proxy-direct-in-group",
    ),
    pytest.param({"CVMFS_HTTP_PROXY": "direct"}, "'direct' is not valid proxy syntax", id="proxy-case"),
    pytest.param({"CVMFS_HTTP_PROXY": "https://a:3128"}, "CVMFS talks plain HTTP", id="proxy-https"),
    pytest.param(
        {"CVMFS_HTTP_PROXY": "http://a:3128;;DIRECT"}, "item 2, entry 1 (''): empty string", id="proxy-empty-group"
    ),
    pytest.param(
        {"CVMFS_SERVER_URL": ["http://s1/cvmfs/@fqrn@", "http://s2/cvmfs/@fqrn@"]},
        "CVMFS_SERVER_URL: a list is only taken for the comma-separated parameters",
        id="list-for-semicolon-parameter",
    ),
    pytest.param(
        {"CVMFS_CPU_AFFINITY": []}, "expected a non-empty list of items without commas", id="empty-comma-list"
    ),
    pytest.param(
        {"CVMFS_XATTR_PRIVILEGED_GIDS": ["1,2"]},
        "expected a non-empty list of items without commas",
        id="comma-in-item",
    ),
    pytest.param(
        {"CVMFS_X": {"a": 1}}, "CVMFS_X: expected a string, an integer or a boolean, got dict", id="dict-value"
    ),
    pytest.param({"CVMFS_X": "a\nb"}, "CVMFS_X: value 'a\\nb' contains a control character", id="newline"),
    pytest.param({"CVMFS_X": "a\tb"}, "contains a control character", id="tab"),
    pytest.param({"CVMFS_X": "C:\\dir"}, "contains a backslash", id="backslash"),
    pytest.param({"CVMFS_X": "*.pub"}, "contains * ? or [", id="glob-star"),
    pytest.param({"CVMFS_X": "a?b"}, "contains * ? or [", id="glob-question"),
    pytest.param({"CVMFS_X": "[ab]"}, "contains * ? or [", id="glob-bracket"),
    pytest.param({"CVMFS_X": " a"}, "has leading, trailing or repeated spaces", id="leading-space"),
    pytest.param({"CVMFS_X": "a "}, "has leading, trailing or repeated spaces", id="trailing-space"),
    pytest.param({"CVMFS_X": "a  b"}, "has leading, trailing or repeated spaces", id="double-space"),
    pytest.param({"CVMFS_X": "-n"}, "starts with an echo option", id="echo-n"),
    pytest.param({"CVMFS_X": "-neE rest"}, "starts with an echo option", id="echo-flags"),
]


@pytest.mark.parametrize(("params", "message"), BAD_FILES)
def test_default_local_rejects_bad_parameters(params, message):
    with pytest.raises(AnsibleFilterError, match=re.escape("cvmfs_default_local: ")) as err:
        cvmfs_default_local(params)
    assert message in str(err.value)


# --- reading the file back with a shell -----------------------------------------------------------

TRICKY = {
    "CVMFS_REPOSITORIES": (["atlas.cern.ch", "cms.cern.ch"], "atlas.cern.ch,cms.cern.ch"),
    "CVMFS_HTTP_PROXY": (
        cvmfs_http_proxy([["http://a:3128", "http://b:3128"], "http://c:3128", "DIRECT"]),
        "http://a:3128|http://b:3128;http://c:3128;DIRECT",
    ),
    "CVMFS_QUOTA_LIMIT": (-1, "-1"),
    "CVMFS_SHARED_CACHE": (False, "no"),
    "CVMFS_ALIEN_CACHE": ("/shared/cvmfs alien cache", "/shared/cvmfs alien cache"),
    "CVMFS_X_QUOTES": ("it's a 'quoted' value", "it's a 'quoted' value"),
    "CVMFS_X_ONLY_QUOTE": ("'", "'"),
    "CVMFS_X_SHELL": ('a|b;c && $HOME `id` $(id) "dq" #not-a-comment', 'a|b;c && $HOME `id` $(id) "dq" #not-a-comment'),
    "CVMFS_X_EMPTY": ("", ""),
    "CVMFS_X_BOOL": (True, "yes"),
}
TRICKY_PARAMS = {key: given for key, (given, _) in TRICKY.items()}
TRICKY_EXPECTED = {key: read for key, (_, read) in TRICKY.items()}


@pytest.fixture
def default_local(tmp_path):
    path = tmp_path / "default.local"
    path.write_text(cvmfs_default_local(TRICKY_PARAMS, comment("Ansible managed")), encoding="utf-8")
    return path


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_reads_every_value_back_exactly(default_local):
    # As cvmfs_config does: the file sourced by bash, here with every assignment exported.
    out = subprocess.run(
        ["env", "-i", "bash", "-c", 'set -a; . "$1"; env', "bash", str(default_local)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("CVMFS_"))
    assert env == TRICKY_EXPECTED


def test_the_client_reads_every_value_back_exactly(default_local):
    # As cvmfs/options.cc does: the file piped into /bin/sh, then one unquoted "echo $KEY" per parameter.
    script = default_local.read_text(encoding="utf-8") + "".join(f"echo ${key}\n" for key in TRICKY)
    out = subprocess.run(
        ["/bin/sh"], input=script, cwd=default_local.parent, check=True, capture_output=True, text=True
    ).stdout
    assert out.split("\n")[: len(TRICKY)] == list(TRICKY_EXPECTED.values())


READER_MANGLES = [
    pytest.param("a  b", "/bin/sh", id="repeated-space"),
    pytest.param(" a", "/bin/sh", id="leading-space"),
    pytest.param("a*", "/bin/sh", id="glob"),
    pytest.param("-n", "/bin/sh", id="echo-option"),
    pytest.param("a\nb", "/bin/sh", id="newline"),
    pytest.param("a\\tb", "dash", id="backslash-in-dash"),
]


@pytest.mark.parametrize(("value", "shell"), READER_MANGLES)
def test_rejected_values_are_ones_the_client_would_misread(tmp_path, value, shell):
    # The reason for each reader rule: the client's "echo $KEY" gives something else back.
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    (tmp_path / "a-file-a-glob-matches").write_text("", encoding="utf-8")
    script = f"CVMFS_X={_shell_quote(value)}\necho $CVMFS_X\n"
    out = subprocess.run([shell], input=script, cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert out.split("\n")[0] != value
    with pytest.raises(AnsibleFilterError, match="cvmfs_default_local: CVMFS_X: value "):
        cvmfs_default_local({"CVMFS_X": value})


# --- registration and docs ------------------------------------------------------------------------


# Every filter of filter_plugins/cvmfs.py, the type its documentation says it returns, and a sample input.
FILTERS = [
    ("cvmfs_http_proxy", "str", ["DIRECT"]),
    ("cvmfs_default_local", "str", {"CVMFS_HTTP_PROXY": "DIRECT"}),
    ("cvmfs_pac_urls", "str", ["http://wpad/wpad.dat"]),
    ("cvmfs_nfiles", "int", None),
    ("cvmfs_mounted_repositories", "list", ""),
    ("cvmfs_override_files", "list", {}),
]


@pytest.mark.parametrize(("name", "returns", "sample"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filter_is_registered_and_documented(name, returns, sample):
    func = FilterModule().filters()[name]
    doc = yaml.safe_load((FILTER_DIR / f"{name}.yml").read_text(encoding="utf-8"))
    documentation = doc["DOCUMENTATION"]
    assert documentation["name"] == name
    params = list(inspect.signature(func).parameters)
    assert set(documentation["options"]) == {"_input", *params[1:]}
    assert documentation.get("positional", "") == ", ".join(params[1:])
    assert doc["RETURN"]["_value"]["type"] == returns
    if sample is not None:
        assert type(func(sample)).__name__ == returns


def test_every_cvmfs_filter_is_covered():
    assert {f[0] for f in FILTERS} == set(FilterModule().filters())


def test_an_experiments_own_variables_are_written_beside_the_cvmfs_parameters():
    """CMS sites set CMS_LOCAL_SITE where the client reads its configuration; the repository's variant symlink
    resolves it. Lower case and mixed case are shell variable names too."""
    text = cvmfs_default_local(
        {"CVMFS_QUOTA_LIMIT": 4000, "CMS_LOCAL_SITE": "T2_XX_Example", "_site_tag": "it's", "cms_io": 1, "X": True}
    )
    assert text == (
        "CVMFS_QUOTA_LIMIT='4000'\nCMS_LOCAL_SITE='T2_XX_Example'\n_site_tag='it'\\''s'\ncms_io='1'\nX='yes'\n"
    )
    assert sitekit_cvmfs.parse_parameters(text) == {
        "CVMFS_QUOTA_LIMIT": "4000",
        "CMS_LOCAL_SITE": "T2_XX_Example",
        "_site_tag": "it's",
        "cms_io": "1",
        "X": "yes",
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"CMS-SITE": "x"}, "cvmfs_default_local: cvmfs_repository_config[cms.cern.ch]: parameter name 'CMS-SITE'"),
        (
            {"CMS_LOCAL_SITE": "a b "},
            "cvmfs_default_local: cvmfs_repository_config[cms.cern.ch]: CMS_LOCAL_SITE: value",
        ),
    ],
)
def test_errors_name_the_inventory_variable_the_parameters_come_from(params, message):
    with pytest.raises(AnsibleFilterError) as err:
        cvmfs_default_local(params, None, "cvmfs_repository_config[cms.cern.ch]")
    assert str(err.value).startswith(message), str(err.value)


def test_the_clients_shell_reads_an_experiments_variable_back_and_ifs_would_break_the_read_back(tmp_path):
    """CMS_LOCAL_SITE comes back from the client's /bin/sh + echo unchanged; a file that set IFS (refused) would make
    the same echo split the next value."""
    text = cvmfs_default_local({"CMS_LOCAL_SITE": "T2_XX_Ex ample", "CVMFS_QUOTA_LIMIT": 4000})
    out = subprocess.run(["/bin/sh"], input=text + "echo $CMS_LOCAL_SITE\n", capture_output=True, text=True)
    assert out.stdout == "T2_XX_Ex ample\n"
    broken = "IFS='_'\n" + text + "echo $CMS_LOCAL_SITE\n"
    out = subprocess.run(["/bin/sh"], input=broken, capture_output=True, text=True)
    assert out.stdout != "T2_XX_Ex ample\n"


def test_override_files_are_one_per_key_repositories_first_each_rendered_as_default_local():
    files = cvmfs_override_files(
        {"cms.cern.ch": {"CMS_LOCAL_SITE": "T2_XX_Example"}, "atlas.cern.ch": {"CVMFS_QUOTA_LIMIT": 4000}},
        {"cern.ch": {"CVMFS_USE_GEOAPI": True}},
        "# Managed by sitekit",
    )
    assert files == [
        {
            "path": "/etc/cvmfs/config.d/cms.cern.ch.local",
            "content": "# Managed by sitekit\nCMS_LOCAL_SITE='T2_XX_Example'\n",
        },
        {
            "path": "/etc/cvmfs/config.d/atlas.cern.ch.local",
            "content": "# Managed by sitekit\nCVMFS_QUOTA_LIMIT='4000'\n",
        },
        {"path": "/etc/cvmfs/domain.d/cern.ch.local", "content": "# Managed by sitekit\nCVMFS_USE_GEOAPI='yes'\n"},
    ]
    assert cvmfs_override_files({}, {}) == []


@pytest.mark.parametrize(
    ("repositories", "domains", "message"),
    [
        (
            {"../../etc/x": {"A": 1}},
            {},
            "cvmfs_repository_config: key '../../etc/x' is not a fully qualified repository",
        ),
        ({"cms": {"A": 1}}, {}, "cvmfs_repository_config: key 'cms' is not a fully qualified repository name"),
        ({}, {"CERN.CH": {"A": 1}}, "cvmfs_domain_config: key 'CERN.CH' is not a domain"),
        ({}, ["cern.ch"], "cvmfs_domain_config must be a dict keyed by name (e.g. cern.ch), got list"),
        ({"cms.cern.ch": {"A-B": 1}}, {}, "cvmfs_repository_config[cms.cern.ch]: parameter name 'A-B'"),
    ],
    ids=["path", "short-repository", "upper-domain", "domain-list", "bad-parameter"],
)
def test_an_override_key_or_parameter_that_cannot_be_a_file_names_the_variable_and_the_key(
    repositories, domains, message
):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        cvmfs_override_files(repositories, domains)
