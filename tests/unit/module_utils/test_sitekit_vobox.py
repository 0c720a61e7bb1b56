"""sitekit_vobox: the plan the role checks before any change, and each service's readiness judged from what a node
answered (recorded from the lab's VO-box node, molecule vobox, 2026-12-06: tests/unit/data/vobox/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(TOP / "module_utils"))
import sitekit_vobox  # noqa: E402

IMAGE = "localhost/sitekit-node:trixie"
DATA = TOP / "tests" / "unit" / "data" / "vobox"


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
# Readiness on recorded node answers
# ---------------------------------------------------------------------------------------------
def _recorded(name):
    path = DATA / f"{name}.json"
    if not path.exists():
        pytest.skip(f"no recording {path.name}")
    return json.loads(path.read_text())


def _runner(answers):
    """run(argv, timeout) answering what the node answered to the same command."""

    def run(argv, timeout):
        key = " ".join(argv)
        assert key in answers, f"not recorded: {key}"
        return tuple(answers[key])

    return run


@pytest.mark.parametrize("case", sorted(p.stem for p in DATA.glob("*.json")) or ["none"])
def test_recorded_node_answers_give_the_recorded_verdicts(case):
    data = _recorded(case)
    for service in data["services"]:
        result = sitekit_vobox.check_service(service, _runner(data["answers"]), data["host_resolv"], data["host_hosts"])
        expect = data["expect"][service["name"]]
        assert result["failed_checks"] == expect["failed_checks"], result
        for needle in expect.get("cause_contains", []):
            assert needle in (result["cause"] or "") + " " + json.dumps(result["checks"]), (needle, result)
