"""sitekit_proxy: cache verdicts, diagnoses and the whole check, on responses recorded from the lab's squid 6.13.

tests/unit/data/proxy/squid-6.13.json holds what ``fetch`` returned through the lab squid for: a first fetch
(miss), the second (hit), a destination outside the allowed domains, a missing object, the origin down, an
unresolvable origin and a port nothing listens on. ``fetch`` itself runs against real sockets here.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import sitekit_proxy as px

DATA = json.loads((Path(__file__).resolve().parents[1] / "data" / "proxy" / "squid-6.13.json").read_text())
RESP = DATA["responses"]


def recorded(name, seconds=0.01):
    r = dict(RESP[name])
    r["seconds"] = seconds
    r["hit"], r["evidence"] = px.cache_verdict(r["headers"])
    return r


def test_squid6_second_fetch_is_a_hit_and_the_first_is_not():
    assert px.cache_verdict(RESP["miss"]["headers"]) == (False, "Cache-Status: squid1;detail=mismatch")
    assert px.cache_verdict(RESP["hit"]["headers"]) == (True, "Cache-Status: squid1;hit;detail=match")


@pytest.mark.parametrize(
    ("headers", "hit"),
    [
        # RFC 9211: the cache nearest the client is last; only its verdict counts.
        ({"Cache-Status": "origin-cache;hit, squid1;fwd=miss"}, False),
        ({"cache-status": "upstream;fwd=uri-miss, squid1;hit"}, True),
        ({"X-Cache": "HIT from squid1"}, True),
        ({"X-Cache": "MISS from squid1"}, False),
        ({"Server": "nginx"}, None),
    ],
)
def test_cache_verdict_reads_the_nearest_cache(headers, hit):
    assert px.cache_verdict(headers)[0] is hit


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("denied-destination", ["403 ERR_ACCESS_DENIED", "squid_client_networks", "squid_cvmfs_domains"]),
        ("origin-down", ["503 ERR_CONNECT_FAIL", "cannot reach the origin"]),
        ("unresolvable", ["ERR_DNS_FAIL", "DNS"]),
        ("not-found", ["answered 404", "does not have the object"]),
        ("refused", ["refused the connection", "squid is not running", "squid_port"]),
    ],
)
def test_each_recorded_failure_gets_its_cause_and_remedy(name, words):
    found = px.diagnose_fetch("squid1:3128", RESP[name]["url"], recorded(name))
    text = " ".join(found.values())
    for word in words:
        assert word in text


def test_a_served_object_needs_no_diagnosis():
    assert px.diagnose_fetch("squid1:3128", RESP["hit"]["url"], recorded("hit")) is None


def replay(monkeypatch, *names):
    answers = iter([recorded(n, seconds=s) for n, s in names])
    monkeypatch.setattr(px, "fetch", lambda host, port, url, timeout: next(answers))


def test_check_passes_on_miss_then_hit_and_a_refused_destination(monkeypatch):
    replay(monkeypatch, ("miss", 0.008), ("hit", 0.001), ("denied-destination", 0.001))
    result = px.check("http://squid1:3128", RESP["miss"]["url"], "http://example.org/", 5)
    assert result["ok"] and result["cached"] and result["denied"]
    assert result["speedup"] == 8.0
    assert px.failure_message(result) is None


def test_check_flags_an_open_proxy(monkeypatch):
    # The proxy served the destination it must refuse (the hit's answer stands in for any 200).
    replay(monkeypatch, ("miss", 0.008), ("hit", 0.001), ("hit", 0.001))
    result = px.check("squid1:3128", RESP["miss"]["url"], "http://example.org/", 5)
    assert not result["ok"] and result["denied"] is False
    assert "open proxy" in px.failure_message(result)


def test_check_flags_a_second_miss_with_the_origin_caching_headers(monkeypatch):
    replay(monkeypatch, ("miss", 0.008), ("miss", 0.008))
    result = px.check("squid1:3128", RESP["miss"]["url"], None, 5)
    assert not result["cached"] and result["denied"] is None
    assert "Cache-Control: max-age=259200" in px.failure_message(result)


def test_check_stops_after_a_failed_first_fetch(monkeypatch):
    replay(monkeypatch, ("origin-down", 0.01))
    result = px.check("squid1:3128", RESP["origin-down"]["url"], None, 5)
    assert result["second"] is None and not result["ok"]
    assert "ERR_CONNECT_FAIL" in px.failure_message(result)


@pytest.mark.parametrize(
    ("proxy", "word"),
    [
        ("https://squid1:3128", "plain http://"),
        ("http://squid1", "port is required"),
        ("squid1:70000", "1-65535"),
        ("http://user:pw@squid1:3128", "no credentials"),
        ("http://squid 1:3128", "not a host name"),
        ("", "http://HOST:PORT"),
    ],
)
def test_bad_proxies_are_refused_with_the_fix(proxy, word):
    with pytest.raises(ValueError, match=word):
        px.parse_proxy(proxy)


def test_good_proxies_parse():
    assert px.parse_proxy("http://squid1.example.org:3128/") == ("squid1.example.org", 3128)
    assert px.parse_proxy("10.0.0.1:8080") == ("10.0.0.1", 8080)


@pytest.mark.parametrize("url", ["https://s1.example.org/x", "s1.example.org/x", "http:///x"])
def test_urls_must_be_absolute_http(url):
    with pytest.raises(ValueError, match="denied_url"):
        px.parse_url(url, "denied_url")


# --- fetch against real sockets ------------------------------------------------------------------------------


class _Proxyish(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Cache", "HIT from here")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


def test_fetch_sends_a_proxy_request_with_the_absolute_url():
    server = HTTPServer(("127.0.0.1", 0), _Proxyish)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    result = px.fetch("127.0.0.1", server.server_port, "http://s1.example.org:8000/cvmfs/x", 5)
    thread.join(5)
    server.server_close()
    assert result["status"] == 200 and result["hit"] is True
    assert result["bytes"] == len("http://s1.example.org:8000/cvmfs/x")


def test_fetch_reports_refused_and_timeout():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert px.fetch("127.0.0.1", port, "http://x.org/", 2)["error"].startswith("ConnectionRefusedError")
    with socket.socket() as silent:  # accepts (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        result = px.fetch("127.0.0.1", silent.getsockname()[1], "http://x.org/", 0.3)
    assert result["error"].startswith("timeout") and result["seconds"] < 2
    assert "within the timeout" in px.diagnose_fetch("p:1", "http://x.org/", result)["problem"]
