"""Every background thread the service starts is named and listed in livedigits/threads.py: the `all` and `serve`
roles, started in a fresh interpreter each (no other test's threads), after a crowd's group of labels, a
checkpoint, an export and a prediction, run exactly the listed threads of their role, and no unlisted thread of
ours."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from livedigits import threads
from livedigits.config import Config

PROBE = """
import json, sys, threading, time
import numpy as np
from livedigits.config import Config
from livedigits.offline.canvas import canvas_of, to_data_url
from main import close_service, create_app

role, store, database_url = sys.argv[1], sys.argv[2], sys.argv[3] or None
ink = np.zeros((28, 28))
ink[4:24, 13:15] = 1
image = to_data_url(canvas_of(ink))
config = Config(storage_url=store, database_url=database_url, role=role, checkpoint_every=2, admin_token="t",
                train_wait=0.5)
app = create_app(config)
client = app.test_client()
if role == "all":  # three labels waiting together: learned as one group (the recorder), then a checkpoint
    app.extensions["learner"].wait_booted()  # it loads on its own thread
    learner = app.extensions["learner"].learner
    posts = [threading.Thread(target=client.post, args=("/api/train",), kwargs={"json": {"image": image, "label": 1}})
             for _ in range(3)]
    with learner._lock:
        for post in posts:
            post.start()
        while len(learner.inbox) < 3:
            time.sleep(0.01)
    for post in posts:
        post.join()
    app.extensions["learner"].flush_checkpoints()
else:
    client.post("/api/train", json={"image": image, "label": 1})
client.get("/api/samples/export", headers={"Authorization": "Bearer t"})
client.post("/api/predict", json={"image": image})
running = [
    {"name": t.name, "module": getattr(getattr(t, "_target", None), "__module__", None) or type(t).__module__}
    for t in threading.enumerate() if t is not threading.main_thread()
]
print(json.dumps(running))
close_service(app)
"""


@pytest.mark.parametrize("role", ["all", "serve"])
def test_a_role_runs_exactly_its_listed_threads(role, store, backend):
    database_url = Config(storage_url=str(store)).database if backend == "postgres" else ""
    probe = subprocess.run([sys.executable, "-c", PROBE, role, str(store), database_url], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-3000:]
    running = json.loads(probe.stdout.strip().splitlines()[-1])
    ours = {threads.listed(t["name"]) for t in running} - {None}
    assert ours == threads.of_role(role, backend == "postgres"), running
    unlisted = [t for t in running if threads.listed(t["name"]) is None]
    assert not [t for t in unlisted if t["module"].startswith("livedigits")], unlisted


def test_only_listed_names_can_be_started():
    with pytest.raises(ValueError, match="THREADS"):
        threads.start("helper", lambda: None)
    with pytest.raises(ValueError, match="POOLS"):
        threads.pool("helpers")
