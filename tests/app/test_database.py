"""The database of what the service knows (livedigits/state/database.py), on SQLite and on a real PostgreSQL: the
review queue as a query, outages, the upgrade of a store written before the database, exclusions beyond the exact
window, fixed-size snapshots, and what a notification carries. Notifications between processes and the rebuild
command: tests/processes/test_database_processes.py."""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import asdict

import numpy as np
import pytest
from labelled import ADMIN, LABELS, ONE, SEVEN, ZERO, make_app, train_all

from functions import digit_from_text, stored_digit
from livedigits.config import Config
from livedigits.learning.log_learner import LogLearner
from livedigits.models.fnn import FNN
from livedigits.models.numpy_cnn import NumpyCNN
from livedigits.models.served import served_models
from livedigits.state.database import LOG_CHANNEL, Database
from livedigits.state.figures import NAMES, Score
from livedigits.state.journal import Journal, entry_of
from livedigits.state.snapshot import Snapshot
from livedigits.state.storage import open_storage


def test_the_review_queue_is_every_row_sorted_filtered_and_paged(store):
    app = make_app(store)
    client = app.test_client()
    train_all(client)
    client.post("/hook", data={"imageBase64": ZERO, "digit": "0"})  # a collected drawing, source "hook"
    assert client.post("/api/admin/exclude", json={"sample_ids": [3]}, headers=ADMIN).status_code == 200
    rows = app.extensions["digits"].db.drawings(list(range(1, 20)))
    assert len(rows) == 13 and rows[3]["excluded"] and not rows[4]["excluded"]

    def expected(label=None, source=None, excluded=False) -> list[str]:
        chosen = [
            r
            for r in rows.values()
            if r["excluded"] == excluded and label in (None, r["label"]) and source in (None, r["source"])
        ]
        key = lambda r: (-sum(r["predicted"][n] != r["label"] for n in NAMES), r["probability"]["cnn.original"])  # noqa: E731
        return [f"{r['number']:010d}" for r in sorted(chosen, key=lambda r: (*key(r), r["number"]))]

    queries = [("", {}), ("?label=1", {"label": 1}), ("?source=hook", {"source": "hook"})]
    queries += [("?excluded=1", {"excluded": True}), ("?label=7&source=api/train", {"label": 7, "source": "api/train"})]
    for query, args in queries:
        whole = expected(**args)
        pages = []
        for offset in range(0, len(whole) + 3, 3):
            page = client.get(f"/api/review{query}{'&' if '?' in query else '?'}offset={offset}&limit=3", headers=ADMIN)
            body = page.get_json()
            assert body["total"] == len(whole), (query, body["total"])
            pages += [s["sample_id"] for s in body["samples"]]
        assert pages == whole, query
    body = client.get("/api/review", headers=ADMIN).get_json()
    assert body["sources"] == ["api/train", "hook"] and body["samples"][0]["disagreeing"] >= 2


# SQLite is a file in this process: it has no outage of its own (full disks: test_reliability).
@pytest.mark.postgres_only
def test_a_database_outage_refuses_trains_keeps_predicting_and_heals(tmp_path):
    """PostgreSQL stopped under a running app: trains 503 with nothing stored, predictions and the last figures
    answer, the review queue is a 503; started again, the same app trains again without a restart."""
    from pgserver import PostgresServer

    postgres = PostgresServer(tmp_path / "pg")
    try:
        store = tmp_path / "store"
        client = make_app(store, database_url=postgres.create_database("digits")).test_client()
        train_all(client, LABELS[:2])
        logged = sorted(p.name for p in (store / "log").iterdir())
        drawn = sorted(p.name for p in (store / "drawings").iterdir())
        postgres.stop()
        for _ in range(2):
            response = client.post("/api/train", json={"image": ONE, "label": 1})
            assert response.status_code == 503 and response.get_json()["error"] == "database_unavailable"
        assert sorted(p.name for p in (store / "log").iterdir()) == logged  # nothing acknowledged, nothing stored
        assert sorted(p.name for p in (store / "drawings").iterdir()) == drawn
        assert client.post("/api/predict", json={"image": ONE}).status_code == 200
        stats = client.get("/api/stats")
        assert stats.status_code == 200 and stats.get_json()["samples"]["total"] == 2  # the last figures
        review = client.get("/api/review", headers=ADMIN)
        assert review.status_code == 503 and review.get_json()["error"] == "database_unavailable"
        postgres.start()
        deadline = time.monotonic() + 30
        while (response := client.post("/api/train", json={"image": ONE, "label": 1})).status_code == 503:
            assert time.monotonic() < deadline, response.get_json()
            time.sleep(0.5)
        assert response.status_code == 200 and response.get_json()["model_version"] == 3
        assert client.get("/api/review", headers=ADMIN).get_json()["total"] == 3
    finally:
        postgres.kill()


