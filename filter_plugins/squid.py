"""Filters that turn the site's proxy inventory into squid settings and a PAC file.

``squid_config`` checks every value the squid role writes into squid.conf (Debian's squid) or
customize.sh (frontier-squid) and returns them normalised, so a bad value fails on the controller
with the variable's name and the fix, before anything reaches a node. ``squid -k parse`` still
checks the whole file on the node before it is installed (for what only squid knows).

``wpad_pac`` writes the PAC file the wpad role serves: CVMFS and Frontier destinations go through
the site's squids in the order given, with DIRECT at the end only where the admin allows it;
everything else goes DIRECT.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import NoReturn

from ansible.errors import AnsibleFilterError

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"\.?{_LABEL}(?:\.{_LABEL})*")
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_SIZE = re.compile(r"([0-9]+)\s*(KB|MB|GB)", re.IGNORECASE)
_UNITS_KB = {"KB": 1, "MB": 1024, "GB": 1024 * 1024}
# Characters that would end a squid.conf directive, start a comment or break out of customize.sh's
# single-quoted awk program.
_UNSAFE = re.compile(r"[\s#'\"\\]")


def _fail(var: str, problem: str, fix: str) -> NoReturn:
    raise AnsibleFilterError(f"{var}: {problem}. {fix}")


def _int(var: str, value, low: int, high: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not re.fullmatch(r"-?[0-9]+", str(value)):
        _fail(var, f"expected a whole number, got {value!r:.80}", fix)
    number = int(value)
    if not low <= number <= high:
        _fail(var, f"{number} is out of range {low}-{high}", fix)
    return number


def _port(var: str, value, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    fix = "Set a TCP/UDP port from 1 to 65535" + (" (0 turns it off)" if allow_zero else "") + "."
    return _int(var, value, low, 65535, fix)


def _size(var: str, value) -> str:
    """A squid size (``256 MB``); a bare number means MB. Returns the squid spelling."""
    fix = "Give a positive size such as '256 MB', '512 KB' or '4 GB' (a bare number means MB)."
    if isinstance(value, bool):
        _fail(var, f"expected a size, got {value!r}", fix)
    text = str(value).strip() if isinstance(value, (int, str)) else None
    if text is None:
        _fail(var, f"expected a size, got {type(value).__name__}", fix)
    if re.fullmatch(r"-?[0-9]+", text):
        text += " MB"
    match = _SIZE.fullmatch(text)
    if not match:
        _fail(var, f"{value!r:.80} is not a size", fix)
    if int(match.group(1)) <= 0:
        _fail(var, f"{value!r:.80} is not a positive size", fix)
    return f"{int(match.group(1))} {match.group(2).upper()}"


def _kb(size: str) -> int:
    number, unit = size.split()
    return int(number) * _UNITS_KB[unit]


def _networks(var: str, value, allow_empty: bool = False) -> list[str]:
    fix = "List networks in CIDR notation, e.g. ['10.1.0.0/16', '2001:db8::/64']."
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        _fail(var, f"expected a list of networks, got {type(value).__name__}: {value!r:.80}", fix)
    if not value and not allow_empty:
        _fail(var, "is empty, so no client could use the proxy", fix + " Name the worker nodes' networks.")
    out = []
    for item in value:
        if not isinstance(item, str) or "/" not in item:
            _fail(var, f"{item!r:.80} is not a network in CIDR notation (address/prefix)", fix)
        try:
            net = ipaddress.ip_network(item, strict=True)
        except ValueError as err:
            _fail(var, f"{item!r:.80} is not a network in CIDR notation ({err})", fix)
        if net.prefixlen == 0:
            _fail(var, f"{item} is every address: the proxy would be open to the world", fix)
        if str(net) not in out:
            out.append(str(net))
    return out


def _domains(var: str, value) -> list[str]:
    fix = "List DNS domains as squid's dstdomain spells them, e.g. ['.cern.ch', 'cvmfs-s1.example.org']."
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        _fail(var, f"expected a list of domains, got {type(value).__name__}: {value!r:.80}", fix)
    out = []
    for item in value:
        if not isinstance(item, str) or not _DOMAIN.fullmatch(item.lower()) or len(item) > 254:
            _fail(var, f"{item!r:.80} is not a DNS domain or host name", fix)
        if item.lower() not in out:
            out.append(item.lower())
    return out


def _covered(domain: str, others: list[str]) -> bool:
    """True if a dotted domain in ``others`` already matches ``domain`` (squid warns about such entries)."""
    bare = domain.lstrip(".")
    for other in others:
        if other == domain or not other.startswith("."):
            continue
        if bare == other[1:] and not domain.startswith("."):
            return True
        if bare.endswith(other):
            return True
    return False


def squid_config(params: dict) -> dict:
    """Check and normalise the squid role's variables; keys are the variables' names.

    Returns ``port``, ``net_local``, ``cache_mem``, ``cache_dir``, ``cache_dir_mb``,
    ``maximum_object_size``, ``maximum_object_size_in_memory``, ``destinations`` (CVMFS then
    Frontier domains, without entries another entry already covers), ``monitor_port``,
    ``monitor_networks``, ``snmp_community``, ``log_rotate``, ``shutdown_lifetime`` and
    ``extra_directives``.
    """
    if not isinstance(params, dict):
        raise AnsibleFilterError(f"squid_config: expected a dict of squid_* variables, got {type(params).__name__}")
    p = params
    out: dict = {"port": _port("squid_port", p.get("squid_port", 3128))}
    out["net_local"] = _networks("squid_client_networks", p.get("squid_client_networks"))
    out["cache_mem"] = _size("squid_cache_mem", p.get("squid_cache_mem", "256 MB"))
    cache_dir = p.get("squid_cache_dir", "")
    if not isinstance(cache_dir, str) or not cache_dir.startswith("/") or _UNSAFE.search(cache_dir):
        _fail(
            "squid_cache_dir",
            f"{cache_dir!r:.80} is not an absolute path without spaces or quotes",
            "Set the directory of the disk cache, e.g. /var/spool/squid.",
        )
    out["cache_dir"] = cache_dir.rstrip("/") or "/"
    out["cache_dir_mb"] = _int(
        "squid_cache_dir_size_mb",
        p.get("squid_cache_dir_size_mb", 10000),
        1,
        2**31 - 1,
        "Give the disk cache's size as a positive number of MB, e.g. 20000.",
    )
    out["maximum_object_size"] = _size("squid_maximum_object_size", p.get("squid_maximum_object_size", "1 GB"))
    out["maximum_object_size_in_memory"] = _size(
        "squid_maximum_object_size_in_memory", p.get("squid_maximum_object_size_in_memory", "128 KB")
    )
    if _kb(out["maximum_object_size_in_memory"]) > _kb(out["cache_mem"]):
        _fail(
            "squid_maximum_object_size_in_memory",
            f"{out['maximum_object_size_in_memory']} is larger than squid_cache_mem={out['cache_mem']}",
            "Keep it below the memory cache, e.g. 128 KB.",
        )
    cvmfs = _domains("squid_cvmfs_domains", p.get("squid_cvmfs_domains", []))
    frontier = _domains("squid_frontier_domains", p.get("squid_frontier_domains", []))
    every = cvmfs + [d for d in frontier if d not in cvmfs]
    if not every:
        _fail(
            "squid_cvmfs_domains",
            "squid_cvmfs_domains and squid_frontier_domains are both empty: the squid would serve nothing",
            "Name the CVMFS stratum-1 and Frontier server domains it may fetch from (everything else is denied).",
        )
    out["destinations"] = [d for d in every if not _covered(d, every)]
    out["monitor_port"] = _port("squid_monitor_port", p.get("squid_monitor_port", 3401), allow_zero=True)
    out["monitor_networks"] = _networks(
        "squid_monitor_networks", p.get("squid_monitor_networks", ["127.0.0.1/32"]), allow_empty=True
    )
    community = p.get("squid_snmp_community", "public")
    if not isinstance(community, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", community):
        _fail("squid_snmp_community", f"{community!r:.80} is not a plain word", "Use letters, digits, . _ or -.")
    out["snmp_community"] = community
    out["log_rotate"] = _int(
        "squid_log_rotate", p.get("squid_log_rotate", 7), 0, 3650, "Give how many rotated logs to keep (0-3650)."
    )
    out["shutdown_lifetime"] = _int(
        "squid_shutdown_lifetime",
        p.get("squid_shutdown_lifetime", 5),
        0,
        3600,
        "Give the seconds squid lets running transfers finish on a restart (0-3600).",
    )
    extra = p.get("squid_extra_directives", [])
    if isinstance(extra, str) or not isinstance(extra, (list, tuple)):
        _fail(
            "squid_extra_directives", f"expected a list of lines, got {type(extra).__name__}", "Give one line per item."
        )
    for line in extra:
        if not isinstance(line, str) or "\n" in line or "'" in line or not line.strip():
            _fail(
                "squid_extra_directives",
                f"{line!r:.80} is not one squid.conf line",
                "Give one non-empty directive per item, without newlines or single quotes.",
            )
    out["extra_directives"] = list(extra)
    return out


def _proxy(var: str, item) -> str:
    fix = "Give each proxy as host:port, e.g. squid1.example.org:3128, in the order clients should try them."
    if not isinstance(item, str):
        _fail(var, f"{item!r:.80} is not host:port", fix)
    host, sep, port = item.rpartition(":")
    if not sep or not host:
        _fail(var, f"{item!r:.80} has no port", fix)
    if not _HOST.fullmatch(host.lower()):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            _fail(var, f"{host!r:.80} is not a host name or IPv4 address", fix)
    _port(var, port)
    return f"{host.lower()}:{int(port)}"


def wpad_pac(proxies, domains, direct_fallback: bool = False, header: str = "") -> str:
    """The text of a PAC file sending ``domains`` through ``proxies`` (in order) and the rest DIRECT."""
    if isinstance(proxies, str) or not isinstance(proxies, (list, tuple)):
        _fail("wpad_proxies", f"expected a list of host:port, got {type(proxies).__name__}", "Give a list.")
    if not proxies:
        _fail(
            "wpad_proxies",
            "no proxy to send CVMFS and Frontier traffic to",
            "List the site's squids as host:port, or put hosts in the group wpad_proxy_group names.",
        )
    chain = []
    for item in proxies:
        proxy = _proxy("wpad_proxies", item)
        if proxy in chain:
            _fail("wpad_proxies", f"{proxy} is listed twice", "List each squid once, in the order to try them.")
        chain.append(proxy)
    names = _domains("wpad_proxied_domains", domains)
    if not names:
        _fail(
            "wpad_proxied_domains",
            "is empty, so no traffic would go through the site's squids",
            "Name the CVMFS stratum-1 and Frontier server domains.",
        )
    names = [d for d in names if not _covered(d, names)]
    answer = "; ".join(f"PROXY {p}" for p in chain) + ("; DIRECT" if direct_fallback else "")
    tests = []
    for name in names:
        if name.startswith("."):
            tests.append(f"host == {json.dumps(name[1:])} || dnsDomainIs(host, {json.dumps(name)})")
        else:
            tests.append(f"host == {json.dumps(name)}")
    lines = [line for line in (header or "").splitlines()]
    lines += [
        "function FindProxyForURL(url, host) {",
        "    host = host.toLowerCase();",
        '    if (url.substring(0, 5) != "http:") {',
        '        return "DIRECT";',
        "    }",
        "    if (" + "\n        || ".join(tests) + ") {",
        f"        return {json.dumps(answer)};",
        "    }",
        '    return "DIRECT";',
        "}",
    ]
    return "\n".join(lines) + "\n"


class FilterModule:
    """sitekit squid and WPAD filters."""

    def filters(self):
        return {"squid_config": squid_config, "wpad_pac": wpad_pac}
