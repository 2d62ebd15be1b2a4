"""What S3 costs the service: train latency on a bucket vs a local folder, and boot on a 1,000-entry bucket.

    python bench/s3.py [--requests 300] [--entries 1000] [--no-replay]

S3 is moto's server on loopback (its own process), so the numbers are the service's own overhead per
S3 round trip (three a train: the drawing, the create-only entry, a listing to catch up) without
a network's latency; on AWS from a Heroku dyno in the same region add ~10-30 ms per round trip.
Prints: the storage operations alone (p50/p99); POST /api/train p50/p99 through the Procfile's
gunicorn on a folder and on a bucket; the time to boot on the bucket once it holds `--entries`
entries (the Procfile's command to its first healthy answer, and the service alone in-process),
and, unless --no-replay, the worst case: the same log without checkpoints, replayed from the originals.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from s3server import CREDENTIALS, MotoServer  # noqa: E402
from serve import Client, percentiles  # noqa: E402
from server import Server  # noqa: E402

from livedigits.config import Config  # noqa: E402
from livedigits.exports.dataset import copier  # noqa: E402
from livedigits.learning.log_learner import LogLearner  # noqa: E402
from livedigits.offline.canvas import canvas_of, to_data_url  # noqa: E402
from livedigits.state.database import Database  # noqa: E402
from livedigits.state.journal import Journal  # noqa: E402
from livedigits.state.mnist import load_split  # noqa: E402
from livedigits.state.storage import LocalStorage, Storage, open_storage, open_store  # noqa: E402


def storage_operations(storage: Storage, n: int) -> dict[str, list[float]]:
    """Milliseconds per put (a 3 KB drawing), create-only write (an entry) and listing from a key."""
    drawing = np.random.default_rng(0).bytes(3000)
    timings: dict[str, list[float]] = {"put": [], "create": [], "list": []}
    for i in range(n):
        key = f"{i:010d}"
        for name, call, arguments in (
            ("put", storage.put, (f"bench/drawings/{key}.png", drawing)),
            ("create", storage.create, (f"bench/log/{key}.json", b'{"kind":"train"}')),
            ("list", storage.list, ("bench/log/", f"bench/log/{key}.json")),
        ):
            started = time.perf_counter()
            call(*arguments)
            timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def train_latencies(env: dict[str, str], bodies: list[dict], n: int) -> list[float]:
    """POST /api/train n times, one keep-alive client, through the Procfile's command; ms each."""
    server = Server({"WEB_CONCURRENCY": "1", "RATE_LIMITS": "off", **env})
    try:
        server.wait_healthy(timeout=180)
        client = Client(server.port)
        client.call("POST", "/api/predict", {"image": bodies[0]["image"]})  # traces the TF functions
        latencies = []
        for i in range(n):
            status, ms = client.call("POST", "/api/train", bodies[i % len(bodies)])
            assert status == 200, status
            latencies.append(ms)
        time.sleep(3)  # let the last checkpoint land (written in the background)
        return latencies
    finally:
        server.kill()


def boot_seconds(env: dict[str, str]) -> float:
    """The Procfile's command, from exec to the first healthy answer."""
    started = time.perf_counter()
    server = Server({"WEB_CONCURRENCY": "1", **env})
    try:
        server.wait_healthy(timeout=600)
        return time.perf_counter() - started
    finally:
        server.kill()


def open_seconds(config: Config) -> tuple[float, int]:
    """LogLearner.open alone (modules already imported): checkpoint, replay, catch-up."""
    started = time.perf_counter()
    db = Database(config.database)
    learner = LogLearner.open(config, Journal(open_store(config)), db)
    seconds = time.perf_counter() - started
    learner.close()
    db.close()
    return seconds, learner.version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="trains timed on each backend")
    parser.add_argument("--entries", type=int, default=1000, help="entries in the bucket for the boot timing")
    parser.add_argument("--no-replay", action="store_true", help="skip booting with no checkpoint (slow)")
    args = parser.parse_args()
    for name, value in CREDENTIALS.items():  # moto takes any; the servers and the service read the environment
        os.environ.setdefault(name, value)

    images, labels = load_split(ROOT.parent / "shared" / "data" / "mnist", "train")
    bodies = [{"image": to_data_url(canvas_of(images[i])), "label": int(labels[i])} for i in range(64)]
    moto = MotoServer()
    try:
        bucket = moto.new_bucket()
        s3_url = f"s3://{bucket}/digits"
        with tempfile.TemporaryDirectory() as folder:
            for name, storage in (
                ("local", LocalStorage(Path(folder) / "ops")),
                ("s3   ", open_storage(f"s3://{bucket}/ops", moto.url)),
            ):
                for operation, ms in storage_operations(storage, args.requests).items():
                    print(f"{name} {operation:6s}                       {percentiles(ms)}")

            local = train_latencies({"STORAGE_URL": str(Path(folder) / "store")}, bodies, args.requests)
            print(f"POST /api/train, local folder:     {percentiles(local)}")
        s3 = train_latencies({"STORAGE_URL": s3_url, "S3_ENDPOINT_URL": moto.url}, bodies, args.entries)
        print(f"POST /api/train, S3 (first {args.requests}):  {percentiles(s3[: args.requests])}")
        print(f"POST /api/train, S3 (all {args.entries}):   {percentiles(s3)}")

        checkpoints = open_storage(s3_url, moto.url).list("checkpoints/")
        print(f"bucket: {args.entries} entries, newest checkpoint {checkpoints[-1] if checkpoints else None}")
        boot = boot_seconds({"STORAGE_URL": s3_url, "S3_ENDPOINT_URL": moto.url})
        print(f"boot on the bucket, Procfile command to first healthy answer: {boot:.1f} s")
        seconds, version = open_seconds(Config(storage_url=s3_url, s3_endpoint_url=moto.url))
        print(f"boot on the bucket, LogLearner.open alone: {seconds:.2f} s (model_version {version})")

        if not args.no_replay:
            source, bare = open_storage(s3_url, moto.url), open_storage(f"s3://{bucket}/bare", moto.url)
            for prefix in ("drawings/", "log/"):  # the same log with no checkpoint at all
                copy = copier(source, bare, conflicts_matter=True)
                for key in source.list(prefix):
                    copy(key)
            bare_config = Config(storage_url=f"s3://{bucket}/bare", s3_endpoint_url=moto.url)
            seconds, version = open_seconds(bare_config)
            per_entry = seconds / max(version, 1) * 1000
            print(f"boot with no checkpoint (replays all): {seconds:.1f} s, version {version}, {per_entry:.0f} ms each")
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
