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
  extrapolated to 1000 nodes from one 2-core controller; before (the code at BASELINE_REF, a git worktree) and after
  in the same run, interleaved, each point the cheaper of --repeats runs, with every node's findings compared;
  --split-cores puts the lab's nodes on their own cores (podman cpuset) and the controller on the rest.

- fleet report from ARA: a synthetic fleet of --fleet-nodes (default 1000) pull-mode nodes loaded into a local ARA
  server (PyPI's ara[server] and gunicorn in .lab/ara-venv, sqlite), each node one compliance pass replicated from a
  real recorded lab run (tests/unit/data/compliance/, lab/ara-load.py through ARA's Django ORM); the time
  tools/compliance.py --from-ara takes to build the JSON, JUnit and HTML report from ARA's REST API: cold with each
  pass's summary record, cold with the same passes without records (deleted: nodes from before the record, the task
  path), and the steady state (1/12 new passes, the rest from the cache), against the same report built from the
  local JSON of the same records (baseline), all in one run. Needs no lab nodes. Target: 60 s cold.

usage: lab/bench.py [--rounds N] [--seconds S] [--only launch|proxy|scale|fleet] [--fleet-nodes N]
                    [--counts 1,2,4,8] [--repeats 2] [--split-cores] [--keep] [--inventory inventories/lab/hosts.yml]
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
# "Before" of the push-run figures: the last commit before the cheaper push run (issue 18), checked out beside this
# tree and measured in the same run on the same nodes.
BASELINE_REF = "ddb2013"
# The optional accelerator measured beside plain Ansible: mitogen's strategy, from PyPI into .lab/mitogen.
MITOGEN_VERSION = "0.3.54"
MITOGEN_DIR = TOP / ".lab" / "mitogen"


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


def baseline_tree(ref=BASELINE_REF):
    """A detached checkout of ref in .lab/bench/baseline (a git worktree sharing this repository), using this tree's
    virtual environment; reused while it is at ref."""
    path = TOP / ".lab" / "bench" / "baseline"
    want = subprocess.run(["git", "rev-parse", f"{ref}^{{commit}}"], capture_output=True, text=True, cwd=TOP)
    if want.returncode:
        sys.exit(f"bench: the baseline commit {ref} is not in this clone (a shallow clone?): {want.stderr.strip()}")
    here = path if path.is_dir() else TOP
    have = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=here)
    if not path.is_dir() or have.stdout.strip() != want.stdout.strip():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], capture_output=True, cwd=TOP)
        subprocess.run(["git", "worktree", "prune"], capture_output=True, cwd=TOP)
        subprocess.run(["git", "worktree", "add", "--detach", str(path), want.stdout.strip()], check=True,
                       capture_output=True, cwd=TOP)  # fmt: skip
    if not (path / ".venv").exists():
        (path / ".venv").symlink_to(TOP / ".venv")
    return path


def mitogen_env():
    """The environment that runs a playbook under mitogen's linear strategy (installed into .lab/mitogen on first
    use), or None when it cannot be installed. Mitogen checks host keys itself: the lab's keys are new each build."""
    if not (MITOGEN_DIR / "ansible_mitogen").is_dir():
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target",
               str(MITOGEN_DIR), f"mitogen=={MITOGEN_VERSION}"]  # fmt: skip
        if subprocess.run(pip, capture_output=True).returncode:
            return None
    return {
        "PYTHONPATH": str(MITOGEN_DIR),
        "ANSIBLE_STRATEGY_PLUGINS": str(MITOGEN_DIR / "ansible_mitogen" / "plugins" / "strategy"),
        "ANSIBLE_STRATEGY": "mitogen_linear",
        "ANSIBLE_HOST_KEY_CHECKING": "false",
    }


def push_row(label, points, cores):
    """Print the fit of one tree's compliance runs; return its CPU slope (s per node)."""
    a, b = fit(points, 2)
    cpu_1000 = a + b * 1000
    # At scale the controller's CPU is the limit: wall >= CPU / cores (forks overlap the nodes' own time).
    wall_a, wall_b = fit(points, 1)
    wall_1000 = max(cpu_1000 / cores, wall_a + wall_b * 1000 / 50)
    print(
        f"    {label}: CPU = {a:.1f} s + {b:.2f} s/node; 1000 nodes: {cpu_1000 / 60:.0f} min CPU, "
        f">= {wall_1000 / 60:.0f} min wall on {cores} cores"
    )
    return b


def _lab_containers():
    """The names of the lab's running node containers."""
    ps = ["podman", "ps", "--filter", "name=sitekit-lab-", "--format", "{{.Names}}"]
    return subprocess.run(ps, capture_output=True, text=True).stdout.split()


