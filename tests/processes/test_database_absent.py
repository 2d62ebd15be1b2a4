"""A database that does not answer never stops a web: the Procfile's processes boot without it, serve predictions
from the snapshot in the bucket, answer 503 where the database is needed, say so on /healthz, and heal without a
restart when it comes back; the learner waits rather than exit. And a formation over its plan refuses to hold
connections, with one clear line, rather than crash into Heroku's restart loop."""

from __future__ import annotations

import signal
import time

import psycopg
import pytest
from drawings import stroke_canvas, to_data_url
from pgserver import PostgresServer
from server import Server, request

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))


@pytest.fixture
def postgres(tmp_path):
    server = PostgresServer(tmp_path / "pg")
    yield server
    server.kill()


def until(check, timeout: float = 60, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return result


def test_a_web_and_a_learner_boot_without_the_database_and_heal_when_it_answers(postgres, tmp_path):
    url = postgres.create_database("digits")
    env = {"ROLE": "serve", "STORAGE_URL": str(tmp_path / "store"), "DATABASE_URL": url}
    learner, web = Server(env, kind="worker"), Server(env)
    try:  # a snapshot of version 2 in the bucket
        web.wait_healthy()
        for label in (1, 1):
            assert request(f"{web.url}/api/train", {"image": ONE, "label": label})[0] in (200, 202)
        until(lambda: request(f"{web.url}/healthz")[1]["model_version"] == 2, what="never learned")
    finally:
        for process in (web, learner):
            process.kill(signal.SIGTERM)
    postgres.stop()  # the port refuses from now on
    web, learner = Server(env), Server(env, kind="worker")
    try:
        health = web.wait_healthy()
        assert health["database"]["state"] == "unavailable" and health["model_version"] == 2
        status, answer = request(f"{web.url}/api/predict", {"image": ONE})
        assert status == 200 and answer["model_version"] == 2  # the bucket's snapshot, found without its pointer
        status, answer = request(f"{web.url}/api/train", {"image": ONE, "label": 1})
        assert (status, answer["error"]) == (503, "database_unavailable")
        time.sleep(3)
        assert learner.process.poll() is None, learner.output()[-2000:]  # waiting, not exiting
        postgres.start()
        until(lambda: request(f"{web.url}/healthz")[1]["database"] == {"state": "ok"}, what="the web never healed")
        status, answer = until(lambda: ok(request(f"{web.url}/api/train", {"image": ONE, "label": 1})))
        until(lambda: request(f"{web.url}/healthz")[1]["model_version"] == 3, what="the learner never came back")
        assert web.process.poll() is None and learner.process.poll() is None
        assert "Worker failed to boot" not in web.output()
    finally:
        web.kill()
        learner.kill()


def ok(response: tuple[int, dict]) -> tuple[int, dict] | None:
    return response if response[0] in (200, 202) else None


def test_a_formation_over_its_plan_holds_no_connection_and_says_why(postgres, tmp_path):
    url = postgres.create_database("digits")
    env = {"ROLE": "serve", "STORAGE_URL": str(tmp_path / "store"), "DATABASE_URL": url, "WEB_DYNOS": "6",
           "WEB_CONCURRENCY": "2", "WORKER_DYNOS": "2", "PG_CONNECTION_LIMIT": "20"}  # fmt: skip
    web, learner = Server(env), Server(env, kind="worker")
    try:
        health = web.wait_healthy()
        assert health["database"]["state"] == "refused"
        assert "needs 32 PostgreSQL connections, PG_CONNECTION_LIMIT is 20" in health["database"]["error"]
        assert request(f"{web.url}/api/predict", {"image": ONE})[0] == 200
        assert request(f"{web.url}/api/train", {"image": ONE, "label": 1})[0] == 503
        until(lambda: "formation over its database plan" in learner.output(), what="the learner said nothing")
        time.sleep(2)
        assert learner.process.poll() is None  # no crash loop: it waits for SIGTERM
        with psycopg.connect(postgres.url, autocommit=True) as watch:
            (held,) = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'digits' AND pid <> pg_backend_pid()"
            ).fetchone()
        assert held == 0
        assert "formation over its database plan" in web.output()
        learner.process.send_signal(signal.SIGTERM)
        assert learner.process.wait(timeout=25) == 0
    finally:
        web.kill()
        learner.kill()
