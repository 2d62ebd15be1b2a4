"""A crowd labelling at once: `--clients` clients, each POSTing /api/train as fast as it is answered, for
`--seconds`, against the Procfile's own commands. What the learner keeps up with.

    python bench/crowd.py [--topology all|fleet] [--clients 16] [--seconds 30] [--alone 60]

`all`: the Procfile's `web:` in the default role on a local folder (one process learns and serves).
`fleet`: the Procfile's `worker:` (the learner) and two ROLE=serve webs (WEB_CONCURRENCY=2) on moto's S3 server and
a PostgreSQL started here, as the tests do; clients alternate between the webs. Loopback only.

Prints: labels learned per second over the burst (the served model version's rise, divided by the burst's
length) and acknowledged per second; train p50 / p99; the share answered 202 (stored, not learned within
TRAIN_WAIT); how long after the burst's end every acknowledged label was in the served models; the groups the
learner formed (their sizes, from the store's records); then, in a fresh store, train p50 with one client alone.
Drawings are MNIST training digits rendered as the browser sends them.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support"), str(ROOT / "bench")]

from pgserver import PostgresServer  # noqa: E402
from s3server import CREDENTIALS, MotoServer  # noqa: E402
from serve import Client, percentiles, train_bodies  # noqa: E402
from server import Server, request  # noqa: E402


def start(topology: str, store: str, moto: MotoServer | None, postgres: PostgresServer | None) -> tuple:
    """(webs, other processes, the bucket), healthy, with the learner warm."""
    if topology == "all":
        web = Server({"STORAGE_URL": store, "RATE_LIMITS": "off", "WEB_CONCURRENCY": "2"})
        web.wait_healthy()
        return [web], [], None
    bucket = moto.new_bucket()
    env = {"STORAGE_URL": f"s3://{bucket}/digits", "S3_ENDPOINT_URL": moto.url,
           "DATABASE_URL": postgres.create_database(f"crowd{int(time.time() * 1000)}")}  # fmt: skip
    learner = Server(env, kind="worker")
    webs = [Server({**env, "ROLE": "serve", "RATE_LIMITS": "off", "WEB_CONCURRENCY": "2"}) for _ in range(2)]
    for web in webs:
        web.wait_healthy()
    deadline = time.monotonic() + 120
    while request(f"{webs[0].url}/healthz")[1]["learner"] == "stalled":  # TensorFlow's import, the first snapshot
        assert time.monotonic() < deadline, "the learner did not start"
        time.sleep(0.2)
    return webs, [learner], bucket


def cpu_seconds(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each named set of processes and all their descendants."""
    stats, children = {}, collections.defaultdict(list)
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if proc.name.isdigit():
            stats[int(proc.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            children[int(fields[1])].append(int(proc.name))
    totals = {}
    for name, pids in roots.items():
        seen, todo = set(), list(pids)
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.add(pid)
                todo += children[pid]
        totals[name] = sum(stats.get(pid, 0.0) for pid in seen)
    totals["clients (this bench)"] = time.process_time()
    return totals


def version(web: Server) -> int:
    return request(f"{web.url}/healthz")[1]["model_version"]


def burst(webs: list, bodies: list[dict], clients: int, seconds: float, roots: dict[str, list[int]]) -> dict:
    stop = threading.Event()
    results: list[tuple[int, float, int]] = []  # (status, ms, sample number)
    lock = threading.Lock()

    def client(i: int) -> None:
        connection = Client(webs[i % len(webs)].port)
        j = i
        while not stop.is_set():
            status, ms, body = connection.call_json("POST", "/api/train", bodies[j % len(bodies)])
            with lock:
                results.append((status, ms, int(body.get("sample_id", 0))))
            j += clients

    warm = [version(web) for web in webs]
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    cpu_before = cpu_seconds(roots)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    at_end = max(version(web) for web in webs)
    ended = time.monotonic()
    cpu = {name: value - cpu_before[name] for name, value in cpu_seconds(roots).items()}
    stop.set()
    for thread in threads:
        thread.join()
    acknowledged = max(n for status, _, n in results if status in (200, 202))
    while min(version(web) for web in webs) < acknowledged and time.monotonic() - ended < 120:
        time.sleep(0.02)
    caught_up = time.monotonic() - ended
    span = ended - started
    return {"results": results, "learned": at_end - max(warm), "span": span, "caught_up": caught_up, "cpu": cpu}


def group_sizes(store: str, moto: MotoServer | None, bucket: str | None) -> collections.Counter:
    """How many entries each recorded group holds (groups of one are not recorded)."""
    if bucket is None:
        names = os.listdir(Path(store) / "groups") if (Path(store) / "groups").exists() else []
    else:
        names = [key.rsplit("/", 1)[1] for key in moto.keys(bucket, "digits/groups/")]
    return collections.Counter(int(name[11:21]) - int(name[:10]) + 1 for name in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", choices=("all", "fleet"), default="all")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--alone", type=int, default=60, help="trains from one client, after the burst")
    args = parser.parse_args()
    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    bodies = train_bodies(2000)
    moto = MotoServer() if args.topology == "fleet" else None
    postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="crowd-pg-"))) if args.topology == "fleet" else None
    try:
        with tempfile.TemporaryDirectory() as store, tempfile.TemporaryDirectory() as quiet:
            webs, others, bucket = start(args.topology, store, moto, postgres)
            try:
                for body in bodies[:5]:  # the first steps trace TensorFlow's functions
                    request(f"{webs[0].url}/api/train", body, timeout=60)
                roots = {"webs": [web.process.pid for web in webs], "learner": [p.process.pid for p in others]}
                if moto and postgres:
                    roots |= {"moto": [moto.process.pid], "postgres": [postgres.process.pid]}
                run = burst(webs, bodies[5:], args.clients, args.seconds, roots)
                sizes = group_sizes(store, moto, bucket)
            finally:
                for process in (*webs, *others):
                    process.kill()
            webs, others, _ = start(args.topology, quiet, moto, postgres)
            try:
                client = Client(webs[0].port)
                for body in bodies[:40]:  # 32 drawings in the user memory: every step's batch at its full size
                    client.call("POST", "/api/train", body)
                alone = [client.call("POST", "/api/train", body)[1] for body in bodies[40 : 40 + args.alone]]
            finally:
                for process in (*webs, *others):
                    process.kill()
    finally:
        if postgres:
            postgres.kill()
        if moto:
            moto.stop()

    results = run["results"]
    statuses = collections.Counter(status for status, _, _ in results)
    ok = [ms for status, ms, _ in results if status in (200, 202)]
    p99 = float(np.percentile(ok, 99))
    learned_per_s = run["learned"] / run["span"]
    pending = statuses[202] / max(1, len(ok))
    print(f"{args.topology}: {args.clients} clients for {run['span']:.1f} s")
    print(f"  labels learned per second: {learned_per_s:.1f}   acknowledged: {len(ok) / run['span']:.1f}/s")
    print(f"  train {percentiles(ok)}   statuses {dict(statuses)}   202: {pending:.2%}")
    print(f"  every acknowledged label learned {run['caught_up']:.2f} s after the burst's end")
    total = sum(sizes.values())
    print(f"  groups of 2 or more: {total} (sizes {dict(sorted(sizes.items()))})")
    cpu = ", ".join(f"{name} {seconds / run['span']:.2f}" for name, seconds in run["cpu"].items() if seconds)
    print(f"  cores busy over the burst: {cpu} (of 2)")
    print(f"  one client alone: train {percentiles(alone)}")
    goals = {
        f">= 40 labels learned per second ({learned_per_s:.1f})": learned_per_s >= 40,
        f"train p99 <= 2 s ({p99:.0f} ms)": p99 <= 2000,
        f"<= 1% answered 202 ({pending:.2%})": pending <= 0.01,
        f"every label learned within 5 s of the end ({run['caught_up']:.2f} s)": run["caught_up"] <= 5,
    }
    for goal, met in goals.items():
        print(f"  {'met   ' if met else 'MISSED'} {goal}")


if __name__ == "__main__":
    main()
