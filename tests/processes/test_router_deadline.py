"""No request outlives Heroku's router, which answers H12 for a request that sends no byte for 30 s. With the learner
stalled, trains and admin changes answer 202 within 25 s; predictions and /healthz answer beside the trains that
wait; and every label is learned once the learner resumes. In both topologies, from the Procfile's own commands: the
`all` role, whose learner is held up by the facts' lock (the lock a learner takes to record an entry, held here as
another learner recording would hold it), and `serve` beside a `learn` process stopped with SIGSTOP."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from labelled import ADMIN, LABELS
from server import Server, wait_for_learner

from livedigits.config import Config

DEADLINE = 25.0  # seconds: the contract (requests that wait answer by Config.answer_within_seconds, 20)
FACTS_LOCK = 20261202  # the learners' lock on the facts (livedigits.state.transaction.Transaction.lock_facts)
TRAINS = 20  # more than an `all` worker lets wait at once (Config.max_waiting: 16)


def call(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict, float]:
    """(status, JSON answer, seconds from sending to the whole answer); a GET without `body`."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    return status, json.loads(payload or b"{}"), time.monotonic() - started


def health(web: Server) -> dict:
    return call(f"{web.url}/healthz")[1]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.1)


def label_while_stalled(web: Server, waiting: int) -> list[int]:
    """With the learner stalled: a reset and an exclusion of entry 1, then TRAINS trains at once. Once `waiting` of
    them wait for the learner (as many as may), predictions and /healthz are asked and answered beside them. Every
    one answers within DEADLINE; the trains, reset and exclusion are pending. Returns the trains' entry numbers."""
    with ThreadPoolExecutor(TRAINS + 2) as clients:
        reset = clients.submit(call, f"{web.url}/api/admin/reset", {}, ADMIN)
        exclude = clients.submit(call, f"{web.url}/api/admin/exclude", {"sample_ids": [1]}, ADMIN)
        wait_until(lambda: health(web)["waiting"] == 2, DEADLINE, "the admin changes waiting")  # then the crowd
        trains = [
            clients.submit(call, f"{web.url}/api/train", {"image": image, "label": label})
            for image, label in (LABELS * 2)[:TRAINS]
        ]
        wait_until(lambda: health(web)["waiting"] == waiting, DEADLINE, f"{waiting} requests waiting")
        beside = [call(f"{web.url}/api/predict", {"image": LABELS[i % 3][0]}) for i in range(10)]
        beside += [call(f"{web.url}/healthz") for _ in range(10)]
        assert health(web)["waiting"] == waiting  # the trains still wait: all of these were answered beside them
        answers = [train.result() for train in trains]
        changes = [reset.result(), exclude.result()]
    assert [status for status, _, _ in beside] == [200] * len(beside)
    assert max(seconds for _, _, seconds in beside) < DEADLINE
    for status, body, seconds in answers:
        assert status == 202 and body["status"] == "pending" and seconds < DEADLINE, (status, body, seconds)
    for status, body, seconds in changes:
        assert status == 202 and body["status"] == "pending" and seconds < DEADLINE, (status, body, seconds)
        assert f"model_version reaches {body['model_version']}" in body["message"]
    print(
        f"stalled learner, {waiting} waiting: predictions and /healthz answered in at most "
        f"{max(s for _, _, s in beside) * 1000:.0f} ms (median {sorted(s for _, _, s in beside)[10] * 1000:.0f} ms); "
        f"trains in {min(s for _, _, s in answers):.2f}..{max(s for _, _, s in answers):.2f} s, "
        f"reset {changes[0][2]:.2f} s, exclusion {changes[1][2]:.2f} s"
    )
    return [int(body["sample_id"]) for _, body, _ in answers]


def first_learned(web: Server) -> int:
    """Train until a label is learned (the learner has loaded and traced its step); how many labels that took."""
    sent = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        sent += 1
        if call(f"{web.url}/api/train", {"image": LABELS[0][0], "label": 1})[0] == 200:
            return sent
    raise AssertionError("the learner never learned a label")


