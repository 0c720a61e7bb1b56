#!/usr/bin/env python3
"""sitekit's benchmark command: figures measured on the running lab, each against a baseline of the same run.

- container launch: the pilot-style launch of playbooks/validate.yml (container_launch: --contain --ipc
  --pid, scratch with '#', the probe) against a bare `apptainer exec IMAGE /bin/true` of the same
  image, as the same unprivileged user, on every worker node; median of N rounds.

usage: lab/bench.py [--rounds N] [--inventory inventories/lab/hosts.yml]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--inventory", default=str(TOP / "inventories" / "lab" / "hosts.yml"))
    args = parser.parse_args()
    launch(args.inventory, args.rounds)


if __name__ == "__main__":
    main()
