"""The pages in real headless Chromium (Debian's), driven by Playwright, against a live server.

Every test runs at 1280x800 with a mouse and at 375x667 with touch (a phone, device pixel ratio 2), under the
Content-Security-Policy the service will send, and fails on any console error. Screenshots of each page at
both sizes, light and dark, land in test-artifacts/ for review.
"""

from __future__ import annotations

import base64
import io
import re
import time

import pytest
from browsing import DEVICES, draw, needs_chromium, open_page, press, screenshot, serve, swipe
from drawings import stroke_canvas, to_data_url
from PIL import Image

# Strokes as fractions of the canvas.
ONE = [(0.5, 0.15), (0.5, 0.85)]
SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)]
SCRIBBLE = [(0.15, 0.2), (0.85, 0.3), (0.2, 0.45), (0.8, 0.55), (0.2, 0.7), (0.85, 0.8), (0.3, 0.3), (0.7, 0.9)]
# Layout shifts not caused by input, collected from page load on (https://web.dev/articles/cls).
RECORD_LAYOUT_SHIFTS = """
window.__shifts = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__shifts.push(entry.value);
}).observe({ type: "layout-shift", buffered: true });
"""

pytestmark = needs_chromium


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


def stored_total(app) -> int:
    return app.test_client().get("/api/stats").get_json()["samples"]["total"]


def expect_nothing_shown(page) -> None:
    """No answer, marked digit, preview or message is left over from an earlier drawing."""
    from playwright.sync_api import expect

    expect(page.locator("#answer")).to_have_text("?")
    expect(page.locator("#agreement")).to_have_text("")
    expect(page.locator("#status")).to_have_text("")
    expect(page.locator(".digits .predicted")).to_have_count(0)
    expect(page.locator(".digits .stored")).to_have_count(0)
    expect(page.locator("#preview")).to_have_class(re.compile("blank"))
    assert preview_peak(page) == 0


def test_draw_predict_and_correct(app, page):
    from playwright.sync_api import expect

    page.goto("/")
    expect(page.locator("#version")).to_have_text("0")
    ratio = 2 if page.device == "mobile" else 1
    assert page.evaluate("(c => c.width / c.clientWidth)(document.querySelector('#canvas'))") == ratio
    expect_nothing_shown(page)

    draw(page, ONE)
    press(page, "#predict")
    expect(page.locator("#answer")).to_have_text("1")
    expect(page.locator("#agreement")).to_have_text("All 4 models say 1.")
    expect(page.locator(".digits .predicted")).to_have_text("1")  # a right answer is one tap away
    expect(page.locator("#status")).to_contain_text("the marked 1")
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
    expect(page.locator(".digits .stored")).to_have_text("1")
    body = sent.value.post_data_json
    assert body["label"] == 1 and body["image"].startswith("data:image/png;base64,")
    # What the benches send as a browser's drawing (livedigits.offline.canvas.page_data_url): RGBA, every alpha 255.
    sent_image = Image.open(io.BytesIO(base64.b64decode(body["image"].split(",", 1)[1])))
    assert sent_image.mode == "RGBA" and sent_image.size == (280, 280)
    assert sent_image.getchannel("A").getextrema() == (255, 255)
    (stroke,) = body["strokes"]  # one vertical stroke, as points [x, y, t_ms] in the 280x280 image
    assert len(stroke) > 5 and all(len(point) == 3 for point in stroke)
    assert abs(stroke[0][0] - 140) < 2 and stroke[0][1] < stroke[-1][1] and stroke[-1][2] >= stroke[0][2]

    draw(page, SEVEN)  # the labelled drawing made way for a new one, and so did its answer and messages
    expect_nothing_shown(page)
    expect(page.locator('[data-card="cnn.retrained"]')).not_to_have_class(re.compile("updated"))
    press(page, "#predict")
    expect(page.locator("#answer")).not_to_have_text("?", timeout=20_000)
    press(page, '[data-label="7"]')
    expect(page.locator("#version")).to_have_text("2")
    expect(page.locator("#status")).to_contain_text("Learned that this is a 7")
    screenshot(page, "draw-corrected", dark=False)
    assert stored_total(app) == 2

    press(page, "#undo")
    expect_nothing_shown(page)
    press(page, "#predict")
    expect(page.locator("#status")).to_have_text("Nothing is drawn: draw a digit first.")
    expect(page.locator("#answer")).to_have_text("?")
    assert sum(page.evaluate("window.__shifts")) < 0.02


