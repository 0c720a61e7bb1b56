"""The CVMFS filters added for the real client: CVMFS_PAC_URLS, CVMFS_NFILES for a node, the repositories a running
client serves; and default.local read back by the node-side parser (module_utils/sitekit_cvmfs.py)."""

import sys
from pathlib import Path

import pytest
import sitekit_cvmfs
import yaml
from ansible.errors import AnsibleFilterError

TOP = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(TOP / "filter_plugins"))
from cvmfs import (  # noqa: E402
    cvmfs_default_local,
    cvmfs_mounted_repositories,
    cvmfs_nfiles,
    cvmfs_pac_urls,
)

FILTER_DIR = TOP / "filter_plugins"
PROC = yaml.safe_load((TOP / "tests/unit/data/cvmfs/real-2.12.0/proc-wn2.yml").read_text())["files"]

# --- cvmfs_pac_urls --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("urls", "expected"),
    [
        (["http://grid-wpad/wpad.dat", "http://wpad/wpad.dat"], "http://grid-wpad/wpad.dat;http://wpad/wpad.dat"),
        (["http://10.0.0.1:8080/proxy.pac"], "http://10.0.0.1:8080/proxy.pac"),
        (["https://pac.example.org/cvmfs.pac", "auto"], "https://pac.example.org/cvmfs.pac;auto"),
        (["file:///etc/cvmfs/site.pac"], "file:///etc/cvmfs/site.pac"),
        (["http://[2001:db8::1]/wpad.dat"], "http://[2001:db8::1]/wpad.dat"),
    ],
)
def test_pac_urls(urls, expected):
    assert cvmfs_pac_urls(urls) == expected


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        (["http://wpad"], "item 1 ('http://wpad'): the URL needs the PAC file's path"),
        (["ftp://wpad/wpad.dat"], "scheme ftp:// is not supported"),
        (["wpad/wpad.dat"], "missing the http:// scheme"),
        (["http://a/w.dat;http://b/w.dat"], "give each URL as its own list item"),
        (["Auto"], "write auto"),
        (["http://wpad:99999/wpad.dat"], "port '99999'"),
        (["http://user@wpad/wpad.dat"], "no credentials"),
        (["http://bad_name/wpad.dat"], "is not a DNS name"),
        (["file://relative"], "absolute path"),
        (["http://a/w.dat", "http://a/w.dat"], "item 2 ('http://a/w.dat') is listed twice"),
        ("http://wpad/wpad.dat", "expected a list of PAC URLs, got str"),
        ([3], "a PAC URL must be a string"),
    ],
)
def test_bad_pac_urls_name_the_item_and_the_form(urls, message):
    with pytest.raises(AnsibleFilterError, match=r"^cvmfs_pac_urls: ") as err:
        cvmfs_pac_urls(urls)
    assert message in err.value.message


def test_no_urls_means_the_sites_wpad_names():
    assert cvmfs_pac_urls([], ["grid-wpad", "wpad"]) == "http://grid-wpad/wpad.dat;http://wpad/wpad.dat"
    assert cvmfs_pac_urls([], ["wpad"], 8080) == "http://wpad:8080/wpad.dat"
    with pytest.raises(AnsibleFilterError, match=r"the WPAD name 1 \(.http://bad name/wpad.dat.\)"):
        cvmfs_pac_urls([], ["bad name"])
    with pytest.raises(AnsibleFilterError, match="no PAC URLs and no WPAD names"):
        cvmfs_pac_urls([])
    with pytest.raises(AnsibleFilterError, match="wpad_port must be a TCP port"):
        cvmfs_pac_urls([], ["wpad"], "eighty")


def test_the_role_default_names_what_the_wpad_role_serves():
    """With the defaults and auto, CVMFS_PAC_URLS names each WPAD name the wpad role serves, at its port."""
    cvmfs = yaml.safe_load((TOP / "roles/cvmfs/defaults/main.yml").read_text())
    names = yaml.safe_load((TOP / "roles/cvmfs/vars/main.yml").read_text())["__cvmfs_wpad_names"]
    wpad = yaml.safe_load((TOP / "roles/wpad/defaults/main.yml").read_text())
    assert "auto" in cvmfs["cvmfs_http_proxy"] and cvmfs["cvmfs_pac_urls"] == []
    urls = cvmfs_pac_urls(cvmfs["cvmfs_pac_urls"], names).split(";")
    assert wpad["wpad_port"] == 80
    assert sorted(urls) == sorted(f"http://{n}/wpad.dat" for n in wpad["wpad_server_names"])


# --- default.local -------------------------------------------------------------------------------


