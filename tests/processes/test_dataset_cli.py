"""The dataset's command line (`python -m livedigits.exports.dataset`): an export from a bucket that
`python -m livedigits.offline.train` trains on as it is, and a migration from a folder to a bucket and back."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from collected import SEVEN, fill
from conftest import MNIST, ROOT, create_app
from drawings import canvas_of

from functions import encode_png, flatten
from livedigits.config import Config
from livedigits.exports.dataset import MigrationError, migrate
from livedigits.state.journal import Entry, Journal
from livedigits.state.mnist import load_split
from livedigits.state.storage import LocalStorage, open_storage

pytestmark = pytest.mark.usefixtures("s3_credentials")  # moto takes any keys; boto3 needs some


def run_cli(*args: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "livedigits.exports.dataset", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_export_from_a_bucket_round_trips_into_train_py(tmp_path, moto):
    """1,100 collected drawings in a bucket -> `python -m livedigits.exports.dataset export` ->
    `python -m livedigits.offline.train --data` trains on them."""
    bucket = moto.new_bucket()
    storage = open_storage(f"s3://{bucket}/digits", moto.url)
    journal = Journal(storage)
    images, labels = load_split(MNIST, "train")

    def collect(i: int) -> None:
        png = encode_png(flatten(canvas_of(images[i], size=56)))
        assert journal.try_append(i + 1, Entry("collect", int(labels[i]), journal.store_drawing(png), "test"))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(collect, range(1100)))

    out = tmp_path / "dataset"
    storage_url = f"s3://{bucket}/digits"
    printed = run_cli("export", "--out", str(out), "--storage", storage_url, S3_ENDPOINT_URL=moto.url)
    assert "exported 1100 labelled drawings" in printed
    exported, exported_labels = load_split(out, "train")
    assert exported.shape == (1100, 28, 28) and np.array_equal(exported_labels, labels[:1100])
    assert len(list((out / "png").glob("*.png"))) == 1100

    models = tmp_path / "models"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "livedigits.offline.train",
            "--data",
            str(out),
            "--out",
            str(models),
            "--fnn-epochs",
            "1",
            "--only",
            "fnn",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "training on 100 digits, validating on 1000" in result.stdout
    accuracy = float(result.stdout.split("fnn epoch 1: validation accuracy ")[1].split()[0])
    assert accuracy > 0.3  # 100 digits, one epoch: far better than chance (0.1), so the labels line up
    assert (models / "fnn.npz").exists()


def store_contents(storage) -> dict[str, bytes]:
    return {key: storage.get(key) for folder in ("drawings/", "log/") for key in storage.list(folder)}


def test_migrate_folder_to_bucket_and_back_keeps_every_entry(tmp_path, moto):
    app = fill(tmp_path / "store")
    expected = app.test_client().post("/api/predict", json={"image": SEVEN}).get_json()
    original = store_contents(LocalStorage(tmp_path / "store"))
    bucket_url = f"s3://{moto.new_bucket()}/digits"

    printed = run_cli("migrate", "--from", str(tmp_path / "store"), "--to", bucket_url, S3_ENDPOINT_URL=moto.url)
    assert "4 drawings, 6 log, 3 checkpoints" in printed
    bucket = open_storage(bucket_url, moto.url)
    assert store_contents(bucket) == original
    again = migrate(LocalStorage(tmp_path / "store"), bucket)  # resumable: a second run changes nothing
    assert again == {"drawings": 4, "log": 6, "checkpoints": 3} and store_contents(bucket) == original

    back = LocalStorage(tmp_path / "back")
    migrate(bucket, back)
    assert store_contents(back) == original
    for storage_url, endpoint in ((bucket_url, moto.url), (str(tmp_path / "back"), None)):
        served = create_app(Config(storage_url=storage_url, s3_endpoint_url=endpoint)).test_client()
        assert served.post("/api/predict", json={"image": SEVEN}).get_json() == expected

    other = tmp_path / "other"
    fill(other)
    with pytest.raises(MigrationError):  # another history: its entries differ from the bucket's
        migrate(LocalStorage(other), bucket)