def test_a_scribble_gets_no_answer_and_can_still_be_labelled(app, page):
    from playwright.sync_api import expect

    page.goto("/")
    draw(page, SCRIBBLE)
    press(page, "#predict")
    expect(page.locator("#agreement")).to_have_text("Can't recognize this as a digit")
    expect(page.locator("#answer")).to_have_text("?")
    expect(page.locator(".digits .predicted")).to_have_count(0)  # no digit is offered as the answer
    expect(page.locator('.top3[data-model="cnn"][data-variant="original"] li:not(.empty)')).to_have_count(3)
    screenshot(page, "draw-refused")
    press(page, '[data-label="8"]')  # a person who meant a digit can still teach it
    expect(page.locator("#version")).to_have_text("1")
    assert stored_total(app) == 1


def test_late_answers_move_nothing(app, page):
    """Answers that come a second after the tap (a phone on a slow network, a busy learner) change no size: the
    top-3 rows are there from the start, and the take-back offer appears and goes without resizing the pad."""
    from playwright.sync_api import expect

    def late(route):
        time.sleep(0.8)  # past the 500 ms after an input that layout-shift entries forgive
        route.continue_()

    page.route("**/api/*", late)
    page.goto("/")
    expect(page.locator("#version")).to_have_text("0")
    pad = page.locator("#canvas").bounding_box()
    draw(page, ONE)
    press(page, "#predict")
    expect(page.locator("#answer")).to_have_text("1")
    press(page, '[data-label="1"]')
    expect(page.locator("#take-back")).to_be_visible()
    assert page.locator("#canvas").bounding_box() == pad
    press(page, '[data-label="4"]')  # the longest answer beside the offer
    expect(page.locator("#status")).to_contain_text("not as a 4")
    assert page.locator("#canvas").bounding_box() == pad
    draw(page, SEVEN)  # the next drawing's first stroke withdraws the offer
    expect(page.locator("#take-back")).to_be_hidden()
    assert page.locator("#canvas").bounding_box() == pad
    assert page.evaluate("window.__shifts") == []


@pytest.mark.parametrize("device", ["desktop"])
def test_keyboard_live_prediction_and_errors(app, page):
    from playwright.sync_api import expect

    # Routes are set before the page loads and switched by `failing`: a route added mid-test once let the
    # next request through (CI, stop 13), so interception is on from the first request.
    failing = set()
    storage_down = '{"error": "storage_unavailable", "message": "The drawing store is unavailable; nothing was saved."}'

    def train(route):
        if "train" in failing:
            route.fulfill(status=503, content_type="application/json", body=storage_down)
        else:
            route.continue_()

    def predict(route):
        if "predict" in failing:
            route.abort()
        else:
            route.continue_()

    page.route("**/api/train", train)
    page.route("**/api/predict", predict)
    page.goto("/")
    expect(page.locator("#version")).to_have_text("0")
    draw(page, ONE)
    draw(page, [(0.2, 0.5), (0.8, 0.5)])
    page.keyboard.press("Backspace")  # undo the cross-bar
    page.keyboard.press("Enter")
    expect(page.locator("#answer")).to_have_text("1")
    page.keyboard.press("Escape")
    expect_nothing_shown(page)
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("Nothing is drawn: draw a digit first.")
    draw(page, ONE)
    page.click("#predict")  # with the mouse: Enter then confirms the answer rather than clicking Predict again
    expect(page.locator("#answer")).to_have_text("1")
    expect(page.locator(".digits .predicted")).to_be_focused()
    page.keyboard.press("Escape")

    page.check("#live")
    with page.expect_response("**/api/predict"):
        draw(page, ONE)
    expect(page.locator("#answer")).to_have_text("1")
    page.keyboard.press("Enter")  # with the answer on screen, Enter confirms it
    expect(page.locator("#version")).to_have_text("1")
    expect(page.locator("#status")).to_contain_text("Learned that this is a 1")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("This drawing is already stored as a 1. Draw the next digit.")
    page.keyboard.press("3")
    expect(page.locator("#status")).to_have_text("Already stored as a 1, not as a 3. If it is a 3, draw it again.")
    assert stored_total(app) == 1

    with page.expect_response("**/api/predict"):
        draw(page, SEVEN)
    failing.add("train")
    page.keyboard.press("7")
    expect(page.locator("#status")).to_have_text("The drawing store is unavailable; nothing was saved.")
    expect(page.locator("#status")).to_have_class(re.compile("error"))
    expect(page.locator(".digits .stored")).to_have_count(0)
    expect(page.locator("#version")).to_have_text("1")
    failing.discard("train")
    page.keyboard.press("7")  # nothing was stored, so the same drawing may be labelled again
    expect(page.locator("#version")).to_have_text("2")
    assert stored_total(app) == 2

    failing.add("predict")
    draw(page, ONE)
    page.click("#predict")
    expect(page.locator("#status")).to_contain_text("could not be reached")
    page.console_errors.clear()  # the aborted request is logged by the browser, as it should be


