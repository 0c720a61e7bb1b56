"""Filters that turn the site's CVMFS inventory into /etc/cvmfs/default.local.

How the CVMFS client reads that file decides what is safe to write (cvmfs/options.cc,
``BashOptionsManager::ParseFromString``): it pipes the file into ``/bin/sh`` (dash on Debian and
Ubuntu), then, for each ``KEY=...`` line, runs the unquoted ``echo $KEY`` and reads back one line.
So a value must be a single line and must survive field splitting, pathname expansion and dash's
``echo``; ``cvmfs_default_local`` rejects anything that would not, rather than write a file the
client reads differently from what the inventory says.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from typing import NoReturn

from ansible.errors import AnsibleFilterError

# The node-side checks live once, in module_utils/sitekit_cvmfs.py (the cvmfs_probe module and the probe command
# use them on the node); the filters that decide the same on the controller import it from there.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in sys.path:
    sys.path.insert(0, _MODULE_UTILS)
import sitekit_cvmfs  # noqa: E402

# CVMFS_HTTP_PROXY keywords, spelled as CVMFS compares them (download.cc: == "DIRECT"; wpad.cc: == "auto").
DIRECT = "DIRECT"
AUTO = "auto"

_PROXY_FORM = (
    "expected http://HOST:PORT (HOST a DNS name, an IPv4 address or [IPv6]; PORT 1-65535; "
    "at most a trailing /), DIRECT or auto"
)
_INPUT_FORM = (
    "expected a list of fail-over groups, each a proxy URL, DIRECT, auto, "
    "or a list of proxy URLs (one load-balanced group)"
)
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_PORT = re.compile(r"[1-9][0-9]{0,4}")

# A shell variable name: the client takes any KEY=value line of its files as a parameter (experiments read their own,
# e.g. CMS_LOCAL_SITE, which the cms.cern.ch variant symlinks resolve).
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Names the shell itself or the dynamic loader reads: set in a file the client and cvmfs_config source, they change
# how /bin/sh reads the rest of it (IFS splits the echo $KEY read-back, PATH finds no command) or what it runs.
SHELL_NAMES = frozenset(
    (
        "IFS",
        "PATH",
        "ENV",
        "CDPATH",
        "HOME",
        "PWD",
        "OLDPWD",
        "PS1",
        "PS2",
        "PS4",
        "OPTIND",
        "OPTARG",
        "PPID",
        "LINENO",
        "SHELL",
        "SHELLOPTS",
        "BASHOPTS",
        "BASH_ENV",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
    )
)
_REPO_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_REPO_NAME = re.compile(rf"{_REPO_LABEL}(?:\.{_REPO_LABEL})+")
# A domain of repositories (the key of a domain.d file): one label or more.
_DOMAIN_NAME = re.compile(rf"{_REPO_LABEL}(?:\.{_REPO_LABEL})*")
_INTEGER = re.compile(r"-?[0-9]+")
# Parameters the CVMFS docs (apx-parameters) describe as comma-separated lists. Other lists use ';'
# (CVMFS_SERVER_URL; CVMFS_PAC_URLS, which is taken as a list too) or ':' (CVMFS_PUBLIC_KEY): those must be given
# as strings.
COMMA_LISTS = (
    "CVMFS_REPOSITORIES",
    "CVMFS_CPU_AFFINITY",
    "CVMFS_XATTR_PRIVILEGED_GIDS",
    "CVMFS_XATTR_PROTECTED_XATTRS",
)
# OptionsManager::IsOn / IsOff (cvmfs/options.cc), compared in upper case.
_ON = ("YES", "ON", "1", "TRUE")
_OFF = ("NO", "OFF", "0", "FALSE")


# --- cvmfs_http_proxy -----------------------------------------------------------------------------


def _host_problem(host: str) -> str | None:
    if host.startswith("["):
        if not host.endswith("]"):
            return "an IPv6 address needs its closing ]"
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host} is not a valid IPv6 address"
        return None
    if ":" in host:
        return "write an IPv6 address in brackets, e.g. http://[2001:db8::1]:3128"
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host} is not a valid IPv4 address"
        return None
    if len(host) > 253 or not _DNS_NAME.fullmatch(host):
        return f"{host!r} is not a DNS name (letters, digits and - in dot-separated labels)"
    return None


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return hostport, None
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        return host, rest[1:] if rest.startswith(":") else (None if rest == "" else rest)
    if hostport.count(":") > 1:  # an IPv6 address without brackets
        return hostport, ""
    host, sep, port = hostport.partition(":")
    return host, port if sep else None


def _proxy_problem(url) -> tuple[str | None, str | None]:
    """(problem, key): why ``url`` is not ``http://host:port[/]``, or (None, a key to spot duplicates)."""
    if not isinstance(url, str):
        return f"a proxy must be a string, got {type(url).__name__}", None
    if url == "":
        return "empty string", None
    if any(c.isspace() for c in url):
        return "contains whitespace", None
    if "|" in url or ";" in url:
        return "give a load-balanced group as a list of URLs and fail-over groups as list items, not joined", None
    if url.upper() == DIRECT or url.lower() == AUTO:
        return f"CVMFS only knows the exact spelling: write {DIRECT if url.upper() == DIRECT else AUTO}", None
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "missing the http:// scheme", None
    if scheme.lower() == "https":
        return "CVMFS talks plain HTTP to its proxies: use http://, not https://", None
    if scheme != "http":
        return f"scheme {scheme}:// is not supported, use http://", None
    hostport, _, path = rest.partition("/")
    if path:
        return "a proxy URL has no path (only an optional trailing /)", None
    if "@" in hostport:
        return "credentials (user:password@) are not supported in a proxy URL", None
    if any(c in hostport for c in "?#"):
        return "a proxy URL has no query or fragment", None
    host, port = _split_host_port(hostport)
    problem = _host_problem(host)
    if problem:
        return problem, None
    if port is None or port == "":
        return "the port is required, e.g. :3128", None
    if not _PORT.fullmatch(port) or int(port) > 65535:
        return f"port {port!r} is not a number from 1 to 65535", None
    return None, f"{host.lower()}:{int(port)}"