def old_checkpoint_state(db: Database, number: int, state: dict) -> dict:
    """Checkpoint `number`'s state.json as main wrote it before the database: every score, kind and label."""
    rows = db.drawings(list(range(1, number + 1)))
    scores = [
        asdict(Score(n, r["label"], r["predicted"], r["probability"], r["kind"], r["source"], r["created"]))
        for n, r in sorted(rows.items())
        if r["scored"]
    ]
    excluded = sorted(n for n in state["excluded"] if n <= number)
    counts = [0] * 10
    for n, r in rows.items():
        counts[r["label"]] += n not in excluded
    recent = [
        {"sample_id": f"{n:010d}", "label": r["label"], "kind": r["kind"], "created": r["created"]}
        for n, r in sorted(rows.items())
    ]
    return {"version": number, "fingerprint": state["fingerprint"], "label_counts": counts, "scores": scores,
            "recent": recent[-48:], "drawings": [[n, r["kind"], r["label"]] for n, r in sorted(rows.items())],
            "excluded": excluded}  # fmt: skip


def test_a_store_written_before_the_database_opens_on_the_same_models_and_figures(tmp_path, backend):
    """Checkpoints in the old format (state.json with every score) and no database: the newest one's facts move
    into the database once, and the service answers as it did, with the same figures and queue."""
    store = tmp_path / "store"
    app = make_app(store, checkpoint_every=4)
    client = app.test_client()
    train_all(client, LABELS[:6])
    assert client.post("/api/admin/exclude", json={"sample_ids": [2]}, headers=ADMIN).status_code == 200  # entry 7
    train_all(client, LABELS[6:7])  # entry 8: checkpoints 4 and 8
    app.extensions["learner"].flush_checkpoints()
    before = {path: client.get(path, headers=ADMIN).get_json() for path in ("/api/stats", "/api/review")}
    before["/api/review?excluded=1"] = client.get("/api/review?excluded=1", headers=ADMIN).get_json()
    predicted = client.post("/api/predict", json={"image": SEVEN}).get_json()
    db = app.extensions["digits"].db
    for checkpoint in sorted((store / "checkpoints").glob("*.zip")):
        with zipfile.ZipFile(checkpoint) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
        state = json.loads(files["state.json"])
        files["state.json"] = json.dumps(old_checkpoint_state(db, state["version"], state)).encode()
        with zipfile.ZipFile(checkpoint, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)

    fresh = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    if backend == "postgres":
        fresh = Config(storage_url=str(tmp_path / "another")).database  # conftest: a fresh PostgreSQL database
    upgraded = make_app(store, checkpoint_every=4, database_url=fresh)
    assert upgraded.extensions["learner"].learner.booted_at == 8  # from checkpoint 8, nothing replayed
    again = upgraded.test_client()
    for path, expected in before.items():
        answer = again.get(path, headers=ADMIN).get_json()
        for changing in ("learner_seen_seconds_ago",):
            answer.pop(changing, None), expected.pop(changing, None)
        assert without_held_out(answer) == without_held_out(expected), path
    assert again.post("/api/predict", json={"image": SEVEN}).get_json() == predicted


