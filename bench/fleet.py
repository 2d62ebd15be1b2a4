"""A fleet on one bucket: one learner (the Procfile's `worker:`) and three ROLE=serve webs on moto's S3 server and
one PostgreSQL (started here, as the tests do).

    python bench/fleet.py [--trains 200] [--clients 8]

Trains from `--clients` clients spread over the three webs, then prints: how the trains were answered (learned
or stored-pending) with p50/p99; that every acknowledged drawing is in the bucket; that the learner applied
each entry once; how long after the last acknowledgement each web reported the final version (no traffic but
/healthz); whether the three give bit-identical predictions; CPU seconds of the webs and of the learner over
the run; predict p50/p99 on a quiet web right after 100 trains on the others; each process's resident memory and
whether it has TensorFlow loaded (its native library mapped). Loopback only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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

from livedigits.models.served import served_models  # noqa: E402
from livedigits.state.snapshot import SNAPSHOT_KEY, Snapshot  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trains", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    bodies = train_bodies(args.trains)
    probes = [{"image": body["image"]} for body in train_bodies(args.trains + 50)[-50:]]

    moto, postgres = MotoServer(), PostgresServer(Path(tempfile.mkdtemp(prefix="fleet-pg-")))
    bucket = moto.new_bucket()
    s3 = {"STORAGE_URL": f"s3://{bucket}/digits", "S3_ENDPOINT_URL": moto.url}
    s3["DATABASE_URL"] = postgres.create_database("digits")  # a fleet's facts: one PostgreSQL, as on Heroku
    learner = Server(s3, kind="worker")
    webs = [Server({**s3, "ROLE": "serve", "RATE_LIMITS": "off", "WEB_CONCURRENCY": "1"}) for _ in range(3)]
    try:
        for web in webs:
            web.wait_healthy()
        wait_for_learner(webs[0].url)  # the learner's TensorFlow import and first snapshot
        cpu_before = [p.cpu_seconds() for p in (*webs, learner)]

        def train(i: int) -> tuple[int, int, float, float]:
            started = time.perf_counter()
            status, body = request(f"{webs[i % 3].url}/api/train", bodies[i], timeout=60)
            assert status in (200, 202), body
            return status, int(body["sample_id"]), (time.perf_counter() - started) * 1000, time.monotonic()

        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(train, range(args.trains)))
        last_ack = max(at for *_, at in results)
        reached: dict[int, float] = {}
        while len(reached) < 3 and time.monotonic() - last_ack < 120:
            for i, web in enumerate(webs):
                if i not in reached and request(f"{web.url}/healthz")[1]["model_version"] >= args.trains:
                    reached[i] = time.monotonic() - last_ack
            time.sleep(0.02)
        cpu = [p.cpu_seconds() - before for p, before in zip((*webs, learner), cpu_before, strict=True)]
        snapshot = moto.client().get_object(Bucket=bucket, Key=f"digits/{SNAPSHOT_KEY}")["Body"].read()
        published = Snapshot.from_bytes(snapshot, served_models)
        keys = moto.keys(bucket, "digits/log/")
        answers = [[request(f"{web.url}/api/predict", probe)[1] for probe in probes[:10]] for web in webs]

        # A quiet web right after 100 trains on the others: does any request wait on a catch-up?
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(lambda i: request(f"{webs[i % 2].url}/api/train", bodies[i % len(bodies)]), range(100)))
        quiet = []
        for probe in probes:
            started = time.perf_counter()
            request(f"{webs[2].url}/api/predict", probe)
            quiet.append((time.perf_counter() - started) * 1000)
        memory = [(p.resident_mb(), p.loads_tensorflow()) for p in (*webs, learner)]
    finally:
        for process in (*webs, learner):
            process.kill()
        postgres.kill()
    moto.stop()

    learned = [ms for status, _, ms, _ in results if status == 200]
    pending = [ms for status, _, ms, _ in results if status == 202]
    print(f"{args.trains} trains from {args.clients} clients over 3 serve webs + 1 learner, moto S3 on loopback")
    print(f"  answered learned (200): {len(learned)}   {percentiles(learned) if learned else ''}")
    print(f"  answered stored, pending (202): {len(pending)}   {percentiles(pending) if pending else ''}")
    acknowledged = sorted(n for _, n, _, _ in results)
    in_bucket = sorted(int(k.rsplit("/", 1)[1][:10]) for k in keys)
    print(
        f"  every acknowledged drawing in the bucket: {set(acknowledged) <= set(in_bucket)} ({len(in_bucket)} entries)"
    )
    print(
        "  learner applied each entry once:"
        f" {published.learner['booted_at'] + published.learner['applied'] == published.version == len(in_bucket)}"
        f" (replayed {published.learner['booted_at']} at boot, then applied {published.learner['applied']};"
        f" version {published.version})"
    )
    print(f"  seconds after the last acknowledgement until each web served the final version: {reached}")
    print(f"  bit-identical predictions on the three webs: {answers[0] == answers[1] == answers[2]}")
    print(f"  CPU seconds over the trains: webs {[round(c, 1) for c in cpu[:3]]}, learner {cpu[3]:.1f}")
    for name, (rss, tensorflow) in zip(("web 1", "web 2", "web 3", "learner"), memory, strict=True):
        each = ", ".join(
            f"pid {pid}: {mb:.0f} MB{' TensorFlow' if tensorflow.get(pid) else ''}" for pid, mb in rss.items()
        )
        print(f"  resident memory, {name}: {each}")
    p50, p99 = np.percentile(quiet, [50, 99])
    print(f"  predict on the quiet web right after 100 trains elsewhere: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
