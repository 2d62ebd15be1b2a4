"""Every page for fingers and assistive technology, in real Chromium: tap targets of at least 44x44 CSS px on a
phone, and no axe-core (npm) violations in light and dark, on a phone and a desktop."""

from __future__ import annotations

import pytest
from browsing import DEVICES, axe_violations, draw, needs_chromium, open_page
from drawings import stroke_canvas, to_data_url

PAGES = ["/", "/models", "/internals", "/about"]
MIN_TARGET = 44  # CSS px (WCAG 2.5.5, Apple's and Google's guidelines)
ONE = [(0.5, 0.15), (0.5, 0.85)]

pytestmark = needs_chromium

# Whatever a finger can activate, measured as the box it can be hit in: a checkbox's whole label.
TAP_TARGETS = """() => {
    const targets = new Set();
    const controls = "a[href], button, input, select, textarea, summary, [role=button]";
    for (const element of document.querySelectorAll(controls)) {
        targets.add(element.closest("label") || element);
    }
    return [...targets].flatMap((element) => {
        const box = element.getBoundingClientRect();
        const style = getComputedStyle(element);
        if (!box.width || !box.height || style.visibility === "hidden") return [];
        const name = `${element.tagName.toLowerCase()} "${element.textContent.trim().slice(0, 30)}"`;
        return [{ name, width: box.width, height: box.height }];
    });
}"""


def train(app, label: int) -> None:
    image = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
    assert app.test_client().post("/api/train", json={"image": image, "label": label}).status_code == 200


def show_everything(page, path: str) -> None:
    """Bring the page to its fullest state: figures loaded, and on the draw page an answer on screen."""
    from playwright.sync_api import expect

    page.goto(path)
    page.wait_for_load_state("networkidle")
    if path == "/":
        draw(page, ONE)
        page.locator("#predict").click()
        expect(page.locator("#answer")).to_have_text("1")
    if path == "/internals":
        with page.expect_response("**/api/internals"):
            draw(page, ONE)
        expect(page.locator("#layers canvas").first).to_be_visible()


def test_every_tap_target_is_44px_on_a_phone(browser, base_url):
    """With no drawings yet, so that /models shows its empty states (and their links) too. Hidden-until-focused
    controls (the skip link) count: they have their size wherever they are."""
    page = open_page(browser, base_url, "mobile")
    small = []
    for path in PAGES:
        show_everything(page, path)
        small += [
            f"{path}: {target['name']} {target['width']:.1f}x{target['height']:.1f}"
            for target in page.evaluate(TAP_TARGETS)
            if min(target["width"], target["height"]) < MIN_TARGET - 0.5
        ]
    assert small == []
    assert page.console_errors == []
    page.context.close()


@pytest.mark.parametrize("device", list(DEVICES))
def test_axe_finds_nothing_in_light_and_dark(app, browser, base_url, device):
    """axe-core, injected with the page's CSP bypassed (the page itself allows only its own scripts)."""
    for label in (1, 7, 1):
        train(app, label)
    found = {}
    for scheme in ("light", "dark"):
        page = open_page(browser, base_url, device, bypass_csp=True, color_scheme=scheme)
        for path in PAGES:
            show_everything(page, path)
            found |= axe_violations(page, f"{scheme} {path}")
        assert page.console_errors == []
        page.context.close()
    assert found == {}
