"""Under CI a skip fails (tests/support/ci.py): probe tests that skip in every way a test can (in its body, by a
skipif mark, in a fixture, a whole module at collection), run by pytest in a fresh process with and without CI; this
suite runs under the rule; and .ci/run sets CI for the README's test command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import ci
import pytest
from conftest import ROOT

SUPPORT = ROOT / "tests" / "support"
PROBE = """
import pytest

def test_passes():
    pass

def test_skips_in_its_body():
    pytest.skip("redis-server is missing")

@pytest.mark.skipif(True, reason="Debian's chromium is not installed")
def test_marked_to_skip():
    pass

@pytest.fixture
def tmpfs():
    pytest.skip("cannot mount a tmpfs here")

def test_skips_in_a_fixture(tmpfs):
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_to_fail():
    assert False
"""
MODULE_SKIP = """
import pytest

pytest.skip("moto is not installed", allow_module_level=True)

def test_never_collected():
    pass
"""
SKIPPING = {
    "test_skips_in_its_body": "redis-server is missing",
    "test_marked_to_skip": "Debian's chromium is not installed",
    "test_skips_in_a_fixture": "cannot mount a tmpfs here",
}


def run_pytest(folder: Path, source: str, ci_value: str | None) -> tuple[int, dict[str, tuple[str, str]]]:
    """pytest with the plugin alone (no conftest) on `source`, in a fresh process; its exit code and, per test case
    of its JUnit report, (outcome, message)."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_probe.py").write_text(source)
    env = {name: value for name, value in os.environ.items() if name != "CI"}
    if ci_value is not None:
        env["CI"] = ci_value
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SUPPORT), env.get("PYTHONPATH")]))
    report = folder / "report.xml"
    command = [sys.executable, "-m", "pytest", "-p", "ci", "-p", "no:cacheprovider", f"--junitxml={report}"]
    result = subprocess.run(
        [*command, "test_probe.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )
    cases = {}
    for case in ElementTree.parse(report).iter("testcase"):
        children = list(case)
        tag = children[0].tag if children else "passed"
        if tag == "skipped" and children[0].get("type") == "pytest.xfail":
            tag = "xfailed"
        cases[case.get("name")] = (tag, children[0].get("message", "") if children else "")
    return result.returncode, cases


@pytest.mark.parametrize("ci_value", [None, "0"])
def test_outside_ci_a_skip_stays_a_skip(tmp_path, ci_value):
    status, cases = run_pytest(tmp_path, PROBE, ci_value)
    assert status == 0
    assert {name: outcome for name, (outcome, _) in cases.items()} == {
        "test_passes": "passed",
        **dict.fromkeys(SKIPPING, "skipped"),
        "test_expected_to_fail": "xfailed",
    }
    status, cases = run_pytest(tmp_path, MODULE_SKIP, ci_value)
    assert status == pytest.ExitCode.NO_TESTS_COLLECTED and cases == {"test_probe": ("skipped", "collection skipped")}


@pytest.mark.parametrize("ci_value", ["1", "true"])
def test_under_ci_a_skip_fails_and_says_why(tmp_path, ci_value):
    status, cases = run_pytest(tmp_path, PROBE, ci_value)
    assert status == pytest.ExitCode.TESTS_FAILED
    assert cases.pop("test_passes") == ("passed", "")
    assert cases.pop("test_expected_to_fail")[0] == "xfailed"
    assert cases.pop("test_skips_in_its_body")[0] == "failure"
    assert {name: outcome for name, (outcome, _) in cases.items()} == {  # a skip in setup fails the setup
        "test_marked_to_skip": "error",
        "test_skips_in_a_fixture": "error",
    }
    for name, (_, message) in cases.items():
        assert "skipped under CI" in message and SKIPPING[name] in message, message
    status, cases = run_pytest(tmp_path, MODULE_SKIP, ci_value)
    assert status == pytest.ExitCode.INTERRUPTED  # a collection error stops the run
    outcome, _ = cases["test_probe"]
    assert outcome == "error" and "moto is not installed" in tmp_path.joinpath("report.xml").read_text()


def test_under_ci_is_read_from_the_environment():
    assert ci.under_ci({"CI": "1"}) and ci.under_ci({"CI": "true"}) and ci.under_ci({"CI": " yes "})
    assert not any(ci.under_ci(environ) for environ in ({}, {"CI": ""}, {"CI": "0"}, {"CI": "FALSE"}, {"CI": "no"}))


def test_this_suite_runs_under_the_rule(request):
    """tests/conftest.py loads the plugin: its hooks are the running session's."""
    assert request.config.pluginmanager.get_plugin("ci") is ci
    hooks = request.config.pluginmanager.hook
    assert ci.pytest_runtest_makereport in [impl.function for impl in hooks.pytest_runtest_makereport.get_hookimpls()]
    assert ci.pytest_make_collect_report in [impl.function for impl in hooks.pytest_make_collect_report.get_hookimpls()]


def test_ci_runs_the_readme_command_with_ci_set(tmp_path):
    """.ci/run, copied beside a scripts/test.sh that reports what it was run with, runs exactly that with CI=1."""
    shutil.copytree(ROOT / ".ci", tmp_path / ".ci")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "test.sh").write_text('echo "CI=$CI args=$* cwd=$PWD"\n')
    env = {name: value for name, value in os.environ.items() if name != "CI"}
    result = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], cwd="/", env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"CI=1 args= cwd={tmp_path}\n"
