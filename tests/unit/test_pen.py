"""Pens: thin ones become MNIST's narrow pen before any model sees them; the bench's pens draw the width asked for;
training's round pens; every view goes one path."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from livedigits.offline.canvas import to_data_url, with_width
from livedigits.offline.train import TrainConfig, pen_views, with_round_pen
from livedigits.pipeline.drawings import decode_digit, prepare
from livedigits.pipeline.pen import PEN_WIDTH


def stroke_width(digit: np.ndarray) -> float:
    """Ink area / skeleton length of a preprocessed digit, pixels (how PEN_WIDTH was measured on MNIST)."""
    ink = digit >= 0.5
    return ink.sum() / max(1, skeletonize(ink).sum())


def test_bench_pens_draw_the_width_asked_for(mnist_test):
    """Twice the distance from the skeleton to the edge, less the pixel it stands on, in the preprocessed digit."""
    widths = []
    for width in (3, 5, 8):
        digits = [decode_digit(to_data_url(with_width(image, width))) for image in mnist_test[0][:5]]
        widths.append(
            np.median(
                [2 * np.median(ndimage.distance_transform_edt(d >= 0.5)[skeletonize(d >= 0.5)]) - 1 for d in digits]
            )
        )
        assert abs(widths[-1] - width) <= 1.5, (width, widths[-1])
    assert widths == sorted(widths)


def test_thin_pens_become_one_pen_and_fat_ones_stay(mnist_test):
    """Pen invariance by construction: a hairline, a stylus and MNIST's narrow pen give the models one digit."""
    spread = []
    for image in mnist_test[0][:5]:
        thin = [decode_digit(to_data_url(with_width(image, width))) for width in (0.3, 0.6, 1, 1.5)]
        spread += [np.abs(digit - thin[0]).mean() for digit in thin[1:]]
        assert all(abs(stroke_width(digit) - PEN_WIDTH) < 0.6 for digit in thin)
        fat = decode_digit(to_data_url(with_width(image, 6)))
        assert fat.sum() > 2 * thin[0].sum()  # a marker stays a marker: its loops may be filled, not thinned
    assert np.mean(spread) < 0.03 and max(spread) < 0.08  # sub-pixel shifts of one stroke; at most one pixel


def test_round_pens_widen_and_narrow_strokes(mnist_test):
    image = mnist_test[0][0]
    widths = [with_round_pen(image, radius).sum() for radius in (-2, 0, 3, 7)]
    assert widths == sorted(widths) and widths[0] > 0
    assert np.abs(with_round_pen(image, 0) - image / 255).mean() < 0.02  # radius 0 is the digit itself


def test_pen_views_are_preprocessed_digits(mnist_test):
    images = mnist_test[0][:6]
    config = TrainConfig(pen_views=2, traced_views=1)
    views = pen_views(images, np.random.default_rng(0), config)
    assert views.shape == (4, 6, 28, 28) and views.dtype == np.float32
    assert np.array_equal(views[0], prepare(images))
    again = pen_views(images, np.random.default_rng(0), config)
    assert np.array_equal(views, again)  # seeded
    # Every view is what preprocess makes of a drawing: in the 20-pixel box, centred by mass.
    for view in views[1:].reshape(-1, 28, 28):
        rows, cols = np.flatnonzero(view.any(axis=1)), np.flatnonzero(view.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22
        assert np.allclose(ndimage.center_of_mass(view), 14, atol=1.0)