def cvmfs_http_proxy(groups):
    """Join ``groups`` (fail-over order) into a CVMFS_HTTP_PROXY value: ``;`` between groups, ``|`` inside one.

    Each item is a proxy URL, ``DIRECT``, ``auto`` (WPAD/PAC), or a list of proxy URLs that CVMFS
    balances between. ``DIRECT`` and ``auto`` may stand anywhere, in the order given, but only as
    groups of their own; a proxy, ``DIRECT`` or ``auto`` may appear only once.
    """
    if not isinstance(groups, (list, tuple)):
        hint = " (wrap a single proxy in a list)" if isinstance(groups, str) else ""
        raise AnsibleFilterError(f"cvmfs_http_proxy: {_INPUT_FORM}, got {type(groups).__name__}: {groups!r:.120}{hint}")
    if not groups:
        raise AnsibleFilterError(f"cvmfs_http_proxy: {_INPUT_FORM}, got an empty list")
    seen = {}
    rendered = []

    def claim(key, label, where):
        if key in seen:
            raise AnsibleFilterError(
                f"cvmfs_http_proxy: {where}: {key} was already given as {seen[key]}; "
                "list each proxy, DIRECT and auto once"
            )
        seen[key] = label

    for number, item in enumerate(groups, start=1):
        where = f"item {number} ({item!r:.120})"
        if isinstance(item, (list, tuple)):
            if not item:
                raise AnsibleFilterError(
                    f"cvmfs_http_proxy: {where}: a load-balanced group needs at least one proxy URL; {_PROXY_FORM}"
                )
            for entry_number, entry in enumerate(item, start=1):
                entry_where = f"item {number}, entry {entry_number} ({entry!r:.120})"
                if entry in (DIRECT, AUTO):
                    raise AnsibleFilterError(
                        f"cvmfs_http_proxy: {entry_where}: {entry} cannot be part of a load-balanced group; "
                        f"give it as a fail-over group of its own (its own list item)"
                    )
                problem, key = _proxy_problem(entry)
                if problem:
                    raise AnsibleFilterError(f"cvmfs_http_proxy: {entry_where}: {problem}; {_PROXY_FORM}")
                claim(key, f"item {number}, entry {entry_number}", entry_where)
            rendered.append("|".join(item))
            continue
        if item in (DIRECT, AUTO):
            claim(item, f"item {number}", where)
            rendered.append(item)
            continue
        problem, key = _proxy_problem(item)
        if problem:
            raise AnsibleFilterError(f"cvmfs_http_proxy: {where}: {problem}; {_PROXY_FORM}")
        claim(key, f"item {number}", where)
        rendered.append(item)
    return ";".join(rendered)


