"""The HTTP API through Flask's test client, on a fresh store per test."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from conftest import create_app, wait_for_version
from drawings import blank_canvas, canvas_of, stroke_canvas, to_data_url
from PIL import Image

from livedigits.config import Config
from main import close_service

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))


def seven(mnist_test) -> str:
    images, labels = mnist_test
    return to_data_url(canvas_of(images[int(np.flatnonzero(labels == 7)[0])]))


def stored(store) -> tuple[list, list]:
    log = sorted((store / "log").glob("*.json")) if (store / "log").exists() else []
    drawings = sorted((store / "drawings").glob("*.png")) if (store / "drawings").exists() else []
    return log, drawings


def probabilities(result: dict, model: str, variant: str) -> dict[int, float]:
    return {p["digit"]: p["probability"] for p in result["predictions"][model][variant]}


def test_health_and_pages(client):
    health = client.get("/healthz").get_json()
    assert 0.0 <= health.pop("learner_seen_seconds_ago") < 10  # the learner of this process looked just now
    assert health == {
        "status": "ok",
        "model_version": 0,
        "log_version": 0,
        "behind": 0,
        "learner": "up_to_date",
        "waiting": 0,
        "degraded": [],
        "database": {"state": "ok"},
    }
    for page in ("/", "/models", "/about"):
        response = client.get(page)
        assert response.status_code == 200 and b"<!doctype html>" in response.data
    assert b'id="canvas"' in client.get("/").data


def test_predict_shape(client):
    result = client.post("/api/predict", json={"image": ONE}).get_json()
    assert set(result) == {"answer", "message", "model_version", "predictions", "preprocessed"}
    pixels = np.array(result["preprocessed"])
    assert pixels.shape == (28, 28) and pixels.max() == 255 and pixels.min() == 0
    assert result["answer"] == "1" and result["model_version"] == 0
    for model in ("fnn", "cnn"):
        for variant in ("original", "retrained"):
            top = result["predictions"][model][variant]
            assert len(top) == 3
            assert [p["probability"] for p in top] == sorted((p["probability"] for p in top), reverse=True)
            assert all(0 <= p["digit"] <= 9 for p in top)


def test_train_stores_one_drawing_bumps_version_and_changes_retrained(client, store):
    image = to_data_url(stroke_canvas([(160, 40), (120, 240)]))  # a slanted "1": a guess of both models is a 7
    before = client.post("/api/predict", json={"image": image}).get_json()
    guesses = [[top["digit"] for top in before["predictions"][m]["retrained"][1:]] for m in ("cnn", "fnn")]
    label = next(d for d in guesses[0] if d in guesses[1])  # corrected to it, it must become likelier in both
    strokes = [[[10, 10, 0], [20, 30, 16]], [[5, 5, 40]]]
    response = client.post("/api/train", json={"image": image, "label": label, "strokes": strokes})
    assert response.status_code == 200
    result = response.get_json()
    assert result["model_version"] == before["model_version"] + 1
    log, drawings = stored(store)
    assert len(log) == 1 and len(drawings) == 1
    assert result["sample_id"] == log[0].stem == "0000000001"  # the entry it acknowledged
    entry = json.loads(log[0].read_text())
    assert entry["label"] == label and entry["kind"] == "train" and entry["strokes"] == strokes
    assert Image.open(drawings[0]).format == "PNG"
    after = client.post("/api/predict", json={"image": image}).get_json()
    assert after["model_version"] == result["model_version"]
    for model in ("fnn", "cnn"):
        assert probabilities(after, model, "original") == probabilities(before, model, "original")
        assert probabilities(after, model, "retrained") != probabilities(before, model, "retrained")
        assert probabilities(after, model, "retrained").get(label, 0) > probabilities(before, model, "retrained").get(
            label, 0
        )
    assert after["predictions"] == result["predictions"]
    # The answer after training comes from the same rule as predict's, on the updated models.
    assert (result["answer"], result["message"]) == (after["answer"], after["message"])


def test_stats_counts_labels_and_scores(client):
    client.post("/api/train", json={"image": ONE, "label": 1})
    client.post("/api/train", json={"image": ONE, "label": 4})
    stats = client.get("/api/stats").get_json()
    assert stats["model_version"] == 2
    assert stats["samples"]["total"] == 2 and stats["samples"]["per_label"]["1"] == 1
    assert stats["samples"]["per_label"]["4"] == 1
    original = stats["accuracy"]["cnn"]["original"]
    assert original["n_scored"] == 2 and original["prequential"] == 0.5 and original["t10k"] > 0.98


def payload_error(response) -> str:
    body = response.get_json()
    assert set(body) == {"error", "message"} and body["message"]
    return body["error"]


BAD_PREDICTS = [
    ({"image": "data:image/png;base64,@@@"}, 400, "invalid_base64"),
    ({"image": base64.b64encode(b"plain text").decode()}, 400, "not_an_image"),
    ({"image": to_data_url(blank_canvas())}, 422, "empty_drawing"),
    ({}, 400, "missing_field"),
    ({"image": 42}, 400, "missing_field"),
    ([1, 2], 400, "invalid_json"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_PREDICTS)
def test_bad_predicts_are_4xx_json(client, body, status, code):
    response = client.post("/api/predict", json=body)
    assert response.status_code == status and payload_error(response) == code


BAD_TRAINS = [
    ({"image": ONE}, 400, "missing_field"),
    ({"image": ONE, "label": 10}, 400, "invalid_label"),
    ({"image": ONE, "label": -1}, 400, "invalid_label"),
    ({"image": ONE, "label": "seven"}, 400, "invalid_label"),
    ({"image": ONE, "label": 2.5}, 400, "invalid_label"),
    ({"label": 3}, 400, "missing_field"),
    ({"image": "data:image/png;base64,@@@", "label": 3}, 400, "invalid_base64"),
    ({"image": to_data_url(blank_canvas()), "label": 3}, 422, "empty_drawing"),
    ({"image": ONE, "label": 1, "strokes": "zigzag"}, 400, "invalid_strokes"),
    ({"image": ONE, "label": 1, "strokes": [[[1, 2]]]}, 400, "invalid_strokes"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_TRAINS)
def test_bad_trains_are_4xx_json_and_store_nothing(client, store, body, status, code):
    response = client.post("/api/train", json=body)
    assert response.status_code == status and payload_error(response) == code
    assert stored(store) == ([], [])
    assert client.get("/healthz").get_json()["model_version"] == 0


def test_wrong_content_type_huge_body_and_unknown_route(client, store):
    response = client.post("/api/train", data="image=x&label=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and payload_error(response) == "invalid_json"
    huge = "A" * (3 * 1024 * 1024)
    response = client.post("/api/train", json={"image": huge, "label": 1})
    assert response.status_code == 413 and payload_error(response) == "request_entity_too_large"
    response = client.post("/hook3", data={"imageBase64": huge, "digit": "1"})
    assert response.status_code == 413 and payload_error(response) == "request_entity_too_large"
    assert client.get("/api/nothing").status_code == 404
    assert client.get("/api/train").status_code == 405
    assert stored(store) == ([], [])


def test_decompression_bomb_is_refused(client, store):
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000), 1).save(buffer, format="PNG")  # a few kB that decode to 400 Mpixels
    image = base64.b64encode(buffer.getvalue()).decode()
    response = client.post("/api/train", json={"image": image, "label": 1})
    assert response.status_code == 413 and payload_error(response) == "image_too_large"
    assert stored(store) == ([], [])


def test_legacy_hook_collects_without_training(client, store):
    response = client.post("/hook", data={"imageBase64": ONE, "digit": "1"})
    assert response.status_code == 200
    name = response.get_data(as_text=True).removeprefix("Image saved successfully with the name ")
    log, drawings = stored(store)
    assert [d.name for d in drawings] == [name] and len(log) == 1
    assert json.loads(log[0].read_text())["kind"] == "collect"
    assert wait_for_version(client, 1)["model_version"] == 1
    assert client.get("/api/stats").get_json()["accuracy"]["fnn"]["retrained"]["n_scored"] == 0


def test_legacy_hook2_predicts_in_the_old_format(client):
    result = json.loads(client.post("/hook2", data={"imageBase64": ONE}).get_data(as_text=True))
    assert set(result) == {"answer", "fnn", "fnn_t", "cnn", "cnn_t"}
    assert result["answer"] == "1"
    for key in ("fnn", "fnn_t", "cnn", "cnn_t"):
        assert len(result[key]) == 3
        digit, percent = result[key][0].split(" ")
        assert digit.isdigit() and percent.startswith("(") and percent.endswith(")%")
    empty = client.post("/hook2", data={"imageBase64": to_data_url(blank_canvas())})
    assert empty.get_data(as_text=True) == "Can't predict, when nothing is drawn"
    assert client.get("/hook2").status_code == 405


def test_legacy_hook3_trains(client, store):
    response = client.post("/hook3", data={"imageBase64": ONE, "digit": "1"})
    assert response.get_data(as_text=True) == "Trained"
    assert client.get("/healthz").get_json()["model_version"] == 1
    response = client.post("/hook3", data={"imageBase64": ONE})
    assert response.status_code == 400 and payload_error(response) == "missing_field"
    response = client.post("/hook3", data={"imageBase64": ONE, "digit": "12"})
    assert response.status_code == 400 and payload_error(response) == "invalid_label"
    assert len(stored(store)[0]) == 1


def test_estimate_takes_mnist_pixels(client, mnist_test):
    images, labels = mnist_test
    for image, label in zip(images[:5], labels[:5], strict=True):
        response = client.post("/estimate", json={"input": image.flatten().tolist()})
        assert response.get_json() == {"estimated": int(label)}
    response = client.post("/estimate", json={"input": [1, 2, 3]})
    assert response.status_code == 400 and payload_error(response) == "invalid_input"


def test_restart_lands_on_the_same_models(store, mnist_test):
    first = create_app(Config(storage_url=str(store), checkpoint_every=2, sync_interval=0))
    client = first.test_client()
    image = seven(mnist_test)
    for label in (7, 1, 7):
        client.post("/api/train", json={"image": image if label == 7 else ONE, "label": label})
    first.extensions["learner"].flush_checkpoints()
    expected = client.post("/api/predict", json={"image": image}).get_json()
    assert list((store / "checkpoints").glob("*.zip"))  # version 2 checkpoint, then replay of 3
    close_service(first)  # the process ends (and its learner's lease with it)
    again = create_app(Config(storage_url=str(store), checkpoint_every=2))
    assert again.test_client().post("/api/predict", json={"image": image}).get_json() == expected
    close_service(again)
    scratch = create_app(Config(storage_url=str(store), checkpoint_every=1000))
    assert scratch.test_client().get("/api/stats").get_json()["samples"]["total"] == 3
    close_service(scratch)
    for key in (store / "checkpoints").glob("*.zip"):
        key.write_bytes(b"half-written")  # damaged checkpoints are skipped: full replay
    damaged = create_app(Config(storage_url=str(store))).test_client()
    assert damaged.post("/api/predict", json={"image": image}).get_json() == expected


def test_two_apps_on_one_folder_converge(store, mnist_test):
    a = create_app(Config(storage_url=str(store), sync_interval=0)).test_client()
    b = create_app(Config(storage_url=str(store), sync_interval=0)).test_client()
    image = seven(mnist_test)
    a.post("/api/train", json={"image": image, "label": 7})
    b.post("/api/train", json={"image": ONE, "label": 1})
    a.post("/api/train", json={"image": ONE, "label": 1})
    wait_for_version(b, 3)
    from_a = a.post("/api/predict", json={"image": image}).get_json()
    from_b = b.post("/api/predict", json={"image": image}).get_json()
    assert from_a["model_version"] == from_b["model_version"] == 3
    assert from_a == from_b
    assert len(stored(store)[0]) == 3


def test_admin_reset(store, mnist_test):
    closed = create_app(Config(storage_url=str(store)))
    assert closed.test_client().post("/api/admin/reset").status_code == 403
    close_service(closed)
    app = create_app(Config(storage_url=str(store), admin_token="s3cret", sync_interval=0))
    client = app.test_client()
    image = seven(mnist_test)
    fresh = client.post("/api/predict", json={"image": image}).get_json()
    client.post("/api/train", json={"image": image, "label": 3})
    assert client.post("/api/admin/reset").status_code == 401
    assert client.post("/api/admin/reset", headers={"Authorization": "Bearer wrong"}).status_code == 403
    response = client.post("/api/admin/reset", headers={"Authorization": "Bearer s3cret"})
    assert response.get_json() == {"model_version": 2}
    after = client.post("/api/predict", json={"image": image}).get_json()
    assert after["predictions"]["cnn"]["retrained"] == fresh["predictions"]["cnn"]["retrained"]
    assert after["predictions"]["fnn"]["retrained"] == fresh["predictions"]["fnn"]["retrained"]


def test_rollback_to_an_earlier_version(store, mnist_test):
    app = create_app(Config(storage_url=str(store), admin_token="s3cret", sync_interval=0, checkpoint_every=2))
    client = app.test_client()
    admin = {"Authorization": "Bearer s3cret"}
    image = seven(mnist_test)
    client.post("/api/train", json={"image": image, "label": 7})
    at_one = client.post("/api/predict", json={"image": image}).get_json()["predictions"]
    for label in (3, 3, 3):
        client.post("/api/train", json={"image": image, "label": label})
    assert client.post("/api/predict", json={"image": image}).get_json()["predictions"] != at_one
    bad = client.post("/api/admin/rollback", json={"model_version": 4}, headers=admin)
    assert bad.status_code == 400 and payload_error(bad) == "invalid_version"
    assert client.post("/api/admin/rollback", json={"model_version": 1}, headers=admin).get_json() == {
        "model_version": 5
    }
    assert client.post("/api/predict", json={"image": image}).get_json()["predictions"] == at_one
    close_service(app)  # a restart replays the log, rollback included
    other = create_app(Config(storage_url=str(store), checkpoint_every=10_000)).test_client()
    assert other.post("/api/predict", json={"image": image}).get_json()["predictions"] == at_one


def test_recent_samples_and_their_images(client):
    client.post("/api/train", json={"image": ONE, "label": 1})
    client.post("/hook", data={"imageBase64": ONE, "digit": "4"})
    wait_for_version(client, 2)
    samples = client.get("/api/samples/recent").get_json()["samples"]
    assert [(s["label"], s["kind"]) for s in samples] == [(4, "collect"), (1, "train")]
    image = client.get(samples[0]["image_url"])
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert Image.open(io.BytesIO(image.data)).size == (280, 280)
    assert client.get("/api/samples/99.png").status_code == 404


def test_internals_and_history(client):
    result = client.post("/api/internals", json={"image": ONE}).get_json()
    assert len(result["fnn_hidden"]) == 100
    assert [layer["shape"][:2] for layer in result["cnn_layers"]] == [[26, 26], [24, 24], [10, 10], [8, 8]]
    assert np.array(result["cnn_layers"][0]["maps"]).shape == (16, 26, 26)
    client.post("/api/train", json={"image": ONE, "label": 1})
    stats = client.get("/api/stats").get_json()
    assert stats["history"] == [
        {"model_version": 1, "fnn.original": 1.0, "fnn.retrained": 1.0, "cnn.original": 1.0, "cnn.retrained": 1.0}
    ]
    assert np.array(stats["confusion"]["cnn"]).shape == (10, 10) and stats["degraded"] == []
