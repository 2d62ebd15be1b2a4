"""Is this drawing a digit at all? A verdict from the drawing itself, in numpy and scikit-image.

The four digit models answer every drawing with some digit, often at 98-99%: a scribble is an
"8", a dot a "0". So refusing is not their job but a small detector's: a 2-way numpy network (the
FNN of two_layer_net) over the preprocessed (28, 28) digit's pixels and a few shape measures, trained
by livedigits/offline/train.py on MNIST digits (with every pen) against generated non-digits
(livedigits/offline/nondigits/), with a
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

N_SHAPE = 8  # shape measures appended to the 784 pixels
N_NEAR = 1  # how far the drawing lies from the nearest digit's subspace, appended after them
N_OPINIONS = 4  # what the original models make of the drawing, appended last (when the detector uses them)
SUBSPACE = 20  # principal directions kept of each digit's drawings
BESIDE = 784 + N_SHAPE - 1  # the input that counts pieces side by side (the last shape measure)
SUBSTANTIAL = 0.1  # a piece with at least this share of the ink counts when looking for pieces side by side
EIGHT_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.uint8)
EIGHT_CONNECTED = EIGHT_NEIGHBOURS | 1  # ndimage.label's structures, made once (making them costs a label's time)
FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def shape_measures(digit: np.ndarray) -> np.ndarray:
    """What a pixel network sees poorly, for one (28, 28) digit: (N_SHAPE,) float32, each about 0..1.

    Ink mass, how much of its bounding box the ink fills, holes and pieces (a digit has at most two
    holes and, nearly always, one piece), the skeleton's ends, forks and length (a scribble has
    many forks and a long skeleton), and substantial pieces beside the largest (see `beside`).
    """
    ink = digit >= 0.5
    if not ink.any():
        return np.zeros(N_SHAPE, np.float32)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    labels, pieces = ndimage.label(ink, structure=EIGHT_CONNECTED)
    outside = np.ones((ink.shape[0] + 2, ink.shape[1] + 2), dtype=bool)  # a frame of background joins the outside
    outside[1:-1, 1:-1] = ~ink
    _, n_background = ndimage.label(outside, structure=FOUR_CONNECTED)
    holes = n_background - 1
    skeleton = skeletonize(ink)
    neighbours = ndimage.convolve(skeleton.astype(np.uint8), EIGHT_NEIGHBOURS, mode="constant")
    ends = int((skeleton & (neighbours == 1)).sum())
    forks = int((skeleton & (neighbours >= 3)).sum())
    return np.array(
        [
            digit.sum() / 200,
            ink.sum() / box,
            holes / 3,
            (pieces - 1) / 3,
            ends / 6,
            forks / 10,
            skeleton.sum() / 60,
            beside(labels, pieces),
        ],
        dtype=np.float32,
    )


def beside(labels: np.ndarray, pieces: int) -> int:
    """How many substantial pieces of ink lie wholly left or right of the largest one: "42" has one, a digit none.

    A digit drawn in two strokes (a 5's bar, a 4's upright) overlaps itself in columns; digits or letters
    written side by side do not.
    """
    if pieces < 2:
        return 0
    sizes = np.bincount(labels.ravel(), minlength=pieces + 1)[1:]
    columns = [np.flatnonzero((labels == k + 1).any(axis=0)) for k in range(pieces)]
    largest = int(np.argmax(sizes))
    left, right = columns[largest][0], columns[largest][-1]
    return sum(
        1
        for k in range(pieces)
        if k != largest and sizes[k] >= SUBSTANTIAL * sizes.sum() and (columns[k][-1] < left or columns[k][0] > right)
    )


def opinions(fnn_probs: np.ndarray, cnn_probs: np.ndarray) -> np.ndarray:
    """What the two original models make of each drawing: (n, N_OPINIONS) float32 from their (n, 10) probabilities.

    How sure each is, whether they agree, and how far apart their whole answers are (total variation)."""
    return np.stack(
        [
            fnn_probs.max(axis=1),
            cnn_probs.max(axis=1),
            (fnn_probs.argmax(axis=1) == cnn_probs.argmax(axis=1)).astype(np.float32),
            0.5 * np.abs(fnn_probs - cnn_probs).sum(axis=1),
        ],
        axis=1,
    ).astype(np.float32)


def digit_subspaces(digits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each digit's drawings summed up as a mean and its SUBSPACE principal directions: (10, 1 + SUBSPACE, 784)."""
    spaces = []
    for digit in range(10):
        x = digits[labels == digit].reshape(-1, 784).astype(np.float64)
        mean = x.mean(axis=0)
        directions = np.linalg.svd(x - mean, full_matrices=False)[2][:SUBSPACE]
        spaces.append(np.vstack([mean, directions]))
    return np.stack(spaces).astype(np.float32)


