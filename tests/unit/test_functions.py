"""Pure functions: decoding, MNIST-style preprocessing, augmentation, the answer rule, formats."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from drawings import blank_canvas, canvas_of, stroke_canvas, to_data_url
from PIL import Image
from scipy import ndimage

from functions import (
    AUGMENT_ANGLES,
    AUGMENT_SCALES,
    CANT_RECOGNIZE,
    InputError,
    affine,
    augment,
    augment_plan,
    centre_by_mass,
    decode_digit,
    decode_drawing,
    digit_from_pixels,
    digit_from_png,
    digit_from_text,
    digit_of,
    digit_to_text,
    ink_from_grey,
    legacy_top3,
    parse_label,
    preprocess,
    select_answer,
    top_k,
)
from livedigits.pipeline.drawings import decode_grey, flatten


def ink_box(height: int, width: int, size: int = 200, top: int = 10, left: int = 30) -> np.ndarray:
    ink = np.zeros((size, size), dtype=np.float32)
    ink[top : top + height, left : left + width] = 1.0
    return ink


def bbox(digit: np.ndarray, threshold: float = 0.2) -> tuple[int, int]:
    rows = np.flatnonzero((digit >= threshold).any(axis=1))
    cols = np.flatnonzero((digit >= threshold).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_preprocess_centres_mass_and_fits_20_box():
    digit = preprocess(ink_box(120, 40))
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert digit.min() >= 0.0 and digit.max() <= 1.0
    cy, cx = ndimage.center_of_mass(digit)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    height, width = bbox(digit)
    assert height == 20 and 6 <= width <= 8  # 120x40 keeps its 3:1 ratio


def test_preprocess_keeps_wide_digits_wide():
    # The ancestor inverted the ratio for wide digits; a 40x120 bar must come out about 7x20.
    height, width = bbox(preprocess(ink_box(40, 120)))
    assert width == 20 and 6 <= height <= 8


def test_preprocess_keeps_mnist_digits_close_to_themselves(mnist_test):
    """MNIST's digits are what the models learn from: preprocessing moves them little (their strokes thinner than
    MNIST's narrow pen are widened to it, livedigits/pipeline/pen.py), and keeps their ink where it was."""
    images, _ = mnist_test
    digits = np.stack([preprocess(image / 255.0) for image in images[:200]])
    assert np.abs(digits - images[:200] / 255.0).mean() < 0.025  # 6 grey levels of 255 a pixel
    inked = images[:200] >= 128
    assert (digits[inked] >= 0.5).mean() > 0.94


def test_empty_and_speck_are_empty_drawings():
    for ink in (np.zeros((100, 100)), ink_box(1, 2, size=100)):
        with pytest.raises(InputError) as caught:
            preprocess(ink)
        assert caught.value.code == "empty_drawing" and caught.value.status == 422


def test_a_drawing_is_read_exactly_as_its_whole_ink_would_be(mnist_test):
    """digit_of makes only the ink's crop float and centres without scipy's overhead: the same digit, bit for bit,
    as preprocessing the whole drawing's ink, for dark ink and bright, JPEG, small and large drawings, and specks."""
    rng = np.random.default_rng(3)
    canvases = []
    for digit in mnist_test[0][:40]:
        canvas = canvas_of(digit)
        size = tuple(int(v) for v in rng.integers(30, 600, 2))
        canvases += [canvas, Image.eval(canvas, lambda v: 255 - v), canvas.resize(size)]
        canvases.append(decode_grey(to_data_url(canvas, "JPEG")))
    speck = np.full((100, 100), 255, np.uint8)
    speck[50, 50:53] = 0  # three inked pixels: empty either way
    for canvas in [*canvases, Image.fromarray(speck)]:
        try:
            expected = preprocess(ink_from_grey(np.asarray(canvas)))
        except InputError as error:
            with pytest.raises(InputError, match=error.message):
                digit_of(canvas)
            continue
        assert np.array_equal(digit_of(canvas), expected)


