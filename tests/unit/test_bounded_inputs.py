"""Every request's cost is bounded (issue 33): a drawing's area is checked from its header, the drawing stored is
greyscale within Config.stored_side (and still gives the digit it would have at full size), and strokes are capped
in count and in the size of each number. The same limits over HTTP, and a process's decode slots:
tests/app/test_bounded_requests.py; memory under a burst: tests/processes/test_memory_burst.py."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import ROOT
from drawings import canvas_of, to_data_url
from flask import Flask
from PIL import Image

from livedigits.config import Config
from livedigits.errors import InputError
from livedigits.models.fnn import FNN
from livedigits.pipeline.drawings import (
    decode_drawing,
    decode_grey,
    decode_image,
    digit_from_png,
    digit_of,
    encode_png,
    flatten,
    ink_from_grey,
    preprocess,
)
from livedigits.web.inputs import parse_strokes

LIMIT = Config.max_image_pixels  # 2048 x 2048


def data_url(image: Image.Image, fmt: str = "PNG", **options) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    mime = "png" if fmt == "PNG" else "jpeg"
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def refusal(text: str, **limits) -> InputError:
    with pytest.raises(InputError) as caught:
        decode_grey(text, **limits)
    return caught.value


def full_size_digit(image: Image.Image) -> np.ndarray:
    """The digit of a drawing preprocessed at the size it was sent, as before drawings were bounded."""
    return preprocess(ink_from_grey(np.asarray(flatten(image))))


# --- the area, from the header ----------------------------------------------------------------------------------


def test_an_area_over_the_limit_is_refused_from_the_header_alone():
    # The header says 2049x2048; the pixels are cut off. Decoding first would have said "not an image".
    raw = base64.b64decode(data_url(Image.new("L", (2049, 2048), 255)).split(",", 1)[1])
    error = refusal(base64.b64encode(raw[:200]).decode())
    assert (error.code, error.status) == ("image_too_large", 413)
    assert error.message == (
        "The drawing is 2049x2048 pixels (4,196,352); at most 4,194,304 pixels (2048x2048) are accepted."
    )


def test_a_drawing_at_the_limit_is_read_and_the_limit_is_the_callers():
    square = data_url(canvas_of(np.eye(28) * 255, 2048))
    assert decode_grey(square).size == (512, 512)
    error = refusal(square, max_pixels=1000 * 1000)
    assert error.code == "image_too_large" and "at most 1,000,000 pixels (1000x1000)" in error.message


def test_each_side_is_still_bounded_whatever_the_area():
    error = refusal(data_url(Image.new("L", (4097, 2), 255)))
    assert (error.code, error.status) == ("image_too_large", 413)
    assert error.message == "The drawing is 4097x2 pixels; each side may be at most 4096."


def test_a_large_jpeg_is_decoded_at_the_reduced_size_in_greyscale():
    jpeg = data_url(canvas_of(np.eye(28) * 255, 2048).convert("RGB"), "JPEG")
    image = decode_image(jpeg, side=512)
    assert image.mode == "L" and image.size == (512, 512)  # an 8th of the pixels, a 12th of the bytes, decoded
    assert decode_image(jpeg).size == (2048, 2048)


# --- the drawing stored -----------------------------------------------------------------------------------------


def test_a_canvas_is_stored_as_it_was_sent(mnist_test):
    for transparent in (False, True):
        image = canvas_of(mnist_test[0][0], 280, transparent)
        digit, png = decode_drawing(to_data_url(image))
        stored = Image.open(io.BytesIO(png))
        assert stored.mode == "L" and stored.size == (280, 280)
        assert np.array_equal(digit, full_size_digit(image))  # the 28x28 result of ordinary drawings is unchanged


def test_a_large_drawing_is_stored_within_the_side_and_gives_the_same_digit(mnist_test):
    """Stored at 512, a drawing of the largest area replays exactly what was learned, and that is the digit of the
    drawing at full size up to the preprocessing's own rounding (a 20-pixel box and a centre rounded to pixels)."""
    images, _ = mnist_test
    fnn = FNN.load(ROOT / "models" / "fnn.npz")
    full, stored = [], []
    for i in range(20):
        image = canvas_of(images[i], 2048, transparent=i % 2 == 0)
        digit, png = decode_drawing(to_data_url(image))
        kept = Image.open(io.BytesIO(png))
        assert kept.mode == "L" and kept.size == (512, 512) and len(png) < 1024 * 1024
        assert np.array_equal(digit_from_png(png), digit)  # what a replay decodes is what was learned
        full.append(full_size_digit(image))
        stored.append(digit)
    differences = np.abs(np.stack(full) - np.stack(stored)).mean(axis=(1, 2))
    assert np.median(differences) < 0.005 and differences.max() < 0.1  # 1.3 and 25 grey levels a pixel
    assert np.array_equal(fnn.predict_proba(np.stack(full)).argmax(1), fnn.predict_proba(np.stack(stored)).argmax(1))


