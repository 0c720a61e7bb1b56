"""Shared unit-test fixtures: recorded platform trees, materialised into tmp_path.

A platform tree is a YAML file under tests/unit/data/platforms/ (or any dict of the same shape):

    description: what the case records and why it exists
    files:                      # relative path -> content; an int is written as a /proc value ("0\\n"),
      etc/os-release: |         # null or "" as an empty file (dev/fuse: a regular file stands for the device)
        ID="rocky"
      proc/sys/user/max_user_namespaces: 0
    dirs: [etc/apparmor.d/local]          # optional empty directories
    links: {usr/bin/singularity: apptainer}  # optional symlinks: path -> target
    modes: {usr/libexec/apptainer/bin/starter-suid: "4755"}  # git keeps no setuid bit: applied here
    expect: {...}               # free for the test that reads the case

Files under a bin/ or sbin/ directory get mode 0755, dev/fuse 0666 (as udev sets it), others 0644, unless
``modes`` says otherwise.

Fixtures: ``make_tree`` materialises a case (a name, a path or a dict) and returns its root;
``platform_case`` parametrizes a test over every recorded tree (ids are the file names).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def ansible_doc(*args):
    """ansible-doc as a user runs it from the repository (ansible.cfg: library, filters, doc fragments)."""
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-doc"), *args],
        cwd=REPO,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def run_play(tmp_path, play, extra=None, check=False):
    """A playbook (its text) run on this machine with the repository's configuration (connection local; ``extra``: one
    ``-e`` value). Results are printed as JSON, one per task."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(play)
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local"]
    argv += ["--check"] if check else []
    argv += [str(playbook), "-e", f"ansible_python_interpreter={sys.executable}"]
    argv += ["-e", extra] if extra else []
    env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": "/usr/bin:/bin", "ANSIBLE_STDOUT_CALLBACK": "default"}
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)


def run_module(capsys, main, args, check=False, diff=False):
    """A module's main() run with ``args`` as Ansible passes them: (exit code, the JSON result it printed)."""
    from ansible.module_utils.testing import patch_module_args

    args = {**args, **({"_ansible_check_mode": True} if check else {}), **({"_ansible_diff": True} if diff else {})}
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, json.loads(capsys.readouterr().out)


PLATFORMS_DIR = Path(__file__).resolve().parent / "data" / "platforms"

# library/ and module_utils/ are not packages: tests import modules and module_utils by name.
for _sub in ("module_utils", "library"):
    if str(REPO / _sub) not in sys.path:
        sys.path.insert(0, str(REPO / _sub))


def platform_case_paths():
    """Every recorded platform tree, sorted by name."""
    return sorted(PLATFORMS_DIR.glob("*.yml"))


def load_tree_spec(case):
    """A tree spec from a case name ("el7.9-off"), a path to a YAML file, or a dict (returned as is)."""
    if isinstance(case, dict):
        return case
    path = Path(case)
    if path.suffix != ".yml" or not path.exists():
        path = PLATFORMS_DIR / f"{case}.yml"
    with open(path, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    if not isinstance(spec, dict) or not isinstance(spec.get("files"), dict):
        raise ValueError(f"{path}: a platform tree needs a 'files' mapping")
    spec.setdefault("name", path.stem)
    return spec


def _target(root, rel):
    rel = PurePosixPath(rel)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"tree paths must be relative and stay inside the tree, got {str(rel)!r}")
    return root.joinpath(*rel.parts)


def materialise_tree(spec, root):
    """Write ``spec`` (see the module docstring) below ``root`` and return ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for rel in spec.get("dirs") or []:
        _target(root, rel).mkdir(parents=True, exist_ok=True)
    for rel, content in (spec.get("files") or {}).items():
        path = _target(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            content = ""
        elif isinstance(content, (int, float)) and not isinstance(content, bool):
            content = f"{content}\n"
        elif not isinstance(content, str):
            raise ValueError(f"{rel}: file content must be a string or a number, got {type(content).__name__}")
        path.write_text(content, encoding="utf-8")
        parts = PurePosixPath(rel).parts
        # dev/fuse stands for the device, which a host's udev makes 0666.
        path.chmod(0o755 if {"bin", "sbin"} & set(parts[:-1]) else 0o666 if rel == "dev/fuse" else 0o644)
    for rel, target in (spec.get("links") or {}).items():
        path = _target(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    for rel, mode in (spec.get("modes") or {}).items():
        if not isinstance(mode, str):
            raise ValueError(f'{rel}: quote the mode as an octal string ("4755"), got {mode!r}')
        _target(root, rel).chmod(int(mode, 8))
    return root


@pytest.fixture
def make_tree(tmp_path):
    """``make_tree(case, name="tree")``: materialise a case into tmp_path/name and return that root."""

    def make(case, name="tree"):
        return materialise_tree(load_tree_spec(case), tmp_path / name)

    return make


def pytest_generate_tests(metafunc):
    if "platform_case" in metafunc.fixturenames:
        paths = platform_case_paths()
        metafunc.parametrize("platform_case", [load_tree_spec(p) for p in paths], ids=[p.stem for p in paths])
