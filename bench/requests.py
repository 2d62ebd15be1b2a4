"""What a fleet costs in S3 requests and bytes: one learner (the Procfile's `worker:`) and one ROLE=serve web with
two workers, on moto's S3 server and a PostgreSQL that this bench starts (as the tests do), all on loopback.

    python bench/requests.py [--idle 60] [--labels 400]

Prints: S3 requests per second while the fleet is idle (by method), S3 requests per label and train p50/p99 with
one client labelling one drawing after another, and the bucket at 200 and at `--labels` entries: the snapshot's
and the newest checkpoint's sizes, and how much the bucket grew per label in between, checkpoints included. moto
logs every request it answers; the counts are those lines.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support"), str(ROOT / "bench")]

from pgserver import PostgresServer  # noqa: E402
from s3server import CREDENTIALS, MotoServer  # noqa: E402
from serve import percentiles, train_bodies  # noqa: E402
from server import (  # noqa: E402
    Server,
    request,
    wait_for_learner,
)

REQUEST = re.compile(r'"(?:\x1b\[[0-9;]*m)?(GET|PUT|HEAD|POST|DELETE) (\S+)')  # moto colours 4xx lines


def requests_since(log: Path, offset: int) -> tuple[collections.Counter, int]:
    """S3 requests moto logged after byte `offset`, by method and folder; and the new offset."""
    data = log.read_bytes()
    counts: collections.Counter = collections.Counter()
    for method, path in REQUEST.findall(data[offset:].decode(errors="replace")):
        parts = path.split("?")[0].split("/")
        folder = parts[3] if len(parts) > 3 else "(bucket)"  # /bucket/digits/<folder>/...
        counts[f"{method} {folder}"] += 1
    return counts, len(data)


def bucket_sizes(moto: MotoServer, bucket: str) -> dict:
    objects = []
    for page in moto.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        objects += page.get("Contents", [])
    checkpoints = sorted((o for o in objects if "/checkpoints/" in o["Key"]), key=lambda o: o["Key"])
    snapshot = [o["Size"] for o in objects if o["Key"].endswith("snapshots/latest.npz")]
    return {
        "total": sum(o["Size"] for o in objects),
        "snapshot": snapshot[0] if snapshot else 0,
        "checkpoint": (checkpoints[-1]["Key"].rsplit("/", 1)[1], checkpoints[-1]["Size"]) if checkpoints else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--labels", type=int, default=400)
    args = parser.parse_args()
    os.environ.update({name: os.environ.get(name, value) for name, value in CREDENTIALS.items()})
    bodies = train_bodies(args.labels)
    folder = Path(tempfile.mkdtemp(prefix="requests-"))
    log = folder / "moto.log"
    moto, postgres = MotoServer(log), PostgresServer(folder / "pg")
    bucket = moto.new_bucket()
    env = {"STORAGE_URL": f"s3://{bucket}/digits", "S3_ENDPOINT_URL": moto.url, "RATE_LIMITS": "off",
           "DATABASE_URL": postgres.create_database("digits")}  # fmt: skip
    learner = Server(env, kind="worker")
    web = Server({**env, "ROLE": "serve", "WEB_CONCURRENCY": "2"})
    try:
        web.wait_healthy()
        wait_for_learner(web.url)
        for body in bodies[:20]:  # warm: TensorFlow traces its functions on the first steps
            request(f"{web.url}/api/train", body, timeout=60)
        time.sleep(2)
        _, offset = requests_since(log, 0)
        time.sleep(args.idle)
        idle, offset = requests_since(log, offset)
        print(f"idle {args.idle:.0f} s: {sum(idle.values()) / args.idle:.3f} S3 requests/s  {dict(idle)}")

        timings, statuses, per_label, sizes = [], collections.Counter(), collections.Counter(), {}
        for i, body in enumerate(bodies[20:], start=21):
            started = time.perf_counter()
            status, _ = request(f"{web.url}/api/train", body, timeout=60)
            timings.append((time.perf_counter() - started) * 1000)
            statuses[status] += 1
            if i in (200, args.labels):  # entry numbers: checkpoints 200 and 400 (CHECKPOINT_EVERY=200)
                time.sleep(3)  # the checkpoint, written in the background
                counts, offset = requests_since(log, offset)
                per_label += counts
                sizes[i] = bucket_sizes(moto, bucket)
                _, offset = requests_since(log, offset)  # the bench's own listing is not the service's
        counts, offset = requests_since(log, offset)
        per_label += counts
        n = len(bodies) - 20
        print(f"{n} labels, one client: train {percentiles(timings)}, statuses {dict(statuses)}")
        print(f"  S3 requests per label: {sum(per_label.values()) / n:.2f}  {dict(per_label)}")
        for i, size in sizes.items():
            print(f"  at {i} entries: snapshot {size['snapshot']:,} B, newest checkpoint {size['checkpoint']}, "
                  f"bucket {size['total']:,} B")  # fmt: skip
        if len(sizes) == 2:
            (a, first), (b, last) = sizes.items()
            print(
                f"  bucket growth per label from {a} to {b}: {(last['total'] - first['total']) / (b - a) / 1024:.1f} KB"
            )
        print(f"  train p50 {np.percentile(timings, 50):.0f} ms")
    finally:
        web.kill()
        learner.kill()
        postgres.kill()
        moto.stop()


if __name__ == "__main__":
    main()