def test_the_noisiest_drawing_stored_is_under_a_megabyte():
    noise = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    for fmt in ("PNG", "JPEG"):
        _, png = decode_drawing(data_url(Image.fromarray(noise), fmt, quality=95))
        assert Image.open(io.BytesIO(png)).size == (512, 512) and len(png) < 300 * 1024


def test_a_wide_drawing_keeps_its_shape():
    wide = Image.new("L", (4096, 1000), 255)
    wide.paste(0, (1000, 300, 3000, 700))
    grey = decode_grey(data_url(wide))
    assert grey.size == (512, 125)


def test_drawings_stored_larger_before_still_read_at_their_size():
    old = canvas_of(np.eye(28) * 255, 1500)  # a 1500x1500 drawing, as the store kept them before
    png = encode_png(flatten(old))
    assert np.array_equal(digit_from_png(png), digit_of(flatten(old)))


def test_compositing_by_strips_is_compositing_the_whole():
    rng = np.random.default_rng(1)
    rgba = Image.fromarray(rng.integers(0, 256, (1037, 613, 4), dtype=np.uint8), "RGBA")  # rows: not strips' multiple
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    assert np.array_equal(np.asarray(flatten(rgba)), np.asarray(Image.alpha_composite(white, rgba).convert("L")))


# --- strokes ------------------------------------------------------------------------------------------------------


@pytest.fixture
def limits() -> Iterator[Config]:
    """parse_strokes reads the app's configuration: an app with nothing but that."""
    app = Flask(__name__)
    app.extensions["config"] = config = Config()
    with app.app_context():
        yield config


def stroke_refusal(strokes: object) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_strokes(strokes)
    assert caught.value.code == "invalid_strokes" and caught.value.status == 400
    return caught.value


def test_strokes_within_every_cap_are_kept(limits):
    reach, longest = limits.max_stroke_coordinate, limits.max_stroke_ms
    strokes = [[[-reach, reach, 0], [0.5, 280, longest]]] + [[[1, 2, 3]]] * (limits.max_strokes - 1)
    assert parse_strokes(strokes) == strokes
    assert parse_strokes([[]] * limits.max_strokes) == [[]] * limits.max_strokes


def test_strokes_are_capped_in_count(limits):
    assert stroke_refusal([[]] * 650_000).message == "At most 256 strokes are kept; 650000 were sent."
    assert "At most 256 strokes" in stroke_refusal([[[1, 2, 3]]] * 257).message


def test_stroke_coordinates_are_capped_in_size(limits):
    message = "Stroke coordinates are the drawing's pixels: |x| and |y| at most 4096."
    for point in ([4096.5, 0, 0], [0, -5000, 0], [10**4000, 0, 0], [0, 1e308, 0]):
        assert stroke_refusal([[[1, 2, 3], point]]).message == message


def test_stroke_times_are_bounded(limits):
    message = "t_ms counts milliseconds from the drawing's first point: 0 to 3,600,000."
    for t_ms in (-1, 3_600_001, 1.7e12):
        assert stroke_refusal([[[1, 2, t_ms]]]).message == message
