"""Where a prediction's milliseconds go over HTTP, in both roles, stage by stage.

    python bench/profile.py [--requests 400] [--roles serve,all]

Runs the Procfile's `web:` command (WEB_CONCURRENCY=2; the `serve` role beside the Procfile's learner) with its own
gunicorn settings plus stage timers in each worker (bench/profiling/). Drawings are t10k digits as the browser sends
them. For one client, then eight, prints each stage's own time per request (median and mean; its CPU and what it
waited: for the GIL, a lock, a decode slot), what the client measured, and the sum of the stages against it. What the
worker does not see (gunicorn's reading and writing, the loopback, the client) is the client's time less the app's.
Then the web's share of a train in the serve role (decoding, storing, telling the learner, answering) the same way.
The timers cost a few microseconds each: the stages' sum is a little above a run without them (bench/serve.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support"), str(ROOT / "bench")]

from serve import Client, train_bodies, wait_quiet  # noqa: E402
from server import Server  # noqa: E402

from livedigits.offline.canvas import page_data_url  # noqa: E402
from livedigits.state.mnist import load_split  # noqa: E402

PROFILED = "--config bench/profiling/gunicorn_profiled.py"
OUTSIDE = "gunicorn, HTTP, loopback, client (client's time less the app's)"


def profile_of(client: Client, reset: bool = False) -> dict:
    """The stages the worker behind `client`'s connection recorded since the last reset."""
    client.connection.request("GET", "/__profile?reset=1" if reset else "/__profile")
    return json.loads(client.connection.getresponse().read())


def table(title: str, records: list[dict], client_ms: list[float]) -> None:
    """Each stage's own milliseconds per request (p50 and mean, CPU and waiting of the mean), and their sums against
    what the client measured."""
    stages = sorted({name for record in records for name in record})
    wall = {s: np.array([r.get(s, (0.0, 0.0))[0] * 1000 for r in records]) for s in stages}
    cpu = {s: np.array([r.get(s, (0.0, 0.0))[1] * 1000 for r in records]) for s in stages}
    app = np.sum([wall[s] for s in stages], axis=0)
    outside_mean = float(np.mean(client_ms) - app.mean())
    print(f"\n{title}: client p50 {np.median(client_ms):.2f} ms, mean {np.mean(client_ms):.2f} ms (n={len(client_ms)})")
    print(f"  {'stage':<62} {'p50':>6} {'mean':>6} {'cpu':>6} {'waited':>6}")
    for stage in sorted(stages, key=lambda s: -wall[s].mean()):
        w, c = wall[stage], cpu[stage]
        print(f"  {stage:<62} {np.median(w):6.3f} {w.mean():6.3f} {c.mean():6.3f} {w.mean() - c.mean():6.3f}")
    if len(client_ms) == len(records):  # one client: each request's own outside time
        outside = np.array(client_ms) - app
        print(f"  {OUTSIDE:<62} {np.median(outside):6.3f} {outside.mean():6.3f}")
        p50_sum = sum(float(np.median(wall[s])) for s in stages) + float(np.median(outside))
    else:
        print(f"  {OUTSIDE:<62} {'':>6} {outside_mean:6.3f}")
        p50_sum = float("nan")
    total, mean, p50 = app.mean() + outside_mean, np.mean(client_ms), np.median(client_ms)
    print(f"  sum of the stages' means {total:.2f} ms = the client's mean {mean:.2f} ms;")
    print(f"  sum of their p50s {p50_sum:.2f} ms against the client's p50 {p50:.2f} ms")


def one_client(port: int, method: str, path: str, bodies: list, n: int) -> tuple[list[dict], list[float]]:
    client = Client(port)
    profile_of(client, reset=True)
    times = []
    for i in range(n):
        status, ms = client.call(method, path, bodies[i % len(bodies)])
        assert status in (200, 202), (path, status)
        times.append(ms)
    return profile_of(client)["records"].get(path, []), times


def many_clients(port: int, path: str, bodies: list, clients: int, each: int) -> tuple[list[dict], list[float], float]:
    """`clients` keep-alive connections at once; the records of every worker they reached."""
    connections = [Client(port) for _ in range(clients)]
    times: list[float] = []
    by_pid: dict[int, list[dict]] = {}
    lock, ready = threading.Lock(), threading.Barrier(clients)

    def run(index: int) -> None:
        client = connections[index]
        profile_of(client, reset=True)
        ready.wait()
        mine = [client.call("POST", path, bodies[(index * 7 + i) % len(bodies)])[1] for i in range(each)]
        profile = profile_of(client)  # at once: an idle connection is closed after gunicorn's keep-alive
        with lock:
            times.extend(mine)
            records = profile["records"].get(path, [])
            if len(records) > len(by_pid.get(profile["pid"], [])):  # the worker's last client sees all of its own
                by_pid[profile["pid"]] = records

    workers = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    rate = len(times) / (time.perf_counter() - started)
    return [record for records in by_pid.values() for record in records], times, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement")
    parser.add_argument("--roles", default="serve,all")
    args = parser.parse_args()
    images, _ = load_split(ROOT.parent / "shared" / "data" / "mnist", "t10k")
    predicts = [{"image": page_data_url(image)} for image in images[:200]]

    for role in args.roles.split(","):
        with tempfile.TemporaryDirectory() as store:
            learner = Server({"STORAGE_URL": store}, kind="worker") if role == "serve" else None
            time.sleep(8 if learner else 0)
            env = {"WEB_CONCURRENCY": "2", "STORAGE_URL": store, "RATE_LIMITS": "off", "ROLE": role}
            server = Server(env, PROFILED)
            try:
                server.wait_healthy()
                wait_quiet(server, *filter(None, [learner]))
                port = server.port
                many_clients(port, "/api/predict", predicts, 8, 10)  # warm every worker and thread
                records, times = one_client(port, "GET", "/healthz", [None], args.requests)
                table(f"ROLE={role} GET /healthz, 1 client", records, times)
                records, times = one_client(port, "POST", "/api/predict", predicts, args.requests)
                table(f"ROLE={role} POST /api/predict, 1 client", records, times)
                records, times, rate = many_clients(port, "/api/predict", predicts, 8, args.requests // 4)
                table(f"ROLE={role} POST /api/predict, 8 clients ({rate:.0f}/s)", records, times)
                if role == "serve":
                    trains = train_bodies(40 + args.requests // 4)
                    one_client(port, "POST", "/api/train", trains[:40], 40)  # the learner's memory fills up
                    records, times = one_client(port, "POST", "/api/train", trains[40:], args.requests // 4)
                    table("ROLE=serve POST /api/train, 1 client: the web's share", records, times)
            finally:
                server.kill()
                if learner:
                    learner.kill()


if __name__ == "__main__":
    main()