def _split_proxy_value(value: str):
    """The group structure of a CVMFS_HTTP_PROXY string, as cvmfs_http_proxy takes it."""
    groups = []
    for group in value.split(";"):
        entries = group.split("|")
        groups.append(entries[0] if len(entries) == 1 and entries[0] in (DIRECT, AUTO) else entries)
    return groups


# --- cvmfs_pac_urls -------------------------------------------------------------------------------

_PAC_FORM = "expected http[s]://HOST[:PORT]/PATH (the PAC file's URL), file:///PATH or auto (http://wpad/wpad.dat)"


def _pac_url_problem(url) -> str | None:
    if not isinstance(url, str):
        return f"a PAC URL must be a string, got {type(url).__name__}"
    if url == "":
        return "empty string"
    if any(c.isspace() for c in url) or ";" in url:
        return "contains whitespace or ;, give each URL as its own list item"
    if url == AUTO:
        return None
    if url.lower() == AUTO:
        return f"CVMFS only knows the exact spelling: write {AUTO}"
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "missing the http:// scheme"
    if scheme == "file":
        return None if rest.startswith("/") and len(rest) > 1 else "a file URL needs an absolute path, file:///PATH"
    if scheme not in ("http", "https"):
        return f"scheme {scheme}:// is not supported, use http:// (or file:// for a local file)"
    hostport, slash, _path = rest.partition("/")
    if "@" in hostport or any(c in url for c in "?#"):
        return "a PAC URL has no credentials, query or fragment"
    host, port = _split_host_port(hostport)
    problem = _host_problem(host)
    if problem:
        return problem
    if port is not None and (not _PORT.fullmatch(port) or int(port) > 65535):
        return f"port {port!r} is not a number from 1 to 65535"
    if not slash:
        return "the URL needs the PAC file's path, e.g. /wpad.dat"
    return None


