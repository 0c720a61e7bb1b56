"""sitekit_vobox: the plan the role checks before any change, and each service's readiness judged from what a node
answers (answers written in the formats systemd 257 and podman 5.4 gave on the lab's VO-box node, molecule vobox;
the real node is judged by molecule vobox itself)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(TOP / "module_utils"))
import sitekit_vobox  # noqa: E402

IMAGE = "localhost/sitekit-node:trixie"


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------
def test_a_minimal_service_gets_every_key_with_its_default():
    (service,) = sitekit_vobox.plan([{"name": "alice-box", "image": IMAGE}])
    assert service == {
        "name": "alice-box",
        "image": IMAGE,
        "archive": "",
        "init": "entrypoint",
        "command": [],
        "repositories": [],
        "ports": [],
        "volumes": [],
        "environment": {},
        "network": "",
        "dns_servers": [],
        "dns_search": [],
        "hosts": {},
    }


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ([{"name": "alice-box"}], "vobox_services_list[0] (alice-box).image is required"),
        ([{"image": IMAGE}], "vobox_services_list[0].name must be the service's name"),
        ([{"name": "Alice Box", "image": IMAGE}], "got 'Alice Box'"),
        ([{"name": "a", "image": "Not An Image"}], "is not an image reference"),
        ([{"name": "a", "image": IMAGE, "repositories": ["alice"]}], "'alice' is not a fully qualified repository"),
        ([{"name": "a", "image": IMAGE, "repositories": "alice.cern.ch"}], "repositories must be a list"),
        ([{"name": "a", "image": IMAGE, "init": "tini"}], "init must be entrypoint"),
        ([{"name": "a", "image": IMAGE, "ports": ["80"]}], "'80' must be HOST_PORT:CONTAINER_PORT"),
        ([{"name": "a", "image": IMAGE, "ports": ["70000:80"]}], "ports 1-65535"),
        (
            [
                {"name": "a", "image": IMAGE, "ports": ["8443:8443"]},
                {"name": "b", "image": IMAGE, "ports": ["8443:1/tcp"]},
            ],
            "host port 8443/tcp is taken twice (a and b)",
        ),
        ([{"name": "a", "image": IMAGE}, {"name": "a", "image": IMAGE}], "the name 'a' is used twice"),
        ([{"name": "a", "image": IMAGE, "volumes": ["/cvmfs:/cvmfs"]}], "the role binds /cvmfs itself"),
        ([{"name": "a", "image": IMAGE, "volumes": ["data:/data"]}], "must be /HOST/PATH:/CONTAINER/PATH"),
        ([{"name": "a", "image": IMAGE, "dns_servers": ["dns1"]}], "'dns1' is not an IP address"),
        ([{"name": "a", "image": IMAGE, "hosts": {"db": "nowhere"}}], "must be a host name and its IP address"),
        ([{"name": "a", "image": IMAGE, "archive": "images/a.tar"}], "archive must be an absolute path"),
        ([{"name": "a", "image": IMAGE, "command": "sleep 1"}], "command must be a list of arguments"),
        ([{"name": "a", "image": IMAGE, "imgae": IMAGE}], "unknown key(s) imgae"),
        ("alice-box", "vobox_services_list must be a list"),
    ],
)
def test_bad_input_is_refused_naming_the_entry_the_key_and_the_fix(services, message):
    with pytest.raises(ValueError) as exc:
        sitekit_vobox.plan(services)
    assert message in str(exc.value)


def test_udp_and_tcp_on_one_port_number_are_two_ports():
    planned = sitekit_vobox.plan(
        [{"name": "a", "image": IMAGE, "ports": ["53:53/udp"]}, {"name": "b", "image": IMAGE, "ports": ["53:53"]}]
    )
    assert [s["ports"] for s in planned] == [["53:53/udp"], ["53:53"]]


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError) as exc:
        sitekit_vobox.plan([{"name": "a", "repositories": ["x"]}, {"name": "b", "image": IMAGE, "init": "x"}])
    assert str(exc.value).count(";") >= 2


# ---------------------------------------------------------------------------------------------
# Resolver and hosts
# ---------------------------------------------------------------------------------------------
def test_resolv_conf_is_read_as_the_resolver_reads_it():
    text = "# comment\nnameserver 10.89.0.1\nsearch a.lab b.lab\nnameserver 192.0.2.53 ; x\n"
    text += "domain c.lab\noptions ndots:1\n"
    assert sitekit_vobox.parse_resolv_conf(text) == {"nameservers": ["10.89.0.1", "192.0.2.53"], "search": ["c.lab"]}


def test_explicit_dns_settings_win_over_the_hosts():
    host = "nameserver 10.0.0.1\nsearch site.lab\n"
    assert sitekit_vobox.expected_resolver({"dns_servers": ["192.0.2.1"]}, host) == {
        "nameservers": ["192.0.2.1"],
        "search": ["site.lab"],
    }


def test_hosts_entries_leave_out_the_loopback_names():
    assert sitekit_vobox.parse_hosts("127.0.0.1 localhost\n::1 ip6-localhost\n10.1.2.3 vobox1 vobox1.lab # x\n") == {
        ("10.1.2.3", "vobox1"),
        ("10.1.2.3", "vobox1.lab"),
    }


# ---------------------------------------------------------------------------------------------
# Readiness on node answers (the formats systemd 257 and podman 5.4 answered on the lab's VO-box node)
# ---------------------------------------------------------------------------------------------
IMAGE_ID = "a3f1c0de" * 8
HOST_RESOLV = "search dns.podman\nnameserver 10.89.3.1\n"
HOST_HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n10.89.3.7 vobox1 sk-vobox-box1\n"
CONTAINER_HOSTS = HOST_HOSTS + "10.88.0.2 3c2f9a1b vobox-web\n10.88.0.1 host.containers.internal host.docker.internal\n"
PROBE_FAILED = (
    "cvmfs_probe: 1 of 2 repositories not readable. software.sitekit.lab: /cvmfs/software.sitekit.lab is empty. "
    "Cause: the repository is not mounted. Remedy: mount /cvmfs/software.sitekit.lab."
)
SERVICE = {"name": "vobox-web", "image": IMAGE, "repositories": ["images.sitekit.lab", "software.sitekit.lab"]}


def _node(**changes):
    """The answers of a node where vobox-web runs as it should; ``changes`` replaces some (argv string: answer)."""
    running = json.dumps([{"Image": IMAGE_ID, "ImageName": IMAGE, "State": {"Running": True, "Status": "running"}}])
    answers = {
        "systemctl show vobox-web.service -p ActiveState,SubState,Result,NRestarts": (
            0,
            "ActiveState=active\nSubState=running\nResult=success\nNRestarts=0\n",
            "",
        ),
        "podman container inspect vobox-web": (0, running, ""),
        f"podman image inspect {IMAGE}": (0, json.dumps([{"Id": IMAGE_ID}]), ""),
        "podman exec vobox-web ls -A /cvmfs/images.sitekit.lab": (0, ".cvmfsdirtab\ndebian12\n", ""),
        "ls -A /cvmfs/images.sitekit.lab": (0, ".cvmfsdirtab\ndebian12\n", ""),
        "podman exec vobox-web ls -A /cvmfs/software.sitekit.lab": (0, ".cvmfsdirtab\n", ""),
        "ls -A /cvmfs/software.sitekit.lab": (0, ".cvmfsdirtab\n", ""),
        "podman exec vobox-web cat /etc/resolv.conf": (0, HOST_RESOLV, ""),
        "podman exec vobox-web cat /etc/hosts": (0, CONTAINER_HOSTS, ""),
        "journalctl -u vobox-web.service -n 8 -o cat --no-pager": (0, "", ""),
    }
    answers.update(changes)

    def run(argv, timeout):
        return answers[" ".join(argv)]

    return run


def _check(**changes):
    return sitekit_vobox.check_service(SERVICE, _node(**changes), HOST_RESOLV, HOST_HOSTS)


def test_a_service_running_as_it_should_is_ready():
    result = _check()
    assert result["ready"] and result["failed_checks"] == [] and result["cause"] is None
    assert result["checks"]["cvmfs"]["detail"] == "images.sitekit.lab (2 entries), software.sitekit.lab (1 entries)"


def test_a_service_held_back_by_the_probe_names_the_probes_cause():
    result = _check(
        **{
            "systemctl show vobox-web.service -p ActiveState,SubState,Result,NRestarts": (
                0,
                "ActiveState=activating\nSubState=auto-restart\nResult=exit-code\nNRestarts=3\n",
                "",
            ),
            "journalctl -u vobox-web.service -n 8 -o cat --no-pager": (
                0,
                f"{PROBE_FAILED}\nvobox-web.service: Control process exited, code=exited, status=1/FAILURE\n",
                "",
            ),
            "podman container inspect vobox-web": (125, "[]", "Error: no such container vobox-web"),
        }
    )
    assert result["failed_checks"] == ["unit", "image", "cvmfs", "dns"]
    assert "activating/auto-restart" in result["cause"]
    assert "Remedy: mount /cvmfs/software.sitekit.lab" in result["checks"]["unit"]["detail"]


def test_a_container_from_another_image_is_named():
    other = json.dumps([{"Image": "b" * 64, "ImageName": "localhost/old:1", "State": {"Running": True}}])
    result = _check(**{"podman container inspect vobox-web": (0, other, "")})
    assert result["failed_checks"] == ["image"] and "localhost/old:1" in result["checks"]["image"]["detail"]


def test_too_many_levels_of_symbolic_links_inside_is_missing_propagation():
    eloop = "ls: cannot access '/cvmfs/software.sitekit.lab': Too many levels of symbolic links\n"
    result = _check(**{"podman exec vobox-web ls -A /cvmfs/software.sitekit.lab": (2, "", eloop)})
    assert result["failed_checks"] == ["cvmfs"]
    assert "does not receive the host's mounts" in result["cause"] and "rslave" in result["remedy"]


def test_empty_inside_while_mounted_on_the_host_is_missing_propagation():
    result = _check(**{"podman exec vobox-web ls -A /cvmfs/software.sitekit.lab": (0, "", "")})
    assert result["failed_checks"] == ["cvmfs"] and "does not propagate" in result["cause"]


def test_a_resolver_edited_inside_or_a_host_change_not_yet_followed_is_drift():
    result = _check(**{"podman exec vobox-web cat /etc/resolv.conf": (0, "nameserver 198.51.100.1\n", "")})
    assert result["failed_checks"] == ["dns"] and "198.51.100.1" in result["checks"]["dns"]["detail"]
    assert result["remedy"].startswith("systemctl restart vobox-web.service")


def test_a_host_entry_missing_inside_is_drift():
    result = _check(**{"podman exec vobox-web cat /etc/hosts": (0, "127.0.0.1 localhost\n", "")})
    assert result["failed_checks"] == ["dns"] and "10.89.3.7 vobox1" in result["checks"]["dns"]["detail"]


def test_explicit_dns_settings_are_what_the_container_must_have():
    service = {**SERVICE, "dns_servers": ["192.0.2.53"], "dns_search": ["vobox.lab"]}
    inside = {"podman exec vobox-web cat /etc/resolv.conf": (0, "search vobox.lab\nnameserver 192.0.2.53\n", "")}
    assert sitekit_vobox.check_service(service, _node(**inside), HOST_RESOLV, HOST_HOSTS)["ready"]
    assert sitekit_vobox.check_service(service, _node(), HOST_RESOLV, HOST_HOSTS)["failed_checks"] == ["dns"]


# ---------------------------------------------------------------------------------------------
# Quadlet: podman 4.4 or later
# ---------------------------------------------------------------------------------------------
DATA = Path(__file__).resolve().parents[1] / "data" / "vobox"
# apt-cache policy on a node where podman is not installed yet (Ubuntu 24.04), and where no source has it.
NOBLE_POLICY = """podman:
  Installed: (none)
  Candidate: 4.9.3+ds1-1ubuntu0.2
  Version table:
     4.9.3+ds1-1ubuntu0.2 500
        500 http://mirror.example/ubuntu noble-updates/universe amd64 Packages
