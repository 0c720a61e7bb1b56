#!/usr/bin/env python3
"""Create, list and remove the sitekit lab: one podman container per host of an inventory.

The inventory is the single source of truth: every host with an ``ansible_host`` becomes a
privileged systemd container on the podman network ``lab_network`` (subnet ``lab_subnet``) at
that address, from the image ``localhost/sitekit-node:<lab_image>``, reachable over SSH with the
lab key. ``lab_aliases`` adds DNS names on the lab network (e.g. ``wpad``).

usage: lab/lab.py up|down|status [--inventory inventories/lab/hosts.yml]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
LAB = TOP / ".lab"
KEY = LAB / "ssh" / "id_ed25519"
# Shared with every node at /srv/sitekit-origin: the lab's test images and packages (and later the CVMFS stand-in).
ORIGIN = LAB / "origin"
LABEL = "io.sitekit.lab"
PREFIX = "sitekit-lab-"


def run(argv: list[str], check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, text=True, capture_output=capture)


def inventory_hosts(inventory: str) -> list[dict]:
    """Return one dict per host of the inventory that has an ansible_host."""
    out = run([str(TOP / ".venv" / "bin" / "ansible-inventory"), "-i", inventory, "--list"]).stdout
    data = json.loads(out)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    groups: dict[str, list[str]] = {}
    for group, body in data.items():
        for host in (body or {}).get("hosts", []) if isinstance(body, dict) else []:
            groups.setdefault(host, []).append(group)
    hosts = []
    for name, hv in sorted(hostvars.items()):
        if "ansible_host" not in hv:
            continue
        hosts.append(
            {
                "name": name,
                "ip": hv["ansible_host"],
                "image": f"localhost/sitekit-node:{hv.get('lab_image', 'trixie')}",
                "suite": hv.get("lab_image", "trixie"),
                "network": hv.get("lab_network", "sitekit-lab"),
                "subnet": hv.get("lab_subnet", "10.89.77.0/24"),
                "aliases": list(hv.get("lab_aliases", [])),
                "groups": groups.get(name, []),
            }
        )
    return hosts


def ensure_key() -> None:
    if KEY.exists():
        return
    KEY.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(KEY.parent, 0o700)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sitekit-lab", "-f", str(KEY)])


def image_id(ref: str) -> str:
    res = run(["podman", "image", "inspect", "--format", "{{.Id}}", ref], check=False)
    return res.stdout.strip() if res.returncode == 0 else ""


def container_state(name: str) -> tuple[str, str]:
    """Return (image id, running|stopped|absent) of a container."""
    res = run(
        ["podman", "container", "inspect", "--format", "{{.Image}} {{.State.Running}} {{.State.Pid}}", name],
        check=False,
    )
    if res.returncode != 0:
        return "", "absent"
    img, running, pid = res.stdout.split()
    if running == "true" and not Path(f"/proc/{pid}").exists():
        # The machine rebooted under podman: its state says running, but the process is gone.
        return img, "stale"
    return img, "running" if running == "true" else "stopped"


def ensure_network(name: str, subnet: str) -> None:
    if run(["podman", "network", "exists", name], check=False).returncode != 0:
        run(["podman", "network", "create", "--subnet", subnet, "--label", f"{LABEL}=1", name])


def wait_ssh(hosts: list[dict], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    pending = {h["name"]: h["ip"] for h in hosts}
    while pending and time.monotonic() < deadline:
        for name, ip in list(pending.items()):
            try:
                with socket.create_connection((ip, 22), timeout=1) as sock:
                    if sock.recv(4).startswith(b"SSH"):
                        del pending[name]
            except OSError:
                pass
        if pending:
            time.sleep(0.5)
    if pending:
        sys.exit(
            f"lab: sshd did not answer within {timeout:.0f} s on: {', '.join(sorted(pending))} "
            f"(see 'podman logs {PREFIX}<name>')"
        )


def up(inventory: str) -> None:
    hosts = inventory_hosts(inventory)
    ensure_key()
    suites = sorted({h["suite"] for h in hosts})
    subprocess.run([str(TOP / "lab" / "build-image.sh"), *suites], check=True)
    started = []
    for h in hosts:
        ensure_network(h["network"], h["subnet"])
        cname = PREFIX + h["name"]
        want = image_id(h["image"])
        have, state = container_state(cname)
        if state == "stale" or (state != "absent" and have != want):
            print(f"lab: {h['name']}: {'stale after a reboot' if state == 'stale' else 'image changed'}, re-creating")
            run(["podman", "rm", "-f", "-t", "0", cname])
            state = "absent"
        if state == "running":
            continue
        if state == "stopped":
            run(["podman", "start", cname])
        else:
            argv = [
                "podman",
                "run",
                "-d",
                "--name",
                cname,
                "--hostname",
                h["name"],
                "--label",
                f"{LABEL}=1",
                "--privileged",
                "--systemd=always",
                "--network",
                h["network"],
                "--ip",
                h["ip"],
                "--network-alias",
                h["name"],
            ]
            for alias in h["aliases"]:
                argv += ["--network-alias", alias]
            ORIGIN.mkdir(parents=True, exist_ok=True)
            argv += ["-v", f"{KEY}.pub:/root/.ssh/authorized_keys:ro", "-v", f"{ORIGIN}:/srv/sitekit-origin"]
            argv.append(h["image"])
            run(argv)
        started.append(h)
    wait_ssh(hosts)
    for h in hosts:
        print(f"lab: {h['name']:<8} {h['ip']:<15} {h['suite']:<9} {'started' if h in started else 'running'}")


def down(_inventory: str) -> None:
    names = run(["podman", "ps", "-a", "--filter", f"label={LABEL}=1", "--format", "{{.Names}}"]).stdout.split()
    if names:
        run(["podman", "rm", "-f", "-t", "0", *names])
    nets = run(["podman", "network", "ls", "--filter", f"label={LABEL}=1", "--format", "{{.Name}}"]).stdout.split()
    for net in nets:
        run(["podman", "network", "rm", "-f", net])
    print(f"lab: removed {len(names)} node(s) and {len(nets)} network(s)")


def status(_inventory: str) -> None:
    print(
        run(
            ["podman", "ps", "-a", "--filter", f"label={LABEL}=1", "--format", "{{.Names}}\t{{.Status}}\t{{.Image}}"]
        ).stdout,
        end="",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--inventory", default=str(TOP / "inventories" / "lab" / "hosts.yml"))
    args = parser.parse_args()
    {"up": up, "down": down, "status": status}[args.action](args.inventory)


if __name__ == "__main__":
    main()
