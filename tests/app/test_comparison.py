"""What /api/stats tells of original against retrained: held-out accuracy over versions (scored by the learner in
the background), accuracy per digit and confusion matrices on users' drawings, and the drawings on which an
original and its retrained model answered differently. On SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from conftest import create_app, wait_for_version
from drawings import stroke_canvas, to_data_url

import main
from livedigits.config import Config
from livedigits.learning.reporting import HELDOUT
from livedigits.models.served import served_models
from livedigits.state import heldout
from livedigits.state.database import Database
from livedigits.state.figures import NAMES
from livedigits.state.snapshot import Snapshot

TOKEN = "compare-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
SEVEN = to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)]))


@pytest.fixture
def config(store) -> Config:
    return Config(storage_url=str(store), sync_interval=0.0, admin_token=TOKEN, rate_limits="off")


def train(client, image: str, label: int) -> dict:
    response = client.post("/api/train", json={"image": image, "label": label})
    assert response.status_code == 200
    return response.get_json()


def test_held_out_accuracy_is_measured_every_so_many_versions_and_kept(config):
    config = replace(config, heldout_every_versions=3)
    app = create_app(config)
    client = app.test_client()
    for _ in range(7):
        train(client, ONE, 4)  # a 1 called a 4, over and over: what it costs on ordinary digits shows
    wait_for_version(client, 7)
    deadline = time.monotonic() + 30
    while (stats := client.get("/api/stats").get_json())["accuracy"]["fnn"]["retrained"]["t10k_version"] != 6:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    curve = stats["heldout"]["history"]
    assert [p["model_version"] for p in curve] == [0, 3, 6] and stats["heldout"]["n"] == 2000
    assert curve[0]["fnn"] == stats["accuracy"]["fnn"]["original"]["t10k"]  # version 0: the originals, like for like
    assert all(0.5 < p[m] <= 1 for p in curve for m in ("fnn", "cnn"))
    assert stats["accuracy"]["cnn"]["retrained"]["t10k"] == curve[-1]["cnn"]
    # A serve process gets the same figures from the snapshot in storage.
    snapshot = app.extensions["digits"].snapshot
    assert Snapshot.from_bytes(snapshot.to_bytes(), served_models).stats["heldout"] == snapshot.stats["heldout"]
    # The curve lives in the database: a restarted learner goes on from it.
    main.close_service(app)
    again = create_app(config).test_client()
    assert again.get("/api/stats").get_json()["heldout"]["history"] == curve


def test_a_calm_stream_still_gets_a_fresh_figure(config):
    """Fewer than heldout_every_versions labels, then quiet: the learner scores the slice once it has been idle."""
    client = create_app(replace(config, heldout_idle_seconds=0.5)).test_client()
    train(client, ONE, 1)
    deadline = time.monotonic() + 30
    while client.get("/api/stats").get_json()["accuracy"]["cnn"]["retrained"]["t10k_version"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_curve_stays_small_however_long_it_runs():
    points: list[dict] = []
    for version in range(0, 100_000, 10):
        points = heldout.add_point(points, {"model_version": version, "fnn": 0.9, "cnn": 0.9})
    assert len(points) <= Config.heldout_points and points[0]["model_version"] == 0
    assert points[-1]["model_version"] == 99_990
    published = heldout.published(points)
    assert len(published) <= Config.heldout_published_points and published[-1] == points[-1]


def review_rows(client) -> list[dict]:
    page = client.get("/api/review?limit=200", headers=AUTH).get_json()
    return page["samples"]


def test_per_digit_accuracy_and_confusion_on_users_drawings(config):
    client = create_app(config).test_client()
    for image, label in [(ONE, 1), (ONE, 1), (SEVEN, 7), (ONE, 4), (SEVEN, 7), (SEVEN, 1)]:
        train(client, image, label)
    wait_for_version(client, 6)
    stats = client.get("/api/stats").get_json()
    rows = review_rows(client)
    for name in NAMES:
        model, variant = name.split(".")
        expected = np.zeros((10, 10), int)
        for row in rows:
            expected[row["label"], row["predicted"][name]] += 1
        assert stats["users_confusion"][name] == expected.tolist()
        per_label = stats["accuracy"][model][variant]["per_label"]
        assert per_label[2] is None  # never drawn
        for digit in (1, 4, 7):
            assert per_label[digit] == round(expected[digit, digit] / expected[digit].sum(), 4)
    # An excluded drawing leaves the matrices too.
    excluded = rows[0]
    client.post("/api/admin/exclude", json={"sample_ids": [excluded["sample_id"]]}, headers=AUTH)
    wait_for_version(client, 7)
    after = client.get("/api/stats").get_json()["users_confusion"]["cnn.original"]
    assert sum(map(sum, after)) == 5
    label, answer = excluded["label"], excluded["predicted"]["cnn.original"]
    assert after[label][answer] == stats["users_confusion"]["cnn.original"][label][answer] - 1


def test_the_gallery_shows_the_latest_drawings_original_and_retrained_answer_differently(config):
    client = create_app(config).test_client()
    for _ in range(8):
        train(client, ONE, 4)  # the retrained models learn to call this 1 a 4; the originals do not
    wait_for_version(client, 8)
    stats = client.get("/api/stats").get_json()
    differing = stats["disagreements"]
    rows = {r["sample_id"]: r for r in review_rows(client)}
    expected = [
        sid
        for sid, row in sorted(rows.items(), reverse=True)
        if any(row["predicted"][f"{m}.original"] != row["predicted"][f"{m}.retrained"] for m in ("fnn", "cnn"))
    ]
    assert expected, "eight steps made no retrained model answer differently"
    assert [d["sample_id"] for d in differing] == expected[:12]
    for drawing in differing:
        assert drawing["label"] == 4 and drawing["predicted"] == rows[drawing["sample_id"]]["predicted"]
        image = client.get(drawing["image_url"])
        assert image.status_code == 200 and image.mimetype == "image/png"
    newest = differing[0]["sample_id"]
    client.post("/api/admin/exclude", json={"sample_ids": [newest]}, headers=AUTH)
    wait_for_version(client, 9)
    assert newest not in [d["sample_id"] for d in client.get("/api/stats").get_json()["disagreements"]]


def test_a_database_from_before_the_matrices_and_the_gallery_is_counted_once(config):
    app = create_app(config)
    client = app.test_client()
    for image, label in [(ONE, 1), (SEVEN, 7), *[(ONE, 4)] * 6]:
        train(client, image, label)
    wait_for_version(client, 8)
    before = client.get("/api/stats").get_json()
    assert before["disagreements"]
    main.close_service(app)
    db = Database(config.database)
    figures = db.meta()["figures"]
    del figures["confusion"]  # as the previous release wrote them
    with db.transaction() as tx:
        tx.set_meta("figures", figures)
        tx.set_meta(HELDOUT, [])
        tx.execute("DELETE FROM differing_drawings")
    db.close()
    after = create_app(config).test_client().get("/api/stats").get_json()
    assert after["users_confusion"] == before["users_confusion"]
    assert after["disagreements"] == before["disagreements"]
    for model in ("fnn", "cnn"):
        for variant in ("original", "retrained"):
            assert after["accuracy"][model][variant]["per_label"] == before["accuracy"][model][variant]["per_label"]
