"""The original app's own page, run as its users still run it: jQuery (from npm) posting its forms to /hook2,
/hook3 and /hook, and JSON.parse-ing /hook2's answer, in real Chromium against a live server; served by the
app's own origin, as it was, and from another origin, through CORS."""

from __future__ import annotations

import re
from contextlib import ExitStack

import pytest
from browsing import needs_chromium, npm_file, open_page, serve
from conftest import ROOT

CLIENT = ROOT / "tests" / "original_client"
LEGACY_PERCENT = re.compile(r"^\d \(\d{1,3}\.\d\d\)%$")  # "7 (93.12)%"


@pytest.fixture
def base_url(app):
    """The app, also serving the original client's page at /original-client/, as the original app did."""
    with serve(with_client(client_files(""), app)) as url:
        yield url


def client_files(server: str) -> dict[str, tuple[str, bytes]]:
    """The client's page, its script and npm's jQuery by path; `server` prefixes the URLs the page posts to
    ("" when the app itself serves the page)."""
    return {
        "/original-client/": ("text/html", (CLIENT / "index.html").read_text().replace("{server}", server).encode()),
        "/original-client/client.js": ("text/javascript", (CLIENT / "client.js").read_bytes()),
        "/original-client/jquery.js": ("text/javascript", npm_file("jquery/dist/jquery.js").read_bytes()),
    }


def with_client(files: dict[str, tuple[str, bytes]], wsgi_app=None):
    """A WSGI app serving `files`, and passing every other request to `wsgi_app` (404 without one)."""

    def app(environ, start_response):
        if environ["PATH_INFO"] in files:
            content_type, body = files[environ["PATH_INFO"]]
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
            return [body]
        if wsgi_app is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        return wsgi_app(environ, start_response)

    return app


@needs_chromium
@pytest.mark.parametrize("origin", ["same", "other"])
def test_original_page_predicts_trains_and_collects(app, browser, base_url, origin):

    with ExitStack() as stack:
        page = open_page(browser, base_url, "desktop")
        stack.callback(page.context.close)
        if origin == "same":
            page.goto("/original-client/")
        else:  # a page on another origin (localhost, not 127.0.0.1) posting to the app through CORS
            other = stack.enter_context(serve(with_client(client_files(base_url))))
            page.goto(other.replace("127.0.0.1", "localhost") + "/original-client/")
        run_original_page(app, page)


def run_original_page(app, page) -> None:
    from playwright.sync_api import expect

    result = page.locator("#rec_result")

    with page.expect_response("**/hook2") as answer:
        page.click("#predict")
    assert answer.value.headers["content-type"] == "text/html; charset=utf-8"
    expect(result).to_have_text("Can't predict, when nothing is drawn")

    draw_on_stage(page)
    with page.expect_response("**/hook2") as answer:
        page.click("#predict")
    assert answer.value.headers["content-type"] == "text/html; charset=utf-8"
    expect(result).to_have_text("1")
    for key in ("fnn", "fnn_t", "cnn", "cnn_t"):
        for row in (1, 2, 3):
            expect(page.locator(f"#{key}{row}")).to_have_text(LEGACY_PERCENT)
    expect(page.locator("#cnn_t1")).to_have_text(re.compile(r"^1 "))

    page.click("#yes")  # trains on the shown answer, as the original's "yes" did
    expect(result).to_have_text("Trained")
    assert app.test_client().get("/healthz").get_json()["model_version"] == 1

    page.click("#save")
    expect(result).to_have_text(re.compile(r"^Image saved successfully with the name \S+\.png$"))
    assert page.console_errors == []


def draw_on_stage(page) -> None:
    """A "1" down the middle of the original's 200x200 canvas, with the mouse."""
    box = page.locator("#the_stage").bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 30)
    page.mouse.down()
    for step in range(1, 15):
        page.mouse.move(x, box["y"] + 30 + step * 10)
    page.mouse.up()


def test_legacy_routes_answer_as_the_original_app(client, mnist_test):
    """Content types the original clients' code depends on: /hook2 JSON text as text/html (jQuery hands text
    to JSON.parse), the others as they were specified."""
    from drawings import blank_canvas, stroke_canvas, to_data_url

    one = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
    predicted = client.post("/hook2", data={"imageBase64": one})
    assert predicted.mimetype == "text/html"
    assert predicted.get_data(as_text=True).startswith('{"answer": "1"')
    empty = client.post("/hook2", data={"imageBase64": to_data_url(blank_canvas())})
    assert empty.mimetype == "text/html" and empty.get_data(as_text=True) == "Can't predict, when nothing is drawn"
    trained = client.post("/hook3", data={"imageBase64": one, "digit": "1"})
    assert trained.get_data(as_text=True) == "Trained"
    saved = client.post("/hook", data={"imageBase64": one, "digit": "1"})
    assert saved.get_data(as_text=True).startswith("Image saved successfully with the name ")
    images, labels = mnist_test
    estimated = client.post("/estimate", json={"input": images[0].flatten().tolist()})
    assert estimated.mimetype == "application/json" and estimated.get_json() == {"estimated": int(labels[0])}
