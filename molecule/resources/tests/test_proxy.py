"""The site squid and WPAD as the squid and wpad roles leave them, with real squid, nginx and a real PAC engine.

An origin node stands in for a CVMFS stratum-1 (lab/origin.yml) under the name stratum1.sitekit.lab.
"""

import hashlib
import json
import re
import shlex
import subprocess

import pacparser
import pytest

MANIFEST = "http://stratum1.sitekit.lab:8000/cvmfs/images.sitekit.lab/.cvmfspublished"
# Python on a node: fetch URL through PROXY (host:port), print status, Cache-Status and X-Squid-Error as JSON.
FETCH = """
import http.client, json, sys
proxy, url = sys.argv[1], sys.argv[2]
host, port = proxy.rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port), timeout=10)
c.request("GET", url)
r = c.getresponse()
body = r.read()
print(json.dumps({"status": r.status, "cache": r.getheader("Cache-Status"), "error": r.getheader("X-Squid-Error"),
                  "type": r.getheader("Content-Type"), "body": body.decode(errors="replace")}))
"""


def _group(hostvars, group):
    if group not in hostvars.get("group_names", []):
        pytest.skip(f"runs on the {group} nodes")


def _fetch(host, proxy, url):
    run = host.run(f"python3 -c {shlex.quote(FETCH)} {shlex.quote(proxy)} {shlex.quote(url)}")
    assert run.rc == 0, run.stderr
    return json.loads(run.stdout)


def _squids(hostvars):
    return hostvars["groups"]["squids"]


def test_squid_caches_the_second_fetch_and_refuses_other_destinations(hostvars, playbook):
    _group(hostvars, "worker_nodes")
    run = playbook("playbooks/check-proxy.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    row = re.search(rf"^\s*{re.escape(hostvars['inventory_hostname'])}\s+ok\s+(.*)$", run.stdout, re.M)
    assert row, run.stdout[-2000:]
    squid, cached, first, hit, refused, ready = row.group(1).split()[:6]
    assert (cached, refused, ready) == ("True", "True", "yes")
    assert float(first) > 0 and float(hit) > 0
    assert squid == f"{_squids(hostvars)[0]}:3128"


def test_an_object_fetched_for_the_first_time_is_a_miss_then_a_hit(host, hostvars):
    _group(hostvars, "worker_nodes")
    proxy = f"{_squids(hostvars)[0]}:3128"
    # The origin's last object (lab/origin.yml): no other check fetches it.
    url = hostvars["readiness_proxy_url"].rsplit("/", 2)[0] + f"/01/{63:038x}"
    first, second = _fetch(host, proxy, url), _fetch(host, proxy, url)
    assert first["status"] == second["status"] == 200
    assert ";hit" not in first["cache"] and ";hit" in second["cache"], (first["cache"], second["cache"])


def test_a_client_outside_the_client_networks_is_refused(host, hostvars):
    """A second podman network, outside squid_client_networks: the squid joins it, a client there is refused."""
    _group(hostvars, "squids")
    name = hostvars["inventory_hostname"]
    net = f"{name}-outside"
    subprocess.run(["podman", "network", "rm", "-f", net], capture_output=True)
    subprocess.run(["podman", "network", "create", net], check=True, capture_output=True)
    try:
        subprocess.run(["podman", "network", "connect", net, name], check=True, capture_output=True)
        info = json.loads(subprocess.run(["podman", "inspect", name], check=True, capture_output=True).stdout)
        outside_ip = info[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        image = info[0]["ImageName"]
        client = subprocess.run(
            [
                "podman",
                "run",
                "--rm",
                "--network",
                net,
                "--stop-signal",
                "SIGTERM",
                image,
                "python3",
                "-c",
                FETCH,
                f"{outside_ip}:3128",
                MANIFEST,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert client.returncode == 0, client.stderr
        answer = json.loads(client.stdout)
        assert answer["status"] == 403 and answer["error"].startswith("ERR_ACCESS_DENIED"), answer
        # The same request from the squid's own network is served.
        inside = _fetch(host, "127.0.0.1:3128", MANIFEST)
        assert inside["status"] == 200
    finally:
        subprocess.run(["podman", "network", "disconnect", "-f", net, name], capture_output=True)
        subprocess.run(["podman", "network", "rm", "-f", net], capture_output=True)


def test_a_bad_config_value_leaves_the_running_squid_serving(host, hostvars, apply_role):
    _group(hostvars, "squids")
    conf = host.file("/etc/squid/squid.conf")
    before = hashlib.sha256(conf.content).hexdigest()
    pid = host.run_expect([0], "systemctl show -p MainPID --value squid").stdout.strip()
    run = apply_role("squid", {"sitekit_test_hosts": "squids", "squid_extra_directives": ["cache_mem banana"]})
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "cache_mem banana" in out, out[-2000:]
    assert hashlib.sha256(host.file("/etc/squid/squid.conf").content).hexdigest() == before
    assert host.run_expect([0], "systemctl show -p MainPID --value squid").stdout.strip() == pid
    answer = _fetch(host, "127.0.0.1:3128", MANIFEST)
    assert answer["status"] == 200


def test_squid_answers_snmp_only_on_its_monitoring_port(host, hostvars):
    _group(hostvars, "squids")
    udp = host.run_expect([0], "ss -uln").stdout
    assert re.search(r":3401\b", udp), udp
    assert host.service("squid").is_enabled and host.service("squid").is_running


@pytest.mark.parametrize("name", ["wpad", "grid-wpad"])
def test_the_pac_file_sends_cvmfs_through_the_squid_and_the_rest_direct(host, hostvars, name):
    _group(hostvars, "worker_nodes")
    answer = _fetch(host, f"{name}:80", f"http://{name}/wpad.dat")  # a direct request: nginx answers for the name
    assert answer["status"] == 200
    assert answer["type"] == "application/x-ns-proxy-autoconfig"
    pacparser.init()
    try:
        pacparser.parse_pac_string(answer["body"])
        squid = f"PROXY {_squids(hostvars)[0]}:3128"
        assert pacparser.find_proxy(hostvars["readiness_proxy_url"], "stratum1.sitekit.lab") == squid
        assert pacparser.find_proxy("http://www.example.com/", "www.example.com") == "DIRECT"
    finally:
        pacparser.cleanup()
