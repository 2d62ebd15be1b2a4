"""The models page in headless Chromium (the setup of test_browser.py): every figure /api/stats reports, shown
at 375x667 with touch and at 1280x800, light and dark; the figures it may not report yet shown as "n/a"; and the
admin's download of the retrained models."""

from __future__ import annotations

import re
import time
import zipfile
from decimal import ROUND_HALF_UP, Decimal

import pytest
from browsing import DEVICES, axe_violations, needs_chromium, open_page, press, screenshot
from conftest import create_app
from drawings import stroke_canvas, to_data_url
from test_browser import device, page  # noqa: F401 (test_browser's fixtures: Chromium at both sizes)

from livedigits.config import Config

TOKEN = "models-token"
ONE = [(140, 40), (140, 240)]
SEVEN = [(60, 50), (220, 50), (120, 240)]
MODEL_NAMES = ["fnn.original", "fnn.retrained", "cnn.original", "cnn.retrained"]
pytestmark = needs_chromium


@pytest.fixture
def app(store):
    # heldout_idle_seconds=0: the held-out slice is scored after every label (a curve of many points)
    config = Config(
        storage_url=str(store), sync_interval=0.0, admin_token=TOKEN, rate_limits="off", heldout_idle_seconds=0.0
    )
    return create_app(config)


def train(app, strokes: list[tuple[int, int]], label: int) -> None:
    image = to_data_url(stroke_canvas(strokes))
    assert app.test_client().post("/api/train", json={"image": image, "label": label}).status_code == 200


def train_a_few(app) -> dict:
    """Five drawings, one of them mislabelled, and the stats the API then reports."""
    for strokes, label in ((ONE, 1), (SEVEN, 7), (ONE, 1), (SEVEN, 1), (SEVEN, 7)):
        train(app, strokes, label)
    return app.test_client().get("/api/stats").get_json()


def percent(value: float) -> str:
    """As the page writes a figure: JavaScript's toFixed(1) rounds the exact binary value, ties away from zero."""
    return f"{Decimal(value * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"


def fits_the_screen(tab) -> bool:
    return tab.evaluate("document.documentElement.scrollWidth <= innerWidth")


def learn_a_while(app, monkeypatch) -> dict:
    """A service that has learned something: ones taught as fours (the retrained models come to answer them
    differently from the originals: the gallery fills), a few right labels, and the held-out slice scored after
    every label (a curve of many points). The stats the API then reports."""
    for strokes, label in [(ONE, 1), (SEVEN, 7), *[(ONE, 4)] * 10, (SEVEN, 7), (ONE, 1)]:
        train(app, strokes, label)
    client = app.test_client()
    deadline = time.monotonic() + 30
    while (stats := client.get("/api/stats").get_json())["accuracy"]["cnn"]["retrained"]["t10k_version"] != 14:
        assert time.monotonic() < deadline, "the held-out slice was not scored at version 14"
        time.sleep(0.05)
    return stats


def test_every_figure_the_api_reports_is_shown(app, page):  # noqa: F811
    """Needs the issue-23 fields of /api/stats (held-out figures for all four models, per digit, confusion on
    users' drawings, disagreements)."""
    from playwright.sync_api import expect

    stats = train_a_few(app)
    version = stats["model_version"]
    page.goto("/models")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#model-version")).to_have_text(str(version))

    rows = page.locator("#accuracy tr")
    expect(rows).to_have_count(4)
    for row, name in zip(rows.all(), MODEL_NAMES, strict=True):
        model, variant = name.split(".")
        figures = stats["accuracy"][model][variant]
        held_out = row.locator("td").first
        expect(held_out).to_contain_text(percent(figures["t10k"]))
        measured_at = figures.get("t10k_version")
        if variant == "retrained" and measured_at != version:
            expect(held_out).to_contain_text(f"measured at version {measured_at}")
        else:
            expect(held_out.locator(".measured")).to_have_count(0)

    heldout = stats["heldout"]["history"]
    if heldout:
        expect(page.locator("#heldout svg path.series.retrained")).to_have_count(2)
        expect(page.locator("#heldout svg path.reference")).to_have_count(2)
        expect(page.locator("#heldout svg")).to_have_attribute("aria-label", re.compile(r"held-out MNIST digits"))
    else:
        expect(page.locator("#heldout")).to_have_text(re.compile("No held-out measurement yet"))
    expect(page.locator("#history svg path.series")).to_have_count(4)

    per_digit = page.locator("#per-digit tr")
    expect(per_digit).to_have_count(10)
    for digit in (1, 7):
        cells = per_digit.nth(digit).locator("td")
        for i, name in enumerate(MODEL_NAMES):
            model, variant = name.split(".")
            expect(cells.nth(i)).to_contain_text(percent(stats["accuracy"][model][variant]["per_label"][digit]))
        expect(cells.nth(4)).to_have_text(str(sum(stats["users_confusion"]["fnn.original"][digit])))

    disagreements = stats["disagreements"]
    expect(page.locator("#disagreements li")).to_have_count(len(disagreements))
    expect(page.locator("#disagreements-empty")).to_be_visible(visible=not disagreements)

    users = page.locator("#users-confusion table")
    expect(users).to_have_count(2)
    expect(users.first.locator("caption")).to_contain_text("FNN original on users' drawings")
    expect(users.first.locator("tbody tr").nth(1).locator("td").nth(1)).to_have_text(
        str(stats["users_confusion"]["fnn.original"][1][1])
    )
    press(page, '#users-confusion-model label:has(input[value="cnn"])')
    expect(users.nth(1).locator("caption")).to_contain_text("CNN retrained on users' drawings")
    expect(page.locator("#confusion table")).to_have_count(2)
    assert fits_the_screen(page)
    screenshot(page, "models")


