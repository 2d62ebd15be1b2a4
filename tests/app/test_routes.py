"""Every route of the URL map has a test that requests it: a table of (method, rule) -> the test, which must equal
the app's URL map, name a test that exists, and whose own code names the route's path. A route added without a test
(or a test renamed or moved away from its route) fails here, saying which."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from conftest import ROOT

TESTED = {
    ("GET", "/"): "tests/app/test_api.py::test_health_and_pages",
    ("GET", "/about"): "tests/app/test_api.py::test_health_and_pages",
    ("GET", "/models"): "tests/app/test_api.py::test_health_and_pages",
    ("GET", "/healthz"): "tests/app/test_api.py::test_health_and_pages",
    ("GET", "/internals"): "tests/app/test_security.py::test_security_headers_everywhere_and_pages_need_no_inline_code",
    ("GET", "/review"): "tests/app/test_review.py::test_review_and_admin_routes_need_the_token",
    ("GET", "/static/<path:filename>"): "tests/app/test_pages.py::test_every_script_and_stylesheet_is_served",
    ("POST", "/api/predict"): "tests/app/test_api.py::test_predict_shape",
    ("POST", "/api/predict/batch"): "tests/app/test_batch.py::test_each_result_is_what_predict_answers_for_it",
    ("POST", "/api/train"): "tests/app/test_api.py::test_train_stores_one_drawing_bumps_version_and_changes_retrained",
    ("POST", "/api/undo"): "tests/app/test_review.py::test_undo_takes_back_only_ones_own_drawing_once_and_in_time",
    ("POST", "/api/internals"): "tests/app/test_api.py::test_internals_and_history",
    ("GET", "/api/stats"): "tests/app/test_api.py::test_stats_counts_labels_and_scores",
    ("GET", "/api/samples/recent"): "tests/app/test_api.py::test_recent_samples_and_their_images",
    ("GET", "/api/samples/<sample_id>.png"): "tests/app/test_api.py::test_recent_samples_and_their_images",
    ("POST", "/api/admin/reset"): "tests/app/test_api.py::test_admin_reset",
    ("POST", "/api/admin/rollback"): "tests/app/test_api.py::test_rollback_to_an_earlier_version",
    ("GET", "/api/review"): "tests/app/test_database.py::test_the_review_queue_is_every_row_sorted_filtered_and_paged",
    ("POST", "/api/admin/exclude"): (
        "tests/app/test_database.py::test_the_review_queue_is_every_row_sorted_filtered_and_paged"
    ),
    ("POST", "/api/admin/restore"): (
        "tests/app/test_review.py::"
        "test_exclude_takes_a_drawing_out_of_counts_accuracy_export_and_queue_and_restore_brings_it_back"
    ),
    ("GET", "/api/samples/export"): (
        "tests/app/test_dataset.py::test_http_export_needs_the_admin_token_and_zips_the_same_files"
    ),
    (
        "GET",
        "/api/models/export",
    ): "tests/app/test_export.py::test_the_export_runs_in_fresh_interpreters_as_predict_answers",
    ("POST", "/hook"): "tests/app/test_api.py::test_legacy_hook_collects_without_training",
    ("POST", "/hook2"): "tests/app/test_api.py::test_legacy_hook2_predicts_in_the_old_format",
    ("POST", "/hook3"): "tests/app/test_api.py::test_legacy_hook3_trains",
    ("POST", "/estimate"): "tests/app/test_api.py::test_estimate_takes_mnist_pixels",
}


def url_map_routes(app) -> set[tuple[str, str]]:
    """(method, rule) of every route the app answers, less what Flask adds to each (HEAD, OPTIONS)."""
    return {(method, rule.rule) for rule in app.url_map.iter_rules() for method in rule.methods - {"HEAD", "OPTIONS"}}


@cache
def sources_by_name(path: Path) -> dict[str, str]:
    """The source of each top-level test function of a test file, decorators included, by name."""
    lines = path.read_text().splitlines()
    return {
        node.name: "\n".join(lines[min(n.lineno for n in [node, *node.decorator_list]) - 1 : node.end_lineno])
        for node in ast.parse("\n".join(lines)).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def path_pattern(rule: str) -> re.Pattern:
    """A URL path of `rule` as a test writes it in a string: "/about", f"{url}/api/samples/{n}.png", "/static/x.js"."""
    parts = re.split(r"<[^>]+>", rule)
    variable = r"[^\"'\s]+"
    return re.compile(r"[\"'}]" + variable.join(map(re.escape, parts)) + r"(?=[\"'?{])")


def test_every_route_of_the_url_map_has_a_test(app):
    routes = url_map_routes(app)
    untested, gone = sorted(routes - TESTED.keys()), sorted(TESTED.keys() - routes)
    assert untested == [], f"routes without a test: add each one's test to TESTED in {Path(__file__).name}"
    assert gone == [], "routes in TESTED that the app does not have"


def test_each_named_test_exists_and_requests_its_route():
    for (method, rule), node in TESTED.items():
        file, name = node.split("::")
        functions = sources_by_name(ROOT / file)
        assert name in functions, f"{method} {rule}: {node} does not exist"
        assert path_pattern(rule).search(functions[name]), f"{method} {rule}: {node} never names its path"


def test_the_checks_catch_a_route_without_a_test_and_a_test_that_does_not_request_it(app):
    """The table check fails for a new route; the path check tells a test that requests a path from one that
    does not, and reads a variable part of a rule as anything between quotes."""
    app.add_url_rule("/api/new", "new_route", lambda: "", methods=["POST"])
    assert ("POST", "/api/new") in url_map_routes(app) - TESTED.keys()
    assert path_pattern("/").search('client.get("/")') and not path_pattern("/").search('client.get("/about")')
    assert path_pattern("/about").search('f"{url}/about"') and not path_pattern("/about").search('"/about/x"')
    samples = path_pattern("/api/samples/<sample_id>.png")
    assert samples.search('client.get("/api/samples/99.png")') and samples.search('f"/api/samples/{n}.png"')
    assert not samples.search('client.get("/api/samples/recent")')
    assert path_pattern("/api/review").search('f"/api/review{query}"')
    assert not path_pattern("/api/predict").search('"/api/predict/batch"')