def test_default_local_takes_pac_urls_as_a_list_or_a_string():
    text = cvmfs_default_local(
        {"CVMFS_HTTP_PROXY": "auto;DIRECT", "CVMFS_PAC_URLS": ["http://grid-wpad/wpad.dat", "http://wpad/wpad.dat"]}
    )
    assert "CVMFS_PAC_URLS='http://grid-wpad/wpad.dat;http://wpad/wpad.dat'\n" in text
    assert cvmfs_default_local({"CVMFS_PAC_URLS": "auto"}) == "CVMFS_PAC_URLS='auto'\n"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"CVMFS_PAC_URLS": ["http://wpad"]}, "CVMFS_PAC_URLS: ['http://wpad'] is not a valid PAC URL list"),
        ({"CVMFS_PAC_URLS": []}, "CVMFS_PAC_URLS: expected a list of PAC URLs"),
        ({"CVMFS_NFILES": 0}, "CVMFS_NFILES: expected a positive number of open files"),
        ({"CVMFS_NFILES": "many"}, "CVMFS_NFILES: expected a positive number of open files"),
    ],
)
def test_default_local_rejects_bad_pac_urls_and_nfiles(params, message):
    with pytest.raises(AnsibleFilterError) as err:
        cvmfs_default_local(params)
    assert message in err.value.message


def test_the_node_reads_default_local_back_as_written():
    params = {
        "CVMFS_REPOSITORIES": ["software.sitekit.lab", "images.sitekit.lab"],
        "CVMFS_HTTP_PROXY": "http://a:3128|http://b:3128;auto;DIRECT",
        "CVMFS_PAC_URLS": ["http://grid-wpad/wpad.dat", "http://wpad/wpad.dat"],
        "CVMFS_NFILES": 16384,
        "CVMFS_SHARED_CACHE": True,
        "CVMFS_X": "it's $HOME # not a comment",
    }
    text = cvmfs_default_local(params, "# Managed by sitekit")
    assert sitekit_cvmfs.parse_parameters(text) == {
        "CVMFS_REPOSITORIES": "software.sitekit.lab,images.sitekit.lab",
        "CVMFS_HTTP_PROXY": "http://a:3128|http://b:3128;auto;DIRECT",
        "CVMFS_PAC_URLS": "http://grid-wpad/wpad.dat;http://wpad/wpad.dat",
        "CVMFS_NFILES": "16384",
        "CVMFS_SHARED_CACHE": "yes",
        "CVMFS_X": "it's $HOME # not a comment",
    }


# --- cvmfs_nfiles -------------------------------------------------------------------------------


def test_zero_fits_the_recorded_container_limit():
    assert cvmfs_nfiles(0, PROC) == 16384


def test_the_nodes_files_read_by_one_tail_give_the_same_verdict():
    """The role reads the five files with one `tail -v -n +1` on the node; its output decides as the texts do."""

    def tail(files):
        return "\n\n".join(f"==> /proc/{name} <==\n{text.rstrip()}" for name, text in files.items())

    assert cvmfs_nfiles(0, tail(PROC)) == cvmfs_nfiles(0, PROC) == 16384
    one_missing = tail({k: v for k, v in PROC.items() if k != "1/limits"})
    assert cvmfs_nfiles(0, one_missing) == cvmfs_nfiles(0, {k: v for k, v in PROC.items() if k != "1/limits"})
    with pytest.raises(AnsibleFilterError, match="cvmfs_nfiles=131072"):
        cvmfs_nfiles(131072, tail(PROC))


def test_zero_leaves_the_default_where_it_fits():
    roomy = dict(PROC, **{k: "Max open files 1024 1048576 files\n" for k in ("1/limits", "self/limits")})
    assert cvmfs_nfiles(0, roomy) is None
    assert cvmfs_nfiles(0, {}) is None  # nothing readable: no objection


def test_an_explicit_value_that_fits_is_kept():
    assert cvmfs_nfiles(16384, PROC) == 16384
    assert cvmfs_nfiles("20000", PROC) == 20000


@pytest.mark.parametrize("source", ["cvmfs_nfiles", "cvmfs_default_local_extra.CVMFS_NFILES"])
def test_an_explicit_value_above_the_limit_names_the_variable_and_the_fix(source):
    with pytest.raises(AnsibleFilterError) as err:
        cvmfs_nfiles(131072, PROC, source)
    message = err.value.message
    assert message.startswith(f"cvmfs_nfiles: {source}=131072: Failed to set maximum number of open files")
    assert f"Fix: set {source} to at most 20000, e.g. 16384" in message and "--ulimit nofile" in message


@pytest.mark.parametrize("value", [-1, True, "lots", None, 1.5])
def test_bad_nfiles_input(value):
    with pytest.raises(AnsibleFilterError, match="must be a positive number of open files, or 0"):
        cvmfs_nfiles(value, PROC)


def test_nfiles_needs_the_proc_texts():
    with pytest.raises(AnsibleFilterError, match="as a dict"):
        cvmfs_nfiles(0, "Max open files 1 1")


# --- cvmfs_mounted_repositories ------------------------------------------------------------------


def test_mounted_repositories():
    text = "1 0 0:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:2 / /cvmfs/b.org rw - fuse cvmfs2 rw\n"
    assert cvmfs_mounted_repositories(text) == ["b.org"]
    assert cvmfs_mounted_repositories(text, "/other") == []
    with pytest.raises(AnsibleFilterError, match="expected the text of /proc/self/mountinfo"):
        cvmfs_mounted_repositories(None)
