"""Stroke-width bench: the same digits drawn with a thin pen, as drawn, a thick and a fat one.

    python bench/pen.py [--n 10000] [--stream-n 600] [--streams uci,slanted,rotated,thick,narrow]

Each digit is redrawn with one of `canvas.PENS`, rendered on a 280x280 canvas as a browser sends it
(dark ink on white, PNG) and decoded by the service's own input path, then scored by the shipped
original FNN and CNN; "refused" is the share the "not a digit" detector (models/digitness.npz) turns
away. A pen that leaves next to no ink makes an empty drawing, which counts as wrong and refused.
Rows: t10k (the first --n digits) and the drawn streams of bench/streams.py.
Goals on t10k, at every pen: CNN >= 99.0%, FNN >= 97.0%.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from streams import MNIST_DIR, STREAMS, stream_inks  # noqa: E402

from conv_net import CNN  # noqa: E402
from functions import InputError, decode_digit  # noqa: E402
from livedigits.offline.canvas import PENS, canvas_of, to_data_url, with_pen  # noqa: E402
from livedigits.serving.server import load_detector  # noqa: E402
from livedigits.state.mnist import load_split  # noqa: E402
from two_layer_net import FNN  # noqa: E402

GOALS = {"fnn": 0.970, "cnn": 0.990}


def drawn(inks: list[np.ndarray], pen: str) -> tuple[np.ndarray, np.ndarray]:
    """Digits redrawn with `pen`, through the canvas and the service's input path: (n, 28, 28), and
    (n,) True where the drawing came out empty (left blank)."""
    digits, empty = np.zeros((len(inks), 28, 28), np.float32), np.zeros(len(inks), bool)
    for i, ink in enumerate(inks):
        try:
            digits[i] = decode_digit(to_data_url(canvas_of(with_pen(ink, pen))))
        except InputError:
            empty[i] = True
    return digits, empty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="t10k digits (the first n)")
    parser.add_argument("--stream-n", type=int, default=600, help="drawings per stream")
    parser.add_argument("--streams", default=",".join(STREAMS), help="comma-separated; empty for t10k only")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    models = {"fnn": FNN.load(args.models / "fnn.npz"), "cnn": CNN.load(args.models / "cnn.npz")}
    detector = load_detector(args.models)

    images, labels = load_split(MNIST_DIR, "t10k")
    sets = {"t10k": (list(images[: args.n]), labels[: args.n])}
    for name in filter(None, args.streams.split(",")):
        inks = stream_inks(name, args.stream_n)
        sets[name] = ([ink for ink, _ in inks], np.array([label for _, label in inks]))

    print(f"{'digits':<9} {'pen':<9} {'n':>6}   {'FNN':>7}   {'CNN':>7}   {'refused':>7}")
    missed = []
    for name, (inks, truth) in sets.items():
        for pen in PENS:
            started = time.perf_counter()
            digits, empty = drawn(inks, pen)
            scores = {
                m: float(((model.predict_proba(digits).argmax(axis=1) == truth) & ~empty).mean())
                for m, model in models.items()
            }
            refused = empty.copy()
            if detector is not None:
                refused |= detector.not_digit_probability(digits) > detector.threshold
            print(
                f"{name:<9} {pen:<9} {len(truth):>6}   {scores['fnn']:7.2%}   {scores['cnn']:7.2%}"
                f"   {refused.mean():7.2%}   ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
            if name == "t10k":
                missed += [
                    f"t10k {pen}: {m} {scores[m]:.2%} < {goal:.1%}" for m, goal in GOALS.items() if scores[m] < goal
                ]
    print("\ngoals: " + ("all met" if not missed else "missed:\n  " + "\n  ".join(missed)))


if __name__ == "__main__":
    main()
