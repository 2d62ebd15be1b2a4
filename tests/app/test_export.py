"""GET /api/models/export: the retrained models taken away, checked the way a user would use them, in fresh
interpreters (numpy alone for the FNN, Keras for the CNN), against what /api/predict and /api/stats say."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile

import numpy as np
import pytest
from conftest import ROOT, create_app, wait_for_version
from drawings import stroke_canvas, to_data_url
from exported import exported_probabilities, keras_weights, run_fresh, unzip

from functions import decode_digit, quantise
from livedigits.config import Config
from livedigits.offline.canvas import canvas_of
from livedigits.offline.canvas import to_data_url as canvas_url
from livedigits.pipeline.drawings import prepare
from livedigits.state import heldout
from livedigits.state.mnist import load_split

TOKEN = "export-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRAINS = [
    (to_data_url(stroke_canvas([(140, 40), (140, 240)])), 1),
    (to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)])), 7),
    (to_data_url(stroke_canvas([(70, 60), (200, 60), (70, 230), (210, 230)])), 2),
    (to_data_url(stroke_canvas([(140, 40), (140, 240)])), 4),
]


@pytest.fixture
def app(store):
    # heldout_idle_seconds=0: score the slice as soon as the learner is idle
    config = Config(
        storage_url=str(store), sync_interval=0.0, admin_token=TOKEN, rate_limits="off", heldout_idle_seconds=0.0
    )
    return create_app(config)


def train_all(client, trains=TRAINS) -> int:
    for image, label in trains:
        assert client.post("/api/train", json={"image": image, "label": label}).status_code == 200
    return wait_for_version(client, len(trains))["model_version"]


def measured_at(client, version: int, timeout: float = 30) -> dict:
    """/api/stats once the retrained models' held-out figure is of `version`."""
    deadline = time.monotonic() + timeout
    while (stats := client.get("/api/stats").get_json())["accuracy"]["cnn"]["retrained"]["t10k_version"] != version:
        assert time.monotonic() < deadline, "the held-out slice was not scored"
        time.sleep(0.05)
    return stats


def held_out_drawings(n: int = 20) -> list[str]:
    """t10k digits as a browser sends drawings: data URLs of a 280x280 canvas."""
    images, _ = load_split(ROOT.parent / "shared" / "data" / "mnist", "t10k")
    return [canvas_url(canvas_of(image / 255.0)) for image in images[-n:]]