def split_cores():
    """Give the controller (this process and every child) the lower half of the cores and the lab's nodes the upper
    half (podman update --cpuset-cpus). The nodes stand in for other machines: on shared cores their own work (a
    Python per module run) would compete with the controller, and the controller's CPU per task grows with the load
    (cold caches, context switches), which no real controller sees from its nodes. Returns (controller, nodes) core
    lists, or None on one core or where podman cannot pin (the nodes then share every core)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    mine, theirs = cores[: len(cores) // 2], cores[len(cores) // 2 :]
    names = _lab_containers()
    cpuset = ",".join(map(str, theirs))
    failed = [n for n in names if subprocess.run(["podman", "update", "--cpuset-cpus", cpuset, n],
                                                 capture_output=True).returncode]  # fmt: skip
    # A node that runs containers of its own (the VO-box) may refuse; the worker nodes and the squid must not.
    if not names or any(n.startswith(("sitekit-lab-wn", "sitekit-lab-squid")) for n in failed):
        unsplit_cores(cores)
        return None
    os.sched_setaffinity(0, mine)
    return mine, theirs


def unsplit_cores(cores):
    """Every core for the lab's nodes and this process again."""
    names = _lab_containers()
    for name in names:
        subprocess.run(["podman", "update", "--cpuset-cpus", ",".join(map(str, cores)), name], capture_output=True)
    os.sched_setaffinity(0, cores)


