"""Where a request's time goes, stage by stage, in one process (no HTTP).

    python bench/profile.py [--n 200]

Prints the median and p90 of each stage of /api/predict and /api/train on canvas drawings of t10k
digits (rendered as the browser sends them): decoding, preprocessing, the "not a digit" verdict (shape
measures with scikit-image and a small numpy network), each model's forward pass,
shaping the answer as JSON, storing the drawing and the entry, augmentation, each model's step,
and publishing the new weights to the serving snapshot. The numbers say what to make faster.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from functions import augment, decode_drawing, decode_image, flatten, ink_from_grey, preprocess  # noqa: E402
from livedigits.config import Config  # noqa: E402
from livedigits.offline.canvas import canvas_of, to_data_url  # noqa: E402
from livedigits.state.mnist import load_split  # noqa: E402
from main import create_app  # noqa: E402


class Timer:
    def __init__(self):
        self.samples: dict[str, list[float]] = defaultdict(list)

    def time(self, name: str, call, *args, **kwargs):
        start = time.perf_counter()
        result = call(*args, **kwargs)
        self.samples[name].append((time.perf_counter() - start) * 1000)
        return result

    def report(self) -> None:
        for name, values in self.samples.items():
            print(f"  {name:<34} p50 {np.median(values):7.2f} ms   p90 {np.percentile(values, 90):7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="drawings per measurement")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    args = parser.parse_args()
    digits, labels = load_split(args.data, "t10k")
    urls = [to_data_url(canvas_of(digits[i])) for i in range(args.n)]

    with tempfile.TemporaryDirectory() as store:
        app = create_app(Config(storage_url=store, checkpoint_every=100_000, rate_limits="off"))
        service, in_process = app.extensions["digits"], app.extensions["learner"]
        in_process.wait_booted()  # the learner loads on its own thread
        client = app.test_client()
        for url in urls[:5]:  # trace the compiled functions before timing
            client.post("/api/predict", json={"image": url})
        for i in range(40):  # fill the user memory, so that every step has its steady-state batch shape
            client.post("/api/train", json={"image": urls[i], "label": int(labels[i])})

        timer = Timer()
        for url in urls:
            image = timer.time("predict: decode base64 + PNG", decode_image, url)
            grey = timer.time("predict: flatten to grey", flatten, image)
            ink = ink_from_grey(np.asarray(grey))
            digit = timer.time("predict: preprocess (crop, fit, centre)", preprocess, ink)
            batch = digit[None]
            snapshot = service.snapshot
            for name, model in (*service.original.items(), ("fnn", snapshot.fnn), ("cnn", snapshot.cnn)):
                timer.time(f"predict: {name} forward (numpy)", model.predict_proba, batch)
            if service.detector is not None:  # weighs the originals' opinions, computed above for the answer
                originals = [model.predict_proba(batch)[0] for model in service.original.values()]
                timer.time("predict: not-a-digit verdict", service.detector.is_digit, digit, *originals)
            result = timer.time("predict: service.predict (4 models)", service.predict, digit)
            timer.time("predict: JSON encoding", json.dumps, result)
            timer.time("predict: whole request (test client)", client.post, "/api/predict", json={"image": url})
        print(f"/api/predict stages (n={args.n}):")
        timer.report()

        timer = Timer()
        learner = in_process.learner.learner
        for i, url in enumerate(urls):
            digit, png = decode_drawing(url)
            number = 10_000 + i
            rng = np.random.default_rng(number)
            timer.time("train: augment (24 views)", augment, digit, rng)
            label = int(labels[i])
            images, y, users = timer.time("train: batch (augment + replay picks)", learner.batch, number, digit, label)
            recipe = learner.recipe
            fnn_size, cnn_size = 24 + users + recipe.fnn_mnist_replay, 24 + users + recipe.cnn_mnist_replay
            timer.time(f"train: FNN step ({fnn_size} images)", learner.fnn.train_step, images[:fnn_size], y[:fnn_size])
            timer.time(f"train: CNN step ({cnn_size} images)", learner.cnn.train_step, images[:cnn_size], y[:cnn_size])
            timer.time("train: store drawing (PNG)", service.journal.store_drawing, png)
            snapshot = timer.time("train: make the serving snapshot", in_process.learner.snapshot)
            timer.time("train: serialise the snapshot (serve role)", snapshot.to_bytes)
            timer.time(
                "train: whole request (test client)",
                client.post,
                "/api/train",
                json={"image": url, "label": int(labels[i])},
            )
        print(f"/api/train stages (n={args.n}; the steps here are extra, outside the log):")
        timer.report()


if __name__ == "__main__":
    main()
