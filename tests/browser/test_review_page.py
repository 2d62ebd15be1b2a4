"""The review page and the draw page's "take back" in headless Chromium (the setup of test_browser.py)."""

from __future__ import annotations

import pytest
from browsing import draw, needs_chromium, press, screenshot
from conftest import create_app
from drawings import stroke_canvas, to_data_url
from test_browser import SEVEN, device, page  # noqa: F401 (test_browser's fixtures: Chromium at both sizes)

from livedigits.config import Config

TOKEN = "page-token"
IMAGES_LOADED = "() => [...document.querySelectorAll('#queue img')].every(i => i.complete && i.naturalWidth > 0)"
pytestmark = needs_chromium


@pytest.fixture
def app(store):
    return create_app(Config(storage_url=str(store), sync_interval=0.0, admin_token=TOKEN, rate_limits="off"))


def train(app, strokes: list[tuple[int, int]], label: int) -> str:
    image = to_data_url(stroke_canvas(strokes))
    response = app.test_client().post("/api/train", json={"image": image, "label": label})
    assert response.status_code == 200
    return response.get_json()["sample_id"]


def test_review_excludes_a_drawing_from_the_queue_and_the_counts(app, page):  # noqa: F811
    from playwright.sync_api import expect

    train(app, [(140, 40), (140, 240)], 1)
    wrong = train(app, [(60, 50), (220, 50), (120, 240)], 1)  # a 7 labelled 1
    train(app, [(60, 50), (220, 50), (120, 240)], 7)
    hidden = train(app, [(140, 40), (140, 240)], 1)  # excluded before the page ever showed it
    admin = {"Authorization": f"Bearer {TOKEN}"}
    assert app.test_client().post("/api/admin/exclude", json={"sample_ids": [hidden]}, headers=admin).status_code == 200
    page.goto("/review")
    page.fill("#token", "wrong")
    press(page, "#login button")
    expect(page.locator("#login .fine")).to_have_text("The admin token is wrong.")
    page.console_errors.clear()  # Chromium logs the refused request (403) itself
    page.fill("#token", TOKEN)
    press(page, "#login button")
    expect(page.locator("#queue-total")).to_have_text("3")
    expect(page.locator("#total-samples")).to_have_text("3")
    first = page.locator("#queue > li").first
    expect(first).to_have_attribute("data-sample-id", wrong)
    page.wait_for_function(IMAGES_LOADED)
    expect(first).to_contain_text("Labelled 1")
    expect(first).to_contain_text("4 of 4 models disagreed")
    screenshot(page, "review")
    press(page, f'#queue > li[data-sample-id="{wrong}"] button')
    expect(page.locator("#status")).to_have_text(f"Excluded drawing {int(wrong)}.")
    expect(page.locator("#queue-total")).to_have_text("2")
    expect(page.locator("#total-samples")).to_have_text("2")
    expect(page.locator(f'#queue > li[data-sample-id="{wrong}"]')).to_have_count(0)

    page.select_option("#label", "7")
    expect(page.locator("#queue > li")).to_have_count(1)
    page.select_option("#label", "")
    page.check("#excluded")
    expect(page.locator("#queue-title")).to_have_text("Excluded")
    expect(page.locator("#queue > li")).to_have_count(2)
    page.wait_for_function(IMAGES_LOADED)  # excluded drawings are private: the review signs their images' links
    assert page.request.get(f"/api/samples/{int(hidden)}.png").status == 404  # ...which the public does not get
    press(page, f'#queue > li[data-sample-id="{wrong}"] button')
    expect(page.locator("#status")).to_have_text(f"Restored drawing {int(wrong)}.")
    expect(page.locator("#total-samples")).to_have_text("3")

    page.reload()  # the token is kept for the tab
    expect(page.locator("#queue-view")).to_be_visible()


def test_take_back_a_label_on_the_draw_page(page):  # noqa: F811
    from playwright.sync_api import expect

    page.goto("/")
    draw(page, SEVEN)
    expect(page.locator("#take-back")).to_be_hidden()
    press(page, '[data-label="1"]')
    expect(page.locator("#version")).to_have_text("1")
    expect(page.locator("#take-back")).to_be_visible()
    press(page, "#take-back")
    expect(page.locator("#status")).to_contain_text("Taken back")
    expect(page.locator("#take-back")).to_be_hidden()
    stats = page.request.get("/api/stats").json()
    assert stats["samples"]["total"] == 0
