"""A dyno serves whatever the log's length. An `all` web on a store with 3,000 entries after its last checkpoint
answers at once and says it is catching up while its learner replays them; a train meanwhile is stored and answered
202; SIGTERM in the middle of the replay ends the process within 25 s with a checkpoint that agrees with the facts;
and the next boot continues from there, to every entry learned exactly once. From the Procfile's own command."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import urllib.error
from collections import Counter
from urllib.parse import urlparse

from backlog import write_backlog
from labelled import ONE
from server import Server, request

from livedigits.config import Config

ENTRIES = 3000
GROUP = 16  # a crowd's log: the learner replays its recorded groups as groups (~4x faster than one by one)
DEADLINE = 25.0  # seconds: a request's contract (the router gives up at 30), and SIGTERM to exit (Heroku kills at 30)


def first_answer(web: Server, started: float) -> tuple[float, dict]:
    """Seconds from `started` (the process's start) to its first answer on /healthz, and that answer. As the router
    does, a request waits once the port is bound: answered within DEADLINE, or this fails."""
    while True:
        assert web.process.poll() is None, web.output()[-3000:]
        try:
            health = request(f"{web.url}/healthz", timeout=DEADLINE)[1]
            return time.monotonic() - started, health
        except urllib.error.URLError as error:  # refused: gunicorn has not bound the port yet
            assert isinstance(error.reason, ConnectionRefusedError), error
            time.sleep(0.05)


def timed(url: str, body: dict | None = None) -> tuple[int, dict, float]:
    started = time.monotonic()
    status, answer = request(url, body, timeout=60)
    return status, answer, time.monotonic() - started


def stop_with_sigterm(web: Server) -> float:
    """SIGTERM to every process of the dyno, as Heroku sends it; seconds until they have all exited."""
    started = time.monotonic()
    os.killpg(web.process.pid, signal.SIGTERM)
    web.process.wait(timeout=60)
    return time.monotonic() - started


def recorded_version(store: str) -> int:
    """How many entries the database has recorded the facts of."""
    with sqlite3.connect(urlparse(Config(storage_url=store).database).path) as db:
        return json.loads(db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])


def boot(store: str) -> tuple[Server, float, dict]:
    started = time.monotonic()
    web = Server({"STORAGE_URL": store, "RATE_LIMITS": "off"})
    seconds, health = first_answer(web, started)
    return web, seconds, health


def test_an_all_web_serves_during_a_long_replay_and_a_sigterm_in_it_loses_nothing(tmp_path):
    store = str(tmp_path / "store")
    labels = write_backlog(tmp_path / "store", ENTRIES, group=GROUP)
    web, booted, health = boot(store)
    try:
        assert health["learner"] == "catching_up" and health["log_version"] == ENTRIES and health["behind"] > 0
        predicted = timed(f"{web.url}/api/predict", {"image": ONE})
        assert predicted[0] == 200 and predicted[1]["model_version"] < ENTRIES and predicted[2] < DEADLINE
        trained = timed(f"{web.url}/api/train", {"image": ONE, "label": 1})
        assert trained[0] == 202 and trained[1]["status"] == "pending" and trained[2] < DEADLINE, trained
        assert int(trained[1]["sample_id"]) == ENTRIES + 1
        labels[ENTRIES + 1] = 1
        while (health := request(f"{web.url}/healthz")[1])["model_version"] < 10 * GROUP:
            assert web.process.poll() is None and health["learner"] == "catching_up", health
            time.sleep(0.2)
        mid = health["model_version"]
    finally:
        stopped = stop_with_sigterm(web)
    print(
        f"{ENTRIES} entries to replay: first answer {booted:.1f} s after start, predict {predicted[2] * 1000:.0f} ms,"
        f" train 202 in {trained[2]:.1f} s; SIGTERM at version ~{mid}, exited in {stopped:.1f} s"
    )
    assert stopped < DEADLINE
    handed = max(int(path.stem) for path in (tmp_path / "store" / "checkpoints").iterdir())
    assert mid <= handed < ENTRIES  # left in the middle of the replay...
    assert recorded_version(store) == handed  # ...between entries: the models and the facts agree

    web, booted, health = boot(store)
    try:
        assert health["learner"] == "catching_up" and health["model_version"] < ENTRIES + 1
        started = time.monotonic()
        while (health := request(f"{web.url}/healthz")[1])["model_version"] < ENTRIES + 1:
            assert time.monotonic() - started < 1200 and web.process.poll() is None, health
            time.sleep(0.5)
        assert f"restored checkpoint {handed} " in web.output()  # it continued from the hand-over checkpoint
        assert health["log_version"] == ENTRIES + 1 and health["behind"] == 0 and health["learner"] == "up_to_date"
        samples = request(f"{web.url}/api/stats")[1]["samples"]
        expected = Counter(labels.values())
        assert samples["per_label"] == {str(d): expected[d] for d in range(10)}  # each entry counted once
        assert samples["total"] == ENTRIES + 1
    finally:
        stopped = stop_with_sigterm(web)
    assert stopped < DEADLINE
    assert recorded_version(store) == ENTRIES + 1
    print(f"restarted: first answer {booted:.1f} s after start; all learned; SIGTERM to exit {stopped:.1f} s")
