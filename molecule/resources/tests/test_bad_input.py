"""Bad input fails before any change, with a message that names the variable and the fix."""

import re

import pytest

CASES = [
    ("userns", {"userns_max_user_namespaces": "lots"}, "userns_max_user_namespaces"),
    (
        "userns",
        {"userns_max_user_namespaces": -5},
        "userns_max_user_namespaces=-5 and userns_reboot_timeout=900 must be positive integers",
    ),
    ("userns", {"userns_apparmor_method": "off"}, "userns_apparmor_method"),
    ("userns", {"userns_require": "root"}, "userns_require"),
    (
        "apptainer",
        {"apptainer_source": "url", "apptainer_package_urls": []},
        "apptainer_source=url needs apptainer_package_urls",
    ),
    ("apptainer", {"apptainer_source": "none"}, "apptainer_path (absolute path"),
    ("apptainer", {"apptainer_bind_paths_extra": ["scratch"]}, "must be absolute paths (got ['scratch'])"),
    ("apptainer", {"apptainer_bind_paths_extra": ["/srv:/srv:noexec"]}, "the option must be ro or rw, got 'noexec'"),
    ("apptainer", {"apptainer_package_state": "newest"}, "apptainer_package_state must be one of: present, latest"),
    ("apptainer", {"apptainer_minimum_version": "soon"}, "apptainer_minimum_version must be a release such as 1.4.5"),
    ("apptainer", {"apptainer_conf_extra": {"enable magic": True}}, "'enable magic': not a key this file documents"),
    ("apptainer", {"apptainer_allow_container": "sif"}, "apptainer_allow_container"),
    ("cvmfs", {"cvmfs_repositories": ["atlas"]}, "atlas"),
    (
        "cvmfs",
        {"cvmfs_default_local_extra": {"CMS-LOCAL-SITE": "T2_XX_Lab"}},
        "cvmfs_default_local_extra: parameter name 'CMS-LOCAL-SITE' is not a shell variable name",
    ),
    ("cvmfs", {"cvmfs_quota_limit": -5}, "cvmfs_quota_limit=-5 must be a positive number of MB, or -1 with"),
    ("cvmfs", {"cvmfs_quota_limit": -1}, "cvmfs_quota_limit=-1 must be a positive number of MB, or -1 with"),
    ("cvmfs", {"cvmfs_cache_base": "var/lib/cvmfs"}, "cvmfs_cache_base=var/lib/cvmfs must be an absolute path"),
    ("cvmfs", {"cvmfs_http_proxy": [["http://squid1:3128", "DIRECT"]]}, "cvmfs_http_proxy"),
    ("cvmfs", {"cvmfs_http_proxy": ["https://squid1:3128"]}, "cvmfs_http_proxy"),
    ("cvmfs", {"cvmfs_keepalive_interval": 30}, "cvmfs_keepalive_interval=30 must be positive and less than half"),
    ("cvmfs", {"cvmfs_pac_urls": ["http://wpad"]}, "cvmfs_pac_urls: item 1 ('http://wpad'): the URL needs the PAC"),
    ("cvmfs", {"cvmfs_nfiles": -1}, "cvmfs_nfiles=-1 must be a positive number of open files, or 0"),
    (
        "squid",
        {"squid_client_networks": ["10.1.2.0/33"]},
        "squid_client_networks: '10.1.2.0/33' is not a network in CIDR",
    ),
    ("squid", {"squid_cache_dir_size_mb": -5}, "squid_cache_dir_size_mb: -5 is out of range"),
    ("squid", {"squid_cache_mem": "lots"}, "squid_cache_mem: 'lots' is not a size. Give a positive size"),
    ("squid", {"squid_port": 70000}, "squid_port: 70000 is out of range 1-65535"),
    ("squid", {"squid_cvmfs_domains": [], "squid_frontier_domains": []}, "the squid would serve nothing"),
    ("wpad", {"wpad_proxies": ["squid1"]}, "wpad_proxies: 'squid1' has no port"),
]
# Roles that run on the proxies rather than the worker nodes.
GROUP = {"squid": "squids", "wpad": "squids"}


@pytest.mark.parametrize(("role", "bad", "message"), CASES, ids=[f"{c[0]}-{next(iter(c[1]))}" for c in CASES])
def test_bad_input_fails_before_any_change(hostvars, apply_role, role, bad, message):
    group = GROUP.get(role, "worker_nodes")
    if group not in hostvars.get("group_names", []):
        pytest.skip(f"the {role} role runs on the {group} nodes")
    if not hostvars.get(f"{role}_enabled", True):
        pytest.skip(f"the {role} role is off for this distribution in the lab")
    run = apply_role(role, {"sitekit_test_hosts": group, **bad})
    out = re.sub(r"\s+", " ", run.stdout + run.stderr)
    assert run.returncode != 0, out[-2000:]
    assert re.sub(r"\s+", " ", message) in out, out[-3000:]
    recap = re.search(rf"{re.escape(hostvars['inventory_hostname'])}\s*: ok=\d+ changed=(\d+)", out)
    assert recap and recap.group(1) == "0", "bad input must fail before any change: " + out[-1500:]
