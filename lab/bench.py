#!/usr/bin/env python3
"""sitekit's benchmark command: figures measured on the running lab, each against a baseline of the same run.

- container launch: the pilot-style launch of playbooks/validate.yml (container_launch: --contain --ipc
  --pid, scratch with '#', the probe) against a bare `apptainer exec IMAGE /bin/true` of the same
  image, as the same unprivileged user, on every worker node; median of N rounds.
- site proxy: requests per second for small (1 KiB) cached CVMFS objects through the site squid against the
  same objects fetched straight from the origin (the lab's stand-in stratum-1), from the first worker node,
  with the same client processes and keep-alive connections (lab/proxy-load.py).

- site scale: the lab grown to 8 worker nodes (wn3..wn8 added for the run, removed after): the first converge and
  the no-op converge, then the compliance run (tools/compliance.py: site playbook in check mode + launch + proxy
  check) on 1, 2, 4 and 8 worker nodes, wall time and the controller's CPU time, fitted to a + b*n and
  extrapolated to 1000 nodes from one 2-core controller; baseline and tuned settings (--tuned-env) in the same run.

- fleet report from ARA: a synthetic fleet of --fleet-nodes (default 1000) pull-mode nodes loaded into a local ARA
  server (PyPI's ara[server] and gunicorn in .lab/ara-venv, sqlite), each node one compliance pass replicated from a
  real recorded lab run (tests/unit/data/compliance/, lab/ara-load.py through ARA's Django ORM); the time
  tools/compliance.py --from-ara takes to build the JSON, JUnit and HTML report from ARA's REST API: cold with each
  pass's summary record, cold with the same passes without records (deleted: nodes from before the record, the task
  path), and the steady state (1/12 new passes, the rest from the cache), against the same report built from the
  local JSON of the same records (baseline), all in one run. Needs no lab nodes. Target: 60 s cold.

usage: lab/bench.py [--rounds N] [--seconds S] [--only launch|proxy|scale|fleet] [--fleet-nodes N]
                    [--inventory inventories/lab/hosts.yml]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / "tools"))
from compliance import inventory_groups  # noqa: E402 (tools/ is not a package)


def ansible_module(inventory, pattern, module, args):
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    argv = [str(TOP / ".venv" / "bin" / "ansible"), "-i", inventory, pattern, "-b", "-m", module]
    argv += ["-a", json.dumps(args)]
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=TOP)
    data = json.loads(run.stdout)
    return {host: result for play in data["plays"] for task in play["tasks"] for host, result in task["hosts"].items()}


def launch(inventory, rounds):
    image = "/cvmfs/images.sitekit.lab/debian12"  # the lab's test image, under /cvmfs (autofs or static)
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
    groups = inventory_groups(inventory)
    squid = f"{groups['squids'][0]}:3128"
    prefix = "http://stratum1.sitekit.lab:8000/cvmfs/images.sitekit.lab/data"
    worker = groups["worker_nodes"][0]
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


EXTRA_WORKERS = [f"wn{i}" for i in range(3, 9)]
# What the compliance run is tuned with (ansible.cfg is the baseline): facts cached between runs (an hourly gate
# need not gather them every time), more forks, the free strategy (no node waits for the slowest at each task).
TUNED_ENV = {
    "ANSIBLE_GATHERING": "smart",
    "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
    "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(TOP / ".lab" / "facts"),
    "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "86400",
    "ANSIBLE_FORKS": "50",
    "ANSIBLE_STRATEGY": "free",
}


def timed(argv, env=None):
    """Run argv; return (wall seconds, controller CPU seconds of the children, CompletedProcess)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    run = subprocess.run(argv, capture_output=True, text=True, cwd=TOP, env=dict(os.environ, **(env or {})))
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, run