"""
NO_CANDIDATE = "podman:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n"
DNF_INFO = "Available Packages\nName         : podman\nEpoch        : 5\nVersion      : 4.9.4\nRelease      : 12.el9\n"


@pytest.mark.parametrize(
    "text, version",
    [
        ((DATA / "podman-version-debian12.txt").read_text(), "4.3.1"),
        ((DATA / "apt-cache-policy-debian12.txt").read_text(), "4.3.1"),
        ("podman version 3.4.4\n", "3.4.4"),
        (NOBLE_POLICY, "4.9.3"),
        (DNF_INFO, "4.9.4"),
        ("podman:\n  Installed: (none)\n  Candidate: 1:5.4.2+ds1-2\n", "5.4.2"),
        (NO_CANDIDATE, None),
        ("", None),
    ],
)
def test_the_podman_version_is_read_from_each_command(text, version):
    assert sitekit_vobox.podman_version(text) == version


def test_debian_12s_podman_is_refused_naming_the_platform_the_version_and_the_fix():
    problem = sitekit_vobox.quadlet_problem((DATA / "apt-cache-policy-debian12.txt").read_text(), "Debian 12")
    assert "Debian 12 has podman 4.3.1, which has no Quadlet" in problem
    assert "install podman 4.4 or later" in problem


def test_ubuntu_22_04s_podman_is_refused():
    assert "Ubuntu 22.04 has podman 3.4.4" in sitekit_vobox.quadlet_problem("podman version 3.4.4\n", "Ubuntu 22.04")


@pytest.mark.parametrize("text", [NOBLE_POLICY, DNF_INFO, "podman version 4.4.0\n", "podman version 5.4.2\n"])
def test_a_podman_with_quadlet_is_accepted(text):
    assert sitekit_vobox.quadlet_problem(text, "X") == ""


def test_no_podman_package_known_yet_is_left_to_the_package_manager():
    # apt's lists not fetched yet on a fresh node: the install step fetches them and names a missing package.
    assert sitekit_vobox.quadlet_problem(NO_CANDIDATE, "Rocky 9") == ""