def cvmfs_pac_urls(urls, wpad_names=None, wpad_port=80):
    """CVMFS_PAC_URLS (``;`` between URLs) from a list of PAC URLs, tried in order.

    An empty list means the site's WPAD: ``http://NAME[:PORT]/wpad.dat`` for each of ``wpad_names`` (the names
    the wpad role serves) at ``wpad_port``.
    """
    if urls is None or (isinstance(urls, (list, tuple)) and not urls):
        if not isinstance(wpad_names, (list, tuple)) or not wpad_names:
            raise AnsibleFilterError(
                "cvmfs_pac_urls: no PAC URLs and no WPAD names to derive them from; set cvmfs_pac_urls (e.g. "
                "[http://wpad/wpad.dat]) or the names the wpad role serves (wpad_server_names), "
                f"got {wpad_names!r:.120}"
            )
        port = str(wpad_port)
        if not _PORT.fullmatch(port) or int(port) > 65535:
            raise AnsibleFilterError(f"cvmfs_pac_urls: wpad_port must be a TCP port 1-65535, got {wpad_port!r:.60}")
        suffix = "" if port == "80" else f":{port}"
        urls = [f"http://{name}{suffix}/wpad.dat" for name in wpad_names]
        where = "the WPAD name"
    else:
        where = "item"
    if not isinstance(urls, (list, tuple)):
        hint = " (give a list of URLs)" if isinstance(urls, str) else ""
        raise AnsibleFilterError(
            f"cvmfs_pac_urls: expected a list of PAC URLs, got {type(urls).__name__}: {urls!r:.120}{hint}"
        )
    seen = set()
    for number, url in enumerate(urls, start=1):
        problem = _pac_url_problem(url)
        if problem:
            raise AnsibleFilterError(f"cvmfs_pac_urls: {where} {number} ({url!r:.120}): {problem}; {_PAC_FORM}")
        if url in seen:
            raise AnsibleFilterError(f"cvmfs_pac_urls: {where} {number} ({url!r:.120}) is listed twice; list it once")
        seen.add(url)
    return ";".join(urls)


# --- cvmfs_nfiles -------------------------------------------------------------------------------------

# The header `tail -v` writes before each file it prints.
_TAIL_HEADER = re.compile(r"^==> /proc/(.+?) <==$", re.M)


def _proc_texts(text):
    """{"1/limits": text, ...} from the output of ``tail -v -n +1 /proc/1/limits /proc/self/limits ...``."""
    parts = _TAIL_HEADER.split(text)
    return {name: body.strip("\n") + "\n" for name, body in zip(parts[1::2], parts[2::2])}


def cvmfs_nfiles(requested, proc, source="cvmfs_nfiles"):
    """The CVMFS_NFILES to write for a node, from ``requested`` and the node's /proc texts (``proc``).

    ``proc`` maps "1/limits", "self/limits", "1/status", "self/status", "sys/fs/nr_open" to the files' text, or is
    the output of ``tail -v -n +1`` on those files (one command on the node reads them all).
    ``requested`` 0 fits the node: None (leave the client's default) when the default fits, else the largest
    power of two within the hard limit the mount runs under. A positive ``requested`` is returned when it fits and
    fails, naming ``source`` and the fix, when the client could not raise its limit to it.
    """
    if isinstance(requested, str) and requested.isdigit():
        requested = int(requested)
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise AnsibleFilterError(
            f"cvmfs_nfiles: {source} must be a positive number of open files, or 0 to fit the node's limit, "
            f"got {requested!r:.60}"
        )
    if isinstance(proc, str) and _TAIL_HEADER.search(proc):
        proc = _proc_texts(proc)
    if not isinstance(proc, Mapping):
        raise AnsibleFilterError(
            f"cvmfs_nfiles: expected the node's /proc texts as a dict, or the output of tail -v -n +1 on them, "
            f"got {type(proc).__name__}"
        )
    facts = sitekit_cvmfs.nofile_facts(proc)
    if requested == 0:
        verdict = sitekit_cvmfs.judge_nfiles(sitekit_cvmfs.DEFAULT_NFILES, facts)
        return None if verdict["ok"] else verdict["suggested"]
    verdict = sitekit_cvmfs.judge_nfiles(requested, facts, source=source)
    if not verdict["ok"]:
        raise AnsibleFilterError(f"cvmfs_nfiles: {source}={requested}: {verdict['cause']}. Fix: {verdict['remedy']}")
    return requested


# --- cvmfs_mounted_repositories ---------------------------------------------------------------------


def cvmfs_mounted_repositories(mountinfo, mountpoint="/cvmfs"):
    """The repositories a running CVMFS client serves, from a /proc/self/mountinfo text."""
    if not isinstance(mountinfo, str):
        raise AnsibleFilterError(
            f"cvmfs_mounted_repositories: expected the text of /proc/self/mountinfo, got {type(mountinfo).__name__}"
        )
    return sitekit_cvmfs.mounted_repositories(mountinfo, mountpoint)


