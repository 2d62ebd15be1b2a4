"""The pages in real headless Chromium (Debian's), driven by Playwright, against a live server.

Every test runs at 1280x800 with a mouse and at 375x667 with touch (a phone, device pixel ratio 2), under the
Content-Security-Policy the service will send, and fails on any console error. Screenshots of each page at
both sizes, light and dark, land in test-artifacts/ for review.
"""

from __future__ import annotations

import re

import pytest
from browsing import DEVICES, draw, launch, needs_chromium, open_page, press, screenshot, serve
from drawings import stroke_canvas, to_data_url

# Strokes as fractions of the canvas.
ONE = [(0.5, 0.15), (0.5, 0.85)]
SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)]
# Layout shifts not caused by input, collected from page load on (https://web.dev/articles/cls).
RECORD_LAYOUT_SHIFTS = """
window.__shifts = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__shifts.push(entry.value);
}).observe({ type: "layout-shift", buffered: true });
"""

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser():
    with launch() as browser:
        yield browser


@pytest.fixture
def base_url(app):
    with serve(app) as url:
        yield url


@pytest.fixture(params=list(DEVICES))
def device(request) -> str:
    return request.param


@pytest.fixture
def page(browser, base_url, device):
    page = open_page(browser, base_url, device)
    page.context.add_init_script(RECORD_LAYOUT_SHIFTS)
    yield page
    page.context.close()
    assert page.console_errors == []


def preview_peak(page, selector: str = "#preview") -> int:
    """The brightest pixel of a 28x28 preview canvas: 0 while blank, ink is bright."""
    return page.evaluate(
        """(selector) => {
            const canvas = document.querySelector(selector);
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            return Math.max(...data.filter((_, i) => i % 4 === 0));
        }""",
        selector,
    )


def train(app, label: int) -> None:
    """A labelled drawing sent straight to the API, as another user's would be."""
    image = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
    assert app.test_client().post("/api/train", json={"image": image, "label": label}).status_code == 200


def test_draw_predict_and_correct(page):
    from playwright.sync_api import expect

    page.goto("/")
    expect(page.locator("#version")).to_have_text("0")
    ratio = 2 if page.device == "mobile" else 1
    assert page.evaluate("(c => c.width / c.clientWidth)(document.querySelector('#canvas'))") == ratio
    assert preview_peak(page) == 0

    draw(page, ONE)
    press(page, "#predict")
    expect(page.locator("#answer")).to_have_text("1")
    for model in ("fnn", "cnn"):
        for variant in ("original", "retrained"):
            rows = page.locator(f'.top3[data-model="{model}"][data-variant="{variant}"] li:not(.empty)')
            expect(rows).to_have_count(3)
            expect(rows.first).to_contain_text("%")
    assert preview_peak(page) > 200
    screenshot(page, "draw-predicted")

    with page.expect_request("**/api/train") as sent:
        press(page, '[data-label="1"]')
    expect(page.locator("#version")).to_have_text("1")
    expect(page.locator("#status")).to_contain_text("Thanks")
    expect(page.locator('[data-card="cnn.retrained"]')).to_have_class(re.compile("updated"))
    body = sent.value.post_data_json
    assert body["label"] == 1 and body["image"].startswith("data:image/png;base64,")
    (stroke,) = body["strokes"]  # one vertical stroke, as points [x, y, t_ms] in the 280x280 image
    assert len(stroke) > 5 and all(len(point) == 3 for point in stroke)
    assert abs(stroke[0][0] - 140) < 2 and stroke[0][1] < stroke[-1][1] and stroke[-1][2] >= stroke[0][2]

    draw(page, SEVEN)  # the labelled drawing made way for a new one
    expect(page.locator("#answer")).to_have_text("?")
    press(page, "#predict")
    expect(page.locator("#answer")).not_to_have_text("?", timeout=20_000)
    press(page, '[data-label="7"]')
    expect(page.locator("#version")).to_have_text("2")
    expect(page.locator("#status")).to_contain_text("Learned that this is a 7")
    screenshot(page, "draw-corrected", dark=False)

    press(page, "#undo")
    press(page, "#predict")
    expect(page.locator("#message")).to_contain_text("Nothing is drawn")
    expect(page.locator("#answer")).to_have_text("?")
    assert preview_peak(page) == 0
    assert sum(page.evaluate("window.__shifts")) < 0.02


