"""Under CI a skipped test fails: a pytest plugin, loaded by tests/conftest.py.

scripts/test.sh installs everything the suite needs (Debian's chromium, redis-server, postgresql and fonts, the npm
packages) and CI runs it as root on a machine of its own, so a test that skips there hides a gap: a package that did
not install, a capability the machine lacks (mounting a tmpfs), a test that silently stopped running. On a laptop
without Chromium a skip stays a skip. A test that does not apply somewhere is not generated there instead of
skipping (conftest's `postgres_only` mark). An expected failure (xfail) is left alone.

CI is on when the environment's CI is set to anything but "", "0", "false" or "no": .ci/run sets CI=1, and the
hosted CI services set CI=true. tests/unit/test_ci.py runs this plugin on tests that skip, with and without CI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

OFF = {"", "0", "false", "no"}


def under_ci(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("CI", "").strip().lower() not in OFF


def fail_if_skipped(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Under CI, turn a skip (of a test, or of a whole module at collection) into a failure that says why."""
    if report.skipped and not hasattr(report, "wasxfail") and under_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI, where a skip hides a gap (scripts/test.sh installs what it needs): {reason}"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    fail_if_skipped(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report = yield
    fail_if_skipped(report)
    return report
