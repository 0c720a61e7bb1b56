"""The squid and WPAD filters: every squid setting checked on the controller, and the PAC file evaluated by a
real PAC engine (pacparser, the library CVMFS-era tools and Chromium's ancestors use) for sample URLs."""

import sys
from pathlib import Path

import pacparser
import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "filter_plugins"))
from squid import FilterModule, squid_config, wpad_pac

GOOD = {
    "squid_port": 3128,
    "squid_client_networks": ["10.89.77.0/24", "2001:db8::/64"],
    "squid_cache_mem": "256 MB",
    "squid_cache_dir": "/var/spool/squid",
    "squid_cache_dir_size_mb": 10000,
    "squid_maximum_object_size": "1 GB",
    "squid_maximum_object_size_in_memory": "128 KB",
    "squid_cvmfs_domains": [".cern.ch", ".opensciencegrid.org", "cvmfs-s1.example.org"],
    "squid_frontier_domains": [".cern.ch", "cmsfrontier.cern.ch", ".fnal.gov"],
    "squid_monitor_port": 3401,
    "squid_monitor_networks": ["127.0.0.1/32", "10.0.0.0/8"],
    "squid_snmp_community": "public",
    "squid_log_rotate": 7,
    "squid_shutdown_lifetime": 5,
    "squid_extra_directives": ["client_db off"],
}


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"squid_config", "wpad_pac"}


def test_good_settings_are_normalised():
    out = squid_config(dict(GOOD, squid_cache_mem=512, squid_maximum_object_size="2gb"))
    assert out["cache_mem"] == "512 MB" and out["maximum_object_size"] == "2 GB"
    assert out["net_local"] == ["10.89.77.0/24", "2001:db8::/64"]
    # cmsfrontier.cern.ch is under .cern.ch already (squid warns about such entries); order is kept.
    assert out["destinations"] == [".cern.ch", ".opensciencegrid.org", "cvmfs-s1.example.org", ".fnal.gov"]


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("squid_client_networks", ["10.89.77.0"], "not a network in CIDR notation"),
        ("squid_client_networks", ["10.89.77.1/24"], "host bits set"),
        ("squid_client_networks", ["0.0.0.0/0"], "open to the world"),
        ("squid_client_networks", [], "is empty"),
        ("squid_client_networks", "10.0.0.0/8", "expected a list"),
        ("squid_cache_mem", "-5 MB", "is not a size"),
        ("squid_cache_mem", 0, "not a positive size"),
        ("squid_cache_mem", "lots", "is not a size"),
        ("squid_cache_dir_size_mb", -5, "out of range"),
        ("squid_cache_dir_size_mb", "big", "expected a whole number"),
        ("squid_maximum_object_size_in_memory", "1 GB", "larger than squid_cache_mem"),
        ("squid_port", 70000, "out of range 1-65535"),
        ("squid_port", 0, "out of range 1-65535"),
        ("squid_monitor_port", -1, "out of range 0-65535"),
        ("squid_cache_dir", "var/spool/squid", "not an absolute path"),
        ("squid_cache_dir", "/var/spool/my squid", "not an absolute path"),
        ("squid_cvmfs_domains", ["cern ch"], "not a DNS domain"),
        ("squid_snmp_community", "pub lic", "not a plain word"),
        ("squid_extra_directives", ["a\nb"], "not one squid.conf line"),
        ("squid_extra_directives", "cache_mem 1 MB", "expected a list"),
    ],
)
def test_bad_settings_name_the_variable_and_the_fix(key, value, words):
    with pytest.raises(AnsibleFilterError) as err:
        squid_config(dict(GOOD, **{key: value}))
    assert str(err.value).startswith(key + ":")
    assert words in str(err.value)


def test_an_empty_destination_list_is_refused():
    with pytest.raises(AnsibleFilterError, match="would serve nothing"):
        squid_config(dict(GOOD, squid_cvmfs_domains=[], squid_frontier_domains=[]))


# --- wpad_pac, evaluated by pacparser -----------------------------------------------------------------


def find_proxy(pac_text, url):
    pacparser.init()
    try:
        pacparser.parse_pac_string(pac_text)
        host = url.split("/")[2].split(":")[0]
        return pacparser.find_proxy(url, host)
    finally:
        pacparser.cleanup()


PAC = wpad_pac(["squid1.site.org:3128", "squid2.site.org:3128"], [".cern.ch", ".opensciencegrid.org", "s1.lab.org"])


@pytest.mark.parametrize(
    ("url", "answer"),
    [
        (
            "http://cvmfs-stratum-one.cern.ch:8000/cvmfs/atlas.cern.ch/.cvmfspublished",
            "PROXY squid1.site.org:3128; PROXY squid2.site.org:3128",
        ),
        ("http://CMSFRONTIER.CERN.CH:8000/FrontierProd", "PROXY squid1.site.org:3128; PROXY squid2.site.org:3128"),
        ("http://cern.ch/", "PROXY squid1.site.org:3128; PROXY squid2.site.org:3128"),
        ("http://s1.lab.org/cvmfs/x", "PROXY squid1.site.org:3128; PROXY squid2.site.org:3128"),
        ("http://x.s1.lab.org/cvmfs/x", "DIRECT"),  # a host name, not a domain: only that host
        ("http://notcern.ch/", "DIRECT"),
        ("http://www.example.com/", "DIRECT"),
        ("https://cvmfs-stratum-one.cern.ch/", "DIRECT"),  # squids serve plain HTTP
    ],
)
def test_pac_sends_cvmfs_and_frontier_through_the_squids_in_order(url, answer):
    assert find_proxy(PAC, url) == answer


def test_pac_ends_with_direct_only_where_allowed():
    pac = wpad_pac(["squid1:3128"], [".cern.ch"], True, "// managed")
    assert pac.startswith("// managed\n")
    assert find_proxy(pac, "http://cvmfs.cern.ch/") == "PROXY squid1:3128; DIRECT"


@pytest.mark.parametrize(
    ("proxies", "domains", "words"),
    [
        ([], [".cern.ch"], "wpad_proxies: no proxy"),
        (["squid1"], [".cern.ch"], "has no port"),
        (["squid1:99999"], [".cern.ch"], "out of range"),
        (["squid1:3128", "SQUID1:3128"], [".cern.ch"], "listed twice"),
        (["squid1:3128"], [], "wpad_proxied_domains: is empty"),
        (["squid1:3128"], ["*.cern.ch"], "not a DNS domain"),
    ],
)
def test_bad_pac_input_names_the_variable(proxies, domains, words):
    with pytest.raises(AnsibleFilterError, match=words.replace("(", r"\(")):
        wpad_pac(proxies, domains)
