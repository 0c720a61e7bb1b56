"""Does a site squid cache what it should and refuse what it must? The logic of sitekit's proxy_check module.

Standard library only: it runs on nodes (through the module) and in unit tests on recorded responses.
A fetch goes to the proxy as a plain HTTP proxy request (``GET http://origin/path``), the way CVMFS
and Frontier clients use a squid; whether an answer came from the cache is read from the response
headers the proxy adds:

* ``Cache-Status`` (RFC 9211; squid 6 and later): one entry per cache, the one nearest the client
  last, e.g. ``squid1;hit;detail=match`` or ``squid1;fwd=miss``;
* ``X-Cache`` (squid up to 5, frontier-squid): ``HIT from squid1`` or ``MISS from squid1``.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import time
from urllib.parse import urlsplit

_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def parse_proxy(proxy: str) -> tuple[str, int]:
    """``http://host:port`` or ``host:port`` -> (host, port); ValueError naming the fix otherwise."""
    if not isinstance(proxy, str) or not proxy:
        raise ValueError("proxy must be http://HOST:PORT, e.g. http://squid1.example.org:3128")
    text = proxy
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme != "http":
            raise ValueError(f"proxy {proxy!r}: squids are asked over plain http://, not {scheme}://")
    text = text.rstrip("/")
    if "/" in text or "@" in text:
        raise ValueError(f"proxy {proxy!r}: give only http://HOST:PORT (no path, no credentials)")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"proxy {proxy!r}: the port is required and must be 1-65535, e.g. http://squid1:3128")
    if not _HOST.fullmatch(host):
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise ValueError(f"proxy {proxy!r}: {host!r} is not a host name or IP address") from None
    return host.strip("[]"), int(port)


def parse_url(url: str, option: str = "url") -> str:
    """An absolute http:// URL with a host, or ValueError naming the option."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            f"{option} {url!r} must be an absolute http:// URL such as "
            "http://cvmfs-stratum-one.cern.ch:8000/cvmfs/atlas.cern.ch/.cvmfspublished "
            "(CVMFS and Frontier use plain HTTP)"
        )
    return url


def cache_verdict(headers: dict[str, str]) -> tuple[bool | None, str]:
    """(hit, evidence) from a response's headers; hit is None when the proxy says nothing either way."""
    lower = {k.lower(): v for k, v in headers.items()}
    status = lower.get("cache-status")
    if status:
        last = status.split(",")[-1].strip()
        params = [p.strip().lower() for p in last.split(";")[1:]]
        if "hit" in params:
            return True, f"Cache-Status: {status}"
        return False, f"Cache-Status: {status}"
    xcache = lower.get("x-cache")
    if xcache:
        return xcache.strip().upper().startswith("HIT"), f"X-Cache: {xcache}"
    return None, "no Cache-Status or X-Cache header: the proxy does not say"


