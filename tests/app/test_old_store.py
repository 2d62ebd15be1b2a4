"""A store, its database and its checkpoint written before the move into the package (tests/fixtures/store-e8cf8ef)
load in today's code. Its checkpoint holds models learned from the originals of its day; since the originals and
the preprocessing changed (issue 34), the checkpoint is refused and the log is learned again from today's originals:
every fact stays (versions, counts, exclusions, used undo tokens); the scores are today's models'."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ROOT, create_app

from livedigits.config import Config

FIXTURE = ROOT / "tests" / "fixtures" / "store-e8cf8ef"


@pytest.fixture
def old_store(tmp_path):
    """A copy of the fixture (booting writes into a store and its database)."""
    shutil.copytree(FIXTURE / "store", tmp_path / "store")
    shutil.copy(FIXTURE / "store.sqlite3", tmp_path / "store.sqlite3")
    return tmp_path / "store"


def test_a_store_written_before_the_move_keeps_its_facts_under_new_originals(old_store, caplog):
    expected = json.loads((FIXTURE / "expected.json").read_text())
    made = json.loads((FIXTURE / "fixture.json").read_text())
    config = Config(storage_url=str(old_store), checkpoint_every=made["config"]["checkpoint_every"],
                    rate_limits="off", admin_token="t", cpu_threads=made["cpu_threads"])  # fmt: skip
    with caplog.at_level("INFO", logger="livedigits.learning"):
        client = create_app(config).test_client()
    assert "other originals" in caplog.text and "restored checkpoint" not in caplog.text
    assert client.get("/healthz").get_json()["model_version"] == expected["healthz"]["model_version"] == 17
    stats = client.get("/api/stats").get_json()
    assert stats["samples"] == expected["stats"]["samples"] and stats["model_version"] == 17
    for model in ("fnn", "cnn"):  # every label scored again, by today's models as they relearn the log
        for variant in ("original", "retrained"):
            recorded, now = expected["stats"]["accuracy"][model][variant], stats["accuracy"][model][variant]
            assert now["n_scored"] == recorded["n_scored"] == 12
    answers = [client.post("/api/predict", json={"image": probe}).get_json() for probe in expected["probes"]]
    assert [a["model_version"] for a in answers] == [17] * len(expected["probes"])
    assert [set(a) for a in answers] == [set(a) for a in expected["predict"]]
    # The used undo token stays used, and the next label is entry 18, learned at once.
    probe = expected["probes"][0]
    answer = client.post("/api/train", json={"image": probe, "label": 6}).get_json()
    assert answer["sample_id"] == "0000000018" and answer["model_version"] == 18
    excluded = client.get("/api/review?excluded=1", headers={"Authorization": "Bearer t"}).get_json()
    assert sorted(sample["sample_id"] for sample in excluded["samples"]) == ["0000000012", "0000000014"]
