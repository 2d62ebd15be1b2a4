"""What counting rate limits in Redis costs a request, and what a Redis outage does to requests, measured on
servers started with the Procfile's command.

    python bench/rate_limits.py [--requests 400] [--frozen-seconds 40]

Prints: POST /estimate p50/p99 with counts in memory and in Redis (an empty drawing, answered 422 at once, so
the limit check is a large part of the work; the default limits, ten clients in turn). Then, with two servers
on one Redis: how many requests waited, and how long, while Redis was killed and while it was frozen (SIGSTOP:
connections open, nothing answers); and how long after Redis answers again the servers share one budget.
Loopback only: a Redis on another machine adds its network round trips to each limited request.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from redisserver import RedisServer  # noqa: E402
from server import Server  # noqa: E402

EMPTY_PIXELS = json.dumps({"input": [0] * 784}).encode()
ADDRESSES = (f"198.18.{n // 256}.{n % 256}" for n in itertools.count(1))


class Client:
    """One keep-alive connection; each request names its client in X-Forwarded-For (one trusted proxy)."""

    def __init__(self, server: Server):
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)

    def estimate(self, address: str) -> tuple[int, int, float]:
        """(status, X-RateLimit-Remaining, ms)."""
        headers = {"Content-Type": "application/json", "X-Forwarded-For": address}
        try:
            started = time.perf_counter()
            self.connection.request("POST", "/estimate", body=EMPTY_PIXELS, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.connection.close()  # gunicorn closes a connection idle for 2 s: open another, as a browser does
            started = time.perf_counter()
            self.connection.request("POST", "/estimate", body=EMPTY_PIXELS, headers=headers)
            response = self.connection.getresponse()
        response.read()
        ms = (time.perf_counter() - started) * 1000
        assert response.status in (422, 429), response.status
        return response.status, int(response.headers["X-RateLimit-Remaining"]), ms


def percentiles(latencies: list[float]) -> str:
    p50, p99 = np.percentile(latencies, [50, 99])
    return f"p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   (n={len(latencies)})"


def sequential(client: Client, n: int) -> list[float]:
    """Ten clients in turn: each keeps under the default 60 a minute, as most clients do."""
    return [client.estimate(f"198.51.100.{i % 10}")[2] for i in range(n)]


def seconds_until_shared(a: Client, b: Client, timeout: float = 120) -> float:
    """A fresh client's request to `a`, then to `b`: one budget when `b` reports one fewer remaining."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        address = next(ADDRESSES)
        remaining_a = a.estimate(address)[1]
        if b.estimate(address)[1] == remaining_a - 1:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError("the servers did not go back to counting in Redis")


def redis_round_trips(redis_server: RedisServer) -> int:
    """Lua scripts Redis has run: the limiter's only calls while it is up (each one round trip)."""
    return int(redis_server.client().info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def outage_latencies(a: Client, b: Client, seconds: float) -> list[float]:
    """Requests alternating between the servers, four a second, for `seconds`."""
    latencies = []
    deadline = time.monotonic() + seconds
    for client in itertools.cycle((a, b)):
        if time.monotonic() > deadline:
            return latencies
        latencies.append(client.estimate(next(ADDRESSES))[2])
        time.sleep(0.25)
    raise AssertionError("unreachable")


def waits(latencies: list[float], over_ms: float = 100) -> str:
    slow = [ms for ms in latencies if ms > over_ms]
    first = " and ".join(f"{ms:.0f}" for ms in latencies[:2])
    return (
        f"first request on each server {first} ms; {len(slow)} of {len(latencies)} requests over {over_ms:.0f} ms"
        f" (slowest {max(latencies):.0f} ms); p50 {np.median(latencies):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per latency measurement")
    parser.add_argument("--frozen-seconds", type=float, default=40, help="how long Redis stays frozen")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        redis_server = RedisServer(Path(folder) / "redis")
        env = {"STORAGE_URL": f"{folder}/store", "TRUSTED_PROXIES": "1"}  # the default limits
        servers = [Server(env), Server({**env, "RATE_LIMIT_STORAGE": redis_server.url})]
        servers.append(Server({**env, "RATE_LIMIT_STORAGE": redis_server.url}))
        try:
            for server in servers:
                server.wait_healthy()
            in_memory, a, b = (Client(server) for server in servers)
            for client in (in_memory, a, b):
                sequential(client, 50)  # warm up
            print(f"POST /estimate, counts in memory: {percentiles(sequential(in_memory, args.requests))}")
            round_trips = redis_round_trips(redis_server)
            print(f"POST /estimate, counts in Redis:  {percentiles(sequential(a, args.requests))}")
            per_request = (redis_round_trips(redis_server) - round_trips) / args.requests
            print(f"  round trips to Redis per request: {per_request:.1f}")
            print(f"two servers on one Redis share a budget: {seconds_until_shared(a, b) < 1}")

            redis_server.kill()
            killed = outage_latencies(a, b, 5)
            redis_server.start()
            print(f"Redis killed (refuses connections), 5 s: {waits(killed)}")
            print(f"  one budget again {seconds_until_shared(a, b):.1f} s after it came back (empty)")

            redis_server.freeze()
            frozen = outage_latencies(a, b, args.frozen_seconds)
            redis_server.thaw()
            print(f"Redis frozen (answers nothing), {args.frozen_seconds:.0f} s: {waits(frozen)}")
            print(f"  one budget again {seconds_until_shared(a, b):.1f} s after it answered again")
        finally:
            for server in servers:
                server.kill()
            redis_server.kill()


if __name__ == "__main__":
    main()
