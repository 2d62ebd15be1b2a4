"""MNIST digits with something added: digits side by side, crossed out or struck through. Each source takes its
digits from its own MNIST split (MNIST_SPLITS), read from MNIST_DIR."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.morphology import skeletonize

from livedigits.offline.nondigits.strokes import MARGIN, SIZE, polyline, smooth
from livedigits.state.mnist import load_split

MNIST_DIR = Path(os.environ.get("MNIST_DIR", Path(__file__).resolve().parents[3].parent / "shared" / "data" / "mnist"))
MNIST_SPLITS = {"train": "train", "bench": "t10k"}
DIGIT_HEIGHT = 20  # MNIST fits each digit's larger side into 20 of its 28 pixels


@cache  # read once per process: a generated drawing must cost milliseconds
def mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """One MNIST split from MNIST_DIR: (images uint8 (n, 28, 28) ink bright on dark, labels (n,))."""
    return load_split(MNIST_DIR, split)


def mnist_digit(rng: np.random.Generator, source: str, refused: tuple[int, ...] = ()) -> np.ndarray:
    """A random digit of the source's split, cut to its ink: uint8 (h, w), ink bright on dark."""
    images, labels = mnist(MNIST_SPLITS[source])
    index = rng.integers(len(images))
    while labels[index] in refused:
        index = rng.integers(len(images))
    image = images[index]
    rows, cols = np.flatnonzero(image.max(axis=1)), np.flatnonzero(image.max(axis=0))
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def upscaled(digit: np.ndarray, scale: float) -> np.ndarray:
    """A cut digit enlarged smoothly (bicubic, as a canvas is drawn): uint8, ink bright on dark."""
    height, width = digit.shape
    size = (max(round(width * scale), 1), max(round(height * scale), 1))
    return np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.BICUBIC))


def stroke_width(digit: np.ndarray) -> float:
    """A digit's pen width in its own pixels: its inked area over the length of its centre line."""
    ink = digit > 127
    return float(ink.sum() / max(skeletonize(ink).sum(), 1))


def canvas_of_ink(ink: np.ndarray) -> Image.Image:
    return Image.fromarray(255 - ink)


def inked(pieces: list[tuple[np.ndarray, int, int]]) -> np.ndarray:
    """A canvas (uint8, ink bright on dark) with each (ink, x, y) laid on it; overlaps keep the darker stroke."""
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    for ink, x, y in pieces:
        height, width = ink.shape
        region = canvas[y : y + height, x : x + width]
        np.maximum(region, ink[: region.shape[0], : region.shape[1]], out=region)
    return canvas


def digits_side_by_side(rng: np.random.Generator, source: str) -> Image.Image:
    """2..3 digits written in a row ("42"): one scale, gaps 0..20 pixels (touching one time in four), each digit
    a little above or below its neighbour."""
    digits = [mnist_digit(rng, source) for _ in range(int(rng.integers(2, 4)))]
    gaps = [rng.uniform(-6, 0) if rng.random() < 0.25 else rng.uniform(0, 20) for _ in digits[1:]]
    widest = (SIZE - 2 * MARGIN - sum(gaps)) / sum(d.shape[1] for d in digits)
    scale = min(rng.uniform(0.35, 0.75) * SIZE / DIGIT_HEIGHT, widest)
    inks = [upscaled(d, scale) for d in digits]
    jitter = 0.08 * DIGIT_HEIGHT * scale
    tops = rng.uniform(0, 2 * jitter, len(inks))
    lefts = np.concatenate([[0], np.cumsum([ink.shape[1] + gap for ink, gap in zip(inks, gaps, strict=False)])])
    width = lefts[-1] + inks[-1].shape[1]
    height = max(top + ink.shape[0] for top, ink in zip(tops, inks, strict=True))
    x0 = rng.uniform(MARGIN, max(SIZE - MARGIN - width, MARGIN))
    y0 = rng.uniform(MARGIN, max(SIZE - MARGIN - height, MARGIN))
    pieces = [(ink, int(x0 + left), int(y0 + top)) for ink, left, top in zip(inks, lefts, tops, strict=False)]
    return canvas_of_ink(inked(pieces))


def one_digit(
    rng: np.random.Generator, source: str, extent: tuple[float, float], room_x: float, refused: tuple[int, ...] = ()
) -> tuple[Image.Image, np.ndarray, int]:
    """One digit whose larger side spans `extent` of the canvas, at a random spot at least `room_x` pixels from
    the left and right edges. Returns the canvas, its box (x0, y0, x1, y1) and the pen width it was written with."""
    digit = mnist_digit(rng, source, refused)
    scale = rng.uniform(*extent) * SIZE / max(digit.shape)
    scale = min(scale, (SIZE - 2 * room_x) / digit.shape[1])
    ink = upscaled(digit, scale)
    height, width = ink.shape
    x = int(rng.uniform(room_x, max(SIZE - room_x - width, room_x)))
    y = int(rng.uniform(MARGIN, max(SIZE - MARGIN - height, MARGIN)))
    pen = int(np.clip(stroke_width(digit) * scale * rng.uniform(0.6, 1.1), 6, 36))
    return canvas_of_ink(inked([(ink, x, y)])), np.array([x, y, x + width, y + height], float), pen


def digit_crossed(rng: np.random.Generator, source: str) -> Image.Image:
    """A digit about 70% of the canvas crossed out with about its own pen: an X corner to corner, or scribbled over."""
    image, box, width = one_digit(rng, source, (0.6, 0.8), MARGIN)
    (x0, y0, x1, y1), size = box, (box[2:] - box[:2]).max()
    if rng.random() < 0.6:
        over = rng.uniform(0, 0.12, 2) * size
        strokes = [
            np.array([[x0 - over[0], y0 - over[0]], [x1 + over[1], y1 + over[1]]]),
            np.array([[x1 + over[0], y0 - over[1]], [x0 - over[1], y1 + over[0]]]),
        ]
        strokes = [s + rng.normal(0, 0.05 * size, s.shape) for s in strokes]
        strokes = [smooth(np.vstack([s[0], s.mean(axis=0) + rng.normal(0, 0.04 * size, 2), s[1]])) for s in strokes]
    else:
        passes = int(rng.integers(4, 9))
        xs = np.where(np.arange(passes) % 2, x1, x0) + rng.normal(0, 0.06 * size, passes)
        ys = np.linspace(y0, y1, passes) + rng.normal(0, 0.04 * size, passes)
        strokes = [smooth(np.stack([xs, ys], axis=1))]
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        polyline(draw, stroke, width)
    return image


def digit_struck(rng: np.random.Generator, source: str) -> Image.Image:
    """A digit struck through by one or two near-horizontal lines (-20..20 degrees) that run past both its sides.
    Never a 7: a 7 with a bar across is a 7."""
    image, (x0, y0, x1, y1), width = one_digit(rng, source, (0.45, 0.7), 45, refused=(7,))
    draw = ImageDraw.Draw(image)
    heights = [rng.uniform(0.3, 0.7)] if rng.random() < 0.6 else [rng.uniform(0.25, 0.45), rng.uniform(0.55, 0.75)]
    for height in heights:
        slope = np.tan(np.deg2rad(rng.uniform(-20, 20)))
        xs = np.array([x0 - rng.uniform(10, 40), x1 + rng.uniform(10, 40)])
        ys = y0 + height * (y1 - y0) + slope * (xs - (x0 + x1) / 2)
        polyline(draw, np.stack([xs, ys], axis=1), width)
    return image
