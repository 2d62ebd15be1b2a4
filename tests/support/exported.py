"""The retrained models' zip (GET /api/models/export) taken away and used as its README says: the FNN with numpy
alone and the CNN with Keras, each in a fresh interpreter outside the project; and its weights read without Keras.
What the export tests share (in-process: tests/app/test_export.py; a serve process: tests/processes/)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from livedigits.exports import models as model_export

NUMPY_ONLY = """
import json, sys
import numpy as np
fnn, digits = np.load("fnn.npz"), np.load(sys.argv[1])
hidden = np.maximum(digits.reshape(len(digits), 784) @ fnn["W1"] + fnn["b1"], 0)
logits = hidden @ fnn["W2"] + fnn["b2"]
probabilities = np.exp(logits - logits.max(1, keepdims=True))
probabilities /= probabilities.sum(1, keepdims=True)
assert not {"tensorflow", "keras"} & set(sys.modules), "numpy alone"
print(json.dumps(probabilities.tolist()))
"""
WITH_KERAS = """
import json, sys
import numpy as np
import keras
model = keras.saving.load_model("cnn.keras")
print(json.dumps(model.predict(np.load(sys.argv[1]), verbose=0).tolist()))
"""


def unzip(data: bytes, folder: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)
    return folder


def run_fresh(code: str, folder: Path, *args: str) -> str:
    """`code` in a new interpreter in `folder`, not on the project's path: as someone who downloaded the zip."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=folder, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def exported_probabilities(folder: Path, digits: np.ndarray) -> dict[str, np.ndarray]:
    """(n, 10) probabilities of the unzipped export in `folder` for (n, 28, 28) digits: {"fnn": numpy alone,
    "cnn": Keras}, each in a fresh interpreter."""
    np.save(folder / "digits.npy", digits)
    return {
        "fnn": np.array(json.loads(run_fresh(NUMPY_ONLY, folder, "digits.npy"))),
        "cnn": np.array(json.loads(run_fresh(WITH_KERAS, folder, "digits.npy"))),
    }


def keras_weights(keras_bytes: bytes) -> list[np.ndarray]:
    """The CNN weights inside an exported .keras file, read with h5py (no Keras), in the model's layer order."""
    import h5py

    with zipfile.ZipFile(io.BytesIO(keras_bytes)) as keras_zip:
        config = json.loads(keras_zip.read("config.json"))
        with h5py.File(io.BytesIO(keras_zip.read("model.weights.h5")), "r") as h5:
            return [
                h5[f"layers/{layer['config']['name']}/vars/{i}"][()]
                for layer in config["config"]["layers"]
                for i in range(model_export.WEIGHTED.get(layer["class_name"], 0))
            ]


def export_weights(data: bytes) -> tuple[dict, dict[str, np.ndarray], list[np.ndarray]]:
    """An export zip's manifest, FNN arrays (W1 b1 W2 b2) and CNN weights."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        with np.load(io.BytesIO(archive.read("fnn.npz"))) as fnn:
            params = {name: fnn[name] for name in fnn.files}
        return manifest, params, keras_weights(archive.read("cnn.keras"))
