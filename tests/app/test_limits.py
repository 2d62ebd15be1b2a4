"""Where rate limits count: the configuration of their store, a real Redis (Debian's redis-server on loopback) that
goes away under concurrent requests, and Heroku's TLS. Across gunicorn processes:
tests/processes/test_limits_fleet.py."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter

import pytest
from conftest import create_app
from drawings import stroke_canvas, to_data_url
from flask import Flask
from redisserver import RedisServer

from livedigits.config import Config
from livedigits.web.limits import limited
from livedigits.web.security import install_security

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
EMPTY_PIXELS = {"input": [0] * 784}  # answered 422 at once: cheap requests that still count
ADDRESSES = (f"198.18.{n // 256}.{n % 256}" for n in itertools.count(1))  # a fresh client for each budget a test spends


def next_address() -> str:
    return next(ADDRESSES)


def client_at(app: Flask, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


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


# --- one budget for a fleet ------------------------------------------------------------------------


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
