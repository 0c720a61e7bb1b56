"""HTCondor as playbooks/htcondor.yml leaves the pool: real jobs in Apptainer, and a broken node leaving and returning.

Pool-wide tests run once, from the central manager's parametrization; node tests on each execute node. A node is
broken the way real nodes break and nothing is changed machine-wide: wn2's CVMFS repository can no longer be mounted
(the lab's stand-in finds no source; with autofs the map points nowhere, with static mounts the mount is gone), so
the image on it goes away (lab nodes share this machine's kernel, so no kernel setting is touched).
"""

import json
import re
import shlex
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
    # The site's START (True here) is kept, and wrapped: the policy's refusal, readiness, the named images.
    start = knob("START")
    assert start.startswith("(((True) && !((TARGET.SitekitContainer =?= false))) && "), start
    assert "MY.SitekitReady =?= true" in start
    for image in hostvars["htcondor_apptainer_images"]:
        assert f'member("{image["name"]}", MY.SitekitImagesReady)' in start
    assert knob("SitekitContainerPolicy") == '"all"'


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
    (
        {"htcondor_apptainer_policy": "sometimes"},
        "value of htcondor_apptainer_policy must be one of: all, opt_in, none, got: sometimes",
    ),
    (
        {"htcondor_apptainer_images": [{"name": "cms-el9", "path": "cvmfs/cms/el9"}]},
        "htcondor_apptainer_images must be a list of {name, path}: each name 1-64 letters, digits, '.', '_' or '-' "
        "starting with a letter or digit, used once (compared without case, as ClassAd strings are), each path the "
        "image's absolute path on the node, without spaces, commas or quotes "
        '(got names ["cms-el9"] and paths ["cvmfs/cms/el9"])',
    ),
    (
        {
            "htcondor_apptainer_images": [
                {"name": "cms-el9", "path": "/cvmfs/a"},
                {"name": "CMS-el9", "path": "/cvmfs/b"},
            ]
        },
        'got names ["cms-el9", "CMS-el9"] and paths ["/cvmfs/a", "/cvmfs/b"]). Fix the entry',
    ),
    (
        {"htcondor_apptainer_images": {"cms-el9": "/cvmfs/a"}},
        "htcondor_apptainer_images",
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


# ---------------------------------------------------------------------------------------------
# What HTCondor itself advertises about containers, next to the self-check's verdict
# ---------------------------------------------------------------------------------------------
def test_htcondor_container_attributes_agree_with_the_self_check(hostvars, pool, node):
    """HasSingularity and SingularityVersion (HTCondor's own test of Apptainer at startd start) and SitekitReady
    say the same of every execute slot, and the version is the node's Apptainer."""
    _central_manager(hostvars)
    attrs = ("Machine", "HasSingularity", "SingularityVersion", "SitekitReady", "SitekitContainerPolicy")
    out = pool.cm.check_output(f"condor_status -af:, {' '.join(attrs)}")
    rows = [dict(zip(attrs, (v.strip() for v in line.split(",")))) for line in out.splitlines()]
    assert sorted(r["Machine"] for r in rows) == ["wn1", "wn2"], out
    for row in rows:
        version = node(f"sk-htcondor-{row['Machine']}").check_output("apptainer --version")
        assert row["HasSingularity"] == "true" and row["SitekitReady"] == "true", row
        assert row["SingularityVersion"] == version, (row, version)
        assert row["SitekitContainerPolicy"] == hostvars.get("htcondor_apptainer_policy", "all"), row


# ---------------------------------------------------------------------------------------------
# The three policies, with real jobs
# ---------------------------------------------------------------------------------------------
DEFAULT_IMAGE_MARKER = "sitekit lab test image (bookworm)"
VO_A = "/cvmfs/images.sitekit.lab/vo-a-debian12"
# One job of each kind: its submit lines, and per policy what must happen (an image marker, "bare", or "idle").
JOB_KINDS = {
    "own_image": f'+SingularityImage = "{VO_A}"\n',
    "plain": "",
    "asks_container": "+SitekitContainer = true\n",
    "asks_none": "+SitekitContainer = false\n",
}
EXPECTED = {
    "all": {
        "own_image": "sitekit lab test image vo-a-debian12",
        "plain": DEFAULT_IMAGE_MARKER,
        "asks_container": DEFAULT_IMAGE_MARKER,
        "asks_none": "idle",
    },
    "opt_in": {
        "own_image": "sitekit lab test image vo-a-debian12",
        "plain": "bare",
        "asks_container": DEFAULT_IMAGE_MARKER,
        "asks_none": "bare",
    },
    "none": {"own_image": "idle", "plain": "bare", "asks_container": "idle", "asks_none": "bare"},
}


def _apply_policy(playbook, policy):
    run = playbook(
        "playbooks/htcondor.yml",
        "-l",
        "worker_nodes",
        "--tags",
        "htcondor_apptainer_config",
        "-e",
        f"htcondor_apptainer_policy={policy}",
    )
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.fixture
def policy_restored(request, playbook, hostvars):
    """Put the inventory's policy back on the execute nodes after a test that switched it."""
    yield
    inventory = hostvars.get("htcondor_apptainer_policy", "all")
    if request.node.callspec.params["policy"] != inventory:
        _apply_policy(playbook, inventory)


@pytest.mark.parametrize("policy", ["all", "opt_in", "none"])
def test_each_policy_runs_the_jobs_it_allows_where_it_allows_them(
    hostvars, pool, node, figures, playbook, policy, policy_restored
):
    _central_manager(hostvars)
    if policy != hostvars.get("htcondor_apptainer_policy", "all"):
        _apply_policy(playbook, policy)

    def published():
        rows = pool.status("true", "Machine", "SitekitContainerPolicy", "SitekitReady", "State")
        return sorted(rows) == [["wn1", policy, "true", "Unclaimed"], ["wn2", policy, "true", "Unclaimed"]]

    assert _wait(published, 60) is not None, pool.cm.check_output(
        "condor_status -af Machine SitekitContainerPolicy State"
    )
    start = time.monotonic()
    clusters = {kind: pool.submit(1, extra) for kind, extra in JOB_KINDS.items()}
    expected = EXPECTED[policy]
    waits = {}
    for kind, cluster in clusters.items():
        if expected[kind] == "idle":
            continue
        (ad,) = pool.wait(cluster, 1)
        assert ad["ExitCode"] == "0", (kind, ad)
        waits[kind] = int(ad["JobCurrentStartDate"]) - int(ad["QDate"])
        out = pool.output(cluster, 0)
        if expected[kind] == "bare":
            # On the node itself: its own OS, no image marker, the node's processes in view.
            assert out["os"].startswith("Debian GNU/Linux 13") and out["image"] == "", (kind, out)
            assert int(out["procs"]) > 5, (kind, out)
        else:
            assert out["image"] == expected[kind], (kind, out)
            assert out["os"].startswith("Debian GNU/Linux 12") and out["cwd"] == "/srv", (kind, out)
    # The refused ones: still idle after at least three negotiation cycles (NEGOTIATOR_INTERVAL 10 s).
    refused = [kind for kind in JOB_KINDS if expected[kind] == "idle"]
    time.sleep(max(0.0, 30 - (time.monotonic() - start)))
    for kind in refused:
        assert pool.state(clusters[kind]) == 1, f"{policy}: the {kind} job must not match"
        pool.remove(clusters[kind])
    figures[f"policy_{policy}_submit_to_start_s"] = waits
    figures[f"policy_{policy}_refused_jobs"] = refused


# ---------------------------------------------------------------------------------------------
# Images per VO: a broken image takes out only the jobs that need it
# ---------------------------------------------------------------------------------------------
VO_B = "/cvmfs/images.sitekit.lab/vo-b-debian12"
VO_B_ORIGIN = "/srv/sitekit-origin/images.sitekit.lab/vo-b-debian12"


def _images(node):
    """The execute nodes' named images (htcondor_apptainer_images), as the self-check's settings hold them."""
    return json.loads(node(WORKERS[0]).file("/usr/local/lib/sitekit/selfcheck.json").content_string)["images"]


def test_each_node_publishes_the_images_that_launch(hostvars, pool, node):
    _central_manager(hostvars)
    names = [image["name"] for image in _images(node)]
    out = pool.cm.check_output("condor_status -af Machine SitekitImagesReady SitekitImagesFailed")
    for line in out.splitlines():
        machine, rest = line.split(" ", 1)
        ready = re.findall(r'"([^"]+)"', rest.split("}")[0])
        assert ready == names and rest.rstrip().endswith("{  }"), line
        # A job can test it: member() on the published list.
        assert pool.status(f'Machine == "{machine}" && member("vo-b-debian12", SitekitImagesReady)', "Machine")


def test_a_broken_vo_image_holds_only_its_jobs(hostvars, pool, node, figures, playbook):
    _central_manager(hostvars)
    period = hostvars.get("htcondor_apptainer_selfcheck_period", 5)
    settings = json.loads(node(WORKERS[0]).file("/usr/local/lib/sitekit/selfcheck.json").content_string)
    pool.cm.run_expect([0], f"chmod 0700 {VO_B_ORIGIN}")
    try:
        start = time.monotonic()

        def vo_b_failed():
            rows = pool.status("true", "SitekitImagesFailed", "SitekitReady")
            return len(rows) == 2 and all(r == ["{", '"vo-b-debian12"', "}", "true"] for r in rows)

        seen = _wait(vo_b_failed, 6 * period, step=0.25)
        figures["broken_vo_image_published_s"] = seen
        assert seen is not None, pool.cm.check_output(
            "condor_status -af Machine SitekitImagesReady SitekitImagesFailed"
        )
        # The node stays ready: HTCondor's own attribute and SitekitReady both still say so.
        assert pool.status("HasSingularity && SitekitReady", "Machine") and len(pool.status("true", "Machine")) == 2
        # validate.yml sees the same: the node fails, naming the broken image and why.
        run = playbook(
            "playbooks/validate.yml",
            "-l",
            "worker_nodes[0]",
            "-e",
            json.dumps(
                {
                    "readiness_image": settings["image"],
                    "readiness_images": settings["images"],
                    "readiness_binds": ["/cvmfs"],
                }
            ),
        )
        # The table on stdout, the failure's message on stderr.
        flat = re.sub(r"\s+", " ", run.stdout + run.stderr)
        assert re.search(r"sk-htcondor-wn1 ok .* debian12,vo-a-debian12 vo-b-debian12 ", flat), flat[-2000:]
        assert run.returncode != 0 and "these images do not launch: vo-b-debian12" in flat, flat[-2000:]
        assert "vo-a-debian12" not in flat.split("these images do not launch:")[1][:200], flat[-2000:]

        broken = pool.submit(1, f'+SingularityImage = "{VO_B}"\n')
        other = pool.submit(1, f'+SingularityImage = "{VO_A}"\n')
        (ad,) = pool.wait(other, 1)
        assert pool.output(other, 0)["image"] == "sitekit lab test image vo-a-debian12"
        time.sleep(max(0.0, 25 - (time.monotonic() - start)))
        assert pool.state(broken) == 1, "the job needing the broken image must wait"
    finally:
        pool.cm.run_expect([0], f"chmod 0755 {VO_B_ORIGIN}")
    repaired = time.monotonic()
    (ad,) = pool.wait(broken, 1, limit=120)
    figures["broken_vo_image_job_started_after_repair_s"] = round(time.monotonic() - repaired, 1)
    assert ad["ExitCode"] == "0" and pool.output(broken, 0)["image"] == "sitekit lab test image vo-b-debian12"


def test_validate_launches_every_named_image(hostvars, playbook):
    _execute(hostvars)
    if hostvars["inventory_hostname"] != WORKERS[0]:
        pytest.skip("one execute node is enough")
    run = playbook(
        "playbooks/validate.yml",
        "-e",
        json.dumps(
            {
                "readiness_image": hostvars["htcondor_apptainer_default_image"],
                "readiness_images": hostvars["htcondor_apptainer_images"],
                "readiness_binds": ["/cvmfs"],
            }
        ),
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "debian12,vo-a-debian12,vo-b-debian12" in run.stdout, run.stdout[-3000:]


def test_self_check_time_with_one_and_three_images(host, hostvars, figures):
    _execute(hostvars)
    if hostvars["inventory_hostname"] != WORKERS[0]:
        pytest.skip("one execute node is enough")
    settings = json.loads(host.file("/usr/local/lib/sitekit/selfcheck.json").content_string)
    seconds = {}
    for count, images in ((1, []), (3, settings["images"])):
        assert len({i["path"] for i in images} | {settings["image"]}) == count
        config = f"/tmp/sitekit-selfcheck-{count}.json"
        host.run_expect(
            [0], f"printf %s {shlex.quote(json.dumps(dict(settings, images=images, timeout=30)))} > {config}"
        )
        runs = []
        for _ in range(5):
            result = json.loads(host.check_output(f"/usr/local/sbin/sitekit-selfcheck --json --config {config}"))
            assert result["ready"], result["reason"]
            assert result.get("images_ready", []) == [i["name"] for i in images]
            runs.append(result["seconds"])
        seconds[count] = sorted(runs)[2]
    figures["selfcheck_median_s_by_images"] = seconds
    assert seconds[3] < hostvars["htcondor_apptainer_selfcheck_timeout"], seconds


# ---------------------------------------------------------------------------------------------
# GPUs: this lab has none; the node says so and skips the GPU launch
# ---------------------------------------------------------------------------------------------
def test_a_node_without_gpus_skips_the_gpu_check_and_says_why(host, hostvars):
    _execute(hostvars)
    if host.run("ls /dev/nvidia0 /proc/driver/nvidia/gpus").rc == 0:
        pytest.skip("this node has an NVIDIA GPU: the skip is for nodes without")
    assert "use feature : GPUs" in host.file(CONFIG).content_string
    assert host.check_output("condor_config_val MACHINE_RESOURCE_INVENTORY_GPUs").find("condor_gpu_discovery") >= 0
    result = json.loads(host.check_output("/usr/local/sbin/sitekit-selfcheck --json"))
    assert result["gpu"]["count"] == 0 and result["gpu"]["checked"] is False
    assert result["gpu"]["detail"].startswith("skipped: no NVIDIA GPU on this node"), result["gpu"]
    ad = host.check_output("/usr/local/sbin/sitekit-selfcheck --classad")
    assert "SitekitGPUs = 0\n" in ad and 'SitekitGPUCheck = "skipped: no NVIDIA GPU' in ad
