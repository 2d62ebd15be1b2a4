"""Train the shipped original models from a directory of MNIST IDX gz files.

    python train.py --data ../shared/data/mnist --out models/

Reads `train-*` only, holds out a seeded validation split, trains the numpy FNN and the Keras CNN
on randomly distorted copies of the digits (fresh distortions every epoch), writes
`fnn.npz` and `cnn.npz`, then evaluates both on `t10k-*` into `metrics.json` (see evaluate.py).
Fixed seeds: the same data gives the same models.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from functions import affine, preprocess
from mnist import load_split


@dataclass(frozen=True)
class TrainConfig:
    validation_size: int = 1000
    seed: int = 1
    # Distortions a person's drawing plausibly has that MNIST's 10,000 digits under-represent.
    max_angle: float = 12.0
    scale_range: tuple[float, float] = (0.85, 1.1)
    max_shift: float = 2.0
    fnn_epochs: int = 60
    fnn_batch: int = 32
    fnn_learning_rate: float = 0.05
    cnn_epochs: int = 40
    cnn_batch: int = 64
    cnn_learning_rate: float = 1e-3
    replay_size: int = 2000  # MNIST digits shipped for online replay (models/replay.npz, ~1 MB)


def prepare(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) MNIST digits -> float32 digits through the service's own preprocessing."""
    return np.stack([preprocess(image / 255.0) for image in images])


def distort(digits: np.ndarray, rng: np.random.Generator, config: TrainConfig) -> np.ndarray:
    """A random rotation, scale and shift of every digit: (n, 28, 28) -> (n, 28, 28)."""
    angles = rng.uniform(-config.max_angle, config.max_angle, len(digits))
    scales = rng.uniform(*config.scale_range, len(digits))
    shifts = rng.uniform(-config.max_shift, config.max_shift, (len(digits), 2))
    return np.stack([affine(d, a, s, tuple(sh)) for d, a, s, sh in zip(digits, angles, scales, shifts, strict=True)])


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


def train_fnn(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, config: TrainConfig):
    from two_layer_net import FNN, FNNConfig

    rng = np.random.default_rng(config.seed)
    model = FNN(FNNConfig(momentum=0.9, seed=config.seed))
    for epoch in range(config.fnn_epochs):
        # Cosine decay: big steps while far off, small ones to settle.
        rate = config.fnn_learning_rate * 0.5 * (1 + np.cos(np.pi * epoch / config.fnn_epochs))
        batch_x = distort(x, rng, config) if epoch else x
        order = rng.permutation(len(x))
        for start in range(0, len(x), config.fnn_batch):
            idx = order[start : start + config.fnn_batch]
            model.train_step(batch_x[idx], y[idx], learning_rate=rate)
        print(
            f"fnn epoch {epoch + 1}: validation accuracy {accuracy(model.predict_proba(x_val), y_val):.4f}", flush=True
        )
    model.velocity = {k: np.zeros_like(v) for k, v in model.velocity.items()}
    return FNN(FNNConfig(seed=config.seed), model.params)


def train_cnn(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, config: TrainConfig):
    import keras

    from conv_net import CNN

    keras.utils.set_random_seed(config.seed)
    model = CNN()
    rng = np.random.default_rng(config.seed)
    steps = config.cnn_epochs * int(np.ceil(len(x) / config.cnn_batch))
    schedule = keras.optimizers.schedules.CosineDecay(config.cnn_learning_rate, steps)
    model.model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    for epoch in range(config.cnn_epochs):
        batch_x = distort(x, rng, config)
        model.model.fit(batch_x[..., None], y, batch_size=config.cnn_batch, epochs=1, shuffle=True, verbose=0)
        print(
            f"cnn epoch {epoch + 1}: validation accuracy {accuracy(model.predict_proba(x_val), y_val):.4f}", flush=True
        )
    return model


def write_replay(digits: np.ndarray, labels: np.ndarray, path: Path, config: TrainConfig) -> None:
    """Ship a class-balanced sample of training digits that online steps replay against forgetting."""
    rng = np.random.default_rng(config.seed)
    per_class = config.replay_size // 10
    picks = np.concatenate([rng.choice(np.flatnonzero(labels == d), per_class, replace=False) for d in range(10)])
    picks = rng.permutation(picks)
    images = np.rint(digits[picks] * 255).astype(np.uint8)
    np.savez_compressed(path, images=images, labels=labels[picks].astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="directory with train-*-ubyte.gz (and t10k-* to evaluate)"
    )
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--fnn-epochs", type=int, default=TrainConfig.fnn_epochs)
    parser.add_argument("--cnn-epochs", type=int, default=TrainConfig.cnn_epochs)
    parser.add_argument("--only", choices=("fnn", "cnn", "replay"), help="write just one model or the replay sample")
    args = parser.parse_args()
    config = TrainConfig(fnn_epochs=args.fnn_epochs, cnn_epochs=args.cnn_epochs)
    args.out.mkdir(parents=True, exist_ok=True)

    images, labels = load_split(args.data, "train")
    digits = prepare(images)
    order = np.random.default_rng(config.seed).permutation(len(digits))
    val, fit = order[: config.validation_size], order[config.validation_size :]
    print(f"training on {len(fit)} digits, validating on {len(val)}", flush=True)

    if args.only in (None, "replay"):
        write_replay(digits[fit], labels[fit], args.out / "replay.npz", config)
    if args.only in (None, "fnn"):
        started = time.perf_counter()
        train_fnn(digits[fit], labels[fit], digits[val], labels[val], config).save(args.out / "fnn.npz")
        print(f"fnn trained in {time.perf_counter() - started:.0f} s", flush=True)
    if args.only in (None, "cnn"):
        started = time.perf_counter()
        train_cnn(digits[fit], labels[fit], digits[val], labels[val], config).save(args.out / "cnn.npz")
        print(f"cnn trained in {time.perf_counter() - started:.0f} s", flush=True)

    if args.only != "replay" and (args.data / "t10k-images-idx3-ubyte.gz").exists():
        from evaluate import evaluate_models

        evaluate_models(args.data, args.out, canvas=True)


if __name__ == "__main__":
    main()
