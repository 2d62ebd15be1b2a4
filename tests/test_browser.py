"""The draw page in real headless Chromium (Debian's), driven by Playwright, against a live server."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed")


@pytest.fixture
def base_url(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def page(base_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base_url)
        page = context.new_page()
        page.console_errors = []
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.on("pageerror", lambda e: page.console_errors.append(str(e)))
        yield page
        browser.close()


def draw(page, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through points given as fractions of the canvas."""
    box = page.locator("#canvas").bounding_box()
    x, y = (box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.move(x, y)
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=12)
    page.mouse.up()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(Path(ARTIFACTS) / f"{name}.png"), full_page=True)


def test_draw_a_one_predict_and_label_it(page):
    from playwright.sync_api import expect

    page.goto("/")
    expect(page.locator("#version")).to_have_text("0")
    draw(page, [(0.5, 0.15), (0.5, 0.85)])
    page.click("#predict")
    expect(page.locator("#answer")).to_have_text("1")
    expect(page.locator('.top3[data-model="cnn"][data-variant="retrained"] li')).to_have_count(3)
    screenshot(page, "draw-predicted")
    page.click('[data-label="1"]')
    expect(page.locator("#version")).to_have_text("1")
    expect(page.locator("#status")).to_contain_text("Thanks")
    page.click("#clear")
    expect(page.locator("#answer")).to_have_text("?")
    page.click("#predict")
    expect(page.locator("#message")).to_contain_text("Nothing is drawn")
    for path in ("/models", "/about"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        screenshot(page, path.strip("/"))
    expect(page.locator("#model-version")).to_have_count(0)  # on /about now
    assert page.console_errors == []
