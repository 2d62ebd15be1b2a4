"""Rate limits that hold across processes: counts in a real Redis (Debian's redis-server on loopback), shared by
two servers started with the Procfile's command, and what the limits do while Redis is gone."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from email.message import Message

import pytest
from conftest import create_app
from drawings import stroke_canvas, to_data_url
from flask import Flask
from redisserver import RedisServer
from server import ROOT, Server, free_port, procfile_command

from livedigits.config import Config
from livedigits.web.limits import limited
from livedigits.web.security import install_security

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
EMPTY_PIXELS = {"input": [0] * 784}  # answered 422 at once: cheap requests that still count
ADDRESSES = (f"198.18.{n // 256}.{n % 256}" for n in itertools.count(1))  # a fresh client for each budget a test spends


def next_address() -> str:
    return next(ADDRESSES)


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


def client_at(app: Flask, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


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


# --- configuration ------------------------------------------------------------------------------


def test_storage_comes_from_rate_limit_storage_else_redis_url(monkeypatch):
    for name in ("RATE_LIMIT_STORAGE", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    assert Config.from_env().rate_limit_storage == Config().rate_limit_storage == "memory://"
    # Heroku's Key-Value Store: TLS with a self-signed certificate, used without verifying it.
    for redis_url, used in (
        ("redis://:pw@kv.example:6379", "redis://:pw@kv.example:6379"),
        ("rediss://:pw@kv.example:6380", "rediss://:pw@kv.example:6380?ssl_cert_reqs=none"),
        (
            "rediss://:pw@kv.example:6380/2?socket_timeout=1",
            "rediss://:pw@kv.example:6380/2?socket_timeout=1&ssl_cert_reqs=none",
        ),
        ("rediss://:pw@kv.example:6380?ssl_cert_reqs=required", "rediss://:pw@kv.example:6380?ssl_cert_reqs=required"),
    ):
        monkeypatch.setenv("REDIS_URL", redis_url)
        assert Config.from_env().rate_limit_storage == used
    assert "pw@" not in repr(Config.from_env())  # the URL holds a password
    # RATE_LIMIT_STORAGE wins, and is used as given: rediss:// there verifies the certificate.
    for storage in ("memory://", "rediss://:pw@other.example:6380", "redis://127.0.0.1:6379/1"):
        monkeypatch.setenv("RATE_LIMIT_STORAGE", storage)
        assert Config.from_env().rate_limit_storage == storage


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://limits:hunter2@db.example/limits",
        "memcached://cache.example:11211",
        "localhost:6379",
        "REDIS://kv.example:6379",
        "redis://",
        "redis://:hunter2@kv.example:99999",
        "redis://:hunter2@kv.example:port",
        "rediss://:hunter2@kv.example:0",
    ],
)
def test_a_bad_storage_url_is_refused_without_showing_its_password(url):
    with pytest.raises(ValueError, match=r"RATE_LIMIT_STORAGE .*expected memory:// or redis://") as error:
        Config(rate_limit_storage=url)
    assert "hunter2" not in str(error.value)


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


# --- one budget for a fleet ------------------------------------------------------------------------


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


def test_concurrent_requests_when_redis_goes_are_all_answered(redis_server, store):
    """Requests in flight on other threads when one of them finds Redis gone are answered, never 500."""
    app = create_app(
        Config(storage_url=str(store), rate_limits="predict=1000/minute", rate_limit_storage=redis_server.url)
    )
    assert client_at(app, "198.51.100.50").post("/estimate", json=EMPTY_PIXELS).status_code == 422
    redis_server.freeze()
    statuses = Counter()
    start = threading.Barrier(8)

    def client(n: int) -> None:
        browser = client_at(app, f"198.51.100.{60 + n}")
        start.wait()
        for _ in range(5):
            statuses[browser.post("/estimate", json=EMPTY_PIXELS).status_code] += 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(timeout=max(0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "requests hang while Redis does not answer"
    assert statuses == {422: 40}


# --- TLS, as Heroku's Key-Value Store serves it --------------------------------------------------------


@pytest.fixture
def tls_redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis", tls=True)
    yield server
    server.kill()


def limits_alone(config: Config) -> Flask:
    """An app with the service's security and one limited route, without models: these tests are about where
    the counts live, and booting the models for each would only cost time."""
    app = Flask(__name__)

    @app.post("/estimate")
    @limited("predict")
    def estimate() -> tuple[str, int]:
        return "", 422

    install_security(app, config)
    return app


def test_heroku_redis_url_with_a_self_signed_certificate_shares_the_budget(tls_redis_server, monkeypatch):
    monkeypatch.delenv("RATE_LIMIT_STORAGE", raising=False)
    monkeypatch.setenv("REDIS_URL", tls_redis_server.url)
    monkeypatch.setenv("RATE_LIMITS", "predict=3/minute")
    clients = [client_at(limits_alone(Config.from_env()), "198.51.100.70") for _ in range(2)]
    statuses = [browser.post("/estimate", json=EMPTY_PIXELS).status_code for browser in clients * 3]
    assert statuses == [422] * 3 + [429] * 3
    assert tls_redis_server.client().keys("LIMITS:*")  # counted in Redis, over TLS


def test_rate_limit_storage_over_tls_verifies_the_certificate(tls_redis_server):
    """rediss:// in RATE_LIMIT_STORAGE is verified: an unknown certificate leaves each process counting alone
    (and logging why); naming the CA in the URL shares the budget."""

    def statuses(storage: str, address: str) -> list[int]:
        config = Config(rate_limits="predict=3/minute", rate_limit_storage=storage)
        clients = [client_at(limits_alone(config), address) for _ in range(2)]
        return [browser.post("/estimate", json=EMPTY_PIXELS).status_code for browser in clients * 4]

    url = tls_redis_server.url
    assert statuses(url, "198.51.100.80") == [422] * 6 + [429] * 2
    assert statuses(f"{url}?ssl_ca_certs={tls_redis_server.ca_file}", "198.51.100.81") == [422] * 3 + [429] * 5
