"""What one more label costs when the store already holds N labelled drawings: N = 1k, 10k, 100k, 1M.

    python bench/scale.py [--sizes 1000,10000,100000,1000000] [--labels 100] [--database sqlite|postgres]

Each N runs in a fresh process (so resident memory is that N's alone), on a local folder and the chosen database
(SQLite beside the store, or a PostgreSQL that this bench starts like the test suite does):
- Setup, quickly and through the project's own code: N log entries (`journal.Entry`, pointing at 20 real drawings
  stored with `Journal.store_drawing`), written as files without an fsync each; their facts inserted into the
  database with the learner's own statements (`Transaction.insert_drawing`, `Figures.count`, the history's
  `save_point`), with seeded random scores; checkpoints of the shipped models written by the learner's own code
  at N and every CHECKPOINT_EVERY over the 1,200 entries before it (caches: an exact exclusion replays from them).
  No SGD step is taken for the N entries: what is measured is what comes after them.
- Then the `all` role boots on it, and `--labels` labels go through POST /api/train. Per label: the process's CPU
  ms (the learner's thread, TensorFlow's pools and the request, all in one `all` process), bytes written and read
  in the store, bytes written to the database (SQLite: its write-ahead log; PostgreSQL: pg_stat_wal) and its
  growth, and the bytes a serve process would download (the snapshot, once per publish). Also p50 of GET
  /api/stats and of /api/review's first page, the process's RSS, and the time to exclude a drawing 10, 1,000
  and 100,000 entries back (when the store has that many).
- The learner scores the held-out slice every Config.heldout_every_versions versions, as it does in service: heldout_ms
  is that scoring's CPU per label, amortised (it is in cpu_ms too); `--no-heldout` turns it off, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from livedigits.config import Config  # noqa: E402

DRAWINGS = 20
BATCH = 10_000


def build(store: Path, db_url: str, n: int, checkpoint_every: int) -> None:
    """A store and a database as if `n` drawings had been labelled and learned (see the module's docstring)."""
    from functions import decode_drawing
    from livedigits.config import Config
    from livedigits.learning.log_learner import LogLearner
    from livedigits.learning.recipe import load_replay
    from livedigits.models.cnn import CNN
    from livedigits.models.fnn import FNN
    from livedigits.offline.canvas import canvas_of, to_data_url
    from livedigits.state.database import Database
    from livedigits.state.figures import NAMES, Figures, save_point
    from livedigits.state.journal import Entry, Journal, entry_key
    from livedigits.state.mnist import load_split
    from livedigits.state.storage import LocalStorage

    storage = LocalStorage(store)
    journal = Journal(storage)
    images, labels = load_split(ROOT.parent / "shared" / "data" / "mnist", "train")
    keys = [journal.store_drawing(decode_drawing(to_data_url(canvas_of(images[i])))[1]) for i in range(DRAWINGS)]
    rng = np.random.default_rng(n)
    (store / "log").mkdir(parents=True, exist_ok=True)
    db = Database(db_url)
    figures, window = Figures(), deque(maxlen=Config.recent_window)
    created = time.time() - n
    for start in range(1, n + 1, BATCH):
        with db.transaction() as tx:
            for number in range(start, min(start + BATCH, n + 1)):
                i = number % DRAWINGS
                label = int(labels[i])
                entry = Entry("train", label, keys[i], "api/train", created + number)
                (store / entry_key(number)).write_bytes(entry.to_bytes())
                right = rng.random(4) < 0.9  # each model right nine times in ten
                predicted = {name: label if ok else (label + 1) % 10 for name, ok in zip(NAMES, right, strict=True)}
                probability = {name: float(p) for name, p in zip(NAMES, rng.random(4), strict=True)}
                row = {"number": number, "kind": "train", "label": label, "source": "api/train",
                       "created": entry.created, "excluded": False, "unlearned": False, "scored": True,
                       "predicted": predicted, "probability": probability}  # fmt: skip
                tx.insert_drawing(row)
                figures.count(row, 1)
                window.appendleft(row)
                if figures.wants_point(number):
                    save_point(tx, figures, number, list(window))
    config = Config(storage_url=str(store), database_url=db_url, checkpoint_every=checkpoint_every)
    models = config.models_dir
    fnn, cnn = FNN.load(models / "fnn.npz"), CNN.load(models / "cnn.npz")
    replay = load_replay(models / "replay.npz")
    learner = LogLearner(config, journal, db, fnn, cnn, replay)  # the shipped models, unopened
    for i in range(min(learner.learner.recipe.user_memory, n)):  # a full replay memory, as after 1,000 labels
        learner.learner.memory.append((images[i % len(images)], int(labels[i % len(labels)])))
    for version in range(max(n - 1200, 0) // checkpoint_every * checkpoint_every, n + 1, checkpoint_every):
        if version:
            learner.version = version
            learner._schedule_checkpoint()
    learner.close()
    with db.transaction() as tx:
        tx.set_meta("fingerprint", learner.fingerprint)
        tx.set_meta("store", journal.store_id())
        tx.set_meta("figures", figures.to_json())
        tx.set_meta("version", n)
    db.close()


class Counting:
    """Bytes through a storage's calls, by kind."""

    def __init__(self, storage):
        self.written = self.read = 0
        for name in ("put", "create"):
            original = getattr(storage, name)
            setattr(storage, name, self._writer(original))
        original_get = storage.get

        def get(key):
            data = original_get(key)
            self.read += len(data)
            return data

        storage.get = get

    def _writer(self, original):
        def write(key, data):
            self.written += len(data)
            return original(key, data)

        return write


def database_bytes(db) -> int:
    """Bytes the database has written so far: the WAL's size (SQLite, emptied first) or pg_stat_wal's count."""
    if db.is_postgres:
        return int(db.read("SELECT wal_bytes FROM pg_stat_wal")[0][0])
    wal = Path(str(db.path) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def checkpoint_wal(db) -> None:
    """Empty SQLite's write-ahead log into the database file, so that its size counts what comes next."""
    if not db.is_postgres:
        with sqlite3.connect(db.path) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def database_size(db) -> int:
    if db.is_postgres:
        return int(db.read("SELECT pg_database_size(current_database())")[0][0])
    checkpoint_wal(db)
    return db.path.stat().st_size


def one(n: int, labels: int, db_url: str | None, checkpoint_every: int, score_heldout: bool = True) -> dict:
    """Build a store of `n`, then measure (in this process)."""
    from livedigits.learning.log_learner import LogLearner

    work = Path(tempfile.mkdtemp(prefix=f"scale-{n}-"))
    store = work / "store"
    db_url = db_url or f"sqlite:///{work / 'store.sqlite3'}"
    started = time.monotonic()
    build(store, db_url, n, checkpoint_every)
    built = time.monotonic() - started

    from livedigits.config import Config
    from livedigits.offline.canvas import canvas_of, to_data_url
    from livedigits.state.mnist import load_split
    from main import close_service, create_app

    snapshots = [0]
    make_snapshot = LogLearner.snapshot

    def counted_snapshot(self):
        snapshots[0] += 1
        return make_snapshot(self)

    LogLearner.snapshot = counted_snapshot
    scorings = [0, 0.0]  # held-out scorings while measuring, and their CPU seconds (nothing else runs meanwhile)
    score = LogLearner.score_heldout

    def timed_score(self):
        began = time.process_time()
        score(self)
        scorings[0] += 1
        scorings[1] += time.process_time() - began

    LogLearner.score_heldout = timed_score
    never = {} if score_heldout else {"heldout_every_versions": 10**9, "heldout_idle_seconds": 1e9}
    config = Config(storage_url=str(store), database_url=db_url, checkpoint_every=checkpoint_every,
                    rate_limits="off", admin_token="t", sync_interval=0.0, **never)  # fmt: skip
    booting = time.monotonic()
    app = create_app(config)
    app.extensions["learner"].wait_booted()  # the app answers at once; its learner restores (and replays) meanwhile
    boot = time.monotonic() - booting
    client = app.test_client()
    server, learner = app.extensions["digits"], app.extensions["learner"].learner
    assert learner.version == n and learner.booted_at == n, (learner.version, learner.booted_at)
    counted = Counting(server.journal.storage)
    images, truth = load_split(ROOT.parent / "shared" / "data" / "mnist", "t10k")
    bodies = [{"image": to_data_url(canvas_of(images[i])), "label": int(truth[i])} for i in range(labels + 5)]
    for body in bodies[:5]:  # warm: the first steps trace TensorFlow's functions
        assert client.post("/api/train", json=body).status_code == 200
    learner.flush_checkpoints()
    checkpoint_wal(learner.db)
    size_before = database_size(learner.db)
    counted.written, counted.read, snapshots[0] = 0, 0, 0
    scorings[:] = [0, 0.0]
    db_before = database_bytes(learner.db)
    cpu = time.process_time()  # every thread's: the learner's, TensorFlow's pools, the requests'
    wall = []
    for body in bodies[5:]:
        began = time.perf_counter()
        assert client.post("/api/train", json=body).status_code == 200
        wall.append((time.perf_counter() - began) * 1000)
    learner.flush_checkpoints()
    cpu = time.process_time() - cpu
    db_written = database_bytes(learner.db) - db_before
    db_grown = database_size(learner.db) - size_before
    snapshot_bytes = len(server.snapshot.to_bytes())

    def p50(path: str) -> float:
        times = []
        for _ in range(200):
            began = time.perf_counter()
            assert client.get(path, headers={"Authorization": "Bearer t"}).status_code == 200
            times.append((time.perf_counter() - began) * 1000)
        return float(np.percentile(times, 50))

    result = {
        "n": n,
        "build_s": round(built, 1),
        "boot_s": round(boot, 2),
        "cpu_ms": round(cpu / labels * 1000, 1),
        "heldout_scorings": scorings[0],
        "heldout_ms": round(scorings[1] / labels * 1000, 1),
        "train_p50_ms": round(float(np.percentile(wall, 50)), 1),
        "store_written_kb": round(counted.written / labels / 1024, 1),
        "store_read_kb": round(counted.read / labels / 1024, 1),
        "db_written_kb": round(db_written / labels / 1024, 1),
        "db_grown_kb": round(db_grown / labels / 1024, 2),
        "download_kb": round(snapshot_bytes * snapshots[0] / labels / 1024, 1),
        "snapshot_kb": round(snapshot_bytes / 1024, 1),
        "stats_p50_ms": round(p50("/api/stats"), 2),
        "review_p50_ms": round(p50("/api/review"), 2),
        "review_label_p50_ms": round(p50("/api/review?label=3"), 2),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    for back in (10, 1000, 100_000):
        target = learner.version + 1 - back  # the exclusion is the next entry: `back` entries after the drawing
        if target > 0:
            began = time.monotonic()
            admin = {"Authorization": "Bearer t"}
            body = client.post("/api/admin/exclude", json={"sample_ids": [target]}, headers=admin).get_json()
            while server.version < body["model_version"]:  # "pending": a replay longer than TRAIN_WAIT
                time.sleep(0.1)
            result[f"exclude_{back}_back_s"] = round(time.monotonic() - began, 2)
            assert body["status"] in ("applied", "pending"), body
    close_service(app)
    subprocess.run(["rm", "-rf", str(work)], check=False)
    return result


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--no-heldout", action="store_true", help="the learner never scores the held-out slice")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.labels, args.database_url, args.checkpoint_every, not args.no_heldout)))
        return
    postgres = None
    if args.database == "postgres":
        from pgserver import PostgresServer

        postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="scale-pg-")))
    rows = []
    try:
        for n in map(int, args.sizes.split(",")):
            command = [sys.executable, __file__, "--one", str(n), "--labels", str(args.labels)]
            command += ["--checkpoint-every", str(args.checkpoint_every)] + ["--no-heldout"] * args.no_heldout
            if postgres:
                command += ["--database-url", postgres.create_database(f"scale{n}")]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"N={n} failed")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if postgres:
            postgres.kill()
    keys = list(rows[0])
    scoring = "off" if args.no_heldout else f"every {Config.heldout_every_versions} versions"
    print(
        f"\n{args.database}, {args.labels} labels after N, CHECKPOINT_EVERY={args.checkpoint_every}, held-out {scoring}"
    )
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    threading.excepthook = lambda hook: None  # daemon threads at exit
    main()
