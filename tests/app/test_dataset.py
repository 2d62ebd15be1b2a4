"""The collected dataset: export (the function and HTTP) in MNIST's format, and migration of a store, against moto's
server on loopback. The command line, into training and back: tests/processes/test_dataset_cli.py."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np
import pytest
from collected import STROKES_OF_ONE, fill
from conftest import create_app

from functions import digit_from_png
from livedigits.config import Config
from livedigits.exports.dataset import IMAGES, LABELS, METADATA, STROKES, export
from livedigits.state.mnist import load_split, read_idx
from livedigits.state.storage import LocalStorage

pytestmark = pytest.mark.usefixtures("s3_credentials")


def test_export_writes_idx_pngs_metadata_and_strokes(tmp_path):
    store = tmp_path / "store"
    fill(store)
    assert export(LocalStorage(store), tmp_path / "out") == 4

    images, labels = load_split(tmp_path / "out", "train")
    assert images.dtype == np.uint8 and images.shape == (4, 28, 28)
    assert labels.tolist() == [1, 7, 7, 1]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / METADATA).read_text())))
    assert [r["sample_id"] for r in rows] == ["0000000001", "0000000002", "0000000003", "0000000006"]
    assert [r["kind"] for r in rows] == ["train", "train", "collect", "train"]
    assert [r["source"] for r in rows] == ["api/train", "api/train", "hook", "api/train"]
    assert [r["n_strokes"] for r in rows] == ["1", "0", "0", "0"]
    assert all(r["created"].endswith("Z") for r in rows)
    for row, image in zip(rows, images, strict=True):
        png = (tmp_path / "out" / row["image"]).read_bytes()
        entry = json.loads((store / "log" / f"{row['sample_id']}.json").read_bytes())
        assert png == (store / entry["image"]).read_bytes()  # the drawing exactly as stored
        assert np.array_equal(image, np.rint(digit_from_png(png) * 255))  # what the models saw, ink bright
    strokes = [json.loads(line) for line in (tmp_path / "out" / STROKES).read_text().splitlines()]
    assert strokes == [{"sample_id": "0000000001", "label": 1, "strokes": STROKES_OF_ONE}]


def test_export_of_an_empty_store(tmp_path):
    assert export(LocalStorage(tmp_path / "store"), tmp_path / "out") == 0
    assert load_split(tmp_path / "out", "train")[0].shape == (0, 28, 28)


def test_http_export_needs_the_admin_token_and_zips_the_same_files(tmp_path):
    app = fill(tmp_path / "store", admin_token="s3cret")
    client = app.test_client()
    assert client.get("/api/samples/export").status_code == 401
    assert client.get("/api/samples/export", headers={"Authorization": "Bearer wrong"}).status_code == 403
    response = client.get("/api/samples/export", headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]

    export(LocalStorage(tmp_path / "store"), tmp_path / "out")
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    on_disk = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert sorted(archive.namelist()) == on_disk
    archive.extractall(tmp_path / "unzipped")
    for name in (IMAGES, LABELS):
        assert np.array_equal(read_idx(tmp_path / "unzipped" / name), read_idx(tmp_path / "out" / name))
    assert archive.read(METADATA) == (tmp_path / "out" / METADATA).read_bytes()
    assert (
        create_app(Config(storage_url=str(tmp_path / "other")))
        .test_client()
        .get("/api/samples/export", headers={"Authorization": "Bearer s3cret"})
        .status_code
        == 403
    )  # admin routes are off without ADMIN_TOKEN
