"""apptainer_conf on the apptainer.conf that Debian's apptainer 1.4.5 package ships (recorded)."""

from pathlib import Path

import apptainer_conf
import pytest
from apptainer_conf import apply_settings, documented_keys, is_documented
from conftest import run_module

SHIPPED = (Path(__file__).resolve().parents[1] / "data" / "apptainer" / "apptainer-1.4.5.conf").read_text()


def active(text, key):
    return [line for line in text.splitlines() if line.split("=")[0].strip() == key and not line.startswith("#")]


def test_every_documented_key_is_found_including_families():
    keys = documented_keys(SHIPPED.splitlines())
    for key in ("allow setuid", "bind path", "mount slave", "enable underlay", "limit container paths"):
        assert key in keys
    assert is_documented("allow container sif", keys)
    assert is_documented("allow container dir", keys)
    assert not is_documented("allow container", keys)
    assert not is_documented("allow setiud", keys)


def test_scalar_keys_are_replaced_in_place_and_comments_kept():
    after, changed = apply_settings(SHIPPED, {"allow setuid": False, "mount slave": True})
    assert changed == ["allow setuid"]  # mount slave is already yes in the shipped file
    assert active(after, "allow setuid") == ["allow setuid = no"]
    assert after.count("# ALLOW SETUID: [BOOL]") == 1
    assert len(after.splitlines()) == len(SHIPPED.splitlines())


def test_list_keys_repeat_in_order_where_the_first_was():
    binds = ["/etc/hosts", "/etc/localtime", "/cvmfs"]
    after, changed = apply_settings(SHIPPED, {"bind path": binds})
    assert changed == ["bind path"]
    assert active(after, "bind path") == [f"bind path = {b}" for b in binds]
    first = SHIPPED.splitlines().index(active(SHIPPED, "bind path")[0])
    assert after.splitlines()[first] == "bind path = /etc/hosts"


def test_a_commented_key_is_written_after_its_example_and_removed_with_none():
    after, _ = apply_settings(SHIPPED, {"limit container paths": "/cvmfs, /srv/images"})
    lines = after.splitlines()
    at = lines.index("limit container paths = /cvmfs, /srv/images")
    assert lines[at - 1].startswith("#limit container paths")
    back, changed = apply_settings(after, {"limit container paths": None})
    assert changed == ["limit container paths"]
    assert back == SHIPPED


def test_second_application_changes_nothing():
    settings = {"allow setuid": False, "bind path": ["/etc/hosts", "/cvmfs"], "allow container extfs": False}
    once, _ = apply_settings(SHIPPED, settings)
    twice, changed = apply_settings(once, settings)
    assert changed == []
    assert twice == once


def test_unknown_keys_are_refused_with_the_documented_ones():
    with pytest.raises(
        ValueError, match=r"'allow setiud': not a key this file documents; documented keys: allow setuid"
    ):
        apply_settings(SHIPPED, {"allow setiud": False})


def run_main(capsys, args, check=False, diff=False):
    return run_module(capsys, apptainer_conf.main, args, check=check, diff=diff)


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "apptainer.conf"
    path.write_text(SHIPPED)
    return path


def test_main_check_mode_reports_the_diff_and_writes_nothing(capsys, conf):
    code, out = run_main(capsys, {"path": str(conf), "settings": {"allow setuid": False}}, check=True, diff=True)
    assert code == 0
    assert out["changed"] is True
    assert out["changed_keys"] == ["allow setuid"]
    assert "-allow setuid = yes" not in out["diff"]["before"]
    assert "allow setuid = no" in out["diff"]["after"]
    assert conf.read_text() == SHIPPED


def test_main_writes_once_then_is_idempotent(capsys, conf):
    settings = {"allow setuid": False, "bind path": ["/etc/hosts", "/cvmfs"]}
    code, out = run_main(capsys, {"path": str(conf), "settings": settings})
    assert (code, out["changed"]) == (0, True)
    assert active(conf.read_text(), "bind path") == ["bind path = /etc/hosts", "bind path = /cvmfs"]
    code, out = run_main(capsys, {"path": str(conf), "settings": settings})
    assert (code, out["changed"], out["changed_keys"]) == (0, False, [])


def test_main_fails_on_an_unknown_key_before_writing(capsys, conf):
    code, out = run_main(capsys, {"path": str(conf), "settings": {"enable magic": True}})
    assert code == 1
    assert "'enable magic': not a key this file documents" in out["msg"]
    assert "apptainer_conf_extra" in out["msg"]
    assert conf.read_text() == SHIPPED


def test_main_fails_when_apptainer_is_not_installed(capsys, tmp_path):
    code, out = run_main(capsys, {"path": str(tmp_path / "missing.conf"), "settings": {"allow setuid": False}})
    assert code == 1
    assert "does not exist: install Apptainer first" in out["msg"]


@pytest.mark.parametrize("value", [[], [{"a": 1}], "two\nlines"])
def test_main_rejects_values_that_cannot_be_written(capsys, conf, value):
    code, out = run_main(capsys, {"path": str(conf), "settings": {"bind path": value}})
    assert code == 1
    assert "settings['bind path'] must be a scalar or a non-empty list of scalars" in out["msg"]
