"""Rate limits across processes: the Procfile's own command refuses a bad limit store, and two gunicorn servers on
one Redis draw from one budget, count alone while Redis is down, and never hang on it."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from email.message import Message

import pytest
from drawings import stroke_canvas, to_data_url
from redisserver import RedisServer
from server import ROOT, Server, free_port, procfile_command

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
EMPTY_PIXELS = {"input": [0] * 784}  # answered 422 at once: cheap requests that still count


ADDRESSES = (f"198.18.{n // 256}.{n % 256}" for n in itertools.count(1))  # a fresh client for each budget a test spends


def next_address() -> str:
    return next(ADDRESSES)


def test_the_procfile_command_does_not_boot_on_a_bad_storage_url(tmp_path):
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "STORAGE_URL": str(tmp_path / "store"),
        "RATE_LIMIT_STORAGE": "mongodb://limits:hunter2@db.example/limits",
    }
    booted = subprocess.run(
        ["bash", "-c", f"exec {procfile_command()}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert booted.returncode != 0
    assert "ValueError: RATE_LIMIT_STORAGE (or, when unset, REDIS_URL): expected memory://" in booted.stderr
    assert "hunter2" not in booted.stderr + booted.stdout


def wait_until_shared(a: Server, b: Server, timeout: float = 90) -> None:
    """Until both processes count in Redis again: a fresh client's request to `a`, then one to `b`, leaves
    one fewer in `b`'s answer than in `a`'s. Each probe also gives a process the chance to ping Redis, which
    Flask-Limiter takes at most 1, 2, 4 ... 32 s after its last try."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = next_address()
        remaining = [call(server, "/estimate", EMPTY_PIXELS, client)[1]["X-RateLimit-Remaining"] for server in (a, b)]
        if int(remaining[1]) == int(remaining[0]) - 1:
            return
        time.sleep(0.5)
    raise AssertionError("the servers did not go back to counting in Redis")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> tuple[RedisServer, Server, Server]:
    """One Redis and two servers on one store, each allowing a client 5 predictions a minute."""
    folder = tmp_path_factory.mktemp("fleet")
    redis_server = RedisServer(folder / "redis")
    env = {
        "STORAGE_URL": str(folder / "store"),
        "RATE_LIMIT_STORAGE": redis_server.url,
        "RATE_LIMITS": "predict=5/minute",
        "TRUSTED_PROXIES": "1",  # the tests name each client in X-Forwarded-For
    }
    servers = [Server(env), Server(env)]
    try:
        for server in servers:
            server.wait_healthy()
        yield redis_server, *servers
    finally:
        for server in servers:
            server.kill()
        redis_server.kill()


def test_two_processes_draw_from_one_budget(fleet):
    _, a, b = fleet
    client = next_address()
    answers = [call(server, "/estimate", EMPTY_PIXELS, client) for server in (a, b) * 5]
    assert [status for status, _ in answers] == [422] * 5 + [429] * 5  # 5 in all, not 5 per process
    assert [int(headers["X-RateLimit-Remaining"]) for _, headers in answers[:5]] == [4, 3, 2, 1, 0]
    assert int(answers[-1][1]["Retry-After"]) > 0


def test_while_redis_is_down_each_process_limits_alone_then_they_share_again(fleet):
    redis_server, a, b = fleet
    redis_server.kill()
    try:
        client = next_address()
        outage = [call(server, "/api/predict", {"image": ONE}, client)[0] for server in (a, b) * 7]
    finally:
        redis_server.start()  # empty, on the same port: a Redis without persistence after a restart
    # Predictions go on, and each process allows the client its whole budget from its own memory.
    assert outage == [200] * 10 + [429] * 4
    wait_until_shared(a, b)
    client = next_address()
    assert [call(server, "/estimate", EMPTY_PIXELS, client)[0] for server in (a, b) * 4] == [422] * 5 + [429] * 3


def test_a_redis_that_stops_answering_holds_no_request(fleet):
    """SIGSTOP: connections open but nothing answers. Without socket timeouts redis-py waits forever to read;
    with them a request waits at most about a second before it is counted in the process's memory."""
    redis_server, a, b = fleet
    redis_server.freeze()
    try:
        client = next_address()
        answers = [call(server, "/api/predict", {"image": ONE}, client)[0] for server in (a, b) * 3]
    finally:
        redis_server.thaw()
    assert answers == [200] * 6
    wait_until_shared(a, b)


def call(server: Server, path: str, body: dict, client_address: str) -> tuple[int, Message]:
    """POST as `client_address` behind one trusted proxy; the timeout only guards against a hang."""
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Forwarded-For": client_address},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers
