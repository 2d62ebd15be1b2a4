"""Held-out MNIST digits shipped with the app (`models/heldout.npz`), never trained on: what the learner scores
the retrained models on, in the background, to tell whether learning from users cost accuracy on ordinary
digits. The shipped originals are scored on the same slice (`python -m livedigits.offline.evaluate`, into
models/metrics.json), so
the two figures compare like for like.

    python -m livedigits.offline.heldout_slice --data ../shared/data/mnist  # models/heldout.npz: 200 per label

The slice is class-balanced and drawn with a fixed seed from all of t10k. Its digits went through the service's
own preprocessing and are stored as uint8 (the same quantisation as the replay sample and the user memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedigits.config import Config

PER_LABEL = 200  # 2,000 digits: a figure's standard error is ~0.3 points at 98%
SEED = 20261201


@dataclass(frozen=True)
class HeldOut:
    images: np.ndarray  # (n, 28, 28) uint8, preprocessed
    labels: np.ndarray  # (n,) int64

    @property
    def digits(self) -> np.ndarray:
        """The digits as the models take them: float32, ink 1.0 on 0.0."""
        return self.images / np.float32(255)

    def accuracy(self, model, batch: int = Config.heldout_batch) -> float:
        """The share of the slice `model` (anything with `predict_proba`) answers right."""
        digits = self.digits
        answers = np.concatenate(
            [model.predict_proba(digits[i : i + batch]).argmax(1) for i in range(0, len(digits), batch)]
        )
        return float((answers == self.labels).mean())

    def score(self, models: dict, batch: int = Config.heldout_batch) -> dict[str, float]:
        """{"fnn": accuracy, "cnn": accuracy}, rounded as published; `batch` digits per forward pass."""
        return {name: round(self.accuracy(model, batch), 4) for name, model in models.items()}


def load(models_dir: Path) -> HeldOut | None:
    """The shipped slice, or None if the file is absent (then no held-out figures are measured)."""
    path = Path(models_dir) / "heldout.npz"
    if not path.exists():
        return None
    with np.load(path) as data:
        return HeldOut(data["images"], data["labels"].astype(np.int64))


def add_point(points: list[dict], point: dict, most: int = Config.heldout_points) -> list[dict]:
    """The curve with `point` (version, fnn, cnn) appended; thinned to every other point when full, keeping the
    first and the latest, so it stays a few KB however long the service runs."""
    points = [*points, point]
    if len(points) > most:
        points = points[:-1:2] + points[-1:]
    return points


def measured_at(points: list[dict]) -> int:
    """The version of the curve's latest point (the published figure's), -1 before the first."""
    return points[-1]["model_version"] if points else -1


def published(points: list[dict], most: int = Config.heldout_published_points) -> list[dict]:
    """At most `most` points of the curve, evenly spaced, the latest always in."""
    step = max(1, -(-len(points) // most))
    return points[::-1][::step][::-1]
