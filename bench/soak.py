"""Soak: minutes of mixed traffic against the app started as Heroku starts it; no 5xx, bounded memory, nothing lost.

    python bench/soak.py [--seconds 150] [--clients 4] [--max-requests 20000] [--rss-growth-mb 300]
        [--gunicorn "--workers 2"]

Starts the Procfile's `web:` command (RATE_LIMITS=off, a fresh store in a temp folder) and sends it, from
`--clients` threads on 127.0.0.1, a seeded mix of predictions (/api/predict, /hook2, /estimate), trains
(/api/train, /hook3), collected drawings (/hook) and bad requests (malformed base64, SVG, truncated PNG,
decompression bomb, empty drawing, bad labels, broken JSON, wrong content type, 3 MB bodies), until
`--seconds` pass or `--max-requests` are sent. Then prints: requests per kind and status, latency per kind,
every 5xx (there must be none), the resident memory of each server process after warm-up and at the end
(the bound: no process grows by more than `--rss-growth-mb`), and whether every acknowledged drawing is in
the log (entries == acknowledged trains and collects). Exits 1 if any of the three checks fails.
The drawings are MNIST training digits rendered as the browser sends them.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from server import Server  # noqa: E402

from livedigits.offline.canvas import canvas_of, to_data_url  # noqa: E402
from livedigits.state.mnist import load_split  # noqa: E402

MNIST = ROOT.parent / "shared" / "data" / "mnist"
STORING = {"train", "hook3", "hook"}  # a 200 from these is one acknowledged log entry
# Relative frequencies: mostly predictions, a steady stream of trains, and a fair share of garbage.
MIX = {"predict": 40, "hook2": 8, "estimate": 7, "train": 17, "hook3": 5, "hook": 3, "bad": 20}


def encoded(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def bad_requests(one: str) -> list[tuple[str, str, bytes, str]]:
    """(name, path, body, content type) of requests that must be refused with a 4xx."""
    bomb = encoded(Image.new("1", (20000, 20000), 1))
    truncated = base64.b64encode(base64.b64decode(one.split(",", 1)[1])[:200]).decode()

    def as_json(path: str, body: object) -> tuple[str, bytes, str]:
        return path, json.dumps(body).encode(), "application/json"

    return [
        ("malformed base64", *as_json("/api/predict", {"image": "data:image/png;base64,@@@"})),
        ("svg", *as_json("/api/train", {"image": "data:image/svg+xml;base64,PHN2Zz4=", "label": 1})),
        ("truncated png", *as_json("/api/predict", {"image": truncated})),
        ("decompression bomb", *as_json("/api/train", {"image": bomb, "label": 3})),
        ("empty drawing", *as_json("/api/predict", {"image": to_data_url(Image.new("RGB", (280, 280), "white"))})),
        ("label 10", *as_json("/api/train", {"image": one, "label": 10})),
        ("label 'seven'", *as_json("/api/train", {"image": one, "label": "seven"})),
        ("broken json", "/api/train", b'{"image": "abc', "application/json"),
        ("deep json", "/api/predict", b"[" * 50_000, "application/json"),
        ("wrong content type", "/api/predict", b"image=abc", "application/x-www-form-urlencoded"),
        ("hook3 no digit", "/hook3", f"imageBase64={one}".encode(), "application/x-www-form-urlencoded"),
        ("estimate 3 pixels", *as_json("/estimate", {"input": [1, 2, 3]})),
        ("3 MB body", "/api/predict", b'{"image": "' + b"A" * (3 << 20) + b'"}', "application/json"),
    ]


class Soak:
    def __init__(self, port: int, drawings: list[tuple[str, int]], pixels: list[list[int]], seed: int):
        self.port = port
        self.drawings = drawings
        self.pixels = pixels  # /estimate's input: 784 ints, ink bright on dark
        self.bad = bad_requests(drawings[0][0])
        self.seed = seed
        self.counts: Counter[tuple[str, int]] = Counter()
        self.latency: defaultdict[str, list[float]] = defaultdict(list)
        self.server_errors: list[str] = []
        self.acknowledged = 0
        self.sent = 0
        self._lock = threading.Lock()

    def request(self, kind: str, rng: random.Random) -> tuple[str, bytes, str, str]:
        """(path, body, content type, kind as counted) for one request of `kind`."""
        image, label = self.drawings[rng.randrange(len(self.drawings))]
        form = "application/x-www-form-urlencoded"
        quoted = image.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        if kind == "predict":
            return "/api/predict", json.dumps({"image": image}).encode(), "application/json", kind
        if kind == "train":
            return "/api/train", json.dumps({"image": image, "label": label}).encode(), "application/json", kind
        if kind in ("hook", "hook3"):
            return f"/{kind}", f"imageBase64={quoted}&digit={label}".encode(), form, kind
        if kind == "hook2":
            return "/hook2", f"imageBase64={quoted}".encode(), form, kind
        if kind == "estimate":
            pixels = rng.choice(self.pixels)
            return "/estimate", json.dumps({"input": pixels}).encode(), "application/json", kind
        name, path, body, content_type = self.bad[rng.randrange(len(self.bad))]
        return path, body, content_type, f"bad: {name}"

    def client(self, number: int, deadline: float, max_requests: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        kinds, weights = list(MIX), list(MIX.values())
        while time.monotonic() < deadline:
            with self._lock:
                if self.sent >= max_requests:
                    return
                self.sent += 1
            path, body, content_type, kind = self.request(rng.choices(kinds, weights)[0], rng)
            started = time.perf_counter()
            status, answer = post(self.port, path, body, content_type)
            with self._lock:
                self.counts[(kind, status)] += 1
                self.latency[kind.split(":")[0]].append(time.perf_counter() - started)
                if status >= 500:
                    self.server_errors.append(f"{kind} {path}: {status} {answer[:200]!r}")
                if status == 200 and kind in STORING:
                    self.acknowledged += 1


def post(port: int, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    except (ConnectionError, http.client.HTTPException) as error:  # e.g. a reset after a 413 mid-upload
        return 0, str(error).encode()
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=150, help="how long to send traffic (default 150)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="stop after this many (default 20000)")
    parser.add_argument("--gunicorn", default="", help="flags after the Procfile's (default: the Procfile as is)")
    parser.add_argument("--rss-growth-mb", type=float, default=300, help="allowed growth per process (default 300)")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()

    images, labels = load_split(MNIST, "train")
    picks = np.random.default_rng(args.seed).choice(len(labels), 300, replace=False)
    drawings = [(to_data_url(canvas_of(images[i])), int(labels[i])) for i in picks]
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store"
        env = {"WEB_CONCURRENCY": "2", "STORAGE_URL": str(store), "RATE_LIMITS": "off"}  # as Heroku sets it
        server = Server(env, args.gunicorn)
        try:
            started = time.monotonic()
            server.wait_healthy()
            boot = time.monotonic() - started
            flags = args.gunicorn or "the Procfile's flags"
            print(f"server healthy after {boot:.1f} s ({flags}, process group {server.process.pid})")
            soak = Soak(server.port, drawings, [images[i].flatten().tolist() for i in picks[:50]], args.seed)
            warm = random.Random(0)
            for kind in ["predict"] * 8 + ["train"] * 4 + ["estimate"] * 4 + ["hook2"] * 4:  # reach every worker
                path, body, content_type, _ = soak.request(kind, warm)
                status, answer = post(server.port, path, body, content_type)
                assert status == 200, (kind, status, answer[:200])
                soak.acknowledged += kind in STORING
            rss_start = server.resident_mb()
            deadline = time.monotonic() + args.seconds
            threads = [
                threading.Thread(target=soak.client, args=(n, deadline, args.max_requests)) for n in range(args.clients)
            ]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - began
            rss_end = server.resident_mb()
        finally:
            server.kill(signal.SIGTERM)
        entries = sorted(int(p.stem) for p in (store / "log").glob("*.json"))
    return report(soak, elapsed, rss_start, rss_end, entries, args.rss_growth_mb)


def report(soak: Soak, elapsed: float, rss_start: dict, rss_end: dict, entries: list[int], rss_bound: float) -> int:
    total = sum(soak.counts.values())
    print(f"\n{total} requests in {elapsed:.0f} s ({total / elapsed:.1f}/s) from {len(MIX)} kinds:")
    print(f"  {'kind':28} {'status':>6} {'count':>6}")
    for (kind, status), count in sorted(soak.counts.items()):
        print(f"  {kind:28} {status:>6} {count:>6}")
    print("\nlatency (ms)      p50     p95     max")
    for kind, seconds in sorted(soak.latency.items()):
        ms = np.array(seconds) * 1000
        print(f"  {kind:12} {np.percentile(ms, 50):7.0f} {np.percentile(ms, 95):7.0f} {ms.max():7.0f}")
    print(f"\n5xx: {len(soak.server_errors)}")
    for line in soak.server_errors[:10]:
        print(f"  {line}")
    print(f"\nresident memory (MB), after warm-up -> end; bound: +{rss_bound:.0f} MB per process")
    growth = {}
    for pid in sorted(set(rss_start) | set(rss_end)):
        before, after = rss_start.get(pid), rss_end.get(pid)
        growth[pid] = (after or 0) - (before or 0)
        print(f"  pid {pid}: {before or 0:7.0f} -> {after or 0:7.0f} ({growth[pid]:+.0f})")
    contiguous = entries == list(range(1, len(entries) + 1))
    print(
        f"\nlog entries {len(entries)} (numbered 1..n: {contiguous}); acknowledged trains+collects {soak.acknowledged}"
    )
    failures = []
    if soak.server_errors:
        failures.append(f"{len(soak.server_errors)} responses were 5xx")
    if set(rss_start) != set(rss_end) or any(g > rss_bound for g in growth.values()):
        failures.append("a server process grew past the bound (or restarted)")
    if len(entries) != soak.acknowledged or not contiguous:
        failures.append("the log does not hold exactly the acknowledged drawings")
    print("\nOK: no 5xx, memory within bound, nothing lost" if not failures else "\nFAILED: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