def test_one_drawing_gets_one_label(app, page):
    """A double tap (or the same key twice) stores one entry; a second label for the drawing is refused, saying so."""
    from playwright.sync_api import expect

    page.goto("/")
    expect(page.locator("#version")).to_have_text("0")
    draw(page, ONE)
    button = page.locator('[data-label="1"]')
    if page.device == "mobile":
        button.tap()
        page.wait_for_timeout(350)
        button.tap()
    else:
        button.dblclick(delay=350)
    # The second tap lands while the first is stored (and is ignored) or after (and is answered as below).
    expect(page.locator("#version")).to_have_text("1")
    expect(page.locator("#status")).to_contain_text(re.compile("Learned that this is a 1|already stored as a 1"))
    press(page, '[data-label="1"]')
    expect(page.locator("#status")).to_have_text("This drawing is already stored as a 1. Draw the next digit.")
    press(page, '[data-label="4"]')  # a "correction" stores nothing either, and says how to go on
    expect(page.locator("#status")).to_have_text("Already stored as a 1, not as a 4. If it is a 4, draw it again.")
    expect(page.locator(".digits .stored")).to_have_text("1")
    expect(page.locator("#version")).to_have_text("1")
    assert stored_total(app) == 1

    draw(page, ONE)  # a new drawing takes a label again
    draw(page, SEVEN)
    press(page, '[data-label="1"]')
    expect(page.locator("#version")).to_have_text("2")
    assert stored_total(app) == 2

    press(page, "#undo")  # an edit of the labelled drawing is a new drawing, and the next stroke adds to it
    draw(page, [(0.3, 0.5), (0.7, 0.5)])
    with page.expect_request("**/api/train") as sent:
        press(page, '[data-label="4"]')
    assert len(sent.value.post_data_json["strokes"]) == 2
    expect(page.locator("#version")).to_have_text("3")


def test_stored_but_not_yet_learned_is_said_plainly(browser, store):
    """POST /api/train answers 202 when the drawing is stored but no learner learned it in time: a serve
    process with no learner running (ROLE=serve, the learner's dyno down)."""
    from playwright.sync_api import expect

    from livedigits.config import Config
    from main import close_service, create_app

    app = create_app(Config(storage_url=str(store), role="serve", train_wait=0.3))
    with serve(app) as url:
        page = open_page(browser, url, "desktop")
        page.goto("/")
        expect(page.locator("#version")).to_have_text("0")
        draw(page, ONE)
        page.keyboard.press("Enter")
        expect(page.locator("#answer")).to_have_text("1")
        page.keyboard.press("1")
        expect(page.locator("#status")).to_have_text(
            "Stored as a 1. The models will learn from it shortly. Draw the next digit."
        )
        expect(page.locator("#status")).not_to_have_class(re.compile("error"))
        expect(page.locator("#answer")).to_have_text("1")
        expect(page.locator(".digits .stored")).to_have_text("1")
        expect(page.locator(".model.updated")).to_have_count(0)
        page.keyboard.press("1")
        expect(page.locator("#status")).to_have_text("This drawing is already stored as a 1. Draw the next digit.")
        assert page.console_errors == []
        page.context.close()
    close_service(app)
    assert len(list((store / "log").glob("*.json"))) == 1


LOOP = ["#prompt", "#canvas", "#answer", "#preview", "#predict", "#undo", "#clear", ".digits", "#status"]


def off_screen(page, selectors: list[str]) -> list[str]:
    """The selectors whose element is not wholly inside the viewport as it is now scrolled."""
    return page.evaluate(
        """(selectors) => selectors.filter((selector) => {
            const box = document.querySelector(selector).getBoundingClientRect();
            return box.top < 0 || box.left < 0 || box.bottom > innerHeight || box.right > innerWidth;
        })""",
        selectors,
    )


