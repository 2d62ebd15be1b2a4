"""Teach the service to refuse what is not a digit, and measure it on families of drawings it never saw.

The detector (livedigits/models/digitness.py) is a 2-way network over a drawing's pixels, shape measures and the
original models' opinions of it, trained on MNIST digits (every pen, slant and tilt) against generated non-digits of
every family (livedigits/offline/nondigits/), with the threshold that refuses a set share of held-out digits.
`leave_one_out` measures what no generator can flatter: train on all families but one held-out set, then count how
much of that set's bench drawings (seeds never trained on) is refused. livedigits/offline/train.py writes the shipped
detector with `train_detector`; bench/generalise.py prints `leave_one_out`'s table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedigits.errors import InputError
from livedigits.models.digitness import Detector, features, opinions
from livedigits.models.fnn import FNN, FNNConfig
from livedigits.models.numpy_cnn import NumpyCNN
from livedigits.offline.nondigits import FAMILIES, HOLDOUTS, generate
from livedigits.pipeline.drawings import digit_of
from livedigits.state.snapshot import shipped_files


@dataclass(frozen=True)
class RefusalConfig:
    hidden: int = 100
    epochs: int = 15
    batch: int = 32
    learning_rate: float = 0.05
    per_family: int = 600  # training seeds of each family
    bench_per_family: int = 300  # bench seeds of each family, for measuring
    digits: int = 40_000  # digit drawings learned from, drawn from every pen, slant and tilt
    # Of held-out digits (every pen), refused by the network: its threshold. Digits traced along their skeleton by
    # another hand (bench/generalise.py) are refused about 3x as often as these, and the goal is 1% at every pen.
    refused_digits: float = 0.0015
    use_opinions: bool = True
    seed: int = 1


@dataclass
class Originals:
    """The shipped original FNN and CNN, whose opinions of a drawing the detector weighs."""

    fnn: FNN
    cnn: NumpyCNN

    @classmethod
    def load(cls, models: Path) -> Originals:
        fnn, cnn = shipped_files(models)
        return cls(FNN.from_bytes(fnn), NumpyCNN.from_bytes(cnn))

    def inputs(self, digits: np.ndarray, subspaces: np.ndarray, use_opinions: bool = True) -> np.ndarray:
        """(n, 28, 28) digits -> the detector's inputs, with or without the models' opinions."""
        if not use_opinions:
            return features(digits, subspaces)
        chunks = [
            opinions(self.fnn.predict_proba(part), self.cnn.predict_proba(part))
            for part in np.array_split(digits, max(1, len(digits) // 512))
        ]
        return features(digits, subspaces, np.concatenate(chunks))


def family_digits(family: str, n: int, source: str, start: int = 0) -> np.ndarray:
    """Drawings of one family through the service's path: (m, 28, 28), m <= n (a drawing with next to no ink is an
    empty drawing, answered 422 before any verdict)."""
    digits = []
    for canvas in generate(family, n, source, start):
        try:
            digits.append(digit_of(canvas))
        except InputError:
            continue
    return np.stack(digits) if digits else np.zeros((0, 28, 28), np.float32)


def fit(digits: np.ndarray, others: dict[str, np.ndarray], config: RefusalConfig) -> FNN:
    """A 2-way network: `digits` (inputs) against every family in `others` (inputs), half the weight each side and the
    non-digit half shared equally by the families, so that no family counts by how many drawings it has."""
    rng = np.random.default_rng(config.seed)
    x = np.concatenate([digits, *others.values()])
    y = np.concatenate([np.zeros(len(digits), np.int64), np.ones(len(x) - len(digits), np.int64)])
    weights = np.concatenate(
        [np.full(len(digits), 0.5 / len(digits))]
        + [np.full(len(o), 0.5 / len(others) / len(o)) for o in others.values()]
    )
    layers = FNNConfig(n_input=x.shape[1], n_hidden=config.hidden, n_output=2, momentum=0.9, seed=config.seed)
    model = FNN(layers)
    for epoch in range(config.epochs):
        rate = config.learning_rate * 0.5 * (1 + np.cos(np.pi * epoch / config.epochs))
        order = rng.choice(len(y), len(y), p=weights / weights.sum())
        for start in range(0, len(y), config.batch):
            idx = order[start : start + config.batch]
            model.train_step(x[idx], y[idx], learning_rate=rate)
    return FNN(FNNConfig(n_input=x.shape[1], n_hidden=config.hidden, n_output=2), model.params)


def calibrated(network: FNN, held_out: np.ndarray, share: float, subspaces: np.ndarray) -> Detector:
    """The detector whose network refuses `share` of the held-out digits' inputs. Its rule for pieces side by side
    refuses more (0.07% of t10k as drawn; 1-2% of pen views eroded until their strokes break, which no pen does)."""
    return Detector(network, float(np.quantile(network.predict_proba(held_out)[:, 1], 1 - share)), subspaces)


@dataclass
class Examples:
    """What a detector is trained, calibrated and measured on: inputs of digits and of each family."""

    digits: np.ndarray  # inputs of the digits learned from
    held_out: np.ndarray  # inputs of held-out digits, for the threshold
    train: dict[str, np.ndarray]  # family -> inputs, training seeds
    bench: dict[str, np.ndarray]  # family -> inputs, bench seeds
    subspaces: np.ndarray  # the digits' subspaces the inputs were measured against

    @classmethod
    def build(
        cls,
        digits: np.ndarray,
        held_out: np.ndarray,
        subspaces: np.ndarray,
        originals: Originals,
        config: RefusalConfig,
        bench: bool,
    ) -> Examples:
        rng = np.random.default_rng(config.seed)
        digits = digits[rng.choice(len(digits), min(config.digits, len(digits)), replace=False)]
        started = time.perf_counter()
        train, measured = {}, {}
        for family in FAMILIES:
            drawn = family_digits(family, config.per_family, "train")
            train[family] = originals.inputs(drawn, subspaces, config.use_opinions)
            if bench:
                drawn = family_digits(family, config.bench_per_family, "bench")
                measured[family] = originals.inputs(drawn, subspaces, config.use_opinions)
        print(f"detector: {len(FAMILIES)} families drawn in {time.perf_counter() - started:.0f} s", flush=True)
        return cls(
            originals.inputs(digits, subspaces, config.use_opinions),
            originals.inputs(held_out, subspaces, config.use_opinions),
            train,
            measured,
            subspaces,
        )


def train_detector(examples: Examples, config: RefusalConfig) -> Detector:
    """The shipped detector: every family learned from."""
    network = fit(examples.digits, examples.train, config)
    detector = calibrated(network, examples.held_out, config.refused_digits, examples.subspaces)
    refused = (detector.probability_of(examples.held_out) > detector.threshold).mean()
    print(f"detector: threshold {detector.threshold:.4f}, held-out digits refused {refused:.2%}", flush=True)
    return detector


def leave_one_out(examples: Examples, config: RefusalConfig) -> dict[str, float]:
    """For each held-out set of families: the share of its bench drawings refused by a detector trained without it."""
    table = {}
    for name, families in HOLDOUTS.items():
        others = {f: x for f, x in examples.train.items() if f not in families}
        network = fit(examples.digits, others, config)
        detector = calibrated(network, examples.held_out, config.refused_digits, examples.subspaces)
        drawn = np.concatenate([examples.bench[f] for f in families])
        table[name] = float((detector.probability_of(drawn) > detector.threshold).mean())
        print(f"  left out {name:<22} refused {table[name]:6.1%}", flush=True)
    return table
