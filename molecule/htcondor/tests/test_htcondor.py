"""HTCondor as playbooks/htcondor.yml leaves the pool: real jobs in Apptainer, and a broken node leaving and returning.

Pool-wide tests run once, from the central manager's parametrization; node tests on each execute node. A node is
broken the way real nodes break and nothing is changed machine-wide: wn2's CVMFS repository can no longer be mounted
(the lab's stand-in finds no source; with autofs the map points nowhere, with static mounts the mount is gone), so
the image on it goes away (lab nodes share this machine's kernel, so no kernel setting is touched).
"""

import json
import re
import time

import pytest

WORKERS = ("sk-htcondor-wn1", "sk-htcondor-wn2")
CONFIG = "/etc/condor/config.d/90-sitekit-apptainer.conf"


def _central_manager(hostvars):
    if "htcondor_central_managers" not in hostvars.get("group_names", []):
        pytest.skip("pool-wide: runs once, from the central manager")


def _execute(hostvars):
    if "worker_nodes" not in hostvars.get("group_names", []):
        pytest.skip("execute nodes only")


def _wait(predicate, limit, step=0.5):
    """Seconds until predicate() is true (monotonic), or None after ``limit`` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if predicate():
            return round(time.monotonic() - start, 1)
        time.sleep(step)
    return None


# ---------------------------------------------------------------------------------------------
# Execute nodes: the configuration HTCondor reads, the self-check command
# ---------------------------------------------------------------------------------------------
def test_condor_reads_the_apptainer_settings_from_the_inventory(host, hostvars):
    _execute(hostvars)

    def knob(name):
        return host.check_output(f"condor_config_val {name}")

    image = hostvars["htcondor_apptainer_default_image"]
    assert knob("SINGULARITY") == "/usr/bin/apptainer"
    assert knob("SINGULARITY_JOB") == hostvars.get("htcondor_apptainer_singularity_job", "true")
    assert knob("SINGULARITY_IMAGE_EXPR") == (
        f'ifThenElse(isUndefined(TARGET.SingularityImage), "{image}", TARGET.SingularityImage)'
    )
    assert knob("SINGULARITY_TARGET_DIR") == "/srv"
    assert knob("MOUNT_UNDER_SCRATCH") == '"/tmp,/var/tmp"'
    assert knob("SINGULARITY_BIND_EXPR") == '"/cvmfs"'
    assert knob("SINGULARITY_EXTRA_ARGUMENTS") == '"--ipc --pid --contain"'
    period = hostvars["htcondor_apptainer_selfcheck_period"]
    assert knob("STARTD_CRON_SITEKIT_SELFCHECK_PERIOD") == str(period)
    assert knob("STARTD_CRON_SITEKIT_SELFCHECK_EXECUTABLE") == "/usr/local/sbin/sitekit-selfcheck"
    # The site's START (True here) is kept, and wrapped.
    assert knob("START").startswith("(True) && ")
    assert "MY.SitekitReady =?= true" in knob("START")


def test_the_self_check_command_proves_the_node_ready(host, hostvars):
    _execute(hostvars)
    run = host.run("/usr/local/sbin/sitekit-selfcheck --json")
    assert run.rc == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["ready"] and result["reason"] == "ready" and result["kernel_verdict"] == "unprivileged"
    assert result["checks"]["launch"]["image_os"].startswith("Debian GNU/Linux 12")
    assert result["checks"]["launch"]["user"] == "sitekit-probe"
    assert [r["name"] for r in result["checks"]["cvmfs"]["repositories"]] == hostvars["cvmfs_repositories"]
    ad = host.check_output("/usr/local/sbin/sitekit-selfcheck --classad")
    assert ad.startswith('SitekitReady = true\nSitekitReason = "ready"\n') and ad.endswith("- update:true")


def test_check_mode_reports_a_change_and_makes_none(host, hostvars, playbook):
    _execute(hostvars)
    if hostvars["inventory_hostname"] != WORKERS[0]:
        pytest.skip("one execute node is enough")
    before = host.check_output(f"sha256sum {CONFIG} /usr/local/lib/sitekit/selfcheck.json")
    reconfigs = host.check_output("grep -c 'Reconfiguring all managed daemons' /var/log/condor/MasterLog || true")
    # Only the configuration's tag (validation and the report run under every tag): the rest is the idempotence run's.
    # (-e name=value gives a string: the role takes a whole number given as text too.)
    run = playbook(
        "playbooks/htcondor.yml",
        "--check",
        "--diff",
        "--tags",
        "htcondor_apptainer_config",
        "-e",
        "htcondor_apptainer_selfcheck_period=7",
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "+STARTD_CRON_SITEKIT_SELFCHECK_PERIOD = 7" in run.stdout
    assert re.search(r"sk-htcondor-wn1\s*: ok=\d+\s+changed=[1-9]", run.stdout), run.stdout[-1500:]
    assert host.check_output(f"sha256sum {CONFIG} /usr/local/lib/sitekit/selfcheck.json") == before
    assert (
        host.check_output("grep -c 'Reconfiguring all managed daemons' /var/log/condor/MasterLog || true") == reconfigs
    )
    assert host.check_output("condor_config_val STARTD_CRON_SITEKIT_SELFCHECK_PERIOD") == str(
        hostvars["htcondor_apptainer_selfcheck_period"]
    )


BAD_INPUT = [
    (
        {"htcondor_apptainer_image_expr": 'ifThenElse(isUndefined(TARGET.SingularityImage, "/cvmfs/x")'},
        "htcondor_apptainer_image_expr = 'ifThenElse(isUndefined(TARGET.SingularityImage, \"/cvmfs/x\")' is not a "
        "ClassAd expression: expected ')' in the argument list of ifThenElse",
    ),
    (
        {"htcondor_apptainer_apptainer_path": "/opt/nowhere/bin/apptainer"},
        "htcondor_apptainer_apptainer_path=/opt/nowhere/bin/apptainer does not exist or is not executable on "
        "sk-htcondor-wn1. Install Apptainer first",
    ),
    (
        {"htcondor_apptainer_selfcheck_period": 0},
        "htcondor_apptainer_selfcheck_period=0 must be a positive whole number of seconds",
    ),
    (
        {"htcondor_apptainer_selfcheck_period": "soon"},
        "htcondor_apptainer_selfcheck_period",
    ),
]


def test_bad_input_fails_before_any_change(host, hostvars, apply_role_started):
    """Each bad value in its own run, the runs side by side (they fail before they change anything)."""
    _execute(hostvars)
    if hostvars["inventory_hostname"] != WORKERS[0]:
        pytest.skip("one execute node is enough")
    before = host.check_output(f"sha256sum {CONFIG} /usr/local/lib/sitekit/selfcheck.json")
    runs = [apply_role_started("htcondor_apptainer", bad) for bad, _message in BAD_INPUT]
    for proc, (bad, message) in zip(runs, BAD_INPUT):
        out, _ = proc.communicate(timeout=300)
        flat = re.sub(r"\s+", " ", out)
        assert proc.returncode != 0, f"{bad}: {flat[-2000:]}"
        assert re.sub(r"\s+", " ", message) in flat, f"{bad}: {flat[-3000:]}"
        recap = re.search(r"sk-htcondor-wn1\s*: ok=\d+ changed=(\d+)", flat)
        assert recap and recap.group(1) == "0", f"{bad}: bad input must fail before any change: {flat[-1500:]}"
    assert host.check_output(f"sha256sum {CONFIG} /usr/local/lib/sitekit/selfcheck.json") == before


# ---------------------------------------------------------------------------------------------
# The pool: real jobs, a node that breaks and comes back
# ---------------------------------------------------------------------------------------------
def test_every_execute_node_publishes_that_it_is_ready(hostvars, pool):
    _central_manager(hostvars)

    def ready():
        rows = pool.status("SitekitReady =?= true", "Machine", "SitekitKernelVerdict", "SitekitLaunchSeconds", "State")
        return sorted(r[0] for r in rows if r[3] == "Unclaimed") == ["wn1", "wn2"]

    assert _wait(ready, 60) is not None, pool.cm.check_output("condor_status -af Machine State SitekitReason")
    for machine, verdict, seconds, _state in pool.status(
        "true", "Machine", "SitekitKernelVerdict", "SitekitLaunchSeconds", "State"
    ):
        assert verdict == "unprivileged" and 0 < float(seconds) < 5, machine


def test_a_job_runs_in_apptainer_with_cvmfs(hostvars, pool, node, figures):
    _central_manager(hostvars)
    start = time.monotonic()
    cluster = pool.submit(1)
    (ad,) = pool.wait(cluster, 1)
    figures["first_job_submit_to_done_s"] = round(time.monotonic() - start, 1)
    figures["first_job_submit_to_start_s"] = int(ad["JobCurrentStartDate"]) - int(ad["QDate"])
    assert ad["ExitCode"] == "0"
    out = pool.output(cluster, 0)
    machine = out["machine"]
    assert machine in ("wn1", "wn2")
    node_os = node(f"sk-htcondor-{machine}").check_output(". /etc/os-release; echo $PRETTY_NAME")
    assert node_os.startswith("Debian GNU/Linux 13")
    # The image's OS, not the node's.
    assert out["os"].startswith("Debian GNU/Linux 12"), out
    assert out["cwd"] == "/srv"
    # Its own PID namespace: Apptainer's init, the job's shell and what it started; nothing of the node.
    assert int(out["procs"]) <= 5 and "condor" not in out["ps"], out
    assert out["pid1"] in ("appinit", "sinit", "job.sh", "sh"), out
    assert "debian12" in out["cvmfs"].split(), out
    assert out["tmp"] == "nobody", "MOUNT_UNDER_SCRATCH gives the job its own /tmp"


def test_a_broken_node_leaves_the_pool_and_returns_by_itself(hostvars, pool, node, figures, break_repository):
    _central_manager(hostvars)
    wn2 = node("sk-htcondor-wn2")
    period = hostvars.get("htcondor_apptainer_selfcheck_period", 5)
    assert _wait(lambda: pool.status('Machine == "wn2"', "SitekitReady") == [["true"]], 30) is not None

    def daemon_ad():
        # The startd's daemon ad gets each cron run's output at once (the job's "- update:true").
        return pool.cm.check_output(
            'condor_status -any -constraint \'MyType == "StartD" && Name == "wn2"\' -af SitekitReady'
        ).split()

    def out_of_pool():
        return pool.status('Machine == "wn2"', "SitekitReady", "State") == [["false", "Owner"]]

    seen = {}
    start = time.monotonic()
    repair = break_repository(wn2, "images.sitekit.lab")
    try:
        # Both figures from the moment of the break: the check's verdict, then the pool's view of the slot.
        while time.monotonic() - start < 6 * period and len(seen) < 2:
            if "verdict" not in seen and daemon_ad() == ["false"]:
                seen["verdict"] = round(time.monotonic() - start, 1)
            if "out" not in seen and out_of_pool():
                seen["out"] = round(time.monotonic() - start, 1)
            time.sleep(0.25)
        verdict, out = seen.get("verdict"), seen.get("out")
        figures["broken_node_check_says_not_ready_s"] = verdict
        figures["broken_node_out_of_pool_s"] = out
        assert verdict is not None and verdict <= period + 2, f"the check should say so within a period: {seen}"
        assert out is not None and out <= 2 * period + 3, f"the pool should see it within two periods: {seen}"
        (reason,) = pool.cm.check_output(
            "condor_status -constraint 'Machine == \"wn2\"' -af SitekitReason"
        ).splitlines()
        # autofs: the map's source is gone (ENOENT); static: the mountpoint is left empty.
        assert reason.startswith("cvmfs: images.sitekit.lab: "), reason
        assert "[ENOENT]" in reason or "empty directory, nothing mounted" in reason, reason
        assert "Remedy: " in reason

        start = time.monotonic()
        cluster = pool.submit(4)
        ads = pool.wait(cluster, 4)
        figures["four_jobs_on_one_node_s"] = round(time.monotonic() - start, 1)
        hosts = {ad["LastRemoteHost"].split("@")[-1] for ad in ads}
        assert hosts == {"wn1"}, ads
        assert all(ad["ExitCode"] == "0" for ad in ads)
    finally:
        repair()
    back = _wait(
        lambda: pool.status('Machine == "wn2"', "SitekitReady", "State") == [["true", "Unclaimed"]],
        6 * period,
        step=0.25,
    )
    figures["repaired_node_back_in_pool_s"] = back
    assert back is not None and back <= 2 * period + 3, f"the node should return by itself: {back}"