def test_an_exclusion_beyond_the_window_leaves_the_models_and_changes_the_figures(tmp_path, monkeypatch):
    """Further back than Config.exact_window, a drawing leaves the counts, figures and queue at once and the models keep
    it; within the window the models are rebuilt. Either way a replay from the log lands on the same state."""
    store = tmp_path / "store"
    client = make_app(store, checkpoint_every=2, exact_window=3).test_client()
    train_all(client, LABELS[:6])
    weights = client.post("/api/predict", json={"image": SEVEN}).get_json()["predictions"]
    response = client.post("/api/admin/exclude", json={"sample_ids": [2]}, headers=ADMIN)  # 5 entries back
    assert response.get_json()["status"] == "applied"
    assert client.post("/api/predict", json={"image": SEVEN}).get_json()["predictions"] == weights
    stats = client.get("/api/stats").get_json()
    assert stats["samples"]["total"] == 5 and stats["accuracy"]["cnn"]["original"]["n_scored"] == 5
    assert client.get("/api/review?excluded=1", headers=ADMIN).get_json()["total"] == 1
    client.post("/api/admin/exclude", json={"sample_ids": [6]}, headers=ADMIN)  # 2 entries back: rebuilt
    assert client.post("/api/predict", json={"image": SEVEN}).get_json()["predictions"] != weights
    answers = [client.post("/api/predict", json={"image": image}).get_json() for image in (ONE, SEVEN, ZERO)]
    figures = client.get("/api/stats").get_json()
    replayed = make_app(store, checkpoint_every=10_000, exact_window=3,
                        database_url=f"sqlite:///{tmp_path / 'replay.sqlite3'}")  # fmt: skip
    for name in ("checkpoints",):
        assert (store / name).exists()
    again = replayed.test_client()
    assert [again.post("/api/predict", json={"image": image}).get_json() for image in (ONE, SEVEN, ZERO)] == answers
    stats = without_held_out(again.get("/api/stats").get_json())
    figures = without_held_out(figures)
    assert {k: stats[k] for k in ("samples", "accuracy", "history")} == {
        k: figures[k] for k in ("samples", "accuracy", "history")
    }


def without_held_out(stats: dict) -> dict:
    """/api/stats less the retrained models' held-out figures: a learner's timeline (it scores the slice every so
    many versions and when idle), not a function of the log; a new database starts its own."""
    stats = json.loads(json.dumps(stats))
    stats.pop("heldout", None)
    for model in stats.get("accuracy", {}).values():
        for key in ("t10k", "t10k_version"):
            model["retrained"].pop(key, None)
    return stats


def test_snapshots_have_a_fixed_size():
    """The weights and a few figures: a snapshot with a full history and 48 recent drawings weighs what one
    with a short history does."""
    fnn = FNN.load(Config().models_dir / "fnn.npz")
    cnn = NumpyCNN.from_bytes((Config().models_dir / "cnn.npz").read_bytes())
    initial = Snapshot.initial(fnn, cnn, "abc")

    def sized(points: int) -> int:
        history = [{"model_version": v, **dict.fromkeys(NAMES, 0.5)} for v in range(1, points + 1)]
        recent = [{"sample_id": f"{n:010d}", "label": 1, "kind": "train", "created": 1.0} for n in range(48)]
        stats = {**initial.stats, "history": history}
        snapshot = Snapshot(points, "abc", fnn, cnn, stats, recent, 1.0, {})
        assert Snapshot.from_bytes(snapshot.to_bytes(), served_models).stats == stats
        return len(snapshot.to_bytes())

    assert abs(sized(3) - sized(200)) < 16  # a summary never holds more than HISTORY_POINTS (200)


def test_heroku_postgres_urls_are_read_as_they_are(backend):
    config = Config(database_url="postgres://user:secret@db.example:5432/name")
    assert config.database == "postgresql://user:secret@db.example:5432/name" and "secret" not in repr(config)
    if backend == "sqlite":  # the default, beside the local store
        assert Config(storage_url="/srv/store").database == "sqlite:////srv/store.sqlite3"


