"""Evaluate the shipped models on held-out MNIST (`t10k-*`) and write models/metrics.json: all of t10k, and the
slice shipped in models/heldout.npz that the learner scores the retrained models on
(`livedigits.offline.heldout_slice`).

    python -m livedigits.offline.evaluate --data ../shared/data/mnist --models models/

The digits go through the service's own preprocessing, as every drawing does. With --canvas, each
digit is also rendered as a browser would send it (dark ink on a white 280x280 canvas, PNG) and
decoded through the service's full input path, and that accuracy is reported too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from livedigits.models.fnn import FNN
from livedigits.offline.canvas import canvas_of, to_data_url
from livedigits.pipeline.drawings import decode_digit, prepare
from livedigits.state import heldout
from livedigits.state.mnist import load_split


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    """Rows: true digit; columns: predicted digit."""
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix.tolist()


def through_canvas(images: np.ndarray) -> np.ndarray:
    """t10k digits rendered as canvas PNG data URLs, then decoded by the service's input path."""

    return np.stack([decode_digit(to_data_url(canvas_of(image))) for image in images])


def predict_all(model, digits: np.ndarray) -> np.ndarray:
    batches = [model.predict_proba(digits[i : i + 1000]) for i in range(0, len(digits), 1000)]
    return np.concatenate(batches).argmax(axis=1)


def evaluate_models(data: Path, models: Path, canvas: bool = False) -> dict:
    """Score fnn.npz and cnn.npz from `models` on t10k; print and write metrics.json there."""
    from livedigits.models.cnn import CNN

    images, labels = load_split(data, "t10k")
    digits = prepare(images)
    drawn = through_canvas(images) if canvas else None
    report = {"dataset": "MNIST t10k", "n_samples": len(labels), "models": {}}
    originals = {"fnn": FNN.load(models / "fnn.npz"), "cnn": CNN.load(models / "cnn.npz")}
    for name, model in originals.items():
        predicted = predict_all(model, digits)
        acc = float((predicted == labels).mean())
        report["models"][name] = {"accuracy": round(acc, 4), "confusion_matrix": confusion_matrix(labels, predicted)}
        print(f"{name}: t10k accuracy {acc:.4f} ({int((predicted == labels).sum())}/{len(labels)})", flush=True)
        if drawn is not None:
            canvas_acc = float((predict_all(model, drawn) == labels).mean())
            report["models"][name]["accuracy_through_canvas"] = round(canvas_acc, 4)
            print(f"{name}: t10k accuracy through the canvas path {canvas_acc:.4f}", flush=True)
    sliced = heldout.load(models)
    if sliced is not None:  # scored exactly as the learner scores the retrained models
        report["heldout"] = {"n_samples": len(sliced.labels), "accuracy": sliced.score(originals)}
        print(f"held-out slice ({len(sliced.labels)} of t10k): {report['heldout']['accuracy']}", flush=True)
    (models / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument(
        "--canvas", action="store_true", help="also score t10k drawn on a canvas, as a browser sends it"
    )
    args = parser.parse_args()
    evaluate_models(args.data, args.models, canvas=args.canvas)


if __name__ == "__main__":
    main()
