"""Progressive validation: every labelled drawing scored by all four models before they learn from it, and the
figures the models page shows from those scores. The figures have a fixed size and change by one drawing at a
time (`Figures.add`), never recomputed from every score; the scores themselves live in the database."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from livedigits.config import Config

MODELS = ("fnn", "cnn")
VARIANTS = ("original", "retrained")
NAMES = tuple(f"{m}.{v}" for m in MODELS for v in VARIANTS)


@dataclass
class Score:
    """One labelled drawing as every model saw it before learning from it (progressive validation)."""

    version: int
    label: int
    predicted: dict[str, int]  # "fnn.original" -> digit
    probability: dict[str, float] = field(default_factory=dict)  # the probability each model gave the label
    kind: str = "train"  # "collect" drawings are scored for the review queue, not counted in accuracy
    source: str = ""
    created: float = 0.0


def hits(row: dict) -> dict[str, int]:
    """1 for each model whose top digit was the drawing's label."""
    return {name: int(row["predicted"].get(name) == row["label"]) for name in NAMES}


def window_accuracy(rows: Iterable[dict]) -> dict[str, float | None]:
    """Each model's accuracy over these rows (the latest Config.recent_window learned drawings)."""
    rows = list(rows)
    if not rows:
        return {name: None for name in NAMES}
    return {name: sum(hits(row)[name] for row in rows) / len(rows) for name in NAMES}


@dataclass
class Figures:
    """What the learner knows in aggregate, a few KB whatever the log's length: drawings per label (not
    excluded), hits per model over the learned drawings (train, scored, not excluded) and each model's confusion
    matrix over them (true label by answer), and the history of the recent accuracy at versions a multiple of
    `stride` (which doubles whenever the history fills up)."""

    label_counts: list[int] = field(default_factory=lambda: [0] * 10)
    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    learned: int = 0
    history: list[dict] = field(default_factory=list)
    stride: int = 1
    # None in figures written before the matrices existed: the learner counts them once from the database.
    confusion: dict[str, list[list[int]]] | None = field(default_factory=lambda: {n: empty_matrix() for n in NAMES})
    # The knobs (history_points, degraded_*): not stored with the figures.
    config: Config = field(default_factory=Config, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: dict | None, history: list[dict], config: Config) -> Figures:
        """From the database: the meta value `to_json` wrote and the history table's points."""
        if not value:
            return cls(history=history, config=config)
        return cls(**{"confusion": None, **value}, history=history, config=config)

    def to_json(self) -> dict:
        """All but the history, which is stored a point at a time (and the knobs)."""
        return {
            f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name not in ("history", "config")
        }

    def count(self, row: dict, sign: int) -> None:
        """A drawing joins (+1) or leaves (-1) the counts and, if learned and scored, the accuracy."""
        self.label_counts[row["label"]] += sign
        if row["kind"] == "train" and row["scored"]:
            self.learned += sign
            for name, hit in hits(row).items():
                self.hits[name] += sign * hit
                if self.confusion is not None:
                    self.confusion[name][row["label"]][row["predicted"][name]] += sign

    def wants_point(self, number: int) -> bool:
        return number % self.stride == 0

    def add_point(self, number: int, window: list[dict]) -> bool:
        """The recent accuracy after entry `number`; every other point goes when the history is full (True)."""
        self.history.append(point(number, window))
        if len(self.history) <= 2 * self.config.history_points:
            return False
        self.stride *= 2
        self.history = [p for p in self.history if p["model_version"] % self.stride == 0]
        return True

    def summary(self, window: list[dict]) -> dict:
        """What the learner publishes for /api/stats and /healthz: counts, accuracy, degraded flags, history.
        `window`: the latest Config.recent_window learned drawings."""
        recent = window_accuracy(window)
        confusion = self.confusion or {n: empty_matrix() for n in NAMES}
        accuracy = {
            m: {
                v: {
                    "prequential": self.hits[f"{m}.{v}"] / self.learned if self.learned else None,
                    "recent": recent[f"{m}.{v}"],
                    "n_scored": self.learned,
                    "per_label": per_label(confusion[f"{m}.{v}"]),
                }
                for v in VARIANTS
            }
            for m in MODELS
        }
        step = max(1, -(-len(self.history) // self.config.history_points))  # at most that many, the latest always in
        return {
            "samples": {
                "total": sum(self.label_counts),
                "per_label": {str(d): c for d, c in enumerate(self.label_counts)},
            },
            "accuracy": accuracy,
            "degraded": degraded_models(accuracy, self.config),
            "history": self.history[::-1][::step][::-1],
            "confusion": confusion,
        }


def empty_matrix() -> list[list[int]]:
    return [[0] * 10 for _ in range(10)]


def per_label(matrix: list[list[int]]) -> list[float | None]:
    """Accuracy per true label (a confusion matrix's diagonal over its rows); None for a label never drawn."""
    return [round(row[d] / sum(row), 4) if sum(row) else None for d, row in enumerate(matrix)]


def point(number: int, window: list[dict]) -> dict:
    accuracy = window_accuracy(window)
    return {"model_version": number, **{n: None if a is None else round(a, 4) for n, a in accuracy.items()}}


def degraded_models(accuracy: dict, config: Config) -> list[str]:
    """Retrained models whose recent accuracy on user drawings is well under their original's."""
    flagged = []
    for model in MODELS:
        original, retrained = accuracy[model]["original"], accuracy[model]["retrained"]
        enough = retrained["n_scored"] >= config.degraded_min_scored and original["recent"] is not None
        if enough and retrained["recent"] < original["recent"] - config.degraded_margin:
            flagged.append(f"{model}.retrained")
    return flagged


def disagreeing(row: dict) -> int:
    """How many of the four models' top digit was not the label (the review queue's first key)."""
    return sum(row["predicted"].get(name) != row["label"] for name in NAMES) if row["scored"] else 0


def rank(row: dict) -> float:
    """The queue's second key: the original CNN's probability of the label, lowest first (it never learned
    from users, so a wrong label that the retrained models already picked up cannot hide from it)."""
    return float(row["probability"].get("cnn.original", 1.0)) if row["scored"] else 1.0


def review_item(row: dict) -> dict:
    """A database row as the review API lists it."""
    return {
        "sample_id": f"{row['number']:010d}",
        "label": row["label"],
        "kind": row["kind"],
        "source": row["source"],
        "created": row["created"],
        "excluded": row["excluded"],
        "disagreeing": disagreeing(row),
        "predicted": row["predicted"],
        "probability": {name: round(p, 4) for name, p in row["probability"].items()},
    }


def save_point(tx, figures: Figures, number: int, window: list[dict]) -> None:
    """Add the history point after entry `number` to the figures and the database (thinning both when full)."""
    if figures.add_point(number, window):
        tx.thin_history(figures.stride)
    tx.save_point(figures.history[-1])