def test_a_service_that_learned_a_while(app, page, monkeypatch):  # noqa: F811
    """The held-out curve, the per-digit marks and the gallery, from what the service really learned."""
    from playwright.sync_api import expect

    stats = learn_a_while(app, monkeypatch)
    page.goto("/models")
    page.wait_for_load_state("networkidle")
    retrained = page.locator("#accuracy tr").nth(1).locator("td").first
    expect(retrained).to_have_text(percent(stats["accuracy"]["fnn"]["retrained"]["t10k"]))
    chart = page.locator("#heldout svg")
    expect(chart).to_contain_text(re.compile(r"accuracy, axis \d+% to 100%"))  # not from 0: the curve would be flat
    expect(chart).to_have_attribute(
        "aria-label", re.compile(r"^Accuracy on 2,000 held-out MNIST digits, model versions 0 to 14, axis from ")
    )
    expect(page.locator("#heldout svg path.series.retrained")).to_have_count(2)
    four = page.locator("#per-digit tr").nth(4)  # taught ones as fours: the retrained models got better at "4"
    expect(four.locator(".better")).to_have_count(2)
    disagreements = stats["disagreements"]
    assert disagreements and {d["label"] for d in disagreements} <= {1, 4}  # the ones, whatever they were called
    gallery = page.locator("#disagreements li")
    expect(gallery).to_have_count(len(disagreements))
    first = disagreements[0]["predicted"]
    changed = [f"{m.upper()} {first[m + '.original']}→{first[m + '.retrained']}" for m in ("fnn", "cnn")
               if first[m + ".original"] != first[m + ".retrained"]]  # fmt: skip
    for text in changed:
        expect(gallery.first.locator("figcaption")).to_contain_text(text)
    for images in ("#recent", "#disagreements"):  # public drawings: their images load for anyone
        page.locator(f"{images} li").last.scroll_into_view_if_needed()  # the thumbnails load lazily
        page.wait_for_function(f"() => [...document.querySelectorAll('{images} img')].every(i => i.naturalWidth > 0)")
    expect(page.locator("#disagreements-empty")).to_be_hidden()
    screenshot(page, "models-learned")
    for body in ("#per-digit", "#accuracy"):  # the tables fit a phone without scrolling sideways
        assert page.locator(body).evaluate(
            "b => (t => t.scrollWidth <= t.parentElement.clientWidth)(b.closest('table'))"
        )
    assert fits_the_screen(page)


@pytest.mark.parametrize("device", list(DEVICES))
def test_axe_finds_nothing_with_every_section_filled(app, browser, base_url, device, monkeypatch):  # noqa: F811
    """axe-core (as in test_accessibility.py) on the page with every section showing figures, light and dark,
    with either model's confusion matrices on users' drawings."""
    learn_a_while(app, monkeypatch)
    found = {}
    for scheme in ("light", "dark"):
        tab = open_page(browser, base_url, device, bypass_csp=True, color_scheme=scheme)
        tab.goto("/models")
        tab.wait_for_load_state("networkidle")
        for model in ("fnn", "cnn"):
            tab.locator(f'#users-confusion-model input[value="{model}"]').check()
            found |= axe_violations(tab, f"{scheme} {model}")
        assert tab.console_errors == []
        tab.context.close()
    assert found == {}


def test_download_the_retrained_models(app, page, tmp_path):  # noqa: F811
    """Needs GET /api/models/export. A wrong token is refused in the status line; the right one saves the zip
    under the server's name; the token is kept for the tab, and the review page shares it."""
    from playwright.sync_api import expect

    train(app, ONE, 1)
    page.goto("/models")
    button = page.locator("#export button")
    box = button.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 44
    page.fill("#export-token", "wrong")
    press(page, "#export button")
    status = page.locator("#export-status")
    expect(status).to_have_text("The admin token is wrong.")
    expect(status).to_have_class(re.compile("error"))
    assert page.evaluate("sessionStorage.getItem('digits.adminToken')") is None
    page.console_errors.clear()  # Chromium logs the refused request (403) itself

    page.fill("#export-token", TOKEN)
    with page.expect_download() as downloading:
        press(page, "#export button")
    download = downloading.value
    assert download.suggested_filename == "digits-models-v1.zip"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert {"cnn.keras", "fnn.npz", "manifest.json", "README.txt"} <= set(archive.namelist())
    expect(status).to_have_text(re.compile(r"^Downloaded digits-models-v1\.zip \(\d+\.\d MB\)\.$"))
    expect(status).not_to_have_class(re.compile("error"))

    page.reload()
    expect(page.locator("#export-token")).to_have_value(TOKEN)
    page.goto("/review")
    expect(page.locator("#queue-view")).to_be_visible()
