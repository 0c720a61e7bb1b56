"""VO-box services in containers: the plan checked on the controller, and each service's readiness on the node.

Standard library only (plus ``sitekit_cvmfs`` for repository names): ``plan`` runs on the controller in the
``vobox_services_plan`` filter, ``check_service`` on the node in the ``vobox_check`` module, and both in unit tests
on recorded data. A service is a podman container that systemd runs from a Quadlet unit (``NAME.container`` ->
``NAME.service``, container ``NAME``).

``check_service`` judges one service from what the node says, through ``run(argv, timeout) -> (rc, out, err)``:

* ``unit``: the systemd unit is active and running (else its last journal lines: the CVMFS probe's cause and
  remedy when /cvmfs held it back);
* ``image``: the container runs and runs the image the admin named (same image id);
* ``cvmfs``: every repository the service needs is readable inside the container (``ls`` through ``podman exec``):
  "Too many levels of symbolic links", or an empty directory where the host has content, means the host's mounts do
  not reach the container (no mount propagation);
* ``dns``: the container's resolver (nameservers, search domains) is the host's, or the admin's explicit one, and
  the host's ``/etc/hosts`` entries (and the admin's) are in the container's.
"""

from __future__ import annotations

import ipaddress
import json
import re

try:
    from ansible.module_utils import sitekit_cvmfs, sitekit_version
except ImportError:  # from the repository (unit tests, filters): module_utils is on sys.path
    import sitekit_cvmfs
    import sitekit_version

# Quadlet (podman's systemd generator for .container units) first shipped in podman 4.4.0.
QUADLET_SINCE = "4.4"
# "podman version 4.3.1" (podman --version), "  Candidate: 4.3.1+ds1-8+deb12u1" (apt-cache policy podman),
# "Version      : 4.9.4" (dnf info podman); a Debian epoch ("1:") comes before the version.
_PODMAN_VERSION = re.compile(
    r"^\s*(?:podman version|Candidate:|Version\s*:)\s*(?:\d+:)?(\d+)\.(\d+)(?:\.(\d+))?", re.MULTILINE
)


def podman_version(text):
    """The version ("4.3.1") of the podman in ``podman --version``, ``apt-cache policy podman`` (its candidate) or
    ``dnf info podman`` output; None when there is none (apt's "Candidate: (none)", no such package)."""
    found = _PODMAN_VERSION.search(text or "")
    if not found:
        return None
    return ".".join(part or "0" for part in found.groups())


def quadlet_problem(text, platform):
    """Why the podman the node has, or would install, cannot run the role's Quadlet units; "" when it can."""
    version = podman_version(text)
    since = QUADLET_SINCE
    fix = (
        f"install podman {since} or later (from the release's backports, or a newer release: Debian 13 ships 5.4, "
        f"Ubuntu 24.04 4.9, EL 9 and EL 8.8 4.4 or later), or leave vobox_services_enabled false on this host."
    )
    if version is None:  # nothing to judge: installing the package names what is missing
        return ""
    if not sitekit_version.at_least(version, QUADLET_SINCE):
        return f"{platform} has podman {version}, which has no Quadlet (podman {since} or later has): {fix}"
    return ""


# What a service may set; anything else is a typo the admin hears about.
SERVICE_KEYS = (
    "name",
    "image",
    "archive",
    "init",
    "command",
    "repositories",
    "ports",
    "volumes",
    "environment",
    "network",
    "dns_servers",
    "dns_search",
    "hosts",
)
INIT_MODES = ("entrypoint", "systemd")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
# An image reference: [registry[:port]/]path[:tag][@digest], lower-case path components.
_IMAGE = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
_PORT = re.compile(
    r"(?:(?P<ip>[0-9.]+|\[[0-9a-fA-F:]+\]):)?(?P<host>[0-9]+):(?P<container>[0-9]+)(?:/(?P<proto>tcp|udp))?"
)
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOSTNAME = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_PATH = re.compile(r"/[A-Za-z0-9_./@+-]*")
_VOLUME_OPTIONS = re.compile(r"[a-zA-Z,]+")
# Mount entries podman itself puts in a container's /etc/hosts, or that name the host differently there.
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "ip6-allnodes", "ip6-allrouters"}