@pytest.mark.parametrize("device", ["desktop"])
def test_keyboard_live_prediction_and_errors(page):
    from playwright.sync_api import expect

    page.goto("/")
    expect(page.locator("#version")).to_have_text("0")
    draw(page, ONE)
    draw(page, [(0.2, 0.5), (0.8, 0.5)])
    page.keyboard.press("Backspace")  # undo the cross-bar
    page.keyboard.press("Enter")
    expect(page.locator("#answer")).to_have_text("1")
    page.keyboard.press("Escape")
    expect(page.locator("#answer")).to_have_text("?")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_have_text("Nothing is drawn: draw a digit first.")

    page.check("#live")
    with page.expect_response("**/api/predict"):
        draw(page, ONE)
    expect(page.locator("#answer")).to_have_text("1")

    page.route(
        "**/api/train",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": "storage_unavailable", "message": "The drawing store is unavailable; nothing was saved."}',
        ),
    )
    page.keyboard.press("3")
    expect(page.locator("#status")).to_have_text("The drawing store is unavailable; nothing was saved.")
    expect(page.locator("#status")).to_have_class(re.compile("error"))
    expect(page.locator("#version")).to_have_text("0")
    page.unroute("**/api/train")

    page.route("**/api/predict", lambda route: route.abort())
    page.click("#predict")
    expect(page.locator("#message")).to_contain_text("could not be reached")
    page.console_errors.clear()  # the aborted request is logged by the browser, as it should be


def test_collection_mode_asks_for_the_rarest_digits(app, page):
    from playwright.sync_api import expect

    train(app, 5)
    page.goto("/")
    expect(page.locator("#version")).to_have_text("1")
    page.locator("#collect").check()
    prompt = page.locator("#prompt")
    expect(prompt).to_have_text(re.compile(r"^Please draw a [0-46-9]$"))
    wanted = prompt.inner_text()[-1]
    expect(page.locator(".digits .wanted")).to_have_text(wanted)

    draw(page, ONE)
    press(page, f'[data-label="{wanted}"]')
    expect(page.locator("#version")).to_have_text("2")
    rest = "".join(d for d in "0123456789" if d not in ("5", wanted))
    expect(prompt).to_have_text(re.compile(rf"^Please draw a [{rest}]$"))
    expect(page.locator("#status")).to_contain_text("Next, draw a")
    press(page, "#predict")  # the canvas was cleared for the next digit
    expect(page.locator("#message")).to_contain_text("Nothing is drawn")
    screenshot(page, "draw-collecting", dark=False)

    page.reload()  # the mode is remembered
    expect(page.locator("#collect")).to_be_checked()
    expect(prompt).to_have_text(re.compile(rf"^Please draw a [{rest}]$"))


def test_every_page_loads_cleanly(app, page):
    from playwright.sync_api import expect

    for label in (1, 7, 1):
        train(app, label)

    for path, name in (("/", "draw"), ("/models", "models"), ("/about", "about"), ("/internals", "internals")):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        expect(page.locator("h1")).to_be_visible()
        expect(page.locator('nav a[aria-current="page"]')).to_have_count(1)
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), f"{path} is wider than the screen"
        if path == "/models":
            expect(page.locator("#model-version")).to_have_text("3")
            expect(page.locator("#total-samples")).to_have_text("3")
            expect(page.locator("#accuracy tr")).to_have_count(4)
            expect(page.locator("#accuracy tr").first).to_contain_text("%")
            expect(page.locator("#history svg path.series")).to_have_count(4)
            expect(page.locator("#per-label .count")).to_have_text(["0", "2", "0", "0", "0", "0", "0", "1", "0", "0"])
            expect(page.locator("#recent img")).to_have_count(3)
            expect(page.locator("#recent figcaption")).to_have_text(["1", "7", "1"])
            assert page.evaluate("[...document.querySelectorAll('#recent img')].every(i => i.naturalWidth > 0)")
            expect(page.locator("#confusion table")).to_have_count(2)
            expect(page.locator("#confusion table").first.locator("tbody tr")).to_have_count(10)
        if path == "/internals":
            with page.expect_response("**/api/internals"):
                draw(page, ONE)
            expect(page.locator("#layers .maps canvas").first).to_be_visible()
            assert page.locator("#layers .layer").count() >= 2
            assert preview_peak(page) > 200 and preview_peak(page, "#hidden") > 0
            expect(page.locator("#version")).to_have_text("3")
        screenshot(page, name)
