"""Prequential (test-then-train) streams through the real service, in hands unlike MNIST's.

    python bench/online.py [--n 600] [--streams uci,slanted,rotated,thick,narrow] [--crowd 1]

For each stream a fresh app (on a temp store) gets every drawing as a browser sends it: first
POST /api/predict (every model's guess is recorded), then POST /api/train with the true label.
Printed per stream and model: prequential accuracy of the original and the retrained model over the
whole stream and its last half, and accuracy on held-out MNIST (the second half of t10k, never
streamed) before and after the stream. Goals: retrained gains >= 5 points over original on every
stream, and loses <= 0.5 point on held-out MNIST.

`--crowd K` feeds the stream at a crowd's pace: K drawings at a time are predicted, then their K trains arrive
together (K request threads, while the learner finishes its previous step), so the learner takes them as one
group (Config.max_group), as it does when K people label at once. `--ungrouped` keeps that pace but takes one step
per drawing: what the pace alone costs (K drawings predicted before any of them is learned).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streams import STREAMS, held_out, stream

from functions import preprocess
from livedigits.config import Config
from main import close_service, create_app

MODELS = ("fnn", "cnn")
GAIN_GOAL = 0.05
FORGET_LIMIT = 0.005


def held_out_accuracy(models: dict, digits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {name: float((models[name].predict_proba(digits).argmax(axis=1) == labels).mean()) for name in MODELS}


def train_together(app, learner, drawings: list[tuple[str, int]]) -> None:
    """POST these trains at once, so that all of them wait for the learner's next step together."""

    def post(image: str, label: int) -> None:
        response = app.test_client().post("/api/train", json={"image": image, "label": label})
        assert response.status_code == 200, response.get_json()

    threads = [threading.Thread(target=post, args=drawing) for drawing in drawings]
    with learner._lock:  # the learner is busy: every train is appended and handed over before its next step
        for handed, thread in enumerate(threads, 1):
            thread.start()
            while len(learner.inbox) < handed:  # one after the other: the stream's order is the log's, every run
                time.sleep(0.0005)
    for thread in threads:
        thread.join()


def run_stream(
    name: str, n: int, digits: np.ndarray, labels: np.ndarray, crowd: int = 1, max_group: int = Config.max_group
) -> dict:
    drawings = stream(name, n)
    with tempfile.TemporaryDirectory() as store:
        app = create_app(Config(storage_url=store, checkpoint_every=100_000, rate_limits="off", max_group=max_group))
        client = app.test_client()
        app.extensions["learner"].wait_booted()  # loaded on its own thread
        learner = app.extensions["learner"].learner
        before = held_out_accuracy(learner.models, digits, labels)
        hits = {f"{m}.{v}": [] for m in MODELS for v in ("original", "retrained")}
        started = time.perf_counter()
        for start in range(0, len(drawings), crowd):
            together = drawings[start : start + crowd]
            for image, label in together:
                predictions = client.post("/api/predict", json={"image": image}).get_json()["predictions"]
                for key in hits:
                    model, variant = key.split(".")
                    hits[key].append(predictions[model][variant][0]["digit"] == label)
            if crowd == 1:
                response = client.post("/api/train", json={"image": together[0][0], "label": together[0][1]})
                assert response.status_code == 200, response.get_json()
            else:
                train_together(app, learner, together)
        seconds = time.perf_counter() - started
        after = held_out_accuracy(learner.models, digits, labels)
        close_service(app)  # before its store goes
    half = n // 2
    return {
        "stream": name,
        "ms_per_drawing": 1000 * seconds / n,
        "accuracy": {k: (float(np.mean(v)), float(np.mean(v[half:]))) for k, v in hits.items()},
        "held_out": {m: (before[m], after[m]) for m in MODELS},
    }


def report(result: dict) -> list[str]:
    """Print one stream's table; return the goals it misses."""
    print(f"\nstream {result['stream']}: {result['ms_per_drawing']:.0f} ms per drawing (predict + train)")
    print("  model  original all / last half   retrained all / last half   gain    held-out MNIST before -> after")
    missed = []
    for model in MODELS:
        original = result["accuracy"][f"{model}.original"]
        retrained = result["accuracy"][f"{model}.retrained"]
        gain = retrained[0] - original[0]
        before, after = result["held_out"][model]
        print(
            f"  {model}    {original[0]:6.1%} / {original[1]:6.1%}          {retrained[0]:6.1%} / {retrained[1]:6.1%}"
            f"          {gain * 100:+5.1f}   {before:.2%} -> {after:.2%} ({(after - before) * 100:+.2f})"
        )
        if gain < GAIN_GOAL:
            missed.append(f"{result['stream']}: {model} gains {gain * 100:+.1f} points (goal +5)")
        if after < before - FORGET_LIMIT:
            missed.append(f"{result['stream']}: {model} loses {(before - after) * 100:.2f} points on MNIST (limit 0.5)")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="drawings per stream")
    parser.add_argument("--streams", default=",".join(STREAMS))
    parser.add_argument("--crowd", type=int, default=1, help="drawings that arrive together (learned as one group)")
    parser.add_argument("--ungrouped", action="store_true", help="at the crowd's pace, but one step per drawing")
    args = parser.parse_args()
    # --ungrouped: what the crowd's pace costs without grouping (predictions before learning), one step each
    max_group = 1 if args.ungrouped else Config.max_group
    images, labels = held_out()
    digits = np.stack([preprocess(image / 255.0) for image in images])
    missed = []
    for name in args.streams.split(","):
        missed += report(run_stream(name, args.n, digits, labels, args.crowd, max_group))
    print("\ngoals: " + ("all met" if not missed else "missed:\n  " + "\n  ".join(missed)))


if __name__ == "__main__":
    main()