# --- cvmfs_default_local --------------------------------------------------------------------------


def _fail(key, message) -> NoReturn:
    raise AnsibleFilterError(f"cvmfs_default_local: {key}: {message}")


def _shell_quote(text: str) -> str:
    """``text`` in single quotes for /bin/sh; an embedded ' becomes '\\''."""
    return "'" + text.replace("'", "'\\''") + "'"


def _reader_problem(text: str) -> str | None:
    """Why the client's ``/bin/sh`` + unquoted ``echo $KEY`` would not give ``text`` back, or None."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "contains a control character (newline, tab, ...); the client reads each value back as one line"
    if "\\" in text:
        return "contains a backslash, which the echo of dash (/bin/sh on Debian and Ubuntu) turns into an escape"
    if any(c in text for c in "*?["):
        return "contains * ? or [, which the client's unquoted echo $KEY expands against the files in /etc/cvmfs"
    if text != text.strip(" ") or "  " in text:
        return "has leading, trailing or repeated spaces, which the client's unquoted echo $KEY collapses"
    if re.fullmatch(r"-[neE]+", text.split(" ")[0]):
        return "starts with an echo option (-n, -e, -E), which the client's echo $KEY would swallow"
    return None


def _scalar(key, value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    _fail(key, f"expected a string, an integer or a boolean, got {type(value).__name__}: {value!r:.120}")


def _repositories(value) -> str:
    key = "CVMFS_REPOSITORIES"
    if isinstance(value, str):
        names = value.split(",")
    elif isinstance(value, (list, tuple)):
        names = list(value)
    else:
        _fail(key, f"expected a list of repository names, got {type(value).__name__}: {value!r:.120}")
    if not names or names == [""]:
        _fail(key, "the list is empty; list at least one repository, or set it to null to leave it out")
    for name in names:
        if not isinstance(name, str) or not _REPO_NAME.fullmatch(name):
            hint = " (repository names are lowercase)" if isinstance(name, str) and name != name.lower() else ""
            _fail(
                key,
                f"{name!r:.120} is not a fully qualified repository name{hint}; expected lowercase letters, "
                f"digits and - in dot-separated labels, with at least one dot, e.g. atlas.cern.ch",
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        _fail(key, f"{', '.join(duplicates)} listed more than once; list each repository once")
    return ",".join(names)


def _quota_limit(value) -> str:
    key = "CVMFS_QUOTA_LIMIT"
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value != -1):
        _fail(
            key,
            f"expected a positive number of MB (e.g. 20000), or -1 for no quota (alien cache), got {value!r:.120}",
        )
    return str(value)


def _absolute_path(key, value) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        _fail(key, f"expected an absolute path (starting with /), e.g. /var/lib/cvmfs, got {value!r:.120}")
    return value


def _http_proxy(value) -> str:
    key = "CVMFS_HTTP_PROXY"
    if not isinstance(value, str):
        _fail(key, f"expected a string; turn a list of proxy groups into one with cvmfs_http_proxy, got {value!r:.120}")
    if value == "":
        _fail(key, "is empty, and CVMFS cannot mount without it; set it to DIRECT if the site has no proxy")
    try:
        cvmfs_http_proxy(_split_proxy_value(value))
    except AnsibleFilterError as err:
        _fail(key, f"{value!r:.120} is not valid proxy syntax ({err.message}); build it with cvmfs_http_proxy")
    return value


def _pac_urls_value(value) -> str:
    key = "CVMFS_PAC_URLS"
    urls = value.split(";") if isinstance(value, str) else value
    if not isinstance(urls, (list, tuple)) or not urls:
        _fail(key, f"expected a list of PAC URLs or a ;-separated string, got {value!r:.120}")
    try:
        return cvmfs_pac_urls(list(urls))
    except AnsibleFilterError as err:
        _fail(key, f"{value!r:.120} is not a valid PAC URL list ({err.message}); build it with cvmfs_pac_urls")


def _shared_cache(value) -> str:
    text = _scalar("CVMFS_SHARED_CACHE", value)
    if text.upper() not in _ON + _OFF:
        _fail("CVMFS_SHARED_CACHE", f"expected yes or no, got {value!r:.120}")
    return text


def _render(key, value) -> str:
    if key == "CVMFS_REPOSITORIES":
        return _repositories(value)
    if key == "CVMFS_QUOTA_LIMIT":
        return _quota_limit(value)
    if key in ("CVMFS_CACHE_BASE", "CVMFS_ALIEN_CACHE"):
        return _absolute_path(key, value)
    if key == "CVMFS_HTTP_PROXY":
        return _http_proxy(value)
    if key == "CVMFS_SHARED_CACHE":
        return _shared_cache(value)
    if key == "CVMFS_PAC_URLS":
        return _pac_urls_value(value)
    if key == "CVMFS_NFILES":
        if isinstance(value, str) and _INTEGER.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _fail(key, f"expected a positive number of open files (e.g. 16384), got {value!r:.120}")
        return str(value)
    if isinstance(value, (list, tuple)):
        if key not in COMMA_LISTS:
            _fail(
                key,
                "a list is only taken for the comma-separated parameters "
                f"({', '.join(COMMA_LISTS)}); give this one as a string with its own separator",
            )
        items = [_scalar(key, item) for item in value]
        if not items or any(item == "" or "," in item for item in items):
            _fail(key, f"expected a non-empty list of items without commas, got {value!r:.120}")
        return ",".join(items)
    return _scalar(key, value)


def _check_cache_modes(values):
    """Cache rules from the CVMFS docs (cpt-configure, Alien Cache) and mountpoint.cc CheckCacheMode."""
    exclusive = values.get("CVMFS_SHARED_CACHE", "").upper() in _OFF
    if values.get("CVMFS_QUOTA_LIMIT") == "-1" and not exclusive:
        _fail(
            "CVMFS_QUOTA_LIMIT",
            "-1 (no quota) is only valid with CVMFS_SHARED_CACHE set to no (an alien cache); "
            "set CVMFS_SHARED_CACHE: 'no' or give a positive limit in MB",
        )
    if "CVMFS_ALIEN_CACHE" in values and (values.get("CVMFS_QUOTA_LIMIT") != "-1" or not exclusive):
        _fail(
            "CVMFS_ALIEN_CACHE",
            "an alien cache requires CVMFS_QUOTA_LIMIT: -1 and CVMFS_SHARED_CACHE: 'no' in the same parameters",
        )


def _header(header) -> str:
    if header is None or header == "":
        return ""
    if not isinstance(header, str):
        raise AnsibleFilterError(
            f"cvmfs_default_local: header must be a string of comment lines, got {type(header).__name__}"
        )
    for line in header.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            raise AnsibleFilterError(
                "cvmfs_default_local: header must be shell comment lines (each starting with #), "
                f"e.g. {{{{ ansible_managed | comment }}}}; got the line {line!r:.120}"
            )
    return header if header.endswith("\n") else header + "\n"


def _name_problem(key) -> str | None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        return (
            f"parameter name {key!r:.120} is not a shell variable name: use letters, digits and _, not starting "
            "with a digit (CVMFS_QUOTA_LIMIT, or an experiment's own such as CMS_LOCAL_SITE)"
        )
    if key in SHELL_NAMES:
        return (
            f"parameter name {key} is a variable the shell itself uses; the client and cvmfs_config source this file "
            "with /bin/sh, so setting it changes how the rest is read: leave it out"
        )
    if key.startswith("CVMFS_") and not re.fullmatch(r"CVMFS_[A-Z0-9_]+", key):
        return (
            f"parameter name {key} must be upper case after CVMFS_, as in the CVMFS parameter list "
            "(cache-manager instances: CVMFS_CACHE_<INSTANCE>_TYPE)"
        )
    return None


def cvmfs_default_local(params, header=None, source=None):
    """The text of /etc/cvmfs/default.local: ``KEY='value'`` lines in the order of ``params``.

    ``None`` values are left out; booleans become yes/no; every value is single-quoted. Keys are CVMFS parameters or
    any other shell variable the site's experiments read from the client's configuration (``CMS_LOCAL_SITE``).
    ``header`` (comment lines, e.g. ``ansible_managed | comment``) goes first, as given. ``source`` (the inventory
    variable the dict comes from) is named in every error.
    """
    try:
        return _default_local(params, header)
    except AnsibleFilterError as err:
        if not source:
            raise
        raise AnsibleFilterError(
            err.message.replace("cvmfs_default_local: ", f"cvmfs_default_local: {source}: ", 1)
        ) from None


def _default_local(params, header):
    if not isinstance(params, Mapping):
        raise AnsibleFilterError(
            f"cvmfs_default_local: expected a dict of CVMFS parameters, got {type(params).__name__}: {params!r:.120}"
        )
    text = _header(header)
    values = {}
    for key, value in params.items():
        problem = _name_problem(key)
        if problem:
            raise AnsibleFilterError(f"cvmfs_default_local: {problem}")
        if value is None:
            continue
        rendered = _render(key, value)
        problem = _reader_problem(rendered)
        if problem:
            _fail(key, f"value {rendered!r:.120} {problem}; remove those characters")
        values[key] = rendered
    _check_cache_modes(values)
    return text + "".join(f"{key}={_shell_quote(value)}\n" for key, value in values.items())


def cvmfs_override_files(repository_config, domain_config=None, header=None):
    """The per-repository and per-domain override files: ``[{path, content}]``, repositories first, in order.

    ``repository_config`` maps a fully qualified repository name to its parameters
    (``/etc/cvmfs/config.d/<name>.local``), ``domain_config`` a domain to its parameters
    (``/etc/cvmfs/domain.d/<domain>.local``). Each file is rendered as ``cvmfs_default_local`` renders default.local,
    with ``header`` first; every error names the variable and the key.
    """
    files = []
    for variable, config, pattern, directory, example in (
        ("cvmfs_repository_config", repository_config, _REPO_NAME, "config.d", "cms.cern.ch"),
        ("cvmfs_domain_config", {} if domain_config is None else domain_config, _DOMAIN_NAME, "domain.d", "cern.ch"),
    ):
        if not isinstance(config, Mapping):
            raise AnsibleFilterError(
                f"cvmfs_override_files: {variable} must be a dict keyed by name (e.g. {example}), "
                f"got {type(config).__name__}: {config!r:.120}"
            )
        for name, params in config.items():
            if not isinstance(name, str) or not pattern.fullmatch(name):
                raise AnsibleFilterError(
                    f"cvmfs_override_files: {variable}: key {name!r} is not a "
                    f"{'fully qualified repository name' if directory == 'config.d' else 'domain'}: lowercase "
                    f"letters, digits and - in dot-separated labels. Fix the key, e.g. {example}."
                )
            content = cvmfs_default_local(params, header, f"{variable}[{name}]")
            files.append({"path": f"/etc/cvmfs/{directory}/{name}.local", "content": content})
    return files


class FilterModule:
    """sitekit CVMFS client filters."""

    def filters(self):
        return {
            "cvmfs_http_proxy": cvmfs_http_proxy,
            "cvmfs_default_local": cvmfs_default_local,
            "cvmfs_override_files": cvmfs_override_files,
            "cvmfs_pac_urls": cvmfs_pac_urls,
            "cvmfs_nfiles": cvmfs_nfiles,
            "cvmfs_mounted_repositories": cvmfs_mounted_repositories,
        }
