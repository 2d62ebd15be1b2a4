"""The database from other processes: a serve process and the learner told by PostgreSQL's notifications rather
than polling, and the one command that rebuilds a lost database from the store."""

from __future__ import annotations

import time

import pytest
from labelled import ADMIN, LABELS, make_app, train_all
from server import Server, request, wait_for_learner

from livedigits.config import Config
from livedigits.state.database import Database
from main import close_service


@pytest.mark.postgres_only  # SQLite has no notifications: processes on one machine poll local files
def test_servers_and_the_learner_are_told_not_polled(tmp_path):
    """With PostgreSQL, a train on a serve process is learned and answered in well under the 30 s that the
    learner's and the server's polls are set to: the entry and the snapshot are announced by NOTIFY."""
    store = str(tmp_path / "store")
    env = {"STORAGE_URL": store, "LEARN_INTERVAL": "30", "SYNC_INTERVAL": "30", "RATE_LIMITS": "off"}
    learner = Server(env, kind="worker")
    web = Server({**env, "ROLE": "serve", "TRAIN_WAIT": "10"})
    try:
        web.wait_healthy()
        wait_for_learner(web.url)  # told of the learner's first snapshot, though the web reads the pointer every 30 s
        took = []
        for image, label in LABELS[:3]:
            started = time.monotonic()
            status, body = request(f"{web.url}/api/train", {"image": image, "label": label})
            took.append(time.monotonic() - started)
            assert status == 200 and body["status"] == "learned", body
            assert body["model_version"] >= int(body["sample_id"]), body  # answered by models that learned it
        # Within TRAIN_WAIT (10 s), else a 202; the first step traces TensorFlow's training function, the rest are
        # quick: the learner, looking at the log every 30 s, was told.
        assert max(took[1:]) < 5, took
    finally:
        web.kill()
        learner.kill()


def test_a_lost_database_is_rebuilt_from_the_store_by_one_command(store, backend):
    """`python -m livedigits.learning.rebuild` empties the database and replays the log: the same rows, figures and
    queue."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    app = make_app(store, checkpoint_every=3)
    client = app.test_client()
    train_all(client, LABELS[:5])
    client.post("/api/admin/exclude", json={"sample_ids": [2]}, headers=ADMIN)
    train_all(client, LABELS[5:7])
    db = app.extensions["digits"].db
    before = (db.drawings(list(range(1, 10))), db.history(), db.meta()["figures"], db.meta()["version"])
    url = Config(storage_url=str(store)).database
    env = {**os.environ, "STORAGE_URL": str(store), "DATABASE_URL": url, "TF_CPP_MIN_LOG_LEVEL": "3"}
    rebuild = [sys.executable, "-m", "livedigits.learning.rebuild"]
    refused = subprocess.run(rebuild, cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert refused.returncode == 1 and "a learner is running" in refused.stderr  # the app's learner holds the lease
    assert db.meta()["version"] == 8  # and nothing was emptied
    close_service(app)
    db = Database(url)
    done = subprocess.run(rebuild, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rebuilt 8 entries" in done.stdout
    assert (db.drawings(list(range(1, 10))), db.history(), db.meta()["figures"], db.meta()["version"]) == before
    db.close()