def test_centring_by_mass_places_as_scipy_says(mnist_test):
    """centre_by_mass does scipy.ndimage.center_of_mass's arithmetic itself: the same placement, to the pixel."""
    rng = np.random.default_rng(4)
    boxes = [rng.random((int(h), int(w)), dtype=np.float32) ** 4 for h, w in rng.integers(1, 21, (200, 2))]
    boxes += [digit[4:24, 4:24].astype(np.float32) / 255 for digit in mnist_test[0][:50]]
    for box in boxes:
        centre_y, centre_x = ndimage.center_of_mass(box)
        top = int(np.clip(round(14 - centre_y), 0, 28 - box.shape[0]))
        left = int(np.clip(round(14 - centre_x), 0, 28 - box.shape[1]))
        expected = np.zeros((28, 28), np.float32)
        expected[top : top + box.shape[0], left : left + box.shape[1]] = box
        assert np.array_equal(centre_by_mass(box), expected)


def test_data_url_bare_base64_and_jpeg_decode_alike(mnist_test):
    image = canvas_of(mnist_test[0][0])
    from_url, png = decode_drawing(to_data_url(image))
    bare = decode_digit(to_data_url(image).split(",", 1)[1])
    jpeg = decode_digit(to_data_url(image, "JPEG"))
    assert np.array_equal(from_url, bare)
    assert np.abs(from_url - jpeg).max() < 0.15
    assert np.array_equal(digit_from_png(png), from_url)  # the stored PNG replays exactly


def test_transparent_background_counts_as_white(mnist_test):
    opaque = decode_digit(to_data_url(canvas_of(mnist_test[0][3])))
    clear = decode_digit(to_data_url(canvas_of(mnist_test[0][3], transparent=True)))
    assert np.abs(opaque - clear).max() < 0.02


def test_an_opaque_drawing_with_alpha_flattens_as_compositing_would(mnist_test):
    """A browser's canvas sends RGBA with every alpha 255: converted as it is, the same pixels as composited onto
    white; one translucent pixel and it is composited."""
    for digit in mnist_test[0][:20]:
        grey = canvas_of(digit)
        for image in (grey.convert("RGBA"), grey.convert("LA")):
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            composited = Image.alpha_composite(white, image.convert("RGBA")).convert("L")
            assert np.array_equal(np.asarray(flatten(image)), np.asarray(composited))
        translucent = grey.convert("RGBA")
        translucent.putpixel((140, 140), (0, 0, 0, 0))  # clear: white once composited
        assert np.asarray(flatten(translucent))[140, 140] == 255


def test_bright_ink_on_dark_is_understood(mnist_test):
    dark = Image.fromarray(mnist_test[0][5]).resize((280, 280))
    light = canvas_of(mnist_test[0][5])
    assert np.abs(decode_digit(to_data_url(dark)) - decode_digit(to_data_url(light))).max() < 0.05


@pytest.mark.parametrize(
    ("size", "fmt", "transparent"), [(200, "PNG", False), (280, "PNG", True), (400, "PNG", False), (280, "JPEG", False)]
)
def test_rendered_mnist_digit_round_trips(mnist_test, size, fmt, transparent):
    """A t10k digit drawn on a browser canvas comes back within a few grey levels of what preprocessing makes of the
    original itself."""
    images, _ = mnist_test
    errors = [
        np.abs(decode_digit(to_data_url(canvas_of(image, size, transparent), fmt)) - preprocess(image / 255.0)).mean()
        * 255
        for image in images[:50]
    ]
    assert np.median(errors) < 7 and np.mean(errors) < 8  # grey levels per pixel


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (None, "missing_field"),
        ("", "missing_field"),
        ("data:image/png;base64,@@@not base64@@@", "invalid_base64"),
        ("abc", "invalid_base64"),
        ("data:image/svg+xml;base64," + base64.b64encode(b"<svg/>").decode(), "unsupported_image"),
        (base64.b64encode(b"hello, I am not an image").decode(), "not_an_image"),
    ],
)
def test_bad_payloads_raise_named_errors(payload, code):
    with pytest.raises(InputError) as caught:
        decode_digit(payload)
    assert caught.value.code == code and 400 <= caught.value.status < 500


