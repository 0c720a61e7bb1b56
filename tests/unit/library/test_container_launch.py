"""container_launch: main() as Ansible runs it, on every path that ends before a container is launched.

The launch itself needs a real Apptainer and is tested in molecule; its parts (probe, parser, checks, error
mapping) are tested on recorded real runs in tests/unit/module_utils/test_sitekit_launch.py.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys

import container_launch
import pytest
import yaml
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from conftest import REPO, ansible_doc

RESULT_KEYS = {
    "changed",
    "ready",
    "launch_seconds",
    "baseline_seconds",
    "image",
    "user",
    "apptainer",
    "command",
    "image_os",
    "checks",
    "error",
    "cause",
    "remedy",
}


@pytest.fixture
def user():
    """An unprivileged user the module may launch as from this test run."""
    if os.geteuid() == 0:
        return "nobody"
    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "image"
    (path / "etc").mkdir(parents=True)
    return str(path)


def run_main(capsys, args):
    """Run the module's main() with ``args``; return (exit code, parsed JSON result)."""
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        container_launch.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def assert_failed(code, out, *texts):
    assert code == 1
    assert out["failed"] is True
    assert out["changed"] is False
    assert set(out) >= RESULT_KEYS, sorted(RESULT_KEYS - set(out))
    assert out["ready"] is False
    assert out["launch_seconds"] is None
    assert out["command"] is None
    for text in texts:
        assert text in out["msg"], (text, out["msg"])


# ---------------------------------------------------------------------------------------------
# Wrong arguments: fail whatever fail_on_error says
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fail_on_error", [True, False])
def test_unknown_user(capsys, image, fail_on_error):
    code, out = run_main(capsys, {"image": image, "user": "sitekit-no-such-user", "fail_on_error": fail_on_error})
    assert_failed(code, out, "user 'sitekit-no-such-user' does not exist on this node", "unprivileged account")
    assert out["cause"] == "wrong module arguments"
    assert all(not c["ok"] for c in out["checks"].values())


def test_root_is_refused(capsys, image):
    code, out = run_main(capsys, {"image": image, "user": "root"})
    assert_failed(code, out, "user 'root' has uid 0", "unprivileged user")


def test_another_user_needs_root(capsys, image, monkeypatch):
    monkeypatch.setattr(container_launch.os, "geteuid", lambda: 4242)
    code, out = run_main(capsys, {"image": image, "user": "nobody"})
    assert_failed(code, out, "launching as 'nobody' needs root", "become: true")


@pytest.mark.parametrize("timeout", [0, -5])
def test_timeout_must_be_positive(capsys, image, user, timeout):
    code, out = run_main(capsys, {"image": image, "user": user, "timeout": timeout})
    assert_failed(code, out, f"timeout must be a positive number of seconds, got {timeout}")


@pytest.mark.parametrize(
    ("bind", "text"),
    [
        ("data", "bind 'data': 'data' is not an absolute path"),
        ("/a,/b", "bind '/a,/b': one bind per list element"),
        ("/tmp:/data:rx", "the option must be ro or rw"),
        ("", "give src or src:dst"),
    ],
)
def test_malformed_binds(capsys, image, user, bind, text):
    code, out = run_main(capsys, {"image": image, "user": user, "binds": ["/tmp", bind], "fail_on_error": False})
    assert_failed(code, out, text)


def test_scratch_base_must_be_a_directory(capsys, image, user, tmp_path):
    code, out = run_main(capsys, {"image": image, "user": user, "scratch_base": str(tmp_path / "none")})
    assert_failed(code, out, "scratch_base", "is not a directory")
    colon = tmp_path / "a:b"
    colon.mkdir()
    code, out = run_main(capsys, {"image": image, "user": user, "scratch_base": str(colon)})
    assert_failed(code, out, "contains ':' or ','")


def test_required_arguments(capsys):
    code, out = run_main(capsys, {"user": "nobody"})
    assert code == 1
    assert "missing required arguments: image" in out["msg"]


# ---------------------------------------------------------------------------------------------
# The node cannot launch: fail, or report with fail_on_error=false
# ---------------------------------------------------------------------------------------------
def test_missing_image_fails_with_the_fix(capsys, user, tmp_path):
    missing = str(tmp_path / "no-image")
    code, out = run_main(capsys, {"image": missing, "user": user, "binds": ["/tmp"], "command": ["true"]})
    assert_failed(code, out, f"image {missing} does not exist: No such file or directory", "Remedy: point image at")
    assert out["cause"] == f"the image {missing} does not exist"
    assert "/cvmfs/singularity.opensciencegrid.org" in out["remedy"]
    assert out["error"] == f"image {missing} does not exist: No such file or directory"
    assert set(out["checks"]) == {"launch", "pid_namespace", "binds", "scratch", "host_paths", "command"}
    assert out["checks"]["binds"]["detail"].endswith("wanted inside: /tmp")
    assert (out["image"], out["user"]) == (missing, user)


def test_missing_image_in_check_mode_is_the_same(capsys, user, tmp_path):
    args = {"image": str(tmp_path / "no-image"), "user": user}
    _, normal = run_main(capsys, args)
    code, checked = run_main(capsys, {**args, "_ansible_check_mode": True})
    assert code == 1
    assert checked == normal


def test_diff_mode_has_nothing_to_show(capsys, user, tmp_path):
    """diff_mode support is none: the module changes nothing, so it returns no diff."""
    code, out = run_main(capsys, {"image": str(tmp_path / "no-image"), "user": user, "_ansible_diff": True})
    assert code == 1
    assert "diff" not in out


