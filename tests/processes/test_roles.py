"""One learner, many light servers: the `serve` role never loads TensorFlow, follows the learner's snapshots,
and keeps answering (and storing) whatever the learner does; a fleet on one bucket converges."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from conftest import ROOT, create_app
from drawings import canvas_of, stroke_canvas, to_data_url
from s3server import CREDENTIALS
from server import Server, request, wait_for_learner

from livedigits.config import Config
from livedigits.models.served import served_models
from livedigits.state.snapshot import SNAPSHOT_KEY, Snapshot, publish_snapshot
from main import close_service

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
SEVEN = to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)]))

# Every route a serve process answers, through Flask's test client, in a fresh interpreter; then which
# modules it loaded, and which routes were requested (every one of the URL map). No learner runs, so the train is
# stored and answered as pending.
SERVE_EVERYTHING = """
import json, sys
sys.path.insert(0, {root!r})
from flask import request
from livedigits.config import Config
from main import create_app
app = create_app(Config(storage_url={store!r}, role="serve", train_wait=0.2, admin_token="t"))
requested = set()
app.before_request(lambda: requested.add((request.method, request.url_rule.rule)) if request.url_rule else None)
client = app.test_client()
one = {one!r}
admin = {{"Authorization": "Bearer t"}}
statuses = {{}}
for path in ("/", "/models", "/about", "/internals", "/review", "/healthz", "/api/stats", "/api/samples/recent",
             "/static/style.css"):
    statuses[path] = client.get(path).status_code
statuses["predict"] = client.post("/api/predict", json={{"image": one}}).status_code
statuses["batch"] = client.post("/api/predict/batch", json={{"images": [one, one]}}).status_code
statuses["internals"] = client.post("/api/internals", json={{"image": one}}).status_code
trained = client.post("/api/train", json={{"image": one, "label": 1}})
statuses["train"] = trained.status_code
statuses["drawing"] = client.get("/api/samples/1.png", headers=admin).status_code  # not learned: the operator's
statuses["undo"] = client.post("/api/undo", json={{"undo_token": trained.get_json()["undo_token"]}}).status_code
statuses["hook"] = client.post("/hook", data={{"imageBase64": one, "digit": "1"}}).status_code
statuses["hook2"] = client.post("/hook2", data={{"imageBase64": one}}).status_code
statuses["hook3"] = client.post("/hook3", data={{"imageBase64": one, "digit": "1"}}).status_code
statuses["estimate"] = client.post("/estimate", json={{"input": [0] * 300 + [255] * 20 + [0] * 464}}).status_code
statuses["review"] = client.get("/api/review", headers=admin).status_code
statuses["exclude"] = client.post("/api/admin/exclude", json={{"sample_ids": [3]}}, headers=admin).status_code
statuses["restore"] = client.post("/api/admin/restore", json={{"sample_ids": [3]}}, headers=admin).status_code
statuses["rollback"] = client.post("/api/admin/rollback", json={{"model_version": 0}}, headers=admin).status_code
statuses["reset"] = client.post("/api/admin/reset", headers=admin).status_code
statuses["export"] = client.get("/api/samples/export", headers=admin).status_code
statuses["models"] = client.get("/api/models/export", headers=admin).status_code
routes = {{(method, rule.rule) for rule in app.url_map.iter_rules() for method in rule.methods - {{"HEAD", "OPTIONS"}}}}
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "conv_net", "learner"))
print(json.dumps({{"statuses": statuses, "loaded": loaded, "unrequested": sorted(routes - requested)}}))
"""


def test_serve_role_never_imports_tensorflow(tmp_path):
    script = SERVE_EVERYTHING.format(root=str(ROOT), store=str(tmp_path / "store"), one=ONE)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["unrequested"] == [], "add each new route to SERVE_EVERYTHING"
    assert report["loaded"] == []
    statuses = report["statuses"]
    # Stored; no learner, so learning (and the admin changes: accepted, in progress) is pending.
    pending = ("train", "hook3", "reset", "rollback", "exclude")  # the restore then finds it unchanged: 200
    assert {name: statuses.pop(name) for name in pending} == dict.fromkeys(pending, 202)
    assert set(statuses.values()) == {200}, statuses


def test_numpy_cnn_matches_tensorflow_on_all_of_t10k(mnist_test):
    from conv_net import CNN
    from livedigits.models.numpy_cnn import NumpyCNN

    images, labels = mnist_test
    digits = images.astype(np.float32) / 255
    cnn = CNN.load(ROOT / "models" / "cnn.npz")
    cnn.train_step(digits[:64], labels[:64])  # weights other than the shipped ones too
    numpy_cnn = NumpyCNN(cnn.model.get_weights())
    assert np.abs(numpy_cnn.predict_proba(digits) - cnn.predict_proba(digits)).max() < 1e-5
    for (name, expected), (numpy_name, got) in zip(
        cnn.feature_maps(digits[:8]), numpy_cnn.feature_maps(digits[:8]), strict=True
    ):
        assert np.abs(expected - got).max() < 1e-4 and expected.shape == got.shape
        assert name.startswith("conv2d") and numpy_name.startswith("conv2d")


def test_snapshot_round_trip_and_damage():
    from livedigits.models.numpy_cnn import NumpyCNN
    from two_layer_net import FNN

    fnn = FNN.load(ROOT / "models" / "fnn.npz")
    cnn = NumpyCNN.from_bytes((ROOT / "models" / "cnn.npz").read_bytes())
    snapshot = Snapshot.initial(fnn, cnn, "abc")
    again = Snapshot.from_bytes(snapshot.to_bytes(), served_models)
    assert again.version == 0 and again.originals == "abc" and again.stats == snapshot.stats
    digit = np.zeros((1, 28, 28), np.float32)
    digit[0, 5:23, 13:15] = 1
    assert (again.cnn.predict_proba(digit) == cnn.predict_proba(digit)).all()
    assert (again.fnn.predict_proba(digit) == fnn.predict_proba(digit)).all()
    data = snapshot.to_bytes()
    for damaged in (b"", data[: len(data) // 2], b"not a zip at all"):
        with pytest.raises(ValueError):
            Snapshot.from_bytes(damaged, served_models)


def test_a_server_ignores_a_snapshot_of_other_originals_without_fetching_it(tmp_path):
    """After a deploy with new originals, the old learner's snapshot is neither served nor downloaded each poll."""
    app = create_app(Config(storage_url=str(tmp_path / "store"), role="serve"))
    server = app.extensions["digits"]
    storage = server.journal.storage
    fetched = []
    get = storage.get
    storage.get = lambda key: fetched.append(key) or get(key)
    old = Snapshot.initial(server.original["fnn"], server.original["cnn"], "other originals")
    publish_snapshot(storage, server.db, replace(old, version=5))
    server.poll_snapshot()
    assert server.version == 0 and SNAPSHOT_KEY not in fetched
    ours = replace(server.snapshot, version=3)
    publish_snapshot(storage, server.db, ours)
    server.poll_snapshot()
    assert server.version == 3 and SNAPSHOT_KEY in fetched