# ---------------------------------------------------------------------------------------------
# The plan (controller)
# ---------------------------------------------------------------------------------------------
def _problems_of(index, service):
    """(normalised service, [problems]) for one entry of the list; each problem names the key and the fix."""
    where = f"vobox_services_list[{index}]"
    if not isinstance(service, dict):
        return None, [f"{where} must be a mapping with at least name and image, got {type(service).__name__}"]
    name = service.get("name")
    if isinstance(name, str) and _NAME.fullmatch(name or ""):
        where = f"vobox_services_list[{index}] ({name})"
    problems = []
    unknown = sorted(set(service) - set(SERVICE_KEYS))
    if unknown:
        problems.append(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; the keys are {', '.join(SERVICE_KEYS)}"
        )
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(
            f"{where}.name must be the service's name (unit NAME.service, container NAME): lower-case letters, "
            f"digits, '.', '_', '-', at most 63 characters, starting with a letter or digit; got {name!r}"
        )
    image = service.get("image")
    if not image:
        problems.append(
            f"{where}.image is required: the image the service runs, e.g. registry.example.org/alice/vobox:1.2 "
            "(with archive: the name the archive loads as)"
        )
    elif not isinstance(image, str) or not _IMAGE.fullmatch(image):
        problems.append(
            f"{where}.image {image!r} is not an image reference (e.g. registry.example.org/alice/vobox:1.2)"
        )
    archive = service.get("archive") or ""
    if archive and (not isinstance(archive, str) or not archive.startswith("/")):
        problems.append(
            f"{where}.archive must be an absolute path on the controller (podman save output); got {archive!r}"
        )
    init = service.get("init") or "entrypoint"
    if init not in INIT_MODES:
        problems.append(
            f"{where}.init must be entrypoint (the image's entry point or command runs the service) or systemd (the "
            f"image's systemd starts what runs inside); got {init!r}"
        )
    command = service.get("command") or []
    if isinstance(command, str) or not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        problems.append(f"{where}.command must be a list of arguments, e.g. [python3, -m, http.server, '8080']")
        command = []
    repositories = service.get("repositories") or []
    if not isinstance(repositories, list):
        problems.append(f"{where}.repositories must be a list of CVMFS repository names, e.g. [alice.cern.ch]")
        repositories = []
    for repo in repositories:
        try:
            sitekit_cvmfs.validate_repository(repo)
        except ValueError as exc:
            problems.append(f"{where}.repositories: {exc}")
    if len(set(map(str, repositories))) != len(repositories):
        problems.append(f"{where}.repositories lists a repository twice: list each once")
    ports = []
    for port in service.get("ports") or []:
        match = _PORT.fullmatch(str(port))
        if not match or not all(1 <= int(match.group(k)) <= 65535 for k in ("host", "container")):
            problems.append(
                f"{where}.ports: {port!r} must be HOST_PORT:CONTAINER_PORT[/tcp|udp] or IP:HOST_PORT:CONTAINER_PORT, "
                "ports 1-65535, e.g. '8443:8443/tcp'"
            )
            continue
        ports.append(
            {
                "spec": str(port),
                "ip": (match.group("ip") or "").strip("[]"),
                "host": int(match.group("host")),
                "proto": match.group("proto") or "tcp",
            }
        )
    volumes = service.get("volumes") or []
    for volume in volumes:
        parts = str(volume).split(":")
        if (
            len(parts) not in (2, 3)
            or not all(_PATH.fullmatch(p) for p in parts[:2])
            or (len(parts) == 3 and not _VOLUME_OPTIONS.fullmatch(parts[2]))
        ):
            problems.append(f"{where}.volumes: {volume!r} must be /HOST/PATH:/CONTAINER/PATH[:OPTIONS]")
        elif parts[1].rstrip("/") == "/cvmfs" or parts[1].startswith("/cvmfs/"):
            problems.append(
                f"{where}.volumes: {volume!r}: the role binds /cvmfs itself (with mount propagation); list the "
                "repositories under repositories instead"
            )
    environment = service.get("environment") or {}
    if not isinstance(environment, dict):
        problems.append(f"{where}.environment must be a mapping NAME: value")
        environment = {}
    for key, value in environment.items():
        if not _ENV_KEY.fullmatch(str(key)) or "\n" in str(value):
            problems.append(f"{where}.environment: {key!r} must be a variable name with a one-line value")
    network = service.get("network") or ""
    if network and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(network)):
        problems.append(f"{where}.network must be host, or a podman network's name; got {network!r}")
    for server in service.get("dns_servers") or []:
        try:
            ipaddress.ip_address(str(server))
        except ValueError:
            problems.append(f"{where}.dns_servers: {server!r} is not an IP address")
    for domain in service.get("dns_search") or []:
        if not _HOSTNAME.fullmatch(str(domain)):
            problems.append(f"{where}.dns_search: {domain!r} is not a domain name")
    hosts = service.get("hosts") or {}
    if not isinstance(hosts, dict):
        problems.append(f"{where}.hosts must be a mapping NAME: IP address")
        hosts = {}
    for host_name, address in hosts.items():
        try:
            ipaddress.ip_address(str(address))
            if not _HOSTNAME.fullmatch(str(host_name)):
                raise ValueError
        except ValueError:
            problems.append(f"{where}.hosts: {host_name!r}: {address!r} must be a host name and its IP address")
    planned = {
        "name": name,
        "image": image,
        "archive": archive,
        "init": init,
        "command": command,
        "repositories": list(repositories),
        "ports": [p["spec"] for p in ports],
        "volumes": [str(v) for v in volumes],
        "environment": {str(k): str(v) for k, v in environment.items()},
        "network": str(network),
        "dns_servers": [str(s) for s in service.get("dns_servers") or []],
        "dns_search": [str(d) for d in service.get("dns_search") or []],
        "hosts": {str(k): str(v) for k, v in hosts.items()},
        "_ports": ports,
    }
    return planned, problems


