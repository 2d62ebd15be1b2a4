"""Bounded inputs over HTTP (issue 33): a drawing over the area, strokes over a cap, and a request that finds every
decode slot taken are each refused with their code, and change nothing; a large drawing is stored bounded."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from conftest import create_app
from drawings import canvas_of, stroke_canvas, to_data_url
from PIL import Image

from livedigits.config import Config
from livedigits.web.inputs import decode_slot

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))


def png_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def stored(store) -> list:
    """The log's entries and the drawings: what a refused request must not add."""
    return sorted([*store.glob("log/*"), *store.glob("drawings/*")])


def error_of(response) -> tuple[int, str, str]:
    body = response.get_json()
    return response.status_code, body["error"], body["message"]


OVER_THE_AREA = png_url(Image.new("L", (2049, 2048), 255))
TOO_LARGE = (
    413,
    "image_too_large",
    "The drawing is 2049x2048 pixels (4,196,352); at most 4,194,304 pixels (2048x2048) are accepted.",
)


@pytest.mark.parametrize(
    ("route", "kwargs"),
    [
        ("/api/predict", {"json": {"image": OVER_THE_AREA}}),
        ("/api/train", {"json": {"image": OVER_THE_AREA, "label": 1}}),
        ("/api/internals", {"json": {"image": OVER_THE_AREA}}),
        ("/hook", {"data": {"imageBase64": OVER_THE_AREA, "digit": "1"}}),
        ("/hook2", {"data": {"imageBase64": OVER_THE_AREA}}),
        ("/hook3", {"data": {"imageBase64": OVER_THE_AREA, "digit": "1"}}),
    ],
)
def test_a_drawing_over_the_area_is_refused_on_every_route(client, store, route, kwargs):
    assert error_of(client.post(route, **kwargs)) == TOO_LARGE
    assert stored(store) == []


@pytest.mark.parametrize(
    ("strokes", "message"),
    [
        ([[]] * 650_000, "At most 256 strokes are kept; 650000 were sent."),
        ([[[10**4000, 1, 2]]], "Stroke coordinates are the drawing's pixels: |x| and |y| at most 4096."),
        ([[[1, 2, -5]]], "t_ms counts milliseconds from the drawing's first point: 0 to 3,600,000."),
    ],
)
def test_strokes_over_a_cap_are_refused_and_store_nothing(client, store, strokes, message):
    body = json.dumps({"image": ONE, "label": 1, "strokes": strokes}, separators=(",", ":"))  # 650,000 in 2 MB
    response = client.post("/api/train", data=body, content_type="application/json")
    assert error_of(response) == (400, "invalid_strokes", message)
    assert stored(store) == []


def test_a_large_drawing_is_stored_greyscale_within_the_stored_side(client, store, mnist_test):
    image = canvas_of(mnist_test[0][0], 2048, transparent=True)
    response = client.post("/api/train", json={"image": png_url(image), "label": int(mnist_test[1][0])})
    assert response.status_code == 200
    (drawing,) = (store / "drawings").glob("*.png")
    kept = Image.open(drawing)
    assert kept.mode == "L" and kept.size == (512, 512) and drawing.stat().st_size < 1024 * 1024
    served = client.get(f"/api/samples/{int(response.get_json()['sample_id'])}.png")
    assert served.data == drawing.read_bytes()


def test_a_drawing_that_finds_every_slot_taken_is_answered_busy_and_changes_nothing(store):
    app = create_app(Config(storage_url=str(store), sync_interval=0.0, decode_slots=1, decode_wait_seconds=0.2))
    client = app.test_client()
    busy = (503, "busy", "The server is busy reading other drawings; nothing was done. Try again in a few seconds.")
    with app.test_request_context(), decode_slot():  # the one slot held, as by a large drawing decoding
        assert error_of(client.post("/api/predict", json={"image": ONE})) == busy
        assert error_of(client.post("/api/train", json={"image": ONE, "label": 1})) == busy
        assert error_of(client.post("/hook2", data={"imageBase64": ONE})) == busy
    assert stored(store) == [] and client.get("/healthz").get_json()["model_version"] == 0
    assert client.post("/api/predict", json={"image": ONE}).status_code == 200  # the slot is free again
    assert np.array(client.post("/api/predict", json={"image": ONE}).get_json()["preprocessed"]).shape == (28, 28)