def fetch(host: str, port: int, url: str, timeout: float) -> dict:
    """One proxy request for ``url``: status, seconds, headers, body length, or the connection error."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", url, headers={"User-Agent": "sitekit-proxy-check/1", "Accept": "*/*"})
        resp = conn.getresponse()
        body = resp.read()
        headers = {k: v for k, v in resp.getheaders()}
        result = {"status": resp.status, "bytes": len(body), "headers": headers, "error": None}
    except (OSError, http.client.HTTPException) as exc:
        kind = type(exc).__name__
        if isinstance(exc, socket.timeout) or "timed out" in str(exc):
            kind = "timeout"
        result = {"status": None, "bytes": 0, "headers": {}, "error": f"{kind}: {exc}"}
    finally:
        conn.close()
    result["seconds"] = round(time.monotonic() - started, 4)
    hit, evidence = cache_verdict(result["headers"])
    result["hit"] = hit
    result["evidence"] = evidence if result["error"] is None else None
    return result


def _squid_error(response: dict) -> str:
    return response["headers"].get("X-Squid-Error", "")


def diagnose_fetch(proxy: str, url: str, response: dict) -> dict | None:
    """Cause and remedy when fetching ``url`` through ``proxy`` did not return the object."""
    if response["error"]:
        if response["error"].startswith(("ConnectionRefusedError", "ConnectionResetError")):
            return {
                "problem": f"{proxy} refused the connection ({response['error']})",
                "cause": "squid is not running, or listens on another port",
                "remedy": "start it (systemctl status squid / frontier-squid) and check squid_port",
            }
        if response["error"].startswith("timeout"):
            return {
                "problem": f"no answer from {proxy} within the timeout",
                "cause": "a firewall drops the traffic, or squid hangs",
                "remedy": "open the squid port to the clients' networks; look at /var/log/squid/cache.log",
            }
        return {
            "problem": f"cannot reach {proxy}: {response['error']}",
            "cause": "the proxy's name does not resolve or the network is down",
            "remedy": "check the proxy's name and the route from this node",
        }
    status = response["status"]
    if status == 200:
        return None
    error = _squid_error(response)
    if status == 403:
        return {
            "problem": f"{proxy} refused {url} (403 {error})".replace(" )", ")"),
            "cause": "this node is not in the squid's client networks, or the destination is not an allowed domain",
            "remedy": "add the node's network to squid_client_networks, or the server's domain to "
            "squid_cvmfs_domains / squid_frontier_domains",
        }
    if status in (502, 503, 504):
        return {
            "problem": f"{proxy} could not fetch {url} ({status} {error})".replace(" )", ")"),
            "cause": "the squid cannot reach the origin server (DNS, firewall, or the server is down)",
            "remedy": "from the squid node, fetch the URL directly; check its DNS and outgoing firewall",
        }
    return {
        "problem": f"{url} through {proxy} answered {status} {error}".rstrip(),
        "cause": "the origin server does not have the object, or refused it",
        "remedy": "check the URL on the origin server",
    }


def check(proxy: str, url: str, denied_url: str | None, timeout: float) -> dict:
    """Fetch ``url`` twice through ``proxy`` and ``denied_url`` once; return the findings and problems."""
    host, port = parse_proxy(proxy)
    first = fetch(host, port, url, timeout)
    second = fetch(host, port, url, timeout) if first["status"] == 200 else None
    problems = []
    trouble = diagnose_fetch(proxy, url, first)
    if trouble:
        problems.append(trouble)
    cached = bool(second and second["status"] == 200 and second["hit"])
    if second is not None and not cached:
        if second["hit"] is None:
            problems.append(
                {
                    "problem": f"{proxy} does not say whether its answers come from its cache",
                    "cause": "neither Cache-Status nor X-Cache is sent (a proxy that is not squid, or headers removed)",
                    "remedy": "use squid or frontier-squid, and keep Cache-Status and X-Cache (reply_header_access)",
                }
            )
        else:
            cache_control = second["headers"].get("Cache-Control", "none")
            problems.append(
                {
                    "problem": f"the second fetch of {url} did not come from the cache ({second['evidence']})",
                    "cause": f"the object is not cacheable (origin sent Cache-Control: {cache_control}), larger than "
                    "squid_maximum_object_size, or the cache is not writable",
                    "remedy": "check the origin's caching headers, squid_maximum_object_size and the cache "
                    "directory's owner; /var/log/squid/cache.log says more",
                }
            )
    denied = None
    denied_response = None
    if denied_url:
        denied_response = fetch(host, port, denied_url, timeout)
        denied = denied_response["status"] == 403
        if denied_response["error"] is None and not denied:
            problems.append(
                {
                    "problem": f"{proxy} served {denied_url} ({denied_response['status']}): it is an open proxy",
                    "cause": "the squid does not restrict destinations to the CVMFS and Frontier domains",
                    "remedy": "deny every other destination (the squid role's http_access deny !SITEKIT_DEST; "
                    "frontier-squid: RESTRICT_DEST)",
                }
            )
    result = {
        "proxy": f"{host}:{port}",
        "url": url,
        "first": first,
        "second": second,
        "cached": cached,
        "speedup": round(first["seconds"] / second["seconds"], 2) if cached and second["seconds"] > 0 else None,
        "denied_url": denied_url,
        "denied": denied,
        "denied_response": denied_response,
        "problems": problems,
        "ok": not problems,
    }
    result["message"] = failure_message(result)
    return result


def failure_message(result: dict) -> str | None:
    """One message naming each problem with its cause and remedy; None when the check passed."""
    if result["ok"]:
        return None
    parts = [f"{p['problem']}: {p['cause']}. Fix: {p['remedy']}." for p in result["problems"]]
    return f"proxy_check {result['proxy']}: " + " | ".join(parts)
