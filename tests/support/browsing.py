"""Real headless Chromium (Debian's) driven by Playwright against a live server: what the browser tests share.

Each test module wraps `launch()` and `serve(app)` in its own two short fixtures (imported fixtures would
shadow their own parameters)."""

from __future__ import annotations

import itertools
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
# tests/package.json: at the root, it would make Heroku build a Node.js app
NODE_MODULES = ROOT / "tests" / "node_modules"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CSP = "script-src 'self'; style-src 'self'"
PHONE = {"has_touch": True, "is_mobile": True, "device_scale_factor": 2}
DEVICES = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "mobile": {"viewport": {"width": 375, "height": 667}, **PHONE},
}

# Under CI the skip fails (tests/support/ci.py): scripts/test.sh installs Chromium.
needs_chromium = pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"no {CHROMIUM}: scripts/test.sh installs it")


def npm_file(relative: str) -> Path:
    """A file of an npm package the tests use (package.json's devDependencies), installed by scripts/test.sh."""
    path = NODE_MODULES / relative
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `npm ci` in {ROOT / 'tests'} (scripts/test.sh does)")
    return path


def with_csp(wsgi_app):
    """The app as it will be deployed: no inline scripts or styles allowed."""

    def app(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, [*headers, ("Content-Security-Policy", CSP)], exc_info)

        return wsgi_app(environ, start)

    return app


@contextmanager
def serve(app) -> Iterator[str]:
    """The app on a free loopback port, in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, with_csp(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@contextmanager
def launch():
    """Debian's Chromium, headless, under Playwright."""
    from playwright.sync_api import expect, sync_playwright

    # The machine is shared and the server runs TensorFlow: give assertions the time actions get.
    expect.set_options(timeout=20_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, base_url: str, device: str, **options):
    """A page in a fresh context as `device` ("desktop" or "mobile"; `options` override its settings, say a
    smaller viewport) that records console errors in `page.console_errors`."""
    context = browser.new_context(base_url=base_url, **{**DEVICES[device], **options})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.device = device
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    return page


def draw(page, points: list[tuple[float, float]], scroll: bool = True) -> None:
    """One stroke through points given as fractions of the canvas: the mouse on a desktop, a finger on a phone.
    With `scroll=False` the canvas must already be on screen (the phone loop never scrolls)."""
    canvas = page.locator("#canvas")
    if scroll:
        canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    pixels = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    path = [pixels[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(pixels):
        path += [(x0 + (x1 - x0) * i / 12, y0 + (y1 - y0) * i / 12) for i in range(1, 13)]
    if page.device == "mobile":
        assert page.evaluate("window.scrollY") == swipe(page, path), "the page scrolled under the finger"
    else:
        page.mouse.move(*path[0])
        page.mouse.down()
        for x, y in path[1:]:
            page.mouse.move(x, y)
        page.mouse.up()


def swipe(page, path: list[tuple[float, float]]) -> float:
    """A real touch drag (page.touchscreen only taps); returns window.scrollY from before it."""
    scroll = page.evaluate("window.scrollY")
    cdp = page.context.new_cdp_session(page)
    for i, (x, y) in enumerate(path):
        kind = "touchStart" if i == 0 else "touchMove"
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()
    # Chromium's gesture detector drops a tap that follows a drag within a few hundred ms; no person is that fast.
    page.wait_for_timeout(600)
    return scroll


def axe_violations(page, where: str) -> dict[str, str]:
    """axe-core's findings on the page as it is now (its script injected, the CSP bypassed), keyed by `where`."""
    page.add_script_tag(path=str(npm_file("axe-core/axe.min.js")))
    found = {}
    for violation in page.evaluate("async () => (await axe.run()).violations"):
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]][:5]
        found[f"{where} {violation['id']}"] = f"{violation['help']}: {targets}"
    return found


def press(page, selector: str) -> None:
    """Click with the mouse, or tap on a touch screen."""
    if page.device == "mobile":
        page.locator(selector).tap()
    else:
        page.click(selector)


def screenshot(page, name: str, dark: bool = True, folder: Path = ARTIFACTS, full_page: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}-{page.device}.png"), full_page=full_page)
    if dark:
        page.emulate_media(color_scheme="dark")
        page.screenshot(path=str(folder / f"{name}-{page.device}-dark.png"), full_page=full_page)
        page.emulate_media(color_scheme="light")
