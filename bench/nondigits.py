"""Does the service refuse what is not a digit, and only that? Measured through the HTTP API.

    python bench/nondigits.py [--n 500] [--digits 10000]

Sends --n bench non-digits of each kind (livedigits/offline/nondigits.py's "bench" source: Liberation fonts and seeds
never trained or calibrated on) and the first --digits t10k digits, each drawn on a canvas as a
browser sends it, to POST /api/predict on a fresh app, and counts answers of null ("Can't recognize
this as a digit"). Goals: >= 80% of non-digits refused, <= 0.5% of t10k digits refused.

For comparison, the last column refuses by the models' confidence instead: a drawing whose retrained
CNN's top probability is under the level that 0.5% of t10k digits fall below.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from streams import MNIST_DIR  # noqa: E402

from livedigits.config import Config  # noqa: E402
from livedigits.offline.canvas import canvas_of, to_data_url  # noqa: E402
from livedigits.offline.nondigits import KINDS, generate  # noqa: E402
from livedigits.state.mnist import load_split  # noqa: E402
from main import create_app  # noqa: E402

REFUSE_GOAL = 0.80
DIGITS_REFUSED_LIMIT = 0.005


def refusals(client, urls: list[str]) -> tuple[float, np.ndarray, int]:
    """Share of drawings answered null; the retrained CNN's top probabilities; empty drawings."""
    refused, confidence, empty = [], [], 0
    for url in urls:
        response = client.post("/api/predict", json={"image": url})
        if response.status_code == 422:  # next to no ink: an empty drawing, refused before any verdict
            empty += 1
            refused.append(True)
            continue
        result = response.get_json()
        refused.append(result["answer"] is None)
        confidence.append(result["predictions"]["cnn"]["retrained"][0]["probability"])
    return float(np.mean(refused)), np.array(confidence), empty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="non-digits of each kind")
    parser.add_argument("--digits", type=int, default=10_000, help="t10k digits (the first n)")
    args = parser.parse_args()
    images, _ = load_split(MNIST_DIR, "t10k")
    with tempfile.TemporaryDirectory() as store:
        client = create_app(Config(storage_url=store, rate_limits="off")).test_client()
        digits, digit_confidence, _ = refusals(
            client, [to_data_url(canvas_of(image)) for image in images[: args.digits]]
        )
        level = float(np.quantile(digit_confidence, DIGITS_REFUSED_LIMIT))
        print(
            f"{'drawings':<10} {'n':>6}   {'refused':>8}   {'CNN top-1 (median)':>18}   {'refused by confidence':>21}"
        )
        missed, refused_all = [], []
        for kind in KINDS:
            started = time.perf_counter()
            refused, confidence, empty = refusals(client, [to_data_url(c) for c in generate(kind, args.n, "bench")])
            refused_all.append(refused)
            by_confidence = (np.sum(confidence < level) + empty) / args.n
            print(
                f"{kind:<10} {args.n:>6}   {refused:8.1%}   {np.median(confidence):18.1%}   {by_confidence:21.1%}"
                f"   ({empty} empty; {time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        overall = float(np.mean(refused_all))
        print(f"{'all kinds':<10} {args.n * len(KINDS):>6}   {overall:8.1%}")
        print(
            f"{'t10k':<10} {args.digits:>6}   {digits:8.2%}   {np.median(digit_confidence):18.1%}"
            f"   {DIGITS_REFUSED_LIMIT:21.1%}   (confidence level {level:.3f})"
        )
    if overall < REFUSE_GOAL:
        missed.append(f"non-digits refused {overall:.1%} < {REFUSE_GOAL:.0%}")
    if digits > DIGITS_REFUSED_LIMIT:
        missed.append(f"t10k digits refused {digits:.2%} > {DIGITS_REFUSED_LIMIT:.1%}")
    print("\ngoals: " + ("all met" if not missed else "missed:\n  " + "\n  ".join(missed)))


if __name__ == "__main__":
    main()
