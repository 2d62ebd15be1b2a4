"""The folder tree is the architecture: the layout's four entry points at the root, everything else in the
livedigits package, and no module or class too long to read in one sitting."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250
# The layout's entry points (DESIGN.md), and gunicorn's settings that the Procfile names.
ROOT_MODULES = {"main.py", "functions.py", "two_layer_net.py", "conv_net.py", "gunicorn.conf.py"}


def service_modules() -> list:
    return sorted((ROOT / "livedigits").rglob("*.py")) + sorted(ROOT.glob("*.py"))


def test_the_root_holds_only_the_layouts_entry_points():
    assert {path.name for path in ROOT.glob("*.py")} == ROOT_MODULES


def test_no_module_over_400_lines_and_no_class_over_250():
    too_long = []
    for path in service_modules():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long.append(f"{path.relative_to(ROOT)}: class {node.name}, {node.end_lineno - node.lineno + 1}")
    assert too_long == []


def test_the_procfile_runs_modules_that_exist():
    for command in re.findall(r"python -m ([\w.]+)", (ROOT / "Procfile").read_text()):
        assert (ROOT / (command.replace(".", "/") + ".py")).exists(), command


def test_the_test_command_enforces_the_layers():
    """scripts/test.sh runs import-linter on the contracts in pyproject.toml, before the tests."""
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert "\nlint-imports" in script and script.index("lint-imports") < script.index("pytest")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'type = "layers"' in pyproject and 'type = "acyclic_siblings"' in pyproject