def test_truncated_png_and_gif_are_refused():
    url = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
    raw = base64.b64decode(url.split(",", 1)[1])
    with pytest.raises(InputError) as caught:
        decode_digit(base64.b64encode(raw[: len(raw) // 2]).decode())
    assert caught.value.code == "not_an_image"
    with pytest.raises(InputError) as caught:
        decode_digit(to_data_url(blank_canvas(), "GIF").replace("image/jpeg", "image/gif"))
    assert caught.value.code == "unsupported_image"


def test_blank_canvas_is_empty():
    with pytest.raises(InputError) as caught:
        decode_digit(to_data_url(blank_canvas()))
    assert caught.value.code == "empty_drawing"


def test_pixels_input_validates():
    digit = digit_from_pixels([0] * 300 + [255] * 20 + [0] * 464)
    assert digit.shape == (28, 28)
    for bad in ([0] * 783, [256] + [0] * 783, "x", [True] * 784):
        with pytest.raises(InputError):
            digit_from_pixels(bad)


def test_augment_gives_24_views_at_the_planned_angles():
    digit = preprocess(ink_box(120, 30))
    plan = augment_plan(np.random.default_rng(7))
    assert len(plan) == 24
    for i, scale in enumerate(AUGMENT_SCALES):
        angles = [angle for _, angle in plan[i * 6 : (i + 1) * 6]]
        assert all(s == scale for s, _ in plan[i * 6 : (i + 1) * 6])
        assert len(set(angles)) == 6 and set(angles) <= set(AUGMENT_ANGLES)
    assert min(AUGMENT_ANGLES) == -30 and max(AUGMENT_ANGLES) == 25
    views = augment(digit, np.random.default_rng(7))
    assert views.shape == (24, 28, 28) and views.dtype == np.float32
    for view, (scale, angle) in zip(views, plan, strict=True):
        assert np.allclose(view, affine(digit, angle, scale))
    assert np.array_equal(views, augment(digit, np.random.default_rng(7)))


def test_affine_rotates_counter_clockwise():
    bar = np.zeros((28, 28), dtype=np.float32)
    bar[4:24, 13:15] = 1.0  # vertical
    rotated = affine(bar, 90.0)
    assert bbox(rotated)[1] >= 18 and bbox(rotated)[0] <= 4  # now horizontal


def one_hot(digit: int, confidence: float) -> np.ndarray:
    probs = np.full(10, (1 - confidence) / 9)
    probs[digit] = confidence
    return probs


def test_answer_rule_branches():
    assert select_answer(one_hot(3, 0.2), one_hot(3, 0.3))[0] == 3  # agree, even unsure
    assert select_answer(one_hot(3, 0.4), one_hot(5, 0.45)) == (None, CANT_RECOGNIZE)
    assert select_answer(one_hot(3, 0.9), one_hot(5, 0.6))[0] == 3  # FNN more confident
    assert select_answer(one_hot(3, 0.4), one_hot(5, 0.6))[0] == 5  # CNN more confident


def test_top_k_and_legacy_strings():
    probs = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.6912, 0.0288, 0.0])
    top = top_k(probs)
    assert [t["digit"] for t in top] == [7, 6, 5]
    assert legacy_top3(top)[0] == "7 (69.12)%"


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (9, 9), ("7", 7), (" 3 ", 3)])
def test_labels_accepted(value, expected):
    assert parse_label(value) == expected


@pytest.mark.parametrize("value", [-1, 10, "10", "x", 3.0, True, None, "", [1]])
def test_labels_refused(value):
    with pytest.raises(InputError):
        parse_label(value)


def test_a_digit_goes_through_text_exactly_and_garbage_is_none():
    digit = preprocess(np.pad(np.ones((12, 4)), 10))
    assert np.array_equal(digit_from_text(digit_to_text(digit)), digit)
    assert len(digit_to_text(digit)) == 4184
    for garbage in (None, 7, "", "not base64!", digit_to_text(digit)[:-8], digit_to_text(np.full((28, 28), np.nan)),
                    digit_to_text(np.full((28, 28), 2.0)), base64.b64encode(b"x" * 3136).decode()):  # fmt: skip
        assert digit_from_text(garbage) is None