def plan(services):
    """The services, checked and normalised; ValueError listing every problem (each naming the key and the fix)."""
    if not isinstance(services, list):
        raise ValueError(f"vobox_services_list must be a list of services, got {type(services).__name__}")
    planned, problems = [], []
    for index, service in enumerate(services):
        entry, found = _problems_of(index, service)
        problems += found
        if entry is not None:
            planned.append(entry)
    seen_names, seen_ports = {}, {}
    for entry in planned:
        if entry["name"] in seen_names:
            problems.append(f"vobox_services_list: the name {entry['name']!r} is used twice: give each service its own")
        seen_names[entry["name"]] = True
        for port in entry.pop("_ports"):
            # One host port and protocol can be bound once, whatever address (an empty one is every address).
            key = (port["host"], port["proto"])
            if key in seen_ports:
                problems.append(
                    f"vobox_services_list: host port {port['host']}/{port['proto']} is taken twice "
                    f"({seen_ports[key]} and {entry['name']}): give each service its own host port"
                )
            seen_ports.setdefault(key, entry["name"])
    if problems:
        raise ValueError("; ".join(problems))
    return planned


# ---------------------------------------------------------------------------------------------
# Readiness (node)
# ---------------------------------------------------------------------------------------------
def parse_resolv_conf(text):
    """{'nameservers': [...], 'search': [...]} as the resolver reads resolv.conf (the last search line wins)."""
    nameservers, search = [], []
    for line in (text or "").splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
    return {"nameservers": nameservers, "search": search}


def parse_hosts(text):
    """{(address, name)} of an /etc/hosts text, without the loopback names podman writes itself."""
    entries = set()
    for line in (text or "").splitlines():
        words = line.split("#", 1)[0].split()
        for name in words[1:]:
            if name not in _LOCAL_NAMES:
                entries.add((words[0], name))
    return entries