def test_the_export_runs_in_fresh_interpreters_as_predict_answers(app, tmp_path):
    client = app.test_client()
    version = train_all(client)
    stats = measured_at(client, version)
    response = client.get("/api/models/export", headers=AUTH)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert f"digits-models-v{version}.zip" in response.headers["Content-Disposition"]
    folder = unzip(response.data, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.txt",
        "cnn.keras",
        "fnn.npz",
        "heldout.npz",
        "manifest.json",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model_version"] == version and manifest["heldout"]["retrained_measured_at_version"] == version

    # The README's example, as written, prints the held-out accuracy the page and the manifest publish.
    readme = (folder / "README.txt").read_text()
    example = "\n".join(line[4:] for line in readme.splitlines() if line.startswith("    "))
    fnn_accuracy, cnn_accuracy = map(float, run_fresh(example, folder).split())
    published = {m: stats["accuracy"][m]["retrained"]["t10k"] for m in ("fnn", "cnn")}
    assert manifest["heldout"]["retrained"] == published
    assert (round(fnn_accuracy, 4), round(cnn_accuracy, 4)) == (published["fnn"], published["cnn"])

    # Held-out drawings through /api/predict and through the exported files agree to 1e-5.
    drawings = held_out_drawings()
    exported = exported_probabilities(folder, np.stack([decode_digit(d) for d in drawings]))
    for i, drawing in enumerate(drawings):
        answer = client.post("/api/predict", json={"image": drawing}).get_json()
        assert answer["model_version"] == version
        for model in ("fnn", "cnn"):
            for top in answer["predictions"][model]["retrained"]:
                assert abs(exported[model][i][top["digit"]] - top["probability"]) < 1e-5


def test_the_published_held_out_figure_is_what_the_export_scores(app):
    """The page's t10k figures for the retrained models, at the version they were measured at, are the exported
    files' accuracy on the shipped slice; at version 0 they are the originals' (metrics.json), like for like."""
    client = app.test_client()
    stats = measured_at(client, 0)
    for model in ("fnn", "cnn"):
        assert stats["accuracy"][model]["retrained"]["t10k"] == stats["accuracy"][model]["original"]["t10k"]
    version = train_all(client)
    stats = measured_at(client, version)
    with zipfile.ZipFile(io.BytesIO(client.get("/api/models/export", headers=AUTH).data)) as archive:
        fnn = np.load(io.BytesIO(archive.read("fnn.npz")))
        cnn = keras_weights(archive.read("cnn.keras"))
    sliced = heldout.load(ROOT / "models")
    from livedigits.models.numpy_cnn import NumpyCNN
    from two_layer_net import FNN

    served = app.extensions["digits"].snapshot
    ours = sliced.score({"fnn": FNN(served.fnn.config, {k: fnn[k] for k in FNN.PARAMS}), "cnn": NumpyCNN(cnn)})
    assert ours == {m: stats["accuracy"][m]["retrained"]["t10k"] for m in ("fnn", "cnn")}
    versions = [p["model_version"] for p in stats["heldout"]["history"]]  # the forgetting curve
    assert versions[0] == 0 and versions[-1] == version and versions == sorted(set(versions))


def test_the_export_needs_the_admin_token(app, store):
    client = app.test_client()
    missing = client.get("/api/models/export")
    wrong = client.get("/api/models/export", headers={"Authorization": "Bearer nope"})
    assert (missing.status_code, missing.get_json()["error"]) == (401, "unauthorized")
    assert (wrong.status_code, wrong.get_json()["error"]) == (403, "forbidden")
    assert client.get("/healthz").get_json()["model_version"] == 0  # nothing was written


def test_without_an_admin_token_set_there_is_no_export(tmp_path):
    client = create_app(Config(storage_url=str(tmp_path / "store"), sync_interval=0.0)).test_client()
    refused = client.get("/api/models/export", headers=AUTH)
    assert (refused.status_code, refused.get_json()["error"]) == (403, "admin_disabled")


def test_an_export_taken_during_learning_holds_one_version(app, monkeypatch):
    server = app.extensions["digits"]
    served: dict[int, object] = {}
    take = server.take

    def keep(snapshot) -> None:  # every snapshot the server is handed, by version (they are immutable)
        served.setdefault(snapshot.version, snapshot)
        take(snapshot)

    monkeypatch.setattr(server, "take", keep)
    client = app.test_client()
    trains = TRAINS * 3
    trainer = threading.Thread(target=train_all, args=(app.test_client(), trains))
    trainer.start()
    versions = set()
    while trainer.is_alive() or not versions:
        with zipfile.ZipFile(io.BytesIO(client.get("/api/models/export", headers=AUTH).data)) as archive:
            version = json.loads(archive.read("manifest.json"))["model_version"]
            fnn = np.load(io.BytesIO(archive.read("fnn.npz")))
            cnn = keras_weights(archive.read("cnn.keras"))
            assert f"at version {version}," in archive.read("README.txt").decode()
        versions.add(version)
        if version == 0:
            continue  # the originals, before the first snapshot
        snapshot = served[version]
        assert all(np.array_equal(fnn[k], snapshot.fnn.params[k]) for k in ("W1", "b1", "W2", "b2"))
        assert all(np.array_equal(a, b) for a, b in zip(cnn, snapshot.cnn.weights, strict=True))
    trainer.join()
    assert len(versions) >= 3, versions  # exports did overlap the learning


def test_the_held_out_slice_is_t10k_and_never_trained_on():
    with np.load(ROOT / "models" / "heldout.npz") as data:
        images, labels, index = data["images"], data["labels"], data["t10k_index"]
    t10k_images, t10k_labels = load_split(ROOT.parent / "shared" / "data" / "mnist", "t10k")
    assert np.bincount(labels).tolist() == [heldout.PER_LABEL] * 10
    assert np.array_equal(labels, t10k_labels[index])
    assert np.array_equal(images, np.stack([quantise(d) for d in prepare(t10k_images[index])]))
    with np.load(ROOT / "models" / "replay.npz") as replay:
        replayed = {image.tobytes() for image in replay["images"]}
    assert not replayed & {image.tobytes() for image in images}
