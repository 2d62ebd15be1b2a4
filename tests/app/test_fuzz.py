"""Property: whatever arrives at a POST endpoint, the answer is a valid 200 or a 4xx JSON {error, message},
never a 5xx, and the log grows by one entry exactly when a drawing was accepted for storing."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest
from conftest import create_app
from drawings import blank_canvas, stroke_canvas, to_data_url
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livedigits.config import Config

FUZZ = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)

ONE = stroke_canvas([(140, 40), (140, 240)])
PNG = base64.b64decode(to_data_url(ONE).split(",", 1)[1])
JPEG = base64.b64decode(to_data_url(ONE.convert("RGB"), "JPEG").split(",", 1)[1])
IMAGES = [to_data_url(ONE), to_data_url(blank_canvas()), base64.b64encode(JPEG).decode()]
JSON_ROUTES = ("/api/predict", "/api/train", "/api/internals", "/estimate")
FORM_ROUTES = ("/hook", "/hook2", "/hook3")
STORING = {"/api/train", "/hook", "/hook3"}  # a 200 from these is one new log entry
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "image/png",
    "",
]


@st.composite
def mutated_image(draw) -> str:
    """A real PNG or JPEG with some bytes overwritten, cut short or spliced: what a broken client sends."""
    data = bytearray(draw(st.sampled_from([PNG, JPEG])))
    for position, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=6)):
        data[position] = value
    data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    text = base64.b64encode(bytes(data)).decode()
    prefix = draw(st.sampled_from(["", "data:image/png;base64,", "data:image/jpeg;base64,", "data:;base64,"]))
    return prefix + text


images = st.one_of(st.sampled_from(IMAGES), mutated_image(), st.text(max_size=40))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=True), st.text(max_size=20)
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)
labels = st.one_of(st.integers(-3, 12), st.sampled_from(["0", "7", " 3 ", "10", "x", "", "1.0", "٣"]), anything)
strokes = st.one_of(
    st.none(), st.lists(st.lists(st.lists(st.one_of(st.integers(), st.floats()), max_size=4), max_size=4), max_size=3)
)
pixels = st.one_of(
    st.lists(st.integers(-2, 300), min_size=784, max_size=784),
    st.lists(st.integers(0, 255), max_size=800),
    anything,
)
json_bodies = st.one_of(
    anything,
    st.fixed_dictionaries(
        {}, optional={"image": st.one_of(images, anything), "label": labels, "strokes": strokes, "input": pixels}
    ),
)
form_bodies = st.dictionaries(
    st.sampled_from(["imageBase64", "digit", "image", "label", "x"]),
    st.one_of(images, st.sampled_from(["0", "1", "9", "10", "-1", "a", ""]), st.text(max_size=20)),
    max_size=4,
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> tuple[Flask, Path]:
    store = tmp_path_factory.mktemp("fuzz") / "store"
    return create_app(Config(storage_url=str(store), sync_interval=0, rate_limits="off")), store


def n_entries(store: Path) -> int:
    return len(os.listdir(store / "log")) if (store / "log").exists() else 0


def check(app: Flask, store: Path, route: str, **request) -> None:
    before = n_entries(store)
    response = app.test_client().post(route, **request)
    status, text = response.status_code, response.get_data(as_text=True)
    assert status < 500, f"{route} answered {status}: {text[:300]}"
    if status == 200:
        assert_valid_answer(route, response)
    else:
        assert 400 <= status < 500 and response.is_json, f"{route}: {status} {text[:200]}"
        body = response.get_json()
        assert set(body) == {"error", "message"} and body["error"] and body["message"]
    assert n_entries(store) == before + (status == 200 and route in STORING)


def assert_valid_answer(route: str, response) -> None:
    text = response.get_data(as_text=True)
    if route == "/hook":
        assert text.startswith("Image saved successfully with the name ")
    elif route == "/hook3":
        assert text == "Trained"
    elif route == "/hook2":
        assert text == "Can't predict, when nothing is drawn" or set(json.loads(text)) == {
            "answer",
            "fnn",
            "fnn_t",
            "cnn",
            "cnn_t",
        }
    elif route == "/estimate":
        assert 0 <= response.get_json()["estimated"] <= 9
    elif route == "/api/train":
        assert {"sample_id", "model_version", "predictions"} <= set(response.get_json())
    elif route == "/api/internals":
        assert len(response.get_json()["fnn_hidden"]) == 100
    else:
        assert {"answer", "model_version", "predictions"} <= set(response.get_json())


@pytest.mark.parametrize("route", JSON_ROUTES + FORM_ROUTES)
@FUZZ
@given(body=st.binary(max_size=2048), content_type=st.sampled_from(CONTENT_TYPES))
def test_random_bytes(fuzzed, route, body, content_type):
    app, store = fuzzed
    check(app, store, route, data=body, content_type=content_type)


@pytest.mark.parametrize("route", JSON_ROUTES)
@FUZZ
@given(body=json_bodies)
def test_random_json(fuzzed, route, body):
    app, store = fuzzed
    check(app, store, route, data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("route", FORM_ROUTES)
@FUZZ
@given(fields=form_bodies, multipart=st.booleans())
def test_random_form_fields(fuzzed, route, fields, multipart):
    app, store = fuzzed
    data = {k: (io.BytesIO(v.encode()), "f.txt") if multipart and k == "x" else v for k, v in fields.items()}
    check(app, store, route, data=data, content_type="multipart/form-data" if multipart else None)
