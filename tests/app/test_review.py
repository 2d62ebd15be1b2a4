"""Clean labels: the review queue, exclude and restore as log entries, and the undo capability of /api/train."""

from __future__ import annotations

import io
import json
import time
import urllib.request
import zipfile

import numpy as np
import pytest
from conftest import create_app, wait_for_version
from drawings import stroke_canvas, to_data_url
from server import Server

from livedigits.config import Config
from livedigits.state import undo
from main import close_service

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
SEVEN = to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)]))
ZERO = to_data_url(stroke_canvas([(140, 40), (200, 140), (140, 240), (80, 140), (140, 40)]))
ADMIN = {"Authorization": "Bearer secret-token"}


def make_app(store, **settings):
    defaults = {"sync_interval": 0.0, "admin_token": "secret-token", "rate_limits": "off"}
    return create_app(Config(storage_url=str(store), **(defaults | settings)))


@pytest.fixture
def client(store):
    return make_app(store).test_client()


def train(client, image: str, label: int, source_path: str = "/api/train") -> dict:
    response = client.post(source_path, json={"image": image, "label": label})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def review(client, query: str = "") -> dict:
    response = client.get(f"/api/review{query}", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def exclude(client, ids: list, path: str = "/api/admin/exclude"):
    return client.post(path, json={"sample_ids": ids}, headers=ADMIN)


def predictions(client, image: str) -> dict:
    return client.post("/api/predict", json={"image": image}).get_json()["predictions"]


def test_the_queue_ranks_a_wrong_label_first_and_filters(client):
    train(client, ONE, 1)
    wrong = train(client, SEVEN, 1)["sample_id"]  # a 7 labelled 1: every model disagrees
    train(client, SEVEN, 7)
    client.post("/hook", data={"imageBase64": ZERO, "digit": "0"})
    wait_for_version(client, 4)
    queue = review(client)
    assert queue["total"] == 4 and queue["sources"] == ["api/train", "hook"]
    first = queue["samples"][0]
    assert first["sample_id"] == wrong and first["label"] == 1 and first["disagreeing"] == 4
    assert first["predicted"]["cnn.original"] == 7 and first["probability"]["cnn.original"] < 0.05
    ones = review(client, "?label=1")["samples"]
    assert ones[0]["sample_id"] == wrong and {s["label"] for s in ones} == {1}
    hook = review(client, "?source=hook")["samples"]
    assert len(hook) == 1 and hook[0]["kind"] == "collect" and hook[0]["label"] == 0
    page = review(client, "?offset=1&limit=2")
    assert page["total"] == 4 and [s["sample_id"] for s in page["samples"]] == [
        s["sample_id"] for s in queue["samples"][1:3]
    ]


def test_review_and_admin_routes_need_the_token(store):
    client = make_app(store).test_client()
    for method, path in (("get", "/api/review"), ("post", "/api/admin/exclude"), ("post", "/api/admin/restore")):
        call = getattr(client, method)
        assert call(path, json={"sample_ids": [1]}).get_json()["error"] == "unauthorized"
        wrong = call(path, json={"sample_ids": [1]}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403 and wrong.get_json()["error"] == "forbidden"
    disabled = make_app(store.parent / "other", admin_token=None).test_client()
    assert disabled.get("/api/review", headers=ADMIN).get_json()["error"] == "admin_disabled"
    assert client.get("/review").status_code == 200  # the page itself asks for the token


def test_bad_ids_and_bad_queries_change_nothing(client, store):
    train(client, ONE, 1)
    assert client.post("/api/admin/reset", headers=ADMIN).status_code == 200  # entry 2: not a drawing
    wait_for_version(client, 2)
    for ids in (None, [], "1", [True], [0], [-3], ["abc"], [1.5], ["12345678901"], [[1]]):
        response = exclude(client, ids)
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_sample_ids", ids
    missing = exclude(client, [1, 99])
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    assert "0000000099" in missing.get_json()["message"]
    reset = exclude(client, [2])
    assert reset.status_code == 422 and reset.get_json()["error"] == "not_a_drawing"
    too_many = exclude(client, list(range(1, 1002)))
    assert too_many.status_code == 400
    bad_queries = {
        "?label=12": "invalid_label",
        "?limit=0": "invalid_limit",
        "?offset=-1": "invalid_offset",
        # str.isdigit takes these and int() does not: they were 500s
        "?offset=²": "invalid_offset",
        "?limit=①": "invalid_limit",
        "?offset=1¹": "invalid_offset",
        "?offset=" + "9" * 5000: "invalid_offset",  # more digits than int() converts
        "?source=a%00b": "invalid_source",  # PostgreSQL refuses NUL in text: it was a 503 and an ERROR
        "?source=a%01b": "invalid_source",
        "?source=" + "a" * 201: "invalid_source",
    }
    for query, code in bad_queries.items():
        response = client.get(f"/api/review{query}", headers=ADMIN)
        assert response.status_code == 400 and response.get_json()["error"] == code, query
    assert client.get("/api/review?source=é ☃", headers=ADMIN).get_json()["total"] == 0
    assert sorted(p.name for p in (store / "log").glob("*.json")) == ["0000000001.json", "0000000002.json"]


def test_exclude_takes_a_drawing_out_of_counts_accuracy_export_and_queue_and_restore_brings_it_back(client):
    train(client, ONE, 1)
    wrong = train(client, SEVEN, 1)["sample_id"]
    train(client, SEVEN, 7)
    before = client.get("/api/stats").get_json()
    assert before["samples"]["per_label"]["1"] == 2 and before["accuracy"]["cnn"]["original"]["n_scored"] == 3

    response = exclude(client, [wrong])
    assert response.status_code == 200
    assert response.get_json() == {"excluded": [wrong], "unchanged": [], "status": "applied", "model_version": 4}
    stats = client.get("/api/stats").get_json()
    assert stats["samples"]["total"] == 2 and stats["samples"]["per_label"]["1"] == 1
    assert stats["accuracy"]["cnn"]["original"]["n_scored"] == 2
    assert stats["accuracy"]["cnn"]["original"]["prequential"] == 1.0
    assert wrong not in [s["sample_id"] for s in review(client)["samples"]]
    assert [s["sample_id"] for s in review(client, "?excluded=1")["samples"]] == [wrong]
    assert wrong not in [s["sample_id"] for s in client.get("/api/samples/recent").get_json()["samples"]]
    export = zipfile.ZipFile(io.BytesIO(client.get("/api/samples/export", headers=ADMIN).data))
    assert sorted(n for n in export.namelist() if n.startswith("png/")) == ["png/0000000001.png", "png/0000000003.png"]

    # Repeating it is idempotent: 200, nothing changed, no new log entry.
    again = exclude(client, [int(wrong), wrong]).get_json()
    assert again == {"excluded": [], "unchanged": [wrong], "status": "unchanged", "model_version": 4}

    restored = exclude(client, [wrong, 1], "/api/admin/restore").get_json()
    assert restored["restored"] == [wrong] and restored["unchanged"] == ["0000000001"]
    assert client.get("/api/stats").get_json()["samples"] == before["samples"]
    assert wrong in [s["sample_id"] for s in review(client)["samples"]]


def test_an_excluded_drawing_leaves_the_models_as_if_never_learned(tmp_path):
    """Excluding entry 1 rebuilds the models to the weights of a log whose entry 1 was never learned (a collect
    entry numbers the same, so every later step draws the same augmentation), passing over checkpoints that
    include it; a process booting on that store afterwards lands on the same weights."""
    excluded = make_app(tmp_path / "a", checkpoint_every=2).test_client()
    never = make_app(tmp_path / "b", checkpoint_every=2).test_client()
    train(excluded, SEVEN, 1)
    never.post("/hook", data={"imageBase64": SEVEN, "digit": "1"})
    for client in (excluded, never):
        train(client, ONE, 1)
        train(client, SEVEN, 7)
        train(client, ZERO, 0)
    assert predictions(excluded, SEVEN) != predictions(never, SEVEN)
    assert exclude(excluded, [1]).get_json()["status"] == "applied"
    never.post("/hook", data={"imageBase64": ONE, "digit": "1"})  # entry 5 there too: learns nothing
    wait_for_version(never, 5)
    for image in (ONE, SEVEN, ZERO):
        assert predictions(excluded, image) == predictions(never, image)
    expected = predictions(excluded, SEVEN)
    close_service(excluded.application)  # the process ends; a new one boots on its store
    rebooted = make_app(tmp_path / "a", checkpoint_every=2).test_client()
    assert rebooted.get("/healthz").get_json()["model_version"] == 5
    assert predictions(rebooted, SEVEN) == expected
    assert rebooted.get("/api/stats").get_json()["samples"]["total"] == 3


def test_undo_takes_back_only_ones_own_drawing_once_and_in_time(client, store):
    mine = train(client, SEVEN, 1)
    theirs = train(client, ONE, 1)
    assert mine["undo_seconds"] == 60
    number, expires, _ = mine["undo_token"].split(".")
    assert int(number) == 1 and 55 <= int(expires) - time.time() <= 61

    forged = f"{theirs['sample_id'].lstrip('0')}.{expires}.{mine['undo_token'].split('.')[2]}"
    response = client.post("/api/undo", json={"undo_token": forged})
    assert response.status_code == 403 and response.get_json()["error"] == "invalid_undo_token"
    key = undo.undo_key(client.application.extensions["digits"].journal.storage, None)
    expired = undo.issue(key, 2, Config.undo_seconds, now=time.time() - 61)
    response = client.post("/api/undo", json={"undo_token": expired})
    assert response.status_code == 410 and response.get_json()["error"] == "undo_expired"
    for garbage in (None, 5, "", "1.2", "x" * 5000):
        response = client.post("/api/undo", json={"undo_token": garbage})
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_undo_token"
    assert client.get("/api/stats").get_json()["samples"]["total"] == 2

    response = client.post("/api/undo", json={"undo_token": mine["undo_token"]})
    assert response.status_code == 200 and response.get_json()["excluded"] == [mine["sample_id"]]
    replayed = client.post("/api/undo", json={"undo_token": mine["undo_token"]})
    assert replayed.status_code == 409 and replayed.get_json()["error"] == "undo_used"
    stats = client.get("/api/stats").get_json()
    assert stats["samples"]["total"] == 1 and stats["samples"]["per_label"]["1"] == 1
    entries = [json.loads(p.read_text()) for p in sorted((store / "log").glob("*.json"))]
    assert [e["kind"] for e in entries] == ["train", "train", "exclude"]
    assert entries[2]["samples"] == [1] and entries[2]["source"] == "undo"


def test_a_second_app_on_the_store_honours_the_first_ones_undo_key(store):
    first, second = make_app(store).test_client(), make_app(store).test_client()
    token = train(first, SEVEN, 1)["undo_token"]
    wait_for_version(second, 1)
    response = second.post("/api/undo", json={"undo_token": token})
    assert response.status_code == 200 and response.get_json()["excluded"] == ["0000000001"]
    wait_for_version(first, 2)
    assert first.get("/api/stats").get_json()["samples"]["total"] == 0


def admin_post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **ADMIN}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read())


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_two_processes_on_one_store_agree_on_an_exclusion(tmp_path):
    env = {
        "STORAGE_URL": str(tmp_path / "store"),
        "SYNC_INTERVAL": "0.1",
        "ADMIN_TOKEN": "secret-token",
        "RATE_LIMITS": "off",
    }
    servers = [Server(env), Server(env)]
    try:
        for server in servers:
            server.wait_healthy()
        a, b = (server.url for server in servers)
        for image, label in ((ONE, 1), (SEVEN, 1), (SEVEN, 7), (ZERO, 0)):
            post(f"{a}/api/train", {"image": image, "label": label})
        status, answer = admin_post(f"{b}/api/admin/exclude", {"sample_ids": ["0000000002"]})
        assert status == 200 and answer["excluded"] == ["0000000002"]
        deadline = time.monotonic() + 60
        while post(f"{a}/api/predict", {"image": ONE})["model_version"] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for image in (ONE, SEVEN, ZERO):
            answers = [post(f"{url}/api/predict", {"image": image}) for url in (a, b)]
            assert answers[0]["model_version"] == answers[1]["model_version"] == 5
            assert answers[0]["predictions"] == answers[1]["predictions"]
        for url in (a, b):
            with urllib.request.urlopen(f"{url}/api/stats") as response:
                assert json.loads(response.read())["samples"]["total"] == 3
    finally:
        for server in servers:
            server.kill()


def test_exclusions_fold_alike_in_the_export_and_ignore_what_is_not_a_drawing(store):
    from livedigits.exports.dataset import read_samples
    from livedigits.state.journal import Entry, Journal
    from livedigits.state.storage import open_storage

    client = make_app(store).test_client()
    for image, label in ((ONE, 1), (SEVEN, 7), (ZERO, 0)):
        train(client, image, label)
    journal = Journal(open_storage(str(store)))
    journal.try_append(4, Entry("exclude", samples=[1, 2, 9]))  # 9 is not there yet: ignored
    journal.try_append(5, Entry("restore", samples=[2]))
    wait_for_version(client, 5)
    assert [s.number for s in read_samples(journal.storage)] == [2, 3]
    assert client.get("/api/stats").get_json()["samples"]["total"] == 2
    assert np.isfinite(client.get("/api/stats").get_json()["accuracy"]["fnn"]["retrained"]["prequential"])