@pytest.mark.parametrize("height", [667, 553])
def test_phone_loop_needs_no_scrolling_and_a_swipe_beside_the_pad_scrolls(app, browser, base_url, height):
    """375 px wide with touch: draw, predict, see the answer and tap the label without ever scrolling; a swipe
    that starts outside the canvas (the answer, the gutters) scrolls the page and draws nothing."""
    from playwright.sync_api import expect

    page = open_page(browser, base_url, "mobile", viewport={"width": 375, "height": height})
    page.goto("/")
    expect(page.locator("#version")).to_have_text("0")
    assert off_screen(page, LOOP) == []
    assert page.evaluate("window.scrollY") == 0

    draw(page, ONE, scroll=False)
    page.locator("#predict").tap()
    expect(page.locator("#answer")).to_have_text("1")
    expect(page.locator(".digits .predicted")).to_have_text("1")
    assert off_screen(page, LOOP) == [] and page.evaluate("window.scrollY") == 0
    screenshot(page, f"loop-375x{height}", full_page=False)

    page.locator(".digits .predicted").tap()
    expect(page.locator("#status")).to_contain_text("Learned that this is a 1")
    assert off_screen(page, LOOP) == [] and page.evaluate("window.scrollY") == 0
    screenshot(page, f"loop-375x{height}-labelled", full_page=False)
    assert stored_total(app) == 1

    canvas = page.locator("#canvas").bounding_box()
    pad = page.locator(".pad").bounding_box()
    verdict = page.locator(".verdict").bounding_box()
    starts = {"answer": (verdict["x"] + verdict["width"] / 2, verdict["y"] + verdict["height"] / 2)}
    if canvas["x"] - pad["x"] >= 24:
        starts["gutter"] = ((pad["x"] + canvas["x"]) / 2, canvas["y"] + canvas["height"] / 2)
    assert "gutter" in starts or height < 600  # a tall phone has gutters beside the pad
    for where, (x, y) in starts.items():
        page.evaluate("window.scrollTo(0, 0)")
        swipe(page, [(x, y - step * 15) for step in range(13)])
        assert page.evaluate("window.scrollY") > 100, f"a swipe on the {where} did not scroll"
        expect(page.locator("#answer")).to_have_text("1")  # a stroke would have cleared it
        expect(page.locator("#status")).to_contain_text("Learned that this is a 1")
    assert page.console_errors == []
    page.context.close()


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
    press(page, "#predict")
    expect(page.locator("#answer")).not_to_have_text("?")
    press(page, f'[data-label="{wanted}"]')
    expect(page.locator("#version")).to_have_text("2")
    rest = "".join(d for d in "0123456789" if d not in ("5", wanted))
    expect(prompt).to_have_text(re.compile(rf"^Please draw a [{rest}]$"))
    expect(page.locator("#status")).to_contain_text("Next, draw a")
    expect(page.locator("#answer")).to_have_text("?")  # the box was cleared for the next digit, and its answer
    expect(page.locator(".digits .predicted")).to_have_count(0)
    screenshot(page, "draw-collecting", dark=False)
    expect(page.locator("#take-back")).to_be_visible()  # a mistaken tap can be taken back after the box cleared
    press(page, "#take-back")
    expect(page.locator("#status")).to_have_text("Taken back: that label is removed and the models unlearn it.")
    expect(page.locator("#version")).to_have_text("3")
    assert stored_total(app) == 1
    press(page, f'[data-label="{wanted}"]')  # nothing on the pad to label
    expect(page.locator("#status")).to_contain_text("Draw a digit first")
    draw(page, ONE)
    press(page, f'[data-label="{wanted}"]')
    expect(page.locator("#version")).to_have_text("4")
    expect(page.locator("#take-back")).to_be_visible()
    draw(page, ONE)
    expect(page.locator("#status")).to_have_text("")  # the thanks belonged to the previous drawing
    expect(page.locator("#take-back")).to_be_hidden()
    press(page, "#clear")
    press(page, "#predict")
    expect(page.locator("#status")).to_contain_text("Nothing is drawn")

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
            expect(page.locator("#accuracy tr").nth(1).locator("td").first).to_contain_text("%")  # held out: all four
            assert page.evaluate("(w => w.scrollWidth <= w.clientWidth)(document.querySelector('.table-wrap'))")
            expect(page.locator("#history svg path.series")).to_have_count(4)
            expect(page.locator("#per-label .count")).to_have_text(["0", "2", "0", "0", "0", "0", "0", "1", "0", "0"])
            expect(page.locator("#recent img")).to_have_count(3)
            expect(page.locator("#recent figcaption")).to_have_text(["1", "7", "1"])
            page.locator("#recent").scroll_into_view_if_needed()  # the thumbnails load lazily
            page.wait_for_function("() => [...document.querySelectorAll('#recent img')].every(i => i.naturalWidth > 0)")
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