def expected_resolver(service, host_resolv):
    """What the container's resolv.conf must say: the admin's explicit settings, else the host's."""
    host = parse_resolv_conf(host_resolv)
    return {
        "nameservers": service.get("dns_servers") or host["nameservers"],
        "search": service.get("dns_search") or host["search"],
    }


def _check(ok, detail, cause=None, remedy=None):
    return {"ok": bool(ok), "detail": detail, "cause": None if ok else cause, "remedy": None if ok else remedy}


def _show(run, unit, timeout):
    rc, out, _err = run(["systemctl", "show", unit, "-p", "ActiveState,SubState,Result,NRestarts"], timeout)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line) if rc == 0 else {}


def check_unit(run, name, timeout):
    unit = f"{name}.service"
    props = _show(run, unit, timeout)
    state = f"{props.get('ActiveState', 'unknown')}/{props.get('SubState', 'unknown')}"
    if props.get("ActiveState") == "active" and props.get("SubState") == "running":
        return _check(True, f"{unit} {state}, restarts {props.get('NRestarts', '0')}")
    _rc, journal, _err = run(["journalctl", "-u", unit, "-n", "8", "-o", "cat", "--no-pager"], timeout)
    why = " | ".join(line.strip() for line in journal.splitlines() if line.strip())[-1500:]
    return _check(
        False,
        f"{unit} {state}" + (f": {why}" if why else ""),
        f"the service {name} is not running ({state})",
        f"read `systemctl status {unit}` and `journalctl -u {unit}`: a failed CVMFS probe names its own cause and "
        "remedy; the unit restarts by itself once the cause is gone",
    )


def _inspect(run, kind, ref, timeout):
    rc, out, _err = run(["podman", kind, "inspect", ref], timeout)
    try:
        data = json.loads(out) if rc == 0 else None
    except ValueError:
        data = None
    return data[0] if isinstance(data, list) and data else None


def check_image(run, name, image, timeout):
    container = _inspect(run, "container", name, timeout)
    if not container or not (container.get("State") or {}).get("Running"):
        status = (container or {}).get("State", {}).get("Status", "missing")
        return _check(
            False,
            f"container {name} {status}",
            f"the container {name} is not running ({status})",
            f"systemctl restart {name}.service",
        ), False
    wanted = _inspect(run, "image", image, timeout)
    running = container.get("Image")
    if not wanted:
        return _check(
            False,
            f"image {image} is not on the node (the container runs {container.get('ImageName') or running})",
            f"the image {image} the service must run is missing on the node",
            "run the vobox_services role (it loads or pulls the image), then systemctl restart " + f"{name}.service",
        ), True
    if wanted.get("Id") != running:
        return _check(
            False,
            f"the container runs {container.get('ImageName')} ({str(running)[:12]}), not {image} "
            f"({str(wanted.get('Id'))[:12]})",
            f"the container {name} runs an older or other image than {image}",
            f"systemctl restart {name}.service (it starts from {image})",
        ), True
    return _check(True, f"{image} ({str(running)[:12]})"), True


def check_cvmfs(run, name, repositories, timeout, mountpoint="/cvmfs"):
    """Each repository listed inside the container; an empty listing where the host has entries is not readable."""
    results = []
    for repo in repositories:
        path = f"{mountpoint}/{repo}"
        rc, out, err = run(["podman", "exec", name, "ls", "-A", path], timeout)
        inside = [e for e in out.splitlines() if e]
        host_rc, host_out, _ = run(["ls", "-A", path], timeout)
        on_host = [e for e in host_out.splitlines() if e] if host_rc == 0 else []
        if rc == 0 and inside:
            results.append({"name": repo, "readable": True, "entries": len(inside), "error": None})
            continue
        error = (err.strip().splitlines() or [""])[-1] if rc != 0 else "empty inside the container"
        if "too many levels of symbolic links" in error.lower():
            cause = (
                f"{path} inside the container is the host's automount point without the repository: the host mounted "
                "it after the container started and the container's /cvmfs does not receive the host's mounts"
            )
        elif on_host:
            cause = (
                f"{path} is mounted on the host ({len(on_host)} entries) but empty inside the container: the mount "
                "does not propagate into it"
            )
        else:
            cause = f"{path} is not readable on the host either (the CVMFS probe on the host names the cause)"
        results.append({"name": repo, "readable": False, "entries": len(inside), "error": error, "cause": cause})
    bad = [r for r in results if not r["readable"]]
    if not bad:
        check = _check(True, ", ".join(f"{r['name']} ({r['entries']} entries)" for r in results) or "no repositories")
    else:
        check = _check(
            False,
            "; ".join(f"{r['name']}: {r['error']}" for r in bad),
            "; ".join(r["cause"] for r in bad),
            "bind /cvmfs into the container with rslave propagation on a host whose / is shared (the role's units "
            "do both), make every repository readable on the host (sitekit-cvmfs-probe), then systemctl restart "
            f"{name}.service",
        )
    check["repositories"] = results
    return check