def test_a_rebuild_from_a_state_kept_in_memory_equals_a_replay(tmp_path, monkeypatch):
    """Between the store's checkpoints the learner keeps its state every keep_every entries in memory: an undo of a
    recent label replays from there, and lands on the weights a replay of the whole log gives."""
    store = tmp_path / "store"
    app = make_app(store, checkpoint_every=10_000, keep_every=2)  # no checkpoint in the store at all
    client = app.test_client()
    train_all(client, LABELS[:7])
    started_from = []
    load = LogLearner._load_checkpoint

    def spied(self, *args, **kwargs):
        started_from.append(load(self, *args, **kwargs))
        return started_from[-1]

    monkeypatch.setattr(LogLearner, "_load_checkpoint", spied)
    client.post("/api/admin/exclude", json={"sample_ids": [6]}, headers=ADMIN)  # entry 8
    answers = [client.post("/api/predict", json={"image": image}).get_json() for image in (ONE, SEVEN, ZERO)]
    assert [restored[0] for restored in started_from] == [4]  # the state kept after entry 4: 4 entries replayed
    replayed = make_app(store, checkpoint_every=10_000, keep_every=2,
                        database_url=f"sqlite:///{tmp_path / 'replay.sqlite3'}")  # fmt: skip
    again = replayed.test_client()
    assert [again.post("/api/predict", json={"image": image}).get_json() for image in (ONE, SEVEN, ZERO)] == answers


def test_an_unknown_database_scheme_stops_the_boot():
    with pytest.raises(ValueError, match="DATABASE_URL"):
        Database("mysql://localhost/digits")


def test_a_full_history_is_thinned_in_the_database_as_in_memory(store, monkeypatch):
    """More than 2 x history_points points: every other one goes, the same in the figures and in the table."""
    app = make_app(store, history_points=2)
    train_all(app.test_client(), LABELS[:9])
    learner = app.extensions["learner"].learner
    assert learner.figures.stride == 2 and [p["model_version"] for p in learner.figures.history] == [2, 4, 6, 8]
    assert learner.db.history() == learner.figures.history


@pytest.mark.postgres_only  # SQLite has no notifications
def test_a_train_announces_its_digit_and_the_learner_reads_nothing_back(tmp_path):
    """With PostgreSQL, a serve process's train notification carries the entry and the drawing's digit: the learner
    learns it without reading or decoding the drawing, and lands where a replay of the stored drawing lands."""
    store = tmp_path / "store"
    app = make_app(store, role="serve", train_wait=0.0)
    service = app.extensions["digits"]
    config = Config(storage_url=str(store), checkpoint_every=100_000)
    told = LogLearner.open(config, Journal(open_storage(str(store))), Database(config.database))
    told.journal.drawing = lambda entry: pytest.fail("the learner read a drawing it was handed")
    heard, ears = [], Database(config.database)
    ears.listen((LOG_CHANNEL,), lambda channel, payload: heard.append(payload) if channel else None)
    time.sleep(0.5)  # listening
    response = app.test_client().post("/api/train", json={"image": SEVEN, "label": 7})
    assert response.status_code == 202, response.get_json()
    deadline = time.monotonic() + 10
    while not heard and time.monotonic() < deadline:
        time.sleep(0.05)
    ears.close()
    (payload,) = heard
    entry = entry_of(payload["entry"])
    digit = digit_from_text(payload["digit"])
    assert np.array_equal(digit, stored_digit(service.journal.drawing(entry)))  # exactly what a replay decodes

    told.notice(payload["number"], entry, digit=digit)
    assert told.catch_up() == 1
    replayed = LogLearner.open(config, Journal(open_storage(str(store))), Database(config.database))
    assert replayed.version == 1
    for name, model in told.learner.models.items():
        probe = np.stack([digit, digit.T])
        assert np.array_equal(model.predict_proba(probe), replayed.learner.models[name].predict_proba(probe)), name
    told.close()
    replayed.close()
