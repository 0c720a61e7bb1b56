#!/usr/bin/env python3
"""sitekit's benchmark command: figures measured on the running lab, each against a baseline of the same run.

- container launch: the pilot-style launch of playbooks/validate.yml (container_launch: --contain --ipc
  --pid, scratch with '#', the probe) against a bare `apptainer exec IMAGE /bin/true` of the same
  image, as the same unprivileged user, on every worker node; median of N rounds.
- site proxy: requests per second for small (1 KiB) cached CVMFS objects through the site squid against the
  same objects fetched straight from the origin (the lab's stand-in stratum-1), from the first worker node,
  with the same client processes and keep-alive connections (lab/proxy-load.py).

usage: lab/bench.py [--rounds N] [--seconds S] [--only launch|proxy] [--inventory inventories/lab/hosts.yml]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent


def ansible_module(inventory, pattern, module, args):
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    argv = [str(TOP / ".venv" / "bin" / "ansible"), "-i", inventory, pattern, "-b", "-m", module]
    argv += ["-a", json.dumps(args)]
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=TOP)
    data = json.loads(run.stdout)
    return {host: result for play in data["plays"] for task in play["tasks"] for host, result in task["hosts"].items()}


def launch(inventory, rounds):
    image = "/cvmfs/images.sitekit.lab/debian12"  # the lab's test image, through autofs
    samples = {}
    for _ in range(rounds):
        args = {"image": image, "user": "sitekit-probe", "baseline": True}
        for host, result in ansible_module(inventory, "worker_nodes", "container_launch", args).items():
            if not result.get("ready") or result.get("baseline_seconds") is None:
                sys.exit(f"bench: {host}: launch not ready: {result.get('msg') or result.get('cause')}")
            samples.setdefault(host, []).append((result["launch_seconds"], result["baseline_seconds"]))
    print(f"container launch ({rounds} rounds, median): pilot-style launch + checks")
    print("  against a bare `apptainer exec IMAGE /bin/true` of the same image as the same user (baseline)")
    print(f"  {'node':<8} {'launch s':>9} {'bare s':>8} {'ratio':>6}")
    for host, pairs in sorted(samples.items()):
        pilot = statistics.median(p for p, _ in pairs)
        bare = statistics.median(b for _, b in pairs)
        print(f"  {host:<8} {pilot:>9.3f} {bare:>8.3f} {pilot / bare:>6.2f}")


def proxy(inventory, seconds, clients=2, objects=64):
    squid = f"{inventory_groups(inventory)['squids'][0]}:3128"
    prefix = "http://stratum1.sitekit.lab:8000/cvmfs/images.sitekit.lab/data"
    worker = inventory_groups(inventory)["worker_nodes"][0]
    args = f"{TOP / 'lab' / 'proxy-load.py'} {squid} {prefix} {objects} {seconds} {clients}"
    result = ansible_module(inventory, worker, "ansible.builtin.script", {"cmd": args, "executable": "python3"})[worker]
    if result.get("rc") != 0:
        sys.exit(f"bench: proxy load on {worker} failed: {result.get('stderr') or result.get('msg')}")
    data = json.loads(result["stdout"])
    through, direct = data["squid"], data["origin"]
    if through["failed"] or direct["failed"] or through["hits"] < through["requests"]:
        sys.exit(f"bench: not every request through the squid was a cache hit: {data}")
    print(
        f"site proxy ({clients} client processes x keep-alive, {objects} objects of 1 KiB, {seconds:g} s each, "
        f"from {worker})"
    )
    print("  cached objects through the squid against the origin fetched directly (baseline)")
    print(f"  {'path':<22} {'requests':>9} {'req/s':>8} {'ratio':>6}")
    ratio = through["rps"] / direct["rps"]
    print(f"  {'squid ' + squid:<22} {through['requests']:>9} {through['rps']:>8.0f} {ratio:>6.2f}")
    print(f"  {'origin (direct)':<22} {direct['requests']:>9} {direct['rps']:>8.0f} {1:>6.2f}")


def inventory_groups(inventory):
    run = subprocess.run(
        [str(TOP / ".venv" / "bin" / "ansible-inventory"), "-i", inventory, "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(run.stdout)
    return {g: body.get("hosts", []) for g, body in data.items() if isinstance(body, dict) and "hosts" in body}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5, help="duration of each proxy load run")
    parser.add_argument("--only", choices=["launch", "proxy"])
    parser.add_argument("--inventory", default=str(TOP / "inventories" / "lab" / "hosts.yml"))
    args = parser.parse_args()
    if args.only in (None, "launch"):
        launch(args.inventory, args.rounds)
    if args.only in (None, "proxy"):
        proxy(args.inventory, args.seconds)


if __name__ == "__main__":
    main()
