"""The retrained models to take away: `GET /api/models/export` (admin) answers `models_zip(...)`, a zip of

    cnn.keras       keras.saving.load_model(path): (n, 28, 28) float32 digits -> (n, 10) probabilities
    fnn.npz         W1 b1 W2 b2, numpy alone: softmax(relu(x @ W1 + b1) @ W2 + b2), x the digits as (n, 784)
    manifest.json   model_version, the originals' id, the time, the preprocessing contract, the held-out figures
    heldout.npz     the 2,000 held-out t10k digits those figures were measured on (models/heldout.npz)
    README.txt      loading and running both, in ten lines

Made from one serving snapshot, which is immutable: every file holds the same version's weights, whatever the
learner does meanwhile. A server makes it without TensorFlow: `cnn.keras` is Keras's own format (a zip of
config.json, metadata.json and model.weights.h5), its weights written with h5py into the layout of
`models/cnn-keras.json`, which Keras itself wrote of `conv_net.build_export_model`:

    python -m livedigits.exports.models --template     # rewrite models/cnn-keras.json (after changing the CNN's layers)
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from livedigits.models.numpy_cnn import state_from_bytes

ROOT = Path(__file__).resolve().parents[2]  # the project folder
TEMPLATE = ROOT / "models" / "cnn-keras.json"
WEIGHTED = {"Conv2D": 2, "Dense": 2}  # variables per layer (kernel, bias), in Keras's order; the rest hold none
PREPROCESSING = {
    "input": "float32 array (n, 28, 28): ink 1.0 on background 0.0, rows top to bottom",
    "steps": [
        "read the drawing as greyscale ink in 0..1 (dark ink on a light canvas is inverted)",
        "crop to the pixels with ink >= 0.2",
        "scale the longer side to 20 pixels, keeping the aspect ratio (Lanczos)",
        "paste into 28x28 with the ink's centre of mass at the centre (MNIST's recipe)",
    ],
    "code": "functions.preprocess; functions.decode_digit takes a PNG or JPEG data URL as the service does",
}
README = """Digits, learning live: the retrained models at version {version}, exported {when}.
Inputs are digits preprocessed as manifest.json says: float32 (n, 28, 28), ink 1.0 on 0.0.

    import numpy as np
    held_out = np.load("heldout.npz")                              # or your own (n, 28, 28) digits
    digits, labels = held_out["images"] / np.float32(255), held_out["labels"]
    fnn = np.load("fnn.npz")                                        # numpy alone
    hidden = np.maximum(digits.reshape(len(digits), 784) @ fnn["W1"] + fnn["b1"], 0)
    logits = hidden @ fnn["W2"] + fnn["b2"]
    fnn_probabilities = np.exp(logits - logits.max(1, keepdims=True))
    fnn_probabilities /= fnn_probabilities.sum(1, keepdims=True)
    import keras                                                    # TensorFlow's Keras 3
    cnn_probabilities = keras.saving.load_model("cnn.keras").predict(digits, verbose=0)
    print((fnn_probabilities.argmax(1) == labels).mean(), (cnn_probabilities.argmax(1) == labels).mean())

That prints the held-out accuracy manifest.json gives, when it was measured at this version.
For TensorFlow Lite (LiteRT), convert the Keras file where TensorFlow is installed (0.7 s; the same outputs to 1e-6):
import tensorflow as tf; converter = tf.lite.TFLiteConverter.from_keras_model(keras.saving.load_model("cnn.keras"))
open("cnn.tflite", "wb").write(converter.convert())
"""


@functools.cache
def held_out_file() -> bytes:
    return (ROOT / "models" / "heldout.npz").read_bytes()


@functools.cache
def load_template() -> dict:
    """{"keras_version", "config"}: the export model's config.json as Keras wrote it (read once per process)."""
    return json.loads(TEMPLATE.read_text())


