"""Connections a formation holds, against the plans' limits; and what sharing one connection costs a request.

    python bench/connections.py [--seconds 6] [--skip-formations] [--skip-latency]

Formations: 1, 3 and 6 web dynos (ROLE=serve, WEB_CONCURRENCY=2), a learner and a standby, on PostgreSQL with
the app's role allowed each plan's connections and Redis with its maxclients (essential-0 + mini: 20 and 20;
standard-0 + premium-0: 120 and 40). For each: what livedigits.formation counts at the worst moment of a restart,
and what the servers report (pg_stat_activity, CLIENT LIST) while labels and predictions flow: per process
and in total, the peak. A formation over a plan refuses: its processes hold no connection and say why.

Latency: four threads of one process asking the database (the pointer a server follows, a review page), at 50
questions a second each and back to back, through one shared connection, through five (the pool before issue 33),
and through a new connection each time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from fleet import Formation, Plans, Traffic, Watcher  # noqa: E402
from pgserver import PostgresServer  # noqa: E402
from server import request  # noqa: E402

from livedigits import formation as counting  # noqa: E402
from livedigits.config import Config  # noqa: E402
from livedigits.state.database import Database, DatabaseError  # noqa: E402

PLANS = {"essential-0 + mini": (20, 20), "standard-0 + premium-0": (120, 40)}


def formations(seconds: float) -> None:
    print("| plans (PG, Redis) | web dynos x workers | counted: PG / Redis at a restart | fits | measured peak PG "
          "(per serve worker, per learner) | measured peak Redis | 5xx (refused: the trains' 503) | "
          "refused by the servers |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for plan, (pg_limit, redis_limit) in PLANS.items():
        for webs in (1, 3, 6):
            config = Config(database_url="postgresql://x/y", role="serve", web_dynos=webs, web_concurrency=2,
                            worker_dynos=2, rate_limit_storage="redis://x", pg_connection_limit=pg_limit,
                            redis_connection_limit=redis_limit)  # fmt: skip
            count = counting.Formation.of(config)
            fits = counting.postgres_refusal(config) is None and counting.redis_refusal(config) is None
            with tempfile.TemporaryDirectory() as folder:
                plans = Plans(Path(folder), pg_limit, redis_limit)
                try:
                    with Watcher(plans) as watcher:
                        fleet = Formation(plans, Path(folder) / "store", webs, 2, 2)
                        try:
                            with Traffic(fleet) as traffic:
                                time.sleep(seconds)
                            health = request(f"{fleet.webs[0].url}/healthz")[1]["database"]["state"]
                        finally:
                            fleet.close()
                    refused = plans.refused()
                finally:
                    plans.close()
            serve = max((n for k, n in watcher.peak_by_process.items() if k.startswith("digits-web")), default=0)
            learner = max((n for k, n in watcher.peak_by_process.items() if k.startswith("digits-learner")), default=0)
            errors = sum(n for status, n in traffic.statuses.items() if status >= 500)
            print(f"| {plan} ({pg_limit}, {redis_limit}) | {webs} x 2 | {count.postgres()} / {count.redis()} | "
                  f"{'yes' if fits else 'no: ' + health} | {watcher.peak_postgres} ({serve}, {learner}) | "
                  f"{watcher.peak_redis} (1 is the watcher) | {errors} | {refused} |", flush=True)  # fmt: skip


def latency(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        postgres = PostgresServer(Path(folder) / "pg")
        url = postgres.create_database("bench")
        try:
            print("\n| connections of the process | load (4 threads) | p50 ms | p99 ms | questions/s | busy errors |")
            print("|---|---|---|---|---|---|")
            for label, size, idle in (("1 shared (now)", 1, 30.0), ("5 pooled (before)", 5, 30.0),
                                      ("a new one each time", 1, -1.0)):  # fmt: skip
                for load, pause in (("50/s each", 0.02), ("back to back", 0.0)):
                    print(f"| {label} | {load} | " + ask_for(url, size, idle, seconds, pause) + " |", flush=True)
        finally:
            postgres.kill()


def ask_for(url: str, size: int, idle: float, seconds: float, pause: float) -> str:
    """Four threads asking what a server asks (the pointer, then a review page), each `pause` s apart."""
    db = Database(url, size, idle_seconds=idle)
    times, errors, stop = [], [], threading.Event()

    def ask() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            try:
                db.value("pointer")
                db.review(None, None, False, 0, 20)
                times.append(time.perf_counter() - began)
            except DatabaseError as error:
                errors.append(error)
            stop.wait(pause)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    db.close()
    ms = np.array(times) * 1000
    return f"{np.percentile(ms, 50):.2f} | {np.percentile(ms, 99):.2f} | {2 * len(ms) / seconds:.0f} | {len(errors)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--skip-formations", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    if not args.skip_formations:
        formations(args.seconds)
    if not args.skip_latency:
        latency(args.seconds)


if __name__ == "__main__":
    main()
