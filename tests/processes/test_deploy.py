"""Heroku readiness: the Procfile's command, two workers on one folder, and kill -9 mid-traffic."""

from __future__ import annotations

import re
import shutil
import signal
import time

import pytest
from conftest import ROOT, create_app
from drawings import stroke_canvas, to_data_url
from server import Server, procfile_command, request, train_until_killed

from livedigits.config import Config

DRAWINGS = [
    (to_data_url(stroke_canvas([(140, 40), (140, 240)])), 1),
    (to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)])), 7),
    (to_data_url(stroke_canvas([(70, 60), (200, 60), (70, 230), (210, 230)])), 2),
]


def test_python_versions_agree_and_requirements_pin_tensorflow_cpu():
    runtime = (ROOT / "runtime.txt").read_text().strip()
    python_version = (ROOT / ".python-version").read_text().strip()
    assert runtime == f"python-{python_version}"
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^tensorflow-cpu==", requirements, re.M)
    assert not re.search(r"^tensorflow(\[.*\])?[=<>~ ]", requirements, re.M)
    assert re.search(r"^flask-cors==(\d+)", requirements, re.M).group(1) >= "6"
    assert re.match(r"(env (\w+=\S+ )+)?gunicorn main:app", procfile_command())
    assert "$PORT" in procfile_command() or "${PORT" in procfile_command()


def test_two_workers_on_one_folder_agree(tmp_path):
    # The Procfile runs one worker per dyno; two on one folder stand for two dynos on one bucket.
    env = {"STORAGE_URL": str(tmp_path / "store"), "SYNC_INTERVAL": "0.2", "RATE_LIMITS": "off"}
    server = Server(env, "--workers 2")
    try:
        assert server.wait_healthy()["model_version"] == 0
        for image, label in DRAWINGS * 2:
            status, body = request(f"{server.url}/api/train", {"image": image, "label": label})
            assert status == 200, body
        # One worker holds the learner's lease; the other follows the snapshots it publishes (within seconds).
        # (Which worker answers is the kernel's choice: ask until 24 answers in a row come from version 6.)
        deadline = time.monotonic() + 20
        while True:
            predictions = [request(f"{server.url}/api/predict", {"image": DRAWINGS[1][0]})[1] for _ in range(24)]
            if {p["model_version"] for p in predictions} == {6} or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert {p["model_version"] for p in predictions} == {6}
        assert all(p == predictions[0] for p in predictions)  # both workers hold the same weights
    finally:
        server.kill(signal.SIGTERM)
    local = create_app(Config(storage_url=str(tmp_path / "store"))).test_client()
    assert local.post("/api/predict", json={"image": DRAWINGS[1][0]}).get_json() == predictions[0]


@pytest.mark.parametrize("delay", [0.3, 1.7])
def test_kill_9_during_training_loses_no_acknowledged_drawing(tmp_path, delay):
    store = tmp_path / "store"
    # Limits off: this test wants as many trains in flight as the clients can send.
    env = {"WEB_CONCURRENCY": "2", "STORAGE_URL": str(store), "CHECKPOINT_EVERY": "3", "RATE_LIMITS": "off"}
    server = Server(env, "--workers 2")
    server.wait_healthy()
    acknowledged: dict[int, int] = {}
    train_until_killed(server, DRAWINGS, delay, acknowledged)
    assert acknowledged, "no train was acknowledged before the kill"

    restarted = Server(env, "--workers 2")
    try:
        restarted.wait_healthy()
        entries = sorted(int(p.stem) for p in (store / "log").glob("*.json"))
        # One worker takes the learner's lease and catches up; the other serves what it publishes.
        deadline = time.monotonic() + 60
        while (versions := {request(f"{restarted.url}/healthz")[1]["model_version"] for _ in range(8)}) != {
            len(entries)
        }:
            assert time.monotonic() < deadline, f"stuck at versions {versions} of {len(entries)}"
            time.sleep(0.1)
        assert entries == list(range(1, len(entries) + 1))
        assert set(acknowledged) <= set(entries)
        # The replay below compares models that applied them all: the worker that follows the other's snapshots
        # (published every few seconds) may answer a version behind until then.
        while (served := request(f"{restarted.url}/api/predict", {"image": DRAWINGS[0][0]})[1])["model_version"] != len(
            entries
        ):
            assert time.monotonic() < deadline + 30, f"predictions stuck at {served['model_version']}"
            time.sleep(0.1)
    finally:
        restarted.kill(signal.SIGTERM)
    # A replay from the originals must land on the same weights as the checkpoints (if a kill at 0.3 s left
    # fewer than CHECKPOINT_EVERY entries, or a checkpoint was in flight, there are none: the replay still counts).
    shutil.rmtree(store / "checkpoints", ignore_errors=True)
    replayed = create_app(Config(storage_url=str(store), checkpoint_every=10_000)).test_client()
    assert replayed.post("/api/predict", json={"image": DRAWINGS[0][0]}).get_json() == served