def test_a_serve_process_reports_a_learner_that_stopped(tmp_path):
    """Entries behind and no learner ever seen: stalled. Seen recently: catching up. Seen long ago: stalled."""
    store = tmp_path / "store"
    writer = create_app(Config(storage_url=str(store), role="serve", train_wait=0.1)).test_client()
    assert writer.post("/api/train", json={"image": ONE, "label": 1}).status_code == 202
    app = create_app(Config(storage_url=str(store), role="serve", sync_interval=0.05))
    server = app.extensions["digits"]
    health = app.test_client().get("/healthz").get_json()
    assert health["model_version"] == 0 and health["log_version"] == 1 and health["behind"] == 1
    assert health["learner"] == "stalled"
    server.saw_learner(time.time())
    assert server.health()["learner"] == "catching_up"
    server._learner_seen_at = time.time() - Config.stalled_after_seconds - 1
    assert server.health()["learner"] == "stalled"


def test_the_all_role_answers_as_a_serve_process_following_a_learner(tmp_path):
    """The same log gives the same answers in every role: predictions take one numpy path everywhere."""
    store = tmp_path / "store"
    both = create_app(Config(storage_url=str(store)))
    client = both.test_client()
    for image, label in ((ONE, 1), (SEVEN, 7), (ONE, 1)):
        assert client.post("/api/train", json={"image": image, "label": label}).status_code == 200
    expected = [client.post("/api/predict", json={"image": image}).get_json() for image in (ONE, SEVEN)]
    close_service(both)  # its learner's lease goes with it: the worker below takes over
    learner = Server({"STORAGE_URL": str(store), "LEARN_INTERVAL": "0.05"}, kind="worker")
    try:
        serve = create_app(Config(storage_url=str(store), role="serve", sync_interval=0.05)).test_client()
        deadline = time.monotonic() + 120
        while serve.get("/healthz").get_json()["model_version"] < 3:
            assert time.monotonic() < deadline, "the serve process never saw the learner's snapshot"
            time.sleep(0.1)
        assert [serve.post("/api/predict", json={"image": image}).get_json() for image in (ONE, SEVEN)] == expected
        assert serve.get("/api/stats").get_json()["samples"]["total"] == 3
    finally:
        learner.kill(signal.SIGTERM)


def serve_env(store: str, **settings: str) -> dict[str, str]:
    return {"STORAGE_URL": store, "ROLE": "serve", "SYNC_INTERVAL": "0.5", "RATE_LIMITS": "off", **settings}


