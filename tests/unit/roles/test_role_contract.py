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


def _role_files(role: Path):
    """The files a role runs or renders: tasks, handlers, templates, vars, defaults, meta."""
    return sorted(p for p in role.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml", ".j2"))


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_a_role_reads_no_other_roles_private_names(role):
    """Roles talk through public entry points and results (base's install/installed -> base_installed, nodelib),
    never through another role's __<role>_* variables."""
    import re

    others = "|".join(re.escape(r.name) for r in ROLES if r.name != role.name)
    private = re.compile(rf"(?<![A-Za-z0-9_])__({others})_[A-Za-z0-9_]+")
    found = [
        f"{path.relative_to(TOP)}: {match.group(0)}"
        for path in _role_files(role)
        for match in private.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not found, found


def test_the_installed_probe_and_the_node_library_live_in_base_only():
    """dpkg-query/rpm probes and module_utils shipping are written once, in base's entry points."""
    for role in ROLES:
        for path in _role_files(role):
            text = path.read_text(encoding="utf-8")
            where = path.relative_to(TOP)
            if role.name != "base":
                probe = "dpkg-query" in text or "'rpm', '-q'" in text
                assert not probe, f"{where}: use base tasks_from: installed"
                assert "module_utils" not in text, f"{where}: use base tasks_from: nodelib"
