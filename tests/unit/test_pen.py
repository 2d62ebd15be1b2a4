"""Pens: the bench's pens change stroke width only; training's round pens; every view goes one path."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from livedigits.offline.canvas import PENS, with_pen
from livedigits.offline.train import TrainConfig, pen_views, with_round_pen
from livedigits.pipeline.drawings import prepare


def test_bench_pens_order_stroke_width(mnist_test):
    images, _ = mnist_test
    ink = {pen: np.mean([with_pen(image, pen).sum() for image in images[:20]]) for pen in PENS}
    assert ink["thin"] < ink["as drawn"] < ink["thick"] < ink["fat"]
    assert np.array_equal(with_pen(images[0], "as drawn"), images[0] / np.float32(255))
    assert with_pen(images[0], "fat").shape == (28, 28) and with_pen(images[0], "fat").max() <= 1.0


def test_round_pens_widen_and_narrow_strokes(mnist_test):
    image = mnist_test[0][0]
    widths = [with_round_pen(image, radius).sum() for radius in (-2, 0, 3, 7)]
    assert widths == sorted(widths) and widths[0] > 0
    assert np.abs(with_round_pen(image, 0) - image / 255).mean() < 0.02  # radius 0 is the digit itself


def test_pen_views_are_preprocessed_digits(mnist_test):
    images = mnist_test[0][:6]
    config = TrainConfig(pen_views=2)
    views = pen_views(images, np.random.default_rng(0), config)
    assert views.shape == (3, 6, 28, 28) and views.dtype == np.float32
    assert np.array_equal(views[0], prepare(images))
    again = pen_views(images, np.random.default_rng(0), config)
    assert np.array_equal(views, again)  # seeded
    # Every view is what preprocess makes of a drawing: in the 20-pixel box, centred by mass.
    for view in views[1:].reshape(-1, 28, 28):
        rows, cols = np.flatnonzero(view.any(axis=1)), np.flatnonzero(view.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22
        assert np.allclose(ndimage.center_of_mass(view), 14, atol=1.0)