def remoteness(digits: np.ndarray, subspaces: np.ndarray) -> np.ndarray:
    """(n, 28, 28) -> (n, N_NEAR): the share of each drawing's ink energy that the nearest digit's subspace (mean and
    principal directions) does not explain. Learned from digits alone, so it owes nothing to any family of
    non-digits: a scribble of a kind never generated is still far from every digit."""
    x = digits.reshape(len(digits), -1).astype(np.float32)
    centred = x[:, None, :] - subspaces[None, :, 0]
    along = np.einsum("ncd,ckd->nck", centred, subspaces[:, 1:])  # one drawing: ~50 us
    residual = (centred**2).sum(axis=2) - (along**2).sum(axis=2)
    return (residual.min(axis=1) / np.maximum((x**2).sum(axis=1), 1e-6))[:, None]


def features(digits: np.ndarray, subspaces: np.ndarray, views: np.ndarray | None = None) -> np.ndarray:
    """(n, 28, 28) digits -> (n, 784 + N_SHAPE + N_NEAR [+ N_OPINIONS]) detector inputs; `views`: the models'
    `opinions`."""
    parts = [digits.reshape(len(digits), -1), np.stack([shape_measures(d) for d in digits])]
    parts.append(remoteness(digits, subspaces))
    return np.hstack(parts if views is None else [*parts, views]).astype(np.float32)


@dataclass
class Detector:
    """A 2-way network (column 1: not a digit) and the probability above which a drawing is refused; a drawing of
    pieces side by side is refused whatever the network says."""

    network: FNN
    threshold: float
    subspaces: np.ndarray  # (10, 1 + SUBSPACE, 784): see `digit_subspaces`

    @property
    def uses_opinions(self) -> bool:
        return self.network.config.n_input == 784 + N_SHAPE + N_NEAR + N_OPINIONS

    def not_digit_probability(self, digits: np.ndarray, views: np.ndarray | None = None) -> np.ndarray:
        """(n, 28, 28) -> (n,) probability that each drawing is not a digit (1.0: pieces side by side).

        `views`: the original models' `opinions` of the digits, if the detector uses them."""
        if self.uses_opinions and views is None:
            raise ValueError("this detector weighs the original models' opinions: pass them as `views`")
        return self.probability_of(features(digits, self.subspaces, views if self.uses_opinions else None))

    def probability_of(self, x: np.ndarray) -> np.ndarray:
        """(n, inputs) `features` -> (n,) probability of not a digit; 1.0 where pieces lie side by side."""
        return np.where(x[:, BESIDE] > 0, 1.0, self.network.predict_proba(x)[:, 1])

    def are_digits(
        self, digits: np.ndarray, fnn_probs: np.ndarray | None = None, cnn_probs: np.ndarray | None = None
    ) -> np.ndarray:
        """(n,) verdicts for (n, 28, 28) digits, given the original models' (n, 10) probabilities if it uses them."""
        views = opinions(fnn_probs, cnn_probs) if self.uses_opinions else None
        return self.not_digit_probability(digits, views) <= self.threshold

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        network = np.frombuffer(self.network.to_bytes(), np.uint8)
        np.savez(buffer, network=network, threshold=self.threshold, subspaces=self.subspaces)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        with np.load(io.BytesIO(data)) as arrays:
            return cls(FNN.from_bytes(arrays["network"].tobytes()), float(arrays["threshold"]), arrays["subspaces"])

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls.from_bytes(Path(path).read_bytes())
