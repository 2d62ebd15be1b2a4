"""Serve the app exactly as Heroku does (the Procfile's `web:` command) and measure it, in both roles side by side.

    python bench/serve.py [--role both|serve|all] [--requests 400] [--gunicorn "--workers 2 --threads 4"]

The serve role runs the Procfile's `worker:` (the learner) beside a ROLE=serve web on one folder; the `all` role
is the one-process default; WEB_CONCURRENCY=2 for both (the `all` role keeps one worker anyway). Prints for each:
boot time to the first healthy answer; /healthz p50 (the floor); /api/predict p50/p99 alone and with 8 concurrent
clients, and throughput; /api/predict/batch of 64 drawings with one and two clients, in drawings/s; /api/train
p50/p99; predict p99 while training traffic runs alongside; resident memory of all the server's processes; then
the goals. Drawings are t10k digits rendered as the browser sends them (PNG data URLs of a 280x280 canvas).
Loopback only, bounded in requests.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from server import Server  # noqa: E402

from livedigits.offline.canvas import page_data_url  # noqa: E402
from livedigits.state.mnist import load_split  # noqa: E402


class Client:
    """One keep-alive HTTP connection, as a browser tab holds."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, float]:
        status, ms, _ = self.call_json(method, path, body)
        return status, ms

    def call_json(self, method: str, path: str, body: dict | None = None) -> tuple[int, float, dict]:
        """(status, milliseconds, the JSON answer or {})."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload else {}
        started = time.perf_counter()
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        ms = (time.perf_counter() - started) * 1000
        try:
            answer = json.loads(data) if response.getheader("Content-Type", "").startswith("application/json") else {}
        except ValueError:
            answer = {}
        return response.status, ms, answer


def train_bodies(n: int) -> list[dict]:
    """/api/train bodies of the first `n` MNIST training digits, drawn as a browser sends them (the fleet benches)."""
    images, labels = load_split(ROOT.parent / "shared" / "data" / "mnist", "train")
    return [{"image": page_data_url(images[i]), "label": int(labels[i])} for i in range(n)]


def wait_quiet(*servers: Server, timeout: float = 120) -> None:
    """Until the servers' processes use under 5% of a core for a second: an `all` web answers while its learner
    still imports TensorFlow and traces its models, which would be measured as the web's own time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(s.cpu_seconds() for s in servers)
        time.sleep(1)
        if sum(s.cpu_seconds() for s in servers) - before < 0.05:
            return


def percentiles(latencies: list[float]) -> str:
    p50, p99 = np.percentile(latencies, [50, 99])
    return f"p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   (n={len(latencies)})"


def sequential(port: int, method: str, path: str, bodies: list[dict | None], n: int) -> list[float]:
    client = Client(port)
    latencies = []
    for i in range(n):
        status, ms = client.call(method, path, bodies[i % len(bodies)])
        assert status == 200, (path, status)
        latencies.append(ms)
    return latencies


