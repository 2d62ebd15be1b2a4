"""Streams of drawings in hands unlike MNIST's, rendered as a browser sends them (canvas PNG data URLs).

- "uci": scikit-learn's UCI optical digits (8x8, 17 grey levels), upscaled onto a canvas.
- "slanted", "rotated", "thick", "narrow": MNIST test digits redrawn in one consistent personal style.

MNIST streams use only the first half of t10k (`STREAM_SPLIT`); the second half stays held out for
measuring forgetting, so no digit is both learned from and evaluated on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from functions import affine  # noqa: E402
from livedigits.offline.canvas import CANVAS_SIZE, canvas_of, to_data_url  # noqa: E402
from livedigits.state.mnist import load_split  # noqa: E402

STREAM_SPLIT = 5000
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
Style = Callable[[np.ndarray], np.ndarray]  # (28, 28) ink 0..1 -> ink of any size, 0..1


def on_canvas(transform: Style) -> Style:
    """Apply a morphological transform at canvas size, where a stroke's width is a pen's width."""

    def apply(ink: np.ndarray) -> np.ndarray:
        big = Image.fromarray((ink * 255).astype(np.uint8)).resize((CANVAS_SIZE,) * 2, Image.Resampling.BICUBIC)
        return transform(np.asarray(big, dtype=np.float32) / 255.0)

    return apply


def shear(amount: float) -> Style:
    def apply(ink: np.ndarray) -> np.ndarray:
        matrix = np.array([[1.0, 0.0], [amount, 1.0]])  # output (row, col) reads input col + amount * row
        return ndimage.affine_transform(ink, matrix, offset=(0.0, -amount * ink.shape[0] / 2), order=1)

    return apply


def squeeze(factor: float) -> Style:
    def apply(ink: np.ndarray) -> np.ndarray:
        width = ink.shape[1]
        matrix = np.array([[1.0, 0.0], [0.0, 1.0 / factor]])
        return ndimage.affine_transform(ink, matrix, offset=(0.0, width / 2 - width / 2 / factor), order=1)

    return apply


def rotate(angle: float) -> Style:
    return lambda ink: affine(ink.astype(np.float32), angle)


# Strengths chosen so that each style is a real shift: the shipped models get 35-90% of them right.
STYLES: dict[str, Style] = {
    "slanted": shear(-1.0),
    "rotated": rotate(35.0),
    "thick": on_canvas(lambda ink: ndimage.grey_dilation(ink, size=(31, 31))),
    "narrow": squeeze(0.3),
}
STREAMS = ("uci", *STYLES)


def uci_stream(n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = rng.permutation(len(digits.target))[:n]
    # A 2-pixel margin, like MNIST's, so that the canvas keeps a white border.
    return [(np.pad(digits.images[i] / 16.0, 2), int(digits.target[i])) for i in order]


def mnist_style_stream(style: str, n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    images, labels = load_split(MNIST_DIR, "t10k")
    transform = STYLES[style]
    return [(transform(images[i] / 255.0), int(labels[i])) for i in rng.permutation(STREAM_SPLIT)[:n]]


def stream_inks(name: str, n: int, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    """`n` (ink-bright digit 0..1 of any size, label) pairs of the named stream, in a seeded order."""
    rng = np.random.default_rng(seed)
    return uci_stream(n, rng) if name == "uci" else mnist_style_stream(name, n, rng)


def stream(name: str, n: int, seed: int = 0) -> list[tuple[str, int]]:
    """`n` (data URL, label) pairs of the named stream, in a seeded order."""
    return [(to_data_url(canvas_of(ink)), label) for ink, label in stream_inks(name, n, seed)]


def held_out() -> tuple[np.ndarray, np.ndarray]:
    """The second half of t10k: never streamed, for measuring what the retrained models forgot."""
    images, labels = load_split(MNIST_DIR, "t10k")
    return images[STREAM_SPLIT:], labels[STREAM_SPLIT:]