def keras_file(template: dict, weights: list[np.ndarray], saved_at: float) -> bytes:
    """A .keras archive of the template's model holding `weights` (NumpyCNN's order: kernel, bias per layer)."""
    import h5py  # only when exporting: a serve worker otherwise never loads it

    arrays = iter(weights)
    weights_file = io.BytesIO()
    with h5py.File(weights_file, "w") as h5:
        for layer in template["config"]["config"]["layers"]:
            if layer["class_name"] == "InputLayer":
                continue
            name = layer["config"]["name"]
            variables = h5.create_group(f"layers/{name}/vars")
            variables.attrs["name"] = name
            for i in range(WEIGHTED.get(layer["class_name"], 0)):
                variables.create_dataset(str(i), data=next(arrays))
        h5.create_group("vars").attrs["name"] = template["config"]["config"]["name"]
    if next(arrays, None) is not None:
        raise ValueError("the CNN has more weights than models/cnn-keras.json's layers: rewrite the template")
    metadata = {
        "keras_version": template["keras_version"],
        "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S", time.gmtime(saved_at)),
    }
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as keras_zip:
        keras_zip.writestr("metadata.json", json.dumps(metadata))
        keras_zip.writestr("config.json", json.dumps(template["config"]))
        keras_zip.writestr("model.weights.h5", weights_file.getvalue())
    return archive.getvalue()


def fnn_file(params: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: params[k] for k in ("W1", "b1", "W2", "b2")})
    return buffer.getvalue()


def models_zip(snapshot, stats: dict, template: dict, held_out: bytes, now: float | None = None) -> bytes:
    """The export of `snapshot` (serving.Snapshot); `stats` is what /api/stats answers for it (its figures);
    `held_out` the bytes of models/heldout.npz."""
    now = time.time() if now is None else now
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    accuracy = stats["accuracy"]
    manifest = {
        "model_version": snapshot.version,
        "originals": snapshot.originals,
        "exported_at": when,
        "preprocessing": PREPROCESSING,
        "models": {
            "cnn": {"file": "cnn.keras", "load": "keras.saving.load_model", "output": "(n, 10) probabilities"},
            "fnn": {
                "file": "fnn.npz",
                "arrays": {k: list(v.shape) for k, v in snapshot.fnn.params.items()},
                "forward": "softmax(relu(x @ W1 + b1) @ W2 + b2), x: the digits as (n, 784)",
            },
        },
        "heldout": {
            "dataset": f"{stats['heldout']['n']} MNIST t10k digits (models/heldout.npz), never trained on",
            "retrained": {m: accuracy[m]["retrained"]["t10k"] for m in ("fnn", "cnn")},
            "retrained_measured_at_version": accuracy["cnn"]["retrained"]["t10k_version"],
            "original": {m: accuracy[m]["original"]["t10k"] for m in ("fnn", "cnn")},
        },
        "users_drawings": {
            "learned": accuracy["cnn"]["retrained"]["n_scored"],
            "accuracy_before_learning_each": {
                f"{m}.{v}": accuracy[m][v]["prequential"] for m in ("fnn", "cnn") for v in ("original", "retrained")
            },
        },
    }
    archive = io.BytesIO()
    files = {
        "cnn.keras": keras_file(template, snapshot.cnn.weights, now),
        "fnn.npz": fnn_file(snapshot.fnn.params),
        "manifest.json": (json.dumps(manifest, indent=1) + "\n").encode(),
        "heldout.npz": held_out,
        "README.txt": README.format(version=snapshot.version, when=when).encode(),
    }
    with zipfile.ZipFile(archive, "w") as export:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, time.gmtime(now)[:6])
            info.external_attr = 0o644 << 16  # readable once unzipped (writestr's default is owner-only)
            info.compress_type = zipfile.ZIP_STORED if name.endswith((".keras", ".npz")) else zipfile.ZIP_DEFLATED
            export.writestr(info, data)
    return archive.getvalue()


def write_template(path: Path = TEMPLATE) -> None:
    """Save conv_net.build_export_model with Keras and keep its config.json (run in a fresh process: Keras names
    layers by a per-process counter)."""
    import keras

    from livedigits.models.cnn import build_export_model

    config, _, _ = state_from_bytes((ROOT / "models" / "cnn.npz").read_bytes())
    with tempfile.TemporaryDirectory() as folder:
        saved_at = Path(folder) / "model.keras"
        build_export_model(config).save(saved_at)
        with zipfile.ZipFile(saved_at) as saved:
            written = json.loads(saved.read("config.json"))
    path.write_text(json.dumps({"keras_version": keras.__version__, "config": written}, indent=1) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", action="store_true", help="rewrite models/cnn-keras.json with Keras")
    parser.add_argument("--out", type=Path, default=TEMPLATE, help="where to write the template")
    args = parser.parse_args()
    if args.template:
        write_template(args.out)
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
