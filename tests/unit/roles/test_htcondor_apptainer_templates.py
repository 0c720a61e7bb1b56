"""htcondor_apptainer's execute-node configuration rendered for each policy, with and without GPUs, and with named
images: what the policy writes into SINGULARITY_JOB and START, and the GPU discovery line.

HTCondor reads the same file in the molecule htcondor scenario (condor_config_val, then real jobs under each policy,
on GPU-less nodes); here the template is rendered from the role's own vars/main.yml for cases the lab cannot run (a
GPU switch off, every policy side by side).
"""

import sys
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import comment, to_bool

TOP = Path(__file__).resolve().parents[3]
ROLE = TOP / "roles" / "htcondor_apptainer"
sys.path.insert(0, str(TOP / "filter_plugins"))
from htcondor import htcondor_classad_string  # noqa: E402 (the filter plugins are not a package)

VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
IMAGES = [{"name": "cms-el9", "path": "/cvmfs/img/cms-el9"}, {"name": "atlas", "path": "/cvmfs/img/atlas"}]


def env():
    e = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), keep_trailing_newline=True)
    e.filters["comment"] = comment
    e.filters["bool"] = to_bool
    e.filters["htcondor_classad_string"] = lambda value, name: htcondor_classad_string(value, name)
    return e


def value(e, text, context):
    return e.from_string(text).render(context) if isinstance(text, str) else text


def render(**settings):
    """The file as the role writes it: defaults, then the settings, then the role's vars rendered in order."""
    e = env()
    context = {**DEFAULTS, **settings, "ansible_managed": "Ansible managed"}
    for name in (
        "__htcondor_apptainer_asks_container",
        "__htcondor_apptainer_singularity_job_name",
        "__htcondor_apptainer_images_start",
    ):
        context[name] = value(e, VARS[name], context).strip()
    policies = {
        key: {k: value(e, v, context) for k, v in entry.items()}
        for key, entry in VARS["__htcondor_apptainer_policies"].items()
    }
    policy = policies[context["htcondor_apptainer_policy"]]
    context["__htcondor_apptainer_policy"] = policy
    context["__htcondor_apptainer_apptainer"] = "/usr/bin/apptainer"
    context["__htcondor_apptainer_cron_name"] = VARS["__htcondor_apptainer_cron_name"]
    context["__htcondor_apptainer_selfcheck_command"] = VARS["__htcondor_apptainer_selfcheck_command"]
    context["__htcondor_apptainer_exprs"] = {
        "SINGULARITY_JOB": context["htcondor_apptainer_singularity_job"] or policy["singularity_job"],
        "SITEKIT_REFUSE": policy["refuse"] or "false",
        "SITEKIT_IMAGES_START": context["__htcondor_apptainer_images_start"],
        "SINGULARITY_IMAGE_EXPR": '"/cvmfs/img/site"',
        "SINGULARITY_BIND_EXPR": '"/cvmfs"',
        "SINGULARITY_EXTRA_ARGUMENTS": '"--ipc --pid --contain"',
        "MOUNT_UNDER_SCRATCH": '"/tmp,/var/tmp"',
    }
    text = e.get_template("sitekit-apptainer.conf.j2").render(context)
    return {
        line.split(" = ", 1)[0]: line.split(" = ", 1)[1]
        for line in text.splitlines()
        if " = " in line and not line.startswith("#")
    }, text


ASKS = (
    "((TARGET.SitekitContainer =?= true) || ((TARGET.SitekitContainer =!= false) && "
    "!isUndefined(TARGET.SingularityImage)))"
)


@pytest.mark.parametrize(
    ("policy", "singularity_job", "refuse"),
    [
        ("all", "true", "(TARGET.SitekitContainer =?= false)"),
        ("opt_in", ASKS, "false"),
        ("none", "false", ASKS),
    ],
)
def test_each_policy_writes_which_jobs_run_in_a_container_and_which_it_refuses(policy, singularity_job, refuse):
    knobs, text = render(htcondor_apptainer_policy=policy)
    assert knobs["SITEKIT_NEEDS_APPTAINER"] == singularity_job
    assert knobs["SINGULARITY_JOB"] == "$(SITEKIT_NEEDS_APPTAINER)"
    assert knobs["SITEKIT_REFUSE"] == refuse
    assert knobs["SitekitContainerPolicy"] == f'"{policy}"'
    assert "STARTD_ATTRS = $(STARTD_ATTRS) SitekitContainerPolicy" in text
    # The refusal wraps the site's START first; readiness and the named images wrap it after.
    starts = [line for line in text.splitlines() if line.startswith("START = ")]
    assert starts[0] == "START = ($(START)) && !($(SITEKIT_REFUSE))"
    assert (
        starts[1].endswith("(MY.SitekitReady =?= true))")
        and starts[2] == "START = ($(START)) && ($(SITEKIT_IMAGES_START))"
    )


def test_an_expression_written_out_wins_over_the_policy():
    knobs, _ = render(htcondor_apptainer_policy="opt_in", htcondor_apptainer_singularity_job="TARGET.WantIt =?= true")
    assert knobs["SITEKIT_NEEDS_APPTAINER"] == "TARGET.WantIt =?= true"
    assert knobs["SITEKIT_REFUSE"] == "false"


def test_named_images_start_only_where_they_launched():
    knobs, _ = render(htcondor_apptainer_images=IMAGES)
    assert knobs["SITEKIT_IMAGES_START"] == (
        '((TARGET.SingularityImage =!= "/cvmfs/img/cms-el9") || member("cms-el9", MY.SitekitImagesReady)) && '
        '((TARGET.SingularityImage =!= "/cvmfs/img/atlas") || member("atlas", MY.SitekitImagesReady))'
    )
    assert render()[0]["SITEKIT_IMAGES_START"] == "true"


def test_gpu_discovery_is_switched_on_and_no_nv_is_added_by_the_role():
    _knobs, text = render()
    assert "\nuse feature : GPUs\n" in text
    # HTCondor's starter adds --nv to a job whose slot has AssignedGPUs: the role does not add a second one.
    assert "--nv" not in text.split("SINGULARITY_EXTRA_ARGUMENTS = ", 1)[1].splitlines()[0]
    assert "use feature : GPUs" not in render(htcondor_apptainer_gpus=False)[1]