def concurrent(port: int, path: str, bodies: list[dict], n_clients: int, per_client: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def run(offset: int) -> None:
        mine = sequential(port, "POST", path, bodies[offset:] + bodies[:offset], per_client)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(i * 7,)) for i in range(n_clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, len(latencies) / (time.perf_counter() - started)


def batches(port: int, bodies: list[dict], clients: int, each: int) -> float:
    """Drawings per second through /api/predict/batch, 64 a request, from `clients` clients at once."""
    batch = [{"images": [b["image"] for b in bodies[i : i + 64]]} for i in range(0, len(bodies) - 63, 64)]
    _, requests_per_second = concurrent(port, "/api/predict/batch", batch, clients, each)
    return requests_per_second * 64


def measure(role: str, args: argparse.Namespace, predict_bodies: list[dict], train_bodies: list[dict]) -> dict:
    """One role's figures, printed as they come; the ones the goals weigh returned."""
    with tempfile.TemporaryDirectory() as store:
        # The learner first (the worker dyno is up before the webs are scaled), so boot times the web alone.
        learner = Server({"STORAGE_URL": store}, kind="worker") if role == "serve" else None
        time.sleep(8 if learner else 0)  # TensorFlow's import and the first snapshot
        # WEB_CONCURRENCY=2 as Heroku sets it on the smaller dynos (the `all` role keeps one worker anyway).
        env = {"WEB_CONCURRENCY": "2", "STORAGE_URL": store, "RATE_LIMITS": "off", "ROLE": role}
        started = time.perf_counter()
        server = Server(env, args.gunicorn)
        try:
            server.wait_healthy()
            boot = time.perf_counter() - started
            print(f"\nROLE={role}: boot to first healthy answer: {boot:.2f} s (WEB_CONCURRENCY=2)")
            wait_quiet(server, *filter(None, [learner]))
            port = server.port
            concurrent(port, "/api/predict", predict_bodies, 8, 5)  # warm every worker and thread
            floor = sequential(port, "GET", "/healthz", [None], args.requests)
            print(f"GET /healthz (floor):          {percentiles(floor)}")
            alone = sequential(port, "POST", "/api/predict", predict_bodies, args.requests)
            print(f"POST /api/predict, 1 client:   {percentiles(alone)}")
            served, clients = server.cpu_seconds(), time.process_time()
            latencies, throughput_8 = concurrent(port, "/api/predict", predict_bodies, 8, args.requests // 4)
            print(f"POST /api/predict, 8 clients:  {percentiles(latencies)}   {throughput_8:.0f} predictions/s")
            # The bound: this machine's cores over the CPU a prediction costs (the server's, and the clients').
            served = (server.cpu_seconds() - served) / len(latencies) * 1000
            clients = (time.process_time() - clients) / len(latencies) * 1000
            ceiling = (os.cpu_count() or 1) * 1000 / (served + clients)
            print(f"  CPU a prediction: server {served:.2f} ms + clients {clients:.2f} ms: at most {ceiling:.0f}/s")
            batch_1 = batches(port, predict_bodies, 1, 10)
            batch_2 = batches(port, predict_bodies, 2, 10)
            print(f"POST /api/predict/batch of 64: {batch_1:.0f} drawings/s (1 client), {batch_2:.0f} (2 clients)")
            # Steady state: once 32 drawings are in the user memory, every step has the same batch shape.
            sequential(port, "POST", "/api/train", train_bodies, 40)
            trains = sequential(port, "POST", "/api/train", train_bodies, args.requests // 4)
            print(f"POST /api/train, 1 client:     {percentiles(trains)}")

            stop = threading.Event()

            def train_traffic() -> None:
                client = Client(port)
                i = 0
                while not stop.is_set():
                    client.call("POST", "/api/train", train_bodies[i % len(train_bodies)])
                    i += 1

            trainer = threading.Thread(target=train_traffic)
            trainer.start()
            try:
                latencies, throughput = concurrent(port, "/api/predict", predict_bodies, 4, args.requests // 4)
            finally:
                stop.set()
                trainer.join()
            print(f"POST /api/predict, 4 clients while training: {percentiles(latencies)}   {throughput:.0f}/s")
            done = 5 * 8 + 2 * args.requests + (args.requests // 4) * 8
            if done < 2000:
                concurrent(port, "/api/predict", predict_bodies, 8, (2000 - done) // 8 + 1)
            sizes = server.resident_mb()
            print(f"RSS after 2,000+ predictions, each web process: {sorted(round(m) for m in sizes.values())} MB")
            if learner:
                print(f"resident memory of the learner: {sum(learner.resident_mb().values()):.0f} MB")
            workers = sorted(sizes.values())[1:] if len(sizes) > 1 else list(sizes.values())  # less the master
            return {
                "floor": float(np.median(floor)),
                "predict": float(np.median(alone)),
                "throughput": throughput_8,
                "ceiling": ceiling,
                "batch": max(batch_1, batch_2),
                "worker_mb": max(workers),
                "train": float(np.median(trains)),
                "total_mb": sum(sizes.values()),
            }
        finally:
            server.kill()
            if learner:
                learner.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("both", "serve", "all"), default="both")
    parser.add_argument("--gunicorn", default="", help="flags after the Procfile's, to compare worker models")
    parser.add_argument("--requests", type=int, default=400, help="requests per latency measurement")
    args = parser.parse_args()

    images, labels = load_split(ROOT.parent / "shared" / "data" / "mnist", "t10k")
    drawings = [page_data_url(image) for image in images[:128]]
    predict_bodies = [{"image": d} for d in drawings]
    train_bodies = [{"image": d, "label": int(y)} for d, y in zip(drawings, labels[:128], strict=True)][:64]
    roles = ("serve", "all") if args.role == "both" else (args.role,)
    figures = {role: measure(role, args, predict_bodies, train_bodies) for role in roles}

    print("\ngoals:")
    goals = {}
    for role, f in figures.items():
        ratio = f["predict"] / f["floor"]
        goals[f"{role}: predict p50 <= 3x the /healthz p50 ({ratio:.1f}x)"] = ratio <= 3
        least = 700 if role == "serve" else 300
        measured = f"{f['throughput']:.0f}; the CPU a prediction costs allows {f['ceiling']:.0f}"
        goals[f"{role}: >= {least} predictions/s with 8 clients ({measured})"] = f["throughput"] >= least
        goals[f"{role}: a batch of 64 at >= 1,000 drawings/s ({f['batch']:.0f})"] = f["batch"] >= 1000
    if "serve" in figures:
        most = figures["serve"]["worker_mb"]
        goals[f"serve: each worker's RSS <= 150 MB ({most:.0f})"] = most <= 150
    if "all" in figures:
        f = figures["all"]
        goals[f"all: train p50 <= 60 ms ({f['train']:.0f})"] = f["train"] <= 60
        goals[f"all: total RSS <= 900 MB ({f['total_mb']:.0f})"] = f["total_mb"] <= 900
    for goal, met in goals.items():
        print(f"  {'met   ' if met else 'MISSED'} {goal}")


if __name__ == "__main__":
    main()
