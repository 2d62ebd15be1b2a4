"""GET /api/models/export from a serve process (the Procfile's web with ROLE=serve, which never loads TensorFlow)
while the Procfile's learner learns: the zip is whole and of the served version, its weights are those of the
snapshot the learner published, and taken away (numpy alone, Keras) its models answer as the served ones do.
On SQLite and on PostgreSQL. In-process (the `all` role): tests/app/test_export.py."""

from __future__ import annotations

import io
import signal
import time
import urllib.request
import zipfile

import numpy as np
import pytest
from conftest import ROOT
from drawings import canvas_of, to_data_url
from exported import export_weights, exported_probabilities, unzip
from server import Server, request, wait_for_learner

from functions import decode_digit
from livedigits.models.served import served_models
from livedigits.state.snapshot import SNAPSHOT_KEY, Snapshot

TOKEN = "export-token"
TRAINS = 6
FILES = ["README.txt", "cnn.keras", "fnn.npz", "heldout.npz", "manifest.json"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_serve_process_exports_the_models_it_serves(tmp_path, mnist_test, backend):
    images, labels = mnist_test
    trains = [(to_data_url(canvas_of(images[i])), int(labels[i])) for i in range(TRAINS)]
    probes = [to_data_url(canvas_of(image)) for image in images[-12:]]  # held-out digits, never trained on
    store = tmp_path / "store"
    env = {"STORAGE_URL": str(store), "RATE_LIMITS": "off", "ADMIN_TOKEN": TOKEN, "LEARN_INTERVAL": "0.1"}
    learner = Server(env, kind="worker")
    web = Server({**env, "ROLE": "serve", "WEB_CONCURRENCY": "2", "TRAIN_WAIT": "30", "SYNC_INTERVAL": "0.2"})
    try:
        web.wait_healthy()
        wait_for_learner(web.url)
        for image, label in trains:
            status, body = request(f"{web.url}/api/train", {"image": image, "label": label})
            assert status == 200 and body["status"] == "learned", body
        # Both workers serve the last version (each follows snapshots itself); /healthz may keep reaching the one
        # that has, so ask until the export and every answer are of it, whichever worker gives them.
        deadline = time.monotonic() + 60
        while True:
            with urllib.request.urlopen(
                urllib.request.Request(f"{web.url}/api/models/export", headers={"Authorization": f"Bearer {TOKEN}"})
            ) as answer:
                status, headers, export = answer.status, answer.headers, answer.read()
            answers = [request(f"{web.url}/api/predict", {"image": probe})[1] for probe in probes]
            stats = request(f"{web.url}/api/stats")[1]
            versions = {a["model_version"] for a in answers} | {stats["model_version"]}
            if versions == {TRAINS} and f"digits-models-v{TRAINS}.zip" in headers["Content-Disposition"]:
                break
            assert time.monotonic() < deadline, f"a worker did not reach the last version: {versions}"
            time.sleep(0.2)
        assert not any(web.loads_tensorflow().values())  # the export is written without TensorFlow
    finally:
        web.kill(signal.SIGTERM)
        learner.kill(signal.SIGTERM)

    # Whole, and of the served version.
    assert status == 200 and headers.get_content_type() == "application/zip"
    assert f"digits-models-v{TRAINS}.zip" in headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(export)) as archive:
        assert archive.testzip() is None and sorted(archive.namelist()) == FILES
        assert archive.read("heldout.npz") == (ROOT / "models" / "heldout.npz").read_bytes()
        assert f"at version {TRAINS}," in archive.read("README.txt").decode()
    manifest, fnn, cnn = export_weights(export)
    assert manifest["model_version"] == TRAINS and manifest["users_drawings"]["learned"] == TRAINS
    accuracy = stats["accuracy"]
    assert manifest["heldout"]["retrained"] == {m: accuracy[m]["retrained"]["t10k"] for m in ("fnn", "cnn")}
    assert manifest["heldout"]["original"] == {m: accuracy[m]["original"]["t10k"] for m in ("fnn", "cnn")}

    # Its weights are the snapshot the learner published, the one the serve process serves.
    published = Snapshot.from_bytes((store / SNAPSHOT_KEY).read_bytes(), served_models)
    assert published.version == TRAINS and manifest["originals"] == published.originals
    assert fnn.keys() == published.fnn.params.keys()
    assert all(np.array_equal(fnn[name], published.fnn.params[name]) for name in fnn)
    assert all(np.array_equal(a, b) for a, b in zip(cnn, published.cnn.weights, strict=True))
    with np.load(ROOT / "models" / "fnn.npz") as shipped:
        assert not np.array_equal(fnn["W1"], shipped["W1"])  # the retrained models, not the originals

    # Taken away, its models answer held-out drawings as /api/predict's retrained models do, to 1e-5.
    exported = exported_probabilities(unzip(export, tmp_path / "export"), np.stack([decode_digit(p) for p in probes]))
    for i, answer in enumerate(answers):
        assert answer["model_version"] == TRAINS
        for model in ("fnn", "cnn"):
            for top in answer["predictions"][model]["retrained"]:
                assert abs(exported[model][i][top["digit"]] - top["probability"]) < 1e-5