def scale(inventory, keep=False, counts=(1, 2, 4, 8), repeats=2, split=False):
    inv = scale_inventory(inventory)
    play = [str(TOP / ".venv" / "bin" / "ansible-playbook"), "-i", inv]
    base = baseline_tree()
    subprocess.run([sys.executable, str(TOP / "lab" / "lab.py"), "up", "--inventory", inv], check=True, cwd=TOP)
    all_cores = sorted(os.sched_getaffinity(0))
    want_split, split = split, None
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
        # The lab's worker nodes are HTCondor execute nodes too (./run lab): so are the new ones, before any
        # compliance run checks them.
        htcondor = subprocess.run([*play, "playbooks/htcondor.yml"], capture_output=True, text=True, cwd=TOP)
        if htcondor.returncode:
            sys.exit(f"bench: the HTCondor converge of the new nodes failed:\n{htcondor.stdout[-3000:]}")
        n = len(EXTRA_WORKERS)
        cores = os.cpu_count() or 2
        print(f"site scale (worker nodes; controller: {cores} cores; before = {BASELINE_REF}, the same nodes)")
        print(
            f"  first converge of {n} fresh worker nodes at once: {wall:.0f} s wall, {cpu:.0f} s controller CPU "
            f"({cpu / n:.1f} s CPU per node)"
        )
        split = split_cores() if want_split else None
        if split:
            print(f"  cores split from here on: controller {split[0]}, the lab's nodes {split[1]} (podman cpuset)")
        else:
            why = " (podman could not pin them)" if want_split else ""
            print(f"  cores shared by the controller and the lab's nodes{why}")
        # The no-op converge of one worker node: before, after, and after under mitogen (optional accelerator).
        trees = [("before", base, {}), ("after", TOP, {})]
        mitogen = mitogen_env()
        if mitogen:
            trees.append((f"after, mitogen {MITOGEN_VERSION}", TOP, mitogen))
        print("  no-op converge of one worker node (site.yml --limit wn1; two runs each, interleaved):")
        print(f"    {'code':<22} {'wall s':>13} {'CPU s':>11} {'tasks':>6} {'skipped':>8} {'changed':>8}")
        noop = {label: [] for label, _, _ in trees}
        for _round in (1, 2):
            for label, tree, env in trees:
                site = str(tree / "playbooks" / "site.yml")
                argv = [str(TOP / ".venv" / "bin" / "ansible-playbook"), "-i", inv, site, "--limit", "wn1"]
                wall, cpu, run = timed(argv, dict(env, ANSIBLE_CONFIG=str(tree / "ansible.cfg")))
                recap = re.search(r"wn1\s+: ok=(\d+)\s+changed=(\d+).*?skipped=(\d+)", run.stdout)
                if run.returncode or not recap:
                    sys.exit(f"bench: no-op converge ({label}) failed:\n{run.stdout[-3000:]}")
                noop[label].append((wall, cpu, recap.groups()))
        for label, runs in noop.items():
            ok, changed, skipped = runs[-1][2]
            walls = " / ".join(f"{w:.1f}" for w, _, _ in runs)
            cpus = " / ".join(f"{c:.1f}" for _, c, _ in runs)
            print(f"    {label:<22} {walls:>13} {cpus:>11} {int(ok) + int(skipped):>6} {skipped:>8} {changed:>8}")
        best = min(w for w, _, _ in noop["after"])
        print(f"    target 15 s wall (plain Ansible): {'met' if best <= 15 else 'MISSED'} ({best:.1f} s)")
        if mitogen:
            best_m = min(w for w, _, _ in noop[trees[-1][0]])
            print(f"    with mitogen: {'met' if best_m <= 15 else 'MISSED'} ({best_m:.1f} s)")
        workers = ["wn1", "wn2", *EXTRA_WORKERS]
        points = {"before": [], "after": []}
        print("  push compliance run (tools/compliance.py: site playbook in check mode + launch + proxy check),")
        print("  controller CPU of the whole run (ansible-playbook, its workers and ssh) by worker nodes:")
        print(f"    {'nodes':>5} {'before s':>9} {'after s':>8} {'ratio':>6} {'wall before':>12} {'wall after':>11}")
        tasks = {}
        for count in counts:
            limit = ",".join(workers[:count])
            row = {}
            # Each point is the cheaper of `repeats` interleaved runs: another load on the machine only ever adds CPU.
            for _repeat in range(repeats):
                for label, tree in (("before", base), ("after", TOP)):
                    out = TOP / ".lab" / "bench" / f"compliance-{label}-{count}"
                    argv = [sys.executable, str(tree / "tools" / "compliance.py"), "-i", inv, "--limit", limit,
                            "--out", str(out)]  # fmt: skip
                    wall, cpu, run = timed(argv)
                    if run.returncode:
                        sys.exit(f"bench: compliance run ({label}, {count} nodes) did not pass:\n{run.stdout[-3000:]}")
                    if label not in row or cpu < row[label][1]:
                        row[label] = (wall, cpu, json.loads((out / "compliance.json").read_text()))
                    tasks[label] = _tasks_of(out / "ansible.json", "wn1")
            for label in row:
                points[label].append((count, row[label][0], row[label][1]))
            findings = {
                label: {n["name"]: {c: r["status"] for c, r in n["results"].items()} for n in row[label][2]["nodes"]}
                for label in row
            }
            if findings["before"] != findings["after"]:
                sys.exit(f"bench: the compliance findings differ on {count} nodes: {findings}")
            (wb, cb, _), (wa, ca, _) = row["before"], row["after"]
            print(f"    {count:>5} {cb:>9.1f} {ca:>8.1f} {ca / cb:>6.2f} {wb:>12.1f} {wa:>11.1f}")
        print("    every node's findings (control and status): the same before and after")
        for label, (ran, skipped) in tasks.items():
            print(f"    tasks the run gives one worker node, {label}: {ran + skipped} ({skipped} of them skipped)")
        push_row("before", points["before"], cores)
        slope = push_row("after ", points["after"], cores)
        print(f"    target <= 3 s controller CPU per worker node: {'met' if slope <= 3 else 'MISSED'} ({slope:.2f} s)")
    finally:
        if split:
            unsplit_cores(all_cores)
        if not keep:
            names = [f"sitekit-lab-{n}" for n in EXTRA_WORKERS]
            subprocess.run(["podman", "rm", "-f", "-t", "0", *names], capture_output=True)


def _tasks_of(results, host):
    """(tasks run, tasks skipped) on HOST in a JSON callback output."""
    ran = skipped = 0
    for play in json.loads(results.read_text()).get("plays", []):
        for task in play.get("tasks", []):
            res = task.get("hosts", {}).get(host)
            if res is not None:
                skipped += bool(res.get("skipped"))
                ran += not res.get("skipped")
    return ran, skipped


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
    parser.add_argument("--counts", default="1,2,4,8", help="worker node counts of the push compliance runs")
    parser.add_argument("--repeats", type=int, default=2, help="runs per count and tree; the cheaper one counts")
    parser.add_argument("--split-cores", action="store_true", help="the lab's nodes on their own cores (scale)")
    parser.add_argument("--inventory", default=str(TOP / "inventories" / "lab" / "hosts.yml"))
    args = parser.parse_args()
    if args.only in (None, "launch"):
        launch(args.inventory, args.rounds)
    if args.only in (None, "proxy"):
        proxy(args.inventory, args.seconds)
    if args.only in (None, "scale"):
        counts = tuple(int(c) for c in args.counts.split(","))
        scale(args.inventory, args.keep, counts, max(1, args.repeats), args.split_cores)
    if args.only in (None, "fleet"):
        fleet(args.fleet_nodes)


if __name__ == "__main__":
    main()