def learned_at_last(web: Server, numbers: list[int], before: int) -> None:
    """Once the learner resumes, every entry is learned: the labels stored (`before` the stall, then `numbers`), less
    the one excluded, are counted."""
    wait_until(
        lambda: (h := health(web))["model_version"] == h["log_version"] >= max(numbers) and h["behind"] == 0,
        300,
        "the learner to learn what was stored while it stalled",
    )
    assert call(f"{web.url}/api/stats")[1]["samples"]["total"] == before + len(numbers) - 1


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_the_all_role_answers_within_the_deadline_while_its_learner_stalls(backend, tmp_path):
    store = str(tmp_path / "store")
    web = Server({"STORAGE_URL": store, "RATE_LIMITS": "off", "ADMIN_TOKEN": "t"})
    try:
        web.wait_healthy()
        before = first_learned(web)
        with psycopg.connect(Config(storage_url=store).database, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (FACTS_LOCK,))  # no learner records an entry now
            numbers = label_while_stalled(web, waiting=Config().max_waiting)
            holder.execute("SELECT pg_advisory_unlock(%s)", (FACTS_LOCK,))
        learned_at_last(web, numbers, before)
    finally:
        web.kill(signal.SIGTERM)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_sigterm_ends_an_all_web_whose_learner_is_stuck_inside_an_entry(backend, tmp_path):
    """The learner cannot stop between entries while one entry holds it (here, waiting for the facts' lock; in
    service, an exclusion's rebuild): the web still exits within DEADLINE of SIGTERM, without a hand-over checkpoint,
    and the next boot learns what it had not."""
    store = str(tmp_path / "store")
    env = {"STORAGE_URL": store, "RATE_LIMITS": "off"}
    web = Server(env)
    try:
        web.wait_healthy()
        before = first_learned(web)
        with psycopg.connect(Config(storage_url=store).database, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (FACTS_LOCK,))
            with ThreadPoolExecutor(1) as client:
                train = client.submit(call, f"{web.url}/api/train", {"image": LABELS[1][0], "label": 1})
                waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted"
                wait_until(lambda: holder.execute(waiting, (FACTS_LOCK,)).fetchone()[0] > 0, DEADLINE,
                           "the learner to wait for the facts' lock")  # fmt: skip
                started = time.monotonic()
                os.killpg(web.process.pid, signal.SIGTERM)
                web.process.wait(timeout=60)
                stopped = time.monotonic() - started
                status, body, seconds = train.result()
            holder.execute("SELECT pg_advisory_unlock(%s)", (FACTS_LOCK,))
    finally:
        web.kill(signal.SIGTERM)
    print(f"learner stuck inside an entry: SIGTERM to exit {stopped:.1f} s; the waiting train answered {seconds:.1f} s")
    assert stopped < DEADLINE
    assert status == 202 and body["status"] == "pending" and seconds < DEADLINE
    assert "exiting without a hand-over checkpoint" in web.output()
    web = Server(env)
    try:
        web.wait_healthy()
        learned_after_restart = int(body["sample_id"])
        wait_until(lambda: health(web)["model_version"] >= learned_after_restart, 300, "the next boot to learn it")
        assert call(f"{web.url}/api/stats")[1]["samples"]["total"] == before + 1
    finally:
        web.kill(signal.SIGTERM)


def test_the_serve_role_answers_within_the_deadline_while_the_learner_process_stalls(tmp_path):
    store = str(tmp_path / "store")
    # Trains wait up to 20 s here (3 s by default): as long as in the `all` role, so that waiting could starve.
    web = Server(
        {"STORAGE_URL": store, "ROLE": "serve", "TRAIN_WAIT": "20", "RATE_LIMITS": "off", "ADMIN_TOKEN": "t",
         "SYNC_INTERVAL": "0.2"}, gunicorn_args="--workers 1"
    )  # fmt: skip
    learner = Server({"STORAGE_URL": store, "LEARN_INTERVAL": "0.05"}, kind="worker")
    try:
        web.wait_healthy()
        wait_for_learner(web.url)
        before = first_learned(web)
        os.kill(learner.process.pid, signal.SIGSTOP)  # the learner process stops dead, its lease still held
        try:
            numbers = label_while_stalled(web, waiting=Config(role="serve").max_waiting)
        finally:
            os.kill(learner.process.pid, signal.SIGCONT)
        learned_at_last(web, numbers, before)
    finally:
        learner.kill(signal.SIGTERM)
        web.kill(signal.SIGTERM)