def scale_inventory(inventory):
    """The lab inventory plus wn3..wn8 (10.89.77.23-28) as worker nodes, written to .lab/bench/hosts.yml."""
    import yaml

    data = yaml.safe_load(Path(inventory).read_text())
    workers = data["all"]["children"]["worker_nodes"]["hosts"]
    for i, name in enumerate(EXTRA_WORKERS, start=23):
        workers[name] = {"ansible_host": f"10.89.77.{i}"}
    out = TOP / ".lab" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    # group_vars next to the inventory file: link the lab's.
    link = out / "group_vars"
    if not link.exists():
        link.symlink_to(Path(inventory).resolve().parent / "group_vars")
    path = out / "hosts.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def scale(inventory, keep=False):
    inv = scale_inventory(inventory)
    play = [str(TOP / ".venv" / "bin" / "ansible-playbook"), "-i", inv]
    subprocess.run([sys.executable, str(TOP / "lab" / "lab.py"), "up", "--inventory", inv], check=True, cwd=TOP)
    try:
        new = ",".join(EXTRA_WORKERS)
        for _attempt in (1, 2):  # fresh nodes: the first SSH connection now and then times out while the bridge settles
            standin = subprocess.run([*play, "lab/cvmfs-standin.yml", "--limit", new], capture_output=True, cwd=TOP)
            if standin.returncode == 0:
                break
            time.sleep(5)
        else:
            sys.exit(f"bench: the CVMFS stand-in failed on {new}:\n{standin.stdout[-2000:]}")
        wall, cpu, run = timed([*play, "playbooks/site.yml", "--limit", new])
        if run.returncode:
            sys.exit(f"bench: first converge failed:\n{run.stdout[-3000:]}")
        n = len(EXTRA_WORKERS)
        print(f"site scale (worker nodes; controller: {os.cpu_count()} cores)")
        print(
            f"  first converge of {n} fresh worker nodes at once: {wall:.0f} s wall, {cpu:.0f} s controller CPU "
            f"({cpu / n:.1f} s CPU per node)"
        )
        wall, cpu, run = timed([*play, "playbooks/site.yml", "--limit", "wn1"])
        changed = re.findall(r"changed=(\d+)", run.stdout)
        print(f"  no-op converge of one worker node: {wall:.1f} s wall, {cpu:.1f} s controller CPU (changed={changed})")
        workers = ["wn1", "wn2", *EXTRA_WORKERS]
        for label, env in (("baseline (ansible.cfg)", {}), ("tuned", TUNED_ENV)):
            points = []
            print(f"  compliance run, {label}:")
            print(f"    {'nodes':>5} {'wall s':>7} {'CPU s':>7} {'verdict':>8}")
            for count in (1, 2, 4, 8):
                limit = ",".join(workers[:count])
                argv = [
                    sys.executable,
                    str(TOP / "tools" / "compliance.py"),
                    "-i",
                    inv,
                    "--limit",
                    limit,
                    "--out",
                    str(TOP / ".lab" / "bench" / f"compliance-{count}"),
                ]
                if env is TUNED_ENV and count == 1:
                    timed(argv, env)  # fills the fact cache, as an hourly gate's earlier runs would
                wall, cpu, run = timed(argv, env)
                verdict = "pass" if run.returncode == 0 else f"exit {run.returncode}"
                points.append((count, wall, cpu))
                print(f"    {count:>5} {wall:>7.1f} {cpu:>7.1f} {verdict:>8}")
            fit_cpu = fit(points, 2)
            fit_wall = fit(points, 1)
            cores = os.cpu_count() or 2
            cpu_1000 = fit_cpu[0] + fit_cpu[1] * 1000
            # At scale the controller's CPU is the limit: wall >= CPU / cores (forks overlap the nodes' own time).
            wall_1000 = max(cpu_1000 / cores, fit_wall[0] + fit_wall[1] * 1000 / 50)
            print(
                f"    fit: CPU = {fit_cpu[0]:.1f} s + {fit_cpu[1]:.2f} s/node; "
                f"1000 nodes: {cpu_1000 / 60:.0f} min CPU, >= {wall_1000 / 60:.0f} min wall on {cores} cores "
                f"(goal 15 min)"
            )
    finally:
        if not keep:
            names = [f"sitekit-lab-{n}" for n in EXTRA_WORKERS]
            subprocess.run(["podman", "rm", "-f", "-t", "0", *names], capture_output=True)


ARA_VENV = TOP / ".lab" / "ara-venv"
ARA_VERSION = "1.8.0"
FLEET_SEED = TOP / "tests" / "unit" / "data" / "compliance" / "lab-drifted-and-broken.json.gz"