def check_dns(run, service, timeout, host_resolv, host_hosts):
    name = service["name"]
    rc, resolv, err = run(["podman", "exec", name, "cat", "/etc/resolv.conf"], timeout)
    if rc != 0:
        return _check(False, f"resolv.conf unreadable: {err.strip()[-300:]}", "no resolver inside", None)
    inside = parse_resolv_conf(resolv)
    want = expected_resolver(service, host_resolv)
    problems = []
    if inside["nameservers"] != want["nameservers"]:
        problems.append(f"nameservers {inside['nameservers']} inside, {want['nameservers']} expected")
    if inside["search"] != want["search"]:
        problems.append(f"search {inside['search']} inside, {want['search']} expected")
    _rc, hosts_text, _ = run(["podman", "exec", name, "cat", "/etc/hosts"], timeout)
    wanted_hosts = parse_hosts(host_hosts) | {(a, n) for n, a in (service.get("hosts") or {}).items()}
    missing = sorted(wanted_hosts - parse_hosts(hosts_text))
    if missing:
        problems.append("missing in /etc/hosts: " + ", ".join(f"{a} {n}" for a, n in missing))
    source = "the service's dns settings" if service.get("dns_servers") or service.get("dns_search") else "the host"
    if not problems:
        return _check(
            True, f"nameservers {', '.join(inside['nameservers'])}; search {' '.join(inside['search']) or '-'}"
        )
    return _check(
        False,
        "; ".join(problems),
        f"the container's name resolution differs from {source}'s (changed inside the container, or the host's "
        "changed since it started)",
        f"systemctl restart {name}.service (each start copies the host's resolver and /etc/hosts, or applies the "
        "service's dns settings); never edit them inside the container",
    )


def check_service(service, run, host_resolv, host_hosts, timeout=20):
    """One service's readiness: {name, unit, ready, checks: {unit, image, cvmfs, dns}, cause, remedy}."""
    name = service["name"]
    checks = {"unit": check_unit(run, name, timeout)}
    image, running = check_image(run, name, service["image"], timeout)
    checks["image"] = image
    if running:
        checks["cvmfs"] = check_cvmfs(run, name, service.get("repositories") or [], timeout)
        checks["dns"] = check_dns(run, service, timeout, host_resolv, host_hosts)
    else:
        for key in ("cvmfs", "dns"):
            checks[key] = _check(False, "container not running", image["cause"], image["remedy"])
    failed = [k for k, c in checks.items() if not c["ok"]]
    first = checks[failed[0]] if failed else {}
    return {
        "name": name,
        "unit": f"{name}.service",
        "image": service["image"],
        "ready": not failed,
        "failed_checks": failed,
        "checks": checks,
        "cause": first.get("cause"),
        "remedy": first.get("remedy"),
    }


def failure_message(results):
    """One line per service that is not ready, with its cause and remedy; None when all are."""
    lines = [
        f"{r['name']}: {', '.join(r['failed_checks'])}: {r['cause']}. Fix: {r['remedy']}"
        for r in results
        if not r["ready"]
    ]
    return "\n".join(lines) or None
