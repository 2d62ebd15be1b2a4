"""How long a fleet goes without a learner when its learner dies, by how many entries it learned since its last
checkpoint: one serve web and two workers (the Procfile's `worker:`, the second a standby waiting for the lease) on
moto's S3 server and one PostgreSQL (started here, as the tests do).

    python bench/failover.py [--since 10,100,199] [--checkpoint-every 200]

For each k: a fresh fleet with both workers, k trains through the web (below CHECKPOINT_EVERY: no numbered
checkpoint, only the standby checkpoint the leader overwrites every KEEP_EVERY entries while a standby waits), then
the leading worker is stopped: by kill -9 (a crash: no hand-over) and, in a second fleet, by SIGTERM (a restart: it
writes a checkpoint first).
Printed: seconds from the stop until the web serves the next label (one train, sent at the stop), and where the
standby started from.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support"), str(ROOT / "bench")]

from pgserver import PostgresServer  # noqa: E402
from s3server import CREDENTIALS, MotoServer  # noqa: E402
from serve import train_bodies  # noqa: E402
from server import (  # noqa: E402
    Server,
    request,
    wait_for_learner,
)


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.05)


def one(moto: MotoServer, postgres: PostgresServer, bodies: list[dict], k: int, every: int, how: signal.Signals):
    fleet = {
        "STORAGE_URL": f"s3://{moto.new_bucket()}/digits",
        "S3_ENDPOINT_URL": moto.url,
        "DATABASE_URL": postgres.create_database(f"f{time.time_ns()}"),
        "CHECKPOINT_EVERY": str(every),
    }
    leader = Server(fleet, kind="worker")
    web = Server({**fleet, "ROLE": "serve", "RATE_LIMITS": "off", "TRAIN_WAIT": "0.1"})
    standby = None
    try:
        web.wait_healthy()
        wait_for_learner(web.url)
        standby = Server(fleet, kind="worker")  # worker=2 from the start: the leader knows one waits
        wait_for(lambda: "waiting as a standby" in standby.output(), 120)
        for body in bodies[:k]:
            request(f"{web.url}/api/train", body)
        wait_for(lambda: request(f"{web.url}/healthz")[1]["model_version"] == k, 120)
        stopped = time.monotonic()
        os.killpg(leader.process.pid, how)
        request(f"{web.url}/api/train", bodies[k])  # stored at once; learned by whoever holds the lease
        wait_for(lambda: request(f"{web.url}/healthz")[1]["model_version"] == k + 1, 120)
        seconds = time.monotonic() - stopped
        said = standby.output()
        restored = next((line.split("restored ")[1] for line in said.splitlines() if "restored checkpoint" in line), "")
        return seconds, restored or "no checkpoint: replayed from the originals"
    finally:
        for process in (leader, web, standby):
            if process is not None:
                process.kill(signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--since", default="10,100,199")
    parser.add_argument("--checkpoint-every", type=int, default=200)
    args = parser.parse_args()
    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    sizes = [int(k) for k in args.since.split(",")]
    bodies = train_bodies(max(sizes) + 1)
    moto, postgres = MotoServer(), PostgresServer(Path(tempfile.mkdtemp(prefix="failover-pg-")))
    try:
        print(f"CHECKPOINT_EVERY={args.checkpoint_every}; seconds from the leader's stop to the next label learned")
        for k in sizes:
            for how in (signal.SIGKILL, signal.SIGTERM):
                seconds, restored = one(moto, postgres, bodies, k, args.checkpoint_every, how)
                print(f"  {k:4d} entries learned, {how.name:7s}: {seconds:5.1f} s   (standby {restored})", flush=True)
    finally:
        moto.stop()
        postgres.kill()


if __name__ == "__main__":
    main()