def fleet(nodes, workers=8, port=8765):
    """The fleet report built from ARA for NODES synthetic nodes, against the same report from local JSON."""
    import datetime as dt
    import shutil
    import urllib.request

    import compliance
    from ara_fleet import AraClient

    python = ARA_VENV / "bin" / "python"
    if not (ARA_VENV / "bin" / "gunicorn").exists():
        subprocess.run([sys.executable, "-m", "venv", str(ARA_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", f"ara[server]=={ARA_VERSION}", "gunicorn"]
        subprocess.run(pip, check=True)
    base = TOP / ".lab" / "bench" / "ara"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    env = dict(os.environ, ARA_BASE_DIR=str(base), ARA_DEBUG="false", ARA_ALLOWED_HOSTS="['127.0.0.1', 'localhost']")
    subprocess.run([str(ARA_VENV / "bin" / "ara-manage"), "migrate", "--no-input"], check=True, env=env,
                   capture_output=True)  # fmt: skip
    local = base / "fleet-local.json"
    started = time.monotonic()
    load = subprocess.run([str(python), str(TOP / "lab" / "ara-load.py"), str(FLEET_SEED), str(nodes), str(local)],
                          check=True, env=env, capture_output=True, text=True)  # fmt: skip
    loaded = json.loads(load.stdout.strip().splitlines()[-1])
    load_seconds = time.monotonic() - started
    workers_n = max(2, os.cpu_count() or 2)
    server = subprocess.Popen(
        [str(ARA_VENV / "bin" / "gunicorn"), "--workers", str(workers_n), "--bind", f"127.0.0.1:{port}",
         "ara.server.wsgi"],
        env=env, cwd=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(60):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        now = dt.datetime.now(dt.UTC)
        out = TOP / ".lab" / "bench" / "fleet-ara"
        out.mkdir(parents=True, exist_ok=True)
        cache = out / "ara-cache.json"

        def build(cache_file):
            started = time.monotonic()
            client = AraClient(f"http://127.0.0.1:{port}")
            built = compliance.from_ara(client, None, now, 3600, workers, cache=cache_file)
            compliance.write_reports(built, out)
            return built, time.monotonic() - started

        def loader(*argv):
            run = subprocess.run([str(python), str(TOP / "lab" / "ara-load.py"), *argv], check=True, env=env,
                                 capture_output=True, text=True)  # fmt: skip
            return json.loads(run.stdout.strip().splitlines()[-1])

        # Cold, every pass with its summary record: two requests per node.
        cache.unlink(missing_ok=True)
        summary, ara_seconds = build(cache)
        # Cold, the same passes without their records (nodes from before the record): every node's tasks and results.
        deleted = loader("--delete-records")["deleted records"]
        cache.unlink(missing_ok=True)
        old, old_seconds = build(cache)
        # The steady state: a report every 5 minutes while each node passes hourly finds 1/12 of them with a new
        # pass (with its record); the others come from the cache of finished passes.
        fresh = max(1, nodes // 12)
        loader(str(FLEET_SEED), str(fresh), str(base / "new.json"))
        warm, warm_seconds = build(cache)
        # The baseline: the same records as the JSON callback's output on disk, read by the same code.
        out_local = TOP / ".lab" / "bench" / "fleet-local"
        out_local.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        data = json.loads(local.read_text())
        local_summary = compliance.summarise(compliance.collect(data), data["stats"], "local", "local", {})
        compliance.write_reports(local_summary, out_local)
        local_seconds = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=30)

    def results(built, skips=True):
        return {
            n["name"]: {c: r for c, r in n["results"].items() if c != "SK-PULL-04" and (skips or r["status"] != "skip")}
            for n in built["nodes"]
        }

    # A pass read from its summary record carries the node's own verdicts: equal to the baseline's, skips included.
    # A result ARA lists as skipped is rebuilt from its status alone (its content is not fetched): a loop over no
    # items is then "skip" where the JSON callback's empty list of results makes it "not applicable".
    same = {
        "records": results(summary) == results(local_summary) and summary["from_records"] == nodes,
        "tasks": results(old, False) == results(local_summary, False) and old["from_records"] == 0,
        "steady": results(warm, False) == results(local_summary, False) and warm["from_records"] == fresh,
    }
    t = summary["totals"]
    print(f"fleet report from ARA ({nodes} nodes, {loaded['results']} recorded results, {loaded['records']} summary "
          f"records; ARA {ARA_VERSION}, sqlite, gunicorn {workers_n} workers, {workers} client threads; load "
          f"{load_seconds:.0f} s)")  # fmt: skip
    print("  against the same report from the local JSON of the same records (baseline)")
    print(f"  {'source':<40} {'seconds':>8} {'ratio':>6}")
    rows = [
        ("ARA, cold, summary records", ara_seconds),
        (f"ARA, cold, no records ({deleted} deleted)", old_seconds),
        (f"ARA, {warm['fetched']} new passes, cache", warm_seconds),
        ("local JSON", local_seconds),
    ]
    for label, seconds in rows:
        print(f"  {label:<40} {seconds:>8.1f} {seconds / local_seconds:>6.1f}")
    verdict = (
        f"cold {'met' if ara_seconds <= 60 else 'MISSED'} ({ara_seconds:.1f} s; without records {old_seconds:.1f} s, "
        f"{old_seconds / ara_seconds:.1f}x), steady state {'met' if warm_seconds <= 60 else 'MISSED'}"
    )
    yes = {k: "yes" if v else "NO" for k, v in same.items()}
    print(f"  nodes: {t['ok']} ok, {t['drift']} drift, {t['fail']} fail, {t['stale']} stale; equal to the baseline: "
          f"from records (skips included) {yes['records']}, from tasks (but skips) {yes['tasks']}, "
          f"steady state {yes['steady']}")  # fmt: skip
    print(f"  target 60 s: {verdict}")
    if not all(same.values()):
        sys.exit(f"bench: the report from ARA differs from the report from the local JSON: {same}")


def fit(points, index):
    """Least squares a + b*n over (n, wall, cpu) points, on column index (1 wall, 2 cpu)."""
    xs = [p[0] for p in points]
    ys = [p[index] for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5, help="duration of each proxy load run")
    parser.add_argument("--only", choices=["launch", "proxy", "scale", "fleet"])
    parser.add_argument("--fleet-nodes", type=int, default=1000, help="synthetic nodes of the fleet figure")
    parser.add_argument("--keep", action="store_true", help="keep the extra scale nodes")
    parser.add_argument("--inventory", default=str(TOP / "inventories" / "lab" / "hosts.yml"))
    args = parser.parse_args()
    if args.only in (None, "launch"):
        launch(args.inventory, args.rounds)
    if args.only in (None, "proxy"):
        proxy(args.inventory, args.seconds)
    if args.only in (None, "scale"):
        scale(args.inventory, args.keep)
    if args.only in (None, "fleet"):
        fleet(args.fleet_nodes)


if __name__ == "__main__":
    main()
