"""htcondor filters: the controller-side ClassAd check agrees with HTCondor's parser on every recorded expression."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "filter_plugins"))
import htcondor  # noqa: E402

CASES = yaml.safe_load((REPO / "tests/unit/data/selfcheck/classad-parse.yml").read_text())["cases"]


def test_the_recording_has_both_kinds():
    assert sum(c["parses"] for c in CASES) > 40 and sum(not c["parses"] for c in CASES) > 40


@pytest.mark.parametrize("case", CASES, ids=[c["expr"] for c in CASES])
def test_agrees_with_classad_eval(case):
    problem = htcondor.classad_problem(case["expr"])
    assert (problem is None) == case["parses"], problem


@pytest.mark.parametrize(
    ("expr", "where"),
    [
        (
            'ifThenElse(isUndefined(TARGET.SingularityImage, "/cvmfs/x")',
            "expected ')' in the argument list of ifThenElse, found 'the end' at column 60",
        ),
        ("(1 +", "expected a value, found 'the end' at column 5"),
        ("x ? y", "expected ':'"),
        ('"/cvmfs/unterminated', "unterminated string at column 1"),
        ("a b", "unexpected 'b' after a complete expression at column 3"),
        ("0x1F", "malformed number"),
    ],
)
def test_problems_say_what_and_where(expr, where):
    assert where in htcondor.classad_problem(expr)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("true\n&& false", "several lines"),
        ("$(SINGULARITY_IMAGE)", "configuration macro"),
        (None, "empty"),
    ],
)
def test_values_a_configuration_line_cannot_hold(value, problem):
    assert problem in htcondor.classad_problem(value)


def test_the_filter_names_the_variable_and_returns_the_expression():
    assert htcondor.htcondor_classad_expr("  TARGET.X =?= true ", "v") == "TARGET.X =?= true"
    assert htcondor.htcondor_classad_expr(True, "v") == "true"
    with pytest.raises(AnsibleFilterError, match=r"htcondor_apptainer_image_expr = '\(1 \+' is not a ClassAd"):
        htcondor.htcondor_classad_expr("(1 +", "htcondor_apptainer_image_expr")


@pytest.mark.parametrize(
    ("value", "literal"),
    [("/cvmfs", '"/cvmfs"'), ("--ipc --pid", '"--ipc --pid"'), ('a"b\\c', '"a\\"b\\\\c"'), ("", '""')],
)
def test_configuration_strings(value, literal):
    """In the configuration file HTCondor reads new-syntax ClassAds: quote and backslash are escaped."""
    assert htcondor.htcondor_classad_string(value) == literal
    assert htcondor.classad_problem(literal) is None


@pytest.mark.parametrize("value", ["two\nlines", 5, None])
def test_configuration_strings_refuse_what_is_not_one_line(value):
    with pytest.raises(AnsibleFilterError, match="htcondor_classad_string: the value must be a one-line string"):
        htcondor.htcondor_classad_string(value)


def test_filters_are_registered():
    assert set(htcondor.FilterModule().filters()) == {"htcondor_classad_expr", "htcondor_classad_string"}
