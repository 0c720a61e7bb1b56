"""Every role keeps its public contract: argument specs that match its defaults, and a current README."""

from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[3]
ROLES = sorted(p for p in (TOP / "roles").iterdir() if (p / "tasks" / "main.yml").exists())


def _load(path: Path):
    return yaml.safe_load(path.read_text()) if path.exists() else None


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_default_is_specified_with_the_same_value(role):
    defaults = _load(role / "defaults" / "main.yml") or {}
    specs = _load(role / "meta" / "argument_specs.yml")
    assert specs, f"{role.name}: meta/argument_specs.yml is missing"
    # defaults/main.yml serves every entry point (include_role loads it for tasks_from too).
    options = {}
    for entry in specs["argument_specs"].values():
        # A required option (the packages of base's install entry point) has no default by design.
        options.update({k: v for k, v in (entry.get("options") or {}).items() if not v.get("required")})
    assert set(defaults) == set(options), (
        f"{role.name}: defaults without a spec: {sorted(set(defaults) - set(options))}; "
        f"specs without a default: {sorted(set(options) - set(defaults))}"
    )
    for name, value in defaults.items():
        assert options[name].get("default") == value, f"{role.name}: {name} default differs between spec and defaults"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_public_variables_carry_the_role_prefix_and_an_enabled_switch(role):
    defaults = _load(role / "defaults" / "main.yml") or {}
    assert f"{role.name}_enabled" in defaults
    assert all(name.startswith(role.name + "_") for name in defaults), sorted(defaults)
    for vars_file in (role / "vars").glob("*.yml"):
        public = [k for k in (_load(vars_file) or {}) if not k.startswith(f"__{role.name}_")]
        assert not public, f"{vars_file.relative_to(TOP)}: role vars must be __{role.name}_*: {public}"


def test_role_readmes_are_generated_from_the_specs():
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, str(TOP / "tools" / "role_docs.py"), "--check"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
