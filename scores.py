"""Progressive validation: every labelled drawing scored by all four models before they learn from it,
and the figures the models page shows from those scores. Pure: lists in, dicts out; no TensorFlow."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from functions import MODELS, VARIANTS

RECENT = 100  # "recent" accuracy is over this many of the latest labelled drawings
HISTORY_POINTS = 200  # points in the accuracy-by-version history
# A retrained model whose recent accuracy falls this far under its original's is flagged (poisoning).
DEGRADED_MARGIN = 0.15
DEGRADED_MIN_SCORED = 30
NAMES = tuple(f"{m}.{v}" for m in MODELS for v in VARIANTS)


@dataclass
class Score:
    """One labelled drawing as every model saw it before learning from it (progressive validation)."""

    version: int
    label: int
    predicted: dict[str, int]  # "fnn.original" -> digit
    # The probability each model gave the label: what ranks the review queue (absent in old checkpoints).
    probability: dict[str, float] = field(default_factory=dict)
    kind: str = "train"  # "collect" drawings are scored for the review queue, not counted in accuracy
    source: str = ""
    created: float = 0.0

    @property
    def disagreeing(self) -> int:
        """How many of the four models' top digit was not the label."""
        return sum(self.predicted.get(name) != self.label for name in NAMES)

    def suspicion(self) -> tuple[int, float]:
        """The review queue's sort key, most suspect first: more models disagreeing with the label, then a
        lower probability of the label from the original CNN (which never learned from users, so a wrong
        label that the retrained models already picked up cannot hide from it)."""
        return -self.disagreeing, self.probability.get("cnn.original", 1.0)


def accuracy_figures(scores: list[Score]) -> dict:
    """{model: {variant: {prequential, recent, n_scored}}}: accuracy over all scores and the last RECENT."""
    figures: dict = {m: {} for m in MODELS}
    for model in MODELS:
        for variant in VARIANTS:
            hits = [s.predicted.get(f"{model}.{variant}") == s.label for s in scores]
            recent = hits[-RECENT:]
            figures[model][variant] = {
                "prequential": sum(hits) / len(hits) if hits else None,
                "recent": sum(recent) / len(recent) if recent else None,
                "n_scored": len(hits),
            }
    return figures


def degraded_models(accuracy: dict) -> list[str]:
    """Retrained models whose recent accuracy on user drawings is well under their original's."""
    flagged = []
    for model in MODELS:
        original, retrained = accuracy[model]["original"], accuracy[model]["retrained"]
        enough = retrained["n_scored"] >= DEGRADED_MIN_SCORED and original["recent"] is not None
        if enough and retrained["recent"] < original["recent"] - DEGRADED_MARGIN:
            flagged.append(f"{model}.retrained")
    return flagged


def windowed_history(scores: list[Score], window: int = RECENT, points: int = HISTORY_POINTS) -> list[dict]:
    """Each model's accuracy over the `window` drawings before each version, at most `points` versions."""
    if not scores:
        return []
    hits = np.array([[s.predicted.get(n) == s.label for n in NAMES] for s in scores], dtype=float)
    cumulative = np.vstack([np.zeros(len(NAMES)), np.cumsum(hits, axis=0)])
    picks = np.unique(np.linspace(0, len(scores) - 1, min(points, len(scores))).round().astype(int))
    history = []
    for i in picks:
        start = max(0, i + 1 - window)
        accuracy = (cumulative[i + 1] - cumulative[start]) / (i + 1 - start)
        history.append(
            {
                "model_version": scores[i].version,
                **{n: round(float(a), 4) for n, a in zip(NAMES, accuracy, strict=True)},
            }
        )
    return history


def review_queue(scores: list[Score], excluded: Collection[int]) -> list[dict]:
    """Every scored drawing, most likely mislabelled first (see `Score.suspicion`), as the review API lists it."""
    return [
        {
            "sample_id": f"{s.version:010d}",
            "label": s.label,
            "kind": s.kind,
            "source": s.source,
            "created": s.created,
            "excluded": s.version in excluded,
            "disagreeing": s.disagreeing,
            "predicted": s.predicted,
            "probability": {name: round(p, 4) for name, p in s.probability.items()},
        }
        for s in sorted(scores, key=Score.suspicion)
    ]


def summary(scores: list[Score], label_counts: list[int], excluded: Collection[int] = ()) -> dict:
    """What the learner publishes for /api/stats and /healthz: counts, accuracy, degraded flags, history.
    Accuracy counts only the train entries that are not excluded."""
    learned = [s for s in scores if s.kind == "train" and s.version not in excluded]
    accuracy = accuracy_figures(learned)
    return {
        "samples": {"total": sum(label_counts), "per_label": {str(d): c for d, c in enumerate(label_counts)}},
        "accuracy": accuracy,
        "degraded": degraded_models(accuracy),
        "history": windowed_history(learned),
        "excluded": sorted(excluded),
    }