def test_report_instead_of_failing(capsys, user, tmp_path):
    code, out = run_main(capsys, {"image": str(tmp_path / "no-image"), "user": user, "fail_on_error": False})
    assert code == 0
    assert "failed" not in out
    assert set(out) >= RESULT_KEYS
    assert out["ready"] is False
    assert out["changed"] is False
    assert "does not exist" in out["cause"]


def test_image_behind_a_symlink_loop_points_at_autofs(capsys, user, tmp_path):
    """What an autofs CVMFS path that cannot mount gives: ELOOP."""
    loop = tmp_path / "loop-a"
    loop.symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(loop)
    code, out = run_main(capsys, {"image": str(loop), "user": user})
    assert_failed(code, out, "is not accessible: Too many levels of symbolic links")
    assert "autofs" in out["cause"]
    assert "ls /cvmfs/<repo>" in out["remedy"]


def test_bind_source_missing(capsys, image, user, tmp_path):
    gone = str(tmp_path / "gone")
    code, out = run_main(capsys, {"image": image, "user": user, "binds": ["/tmp", f"{gone}:/data"]})
    assert_failed(code, out, f"bind '{gone}:/data': the source {gone} does not exist on the host")
    assert out["cause"].startswith(f"the bind source {gone} does not exist")
    assert "/tmp" in out["checks"]["binds"]["detail"] and "/data" in out["checks"]["binds"]["detail"]


def test_apptainer_option_must_be_executable(capsys, image, user, tmp_path):
    plain = tmp_path / "apptainer"
    plain.write_text("")
    code, out = run_main(capsys, {"image": image, "user": user, "apptainer": str(plain)})
    assert_failed(code, out, "is not an executable file", "sitekit's apptainer role")


def test_no_apptainer_names_the_role_and_cvmfs(capsys, image, user, monkeypatch):
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)
    code, out = run_main(capsys, {"image": image, "user": user})
    assert_failed(code, out, "neither apptainer nor singularity is on the PATH")
    assert "sitekit's apptainer role" in out["remedy"]
    assert "/cvmfs/oasis.opensciencegrid.org/mis/apptainer/bin/apptainer" in out["remedy"]
    assert out["apptainer"] == {"path": None, "version": None}


# ---------------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------------
def _argument_spec(monkeypatch):
    seen = {}

    class Captured(Exception):
        pass

    def capture(self, argument_spec, **kwargs):
        seen.update(argument_spec=argument_spec, kwargs=kwargs)
        raise Captured

    monkeypatch.setattr(AnsibleModule, "__init__", capture)
    with pytest.raises(Captured):
        container_launch.main()
    return seen


def test_documentation_matches_the_argument_spec(monkeypatch):
    seen = _argument_spec(monkeypatch)
    assert seen["kwargs"] == {"supports_check_mode": True}
    spec = seen["argument_spec"]
    options = yaml.safe_load(container_launch.DOCUMENTATION)["options"]
    assert set(options) == set(spec)
    for name, option in options.items():
        for key in ("type", "required", "default", "elements"):
            assert option.get(key) == spec[name].get(key), (name, key)
        assert option["description"]


def test_documentation_attributes_and_return_keys():
    doc = yaml.safe_load(container_launch.DOCUMENTATION)
    assert doc["extends_documentation_fragment"] == ["action_common_attributes", "sitekit.read_only"]
    returned = yaml.safe_load(container_launch.RETURN)
    assert set(returned) == RESULT_KEYS - {"changed"}
    assert all(v["returned"] == "always" and "sample" in v for v in returned.values())
    assert set(container_launch.empty_result("/i", "u")) == RESULT_KEYS
    for task in yaml.safe_load(container_launch.EXAMPLES):
        assert task["name"][0].isupper()


def test_ansible_doc_renders():
    proc = ansible_doc("container_launch")
    assert "container_launch" in proc.stdout and "fail_on_error" in proc.stdout


@pytest.mark.parametrize(
    ("module", "diff"),
    [
        ("container_launch", "none"),
        ("kernel_compat", "none"),
        ("cvmfs_probe", "none"),
        ("node_selfcheck", "none"),
        ("proxy_check", "none"),
        ("apptainer_conf", "full"),
        ("sitekit_files", "full"),
        ("sitekit_paths", "none"),
    ],
)
def test_attributes_as_ansible_doc_shows_them(module, diff):
    """The modules' attributes come from the documentation fragments (doc_fragments/sitekit.py)."""
    attributes = json.loads(ansible_doc("--json", module).stdout)[module]["doc"]["attributes"]
    assert attributes["check_mode"]["support"] == "full"
    assert attributes["diff_mode"]["support"] == diff
    assert attributes["platform"]["platforms"] == "posix"
    assert all(a["description"] for a in attributes.values())


def test_module_runs_standalone_with_an_args_file(tmp_path, user):
    """`python library/container_launch.py ARGS.json` from the repository, without Ansible's bundling."""
    args = tmp_path / "args.json"
    missing = str(tmp_path / "no-image")
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"image": missing, "user": user, "fail_on_error": False}}))
    proc = subprocess.run(
        [sys.executable, "library/container_launch.py", str(args)],
        env={**os.environ, "PYTHONPATH": str(REPO / "module_utils")},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ready"] is False
    assert out["cause"] == f"the image {missing} does not exist"


def test_a_minimum_version_that_is_no_version_is_refused_before_anything_runs(capsys, image, user):
    code, out = run_main(capsys, {"image": image, "user": user, "minimum_version": "soon"})
    assert_failed(code, out, "minimum_version: expected a version string such as 1.4.5, got 'soon'")
    assert out["cause"] == "wrong module arguments"