def test_kill_9_of_the_learner_mid_stream_loses_nothing(tmp_path):
    store = str(tmp_path / "store")
    web = Server(serve_env(store, TRAIN_WAIT="1", WEB_CONCURRENCY="2"))
    learner = Server({"STORAGE_URL": store, "CHECKPOINT_EVERY": "4"}, kind="worker")
    acknowledged: dict[int, int] = {}
    try:
        web.wait_healthy()
        drawings = [(ONE, 1), (SEVEN, 7)]
        deadline = time.monotonic() + 120
        while not any(status == 200 for status in train_some(web.url, drawings, acknowledged, 2)):
            assert time.monotonic() < deadline, "the learner never learned a drawing"
        learner.kill()  # SIGKILL, mid-stream
        statuses = train_some(web.url, drawings, acknowledged, 4)
        assert statuses == [202] * 4  # stored, learning pending
        predicted = request(f"{web.url}/api/predict", {"image": SEVEN})
        assert predicted[0] == 200
        health = request(f"{web.url}/healthz")[1]
        assert health["behind"] >= 4 and health["learner"] in ("catching_up", "stalled")

        learner = Server({"STORAGE_URL": store, "CHECKPOINT_EVERY": "4"}, kind="worker")
        entries = sorted(int(p.stem) for p in (tmp_path / "store" / "log").glob("*.json"))
        assert entries == list(range(1, len(entries) + 1)) and set(acknowledged) <= set(entries)
        deadline = time.monotonic() + 120
        while (health := request(f"{web.url}/healthz")[1])["model_version"] < len(entries):
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
        assert health["behind"] == 0 and health["learner"] == "up_to_date"
        # Two workers, each following snapshots on its own: ask until the other one has the final one too.
        while request(f"{web.url}/api/stats")[1]["samples"]["total"] < len(entries):
            assert time.monotonic() < deadline, "a worker never caught up"
            time.sleep(0.1)
    finally:
        learner.kill(signal.SIGTERM)
        web.kill(signal.SIGTERM)


def train_some(url: str, drawings: list[tuple[str, int]], acknowledged: dict[int, int], n: int) -> list[int]:
    statuses = []
    for i in range(n):
        image, label = drawings[i % len(drawings)]
        status, body = request(f"{url}/api/train", {"image": image, "label": label})
        assert status in (200, 202), body
        acknowledged[int(body["sample_id"])] = label
        statuses.append(status)
    return statuses


@pytest.mark.usefixtures("s3_credentials")
def test_a_fleet_on_one_bucket(moto, mnist_test):
    """One learner and three serve processes on moto's S3: trains from 8 clients spread over the three."""
    bucket = moto.new_bucket()
    images, labels = mnist_test
    digits = [(to_data_url(canvas_of(images[i])), int(labels[i])) for i in range(60)]
    s3 = {"STORAGE_URL": f"s3://{bucket}/digits", "S3_ENDPOINT_URL": moto.url, **CREDENTIALS}
    learner = Server({**s3, "LEARN_INTERVAL": "0.1"}, kind="worker")
    webs = [Server({**s3, "ROLE": "serve", "SYNC_INTERVAL": "0.5", "RATE_LIMITS": "off"}) for _ in range(3)]
    try:
        for web in webs:
            web.wait_healthy()
        wait_for_learner(webs[0].url)

        def train(i: int) -> tuple[int, float]:
            image, label = digits[i]
            status, body = request(f"{webs[i % 3].url}/api/train", {"image": image, "label": label}, timeout=60)
            assert status in (200, 202), body
            return int(body["sample_id"]), time.monotonic()

        with ThreadPoolExecutor(8) as pool:
            acknowledged = list(pool.map(train, range(len(digits))))
        last_ack = max(at for _, at in acknowledged)
        reached = {}  # how long after the last acknowledgement each reached the final version (bench/fleet.py)
        while len(reached) < 3 and time.monotonic() - last_ack < 120:
            for web in webs:
                if web not in reached and request(f"{web.url}/healthz")[1]["model_version"] >= len(digits):
                    reached[web] = time.monotonic() - last_ack
            time.sleep(0.05)
        answers = [request(f"{web.url}/api/predict", {"image": SEVEN})[1] for web in webs]
    finally:
        for process in (*webs, learner):
            process.kill(signal.SIGTERM)
    keys = moto.keys(bucket, "digits/")
    assert sorted(n for n, _ in acknowledged) == list(range(1, len(digits) + 1))
    assert [k for k in keys if k.startswith("digits/log/")] == [f"digits/log/{n:010d}.json" for n in range(1, 61)]
    assert len(reached) == 3, reached
    assert all(answer == answers[0] for answer in answers)  # bit-identical: the same snapshot
    published = Snapshot.from_bytes(
        moto.client().get_object(Bucket=bucket, Key=f"digits/{SNAPSHOT_KEY}")["Body"].read(), served_models
    )
    assert published.version == len(digits)
    # Each entry applied exactly once: those there at the learner's boot by its replay, the rest as they came.
    assert published.learner["booted_at"] + published.learner["applied"] == len(digits)


def test_learner_role_is_not_a_web_app():
    with pytest.raises(ValueError, match=r"livedigits\.learning\.worker"):
        create_app(Config(role="learn"))
    with pytest.raises(ValueError, match="ROLE"):
        Config(role="both")


def test_procfile_has_one_learner_and_light_webs():
    procfile = (ROOT / "Procfile").read_text()
    assert "\nworker: python -m livedigits.learning.worker" in procfile
    assert "--config gunicorn.conf.py" in procfile and (ROOT / "gunicorn.conf.py").exists()
