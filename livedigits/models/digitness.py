"""Is this drawing a digit at all? A verdict from the drawing itself, in numpy and scikit-image.

The four digit models answer every drawing with some digit, often at 98-99%: a scribble is an
"8", a dot a "0". So refusing is not their job but a small detector's: a 2-way numpy network (the
FNN of two_layer_net) over the preprocessed (28, 28) digit's pixels and a few shape measures, trained
by livedigits/offline/train.py on MNIST digits (with every pen) against generated non-digits
(livedigits/offline/nondigits.py), with a
threshold calibrated on held-out digits so that real digits are almost never refused.
No TensorFlow: a server computes the verdict with two small matrix products.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from livedigits.models.fnn import FNN

N_SHAPE = 7  # shape measures appended to the 784 pixels
EIGHT_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.uint8)


def shape_measures(digit: np.ndarray) -> np.ndarray:
    """What a pixel network sees poorly, for one (28, 28) digit: (N_SHAPE,) float32, each about 0..1.

    Ink mass, how much of its bounding box the ink fills, holes and pieces (a digit has at most two
    holes and, nearly always, one piece), and the skeleton's ends, forks and length (a scribble has
    many forks and a long skeleton).
    """
    ink = digit >= 0.5
    if not ink.any():
        return np.zeros(N_SHAPE, np.float32)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    pieces = ndimage.label(ink, structure=EIGHT_NEIGHBOURS | 1)[1]
    _, n_background = ndimage.label(np.pad(~ink, 1))  # 4-connected; the padding joins the outside
    holes = n_background - 1
    skeleton = skeletonize(ink)
    neighbours = ndimage.convolve(skeleton.astype(np.uint8), EIGHT_NEIGHBOURS, mode="constant")
    ends = int((skeleton & (neighbours == 1)).sum())
    forks = int((skeleton & (neighbours >= 3)).sum())
    return np.array(
        [digit.sum() / 200, ink.sum() / box, holes / 3, (pieces - 1) / 3, ends / 6, forks / 10, skeleton.sum() / 60],
        dtype=np.float32,
    )


def features(digits: np.ndarray) -> np.ndarray:
    """(n, 28, 28) digits -> (n, 784 + N_SHAPE) detector inputs."""
    return np.hstack([digits.reshape(len(digits), -1), np.stack([shape_measures(d) for d in digits])]).astype(
        np.float32
    )


@dataclass
class Detector:
    """A 2-way network (column 1: not a digit) and the probability above which a drawing is refused."""

    network: FNN
    threshold: float

    def not_digit_probability(self, digits: np.ndarray) -> np.ndarray:
        """(n, 28, 28) -> (n,) probability that each drawing is not a digit."""
        return self.network.predict_proba(features(digits))[:, 1]

    def is_digit(self, digit: np.ndarray) -> bool:
        """The verdict for one (28, 28) digit."""
        return bool(self.not_digit_probability(digit[None])[0] <= self.threshold)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, network=np.frombuffer(self.network.to_bytes(), np.uint8), threshold=self.threshold)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        with np.load(io.BytesIO(data)) as arrays:
            return cls(FNN.from_bytes(arrays["network"].tobytes()), float(arrays["threshold"]))

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls.from_bytes(Path(path).read_bytes())
