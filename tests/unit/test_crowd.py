"""Labels that arrive faster than one step each are learned in groups (Config.max_group), and each group is
recorded in the store: a learner that grouped, a fresh one replaying the log and one taking over mid-group all land
on bit-identical weights. Across a checkpoint, with an exclusion of a grouped drawing, and after a crash between
recording a group and learning it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from functions import decode_drawing
from livedigits.config import Config
from livedigits.learning.log_learner import LogLearner
from livedigits.offline.canvas import canvas_of, to_data_url
from livedigits.state.database import Database
from livedigits.state.journal import GROUPS, Entry, Journal
from livedigits.state.mnist import load_split
from livedigits.state.storage import LocalStorage

MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


@pytest.fixture(scope="module")
def drawings() -> list[tuple[bytes, int]]:
    """Forty t10k digits as the service stores drawings (PNG of a browser's canvas), with their labels."""
    images, labels = load_split(MNIST, "t10k")
    return [(decode_drawing(to_data_url(canvas_of(images[i] / 255.0)))[1], int(labels[i])) for i in range(40)]


def append(journal: Journal, entry: Entry) -> int:
    number = journal.head_from(0) + 1
    assert journal.try_append(number, entry)
    return number


def log_trains(journal: Journal, drawings, labels=None) -> list[int]:
    """Train entries as servers write them while the learner is away (so they wait for it all at once)."""
    return [append(journal, Entry("train", label if labels is None else labels[i], journal.store_drawing(png), "api"))
            for i, (png, label) in enumerate(drawings)]  # fmt: skip


def open_learner(store: Path, database: Path, **settings) -> LogLearner:
    config = Config(storage_url=str(store), database_url=f"sqlite:///{database}", **settings)
    return LogLearner.open(config, Journal(LocalStorage(store)), Database(config.database))


def crowd(tmp_path: Path, drawings, **settings) -> tuple[Path, Journal, LogLearner]:
    """A learner running on an empty store, then these drawings' trains all at once: learned in groups."""
    store = tmp_path / "store"
    journal = Journal(LocalStorage(store))
    learner = open_learner(store, tmp_path / "a.sqlite3", **settings)
    log_trains(journal, drawings)
    learner.catch_up()
    return store, journal, learner


def weights(learner: LogLearner) -> list[np.ndarray]:
    return [*learner.learner.fnn.params.values(), *learner.learner.cnn.model.get_weights()]


def same(a: LogLearner, b: LogLearner) -> bool:
    return a.version == b.version and all(np.array_equal(x, y) for x, y in zip(weights(a), weights(b), strict=True))


def groups(store: Path) -> list[str]:
    folder = store / GROUPS.rstrip("/")
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def close(*learners: LogLearner) -> None:
    for learner in learners:
        learner.close()
        learner.db.close()


def test_waiting_labels_are_learned_in_groups_and_a_replay_lands_on_the_same_weights(tmp_path, drawings):
    store = tmp_path / "store"
    journal = Journal(LocalStorage(store))
    grouped = open_learner(store, tmp_path / "a.sqlite3")
    for drawing in drawings[:3]:  # a calm rate: one step per label, nothing recorded
        log_trains(journal, [drawing])
        assert grouped.catch_up() == 1
    log_trains(journal, drawings[3:23])  # a crowd: twenty wait at once
    assert grouped.catch_up() == 20 and grouped.version == 23
    assert groups(store) == ["0000000004-0000000019", "0000000020-0000000023"]
    replayed = open_learner(store, tmp_path / "b.sqlite3")  # a lost database: the singles stay singles
    assert same(grouped, replayed)
    close(grouped, replayed)


def test_a_learner_groups_only_what_arrives_after_it_took_over(tmp_path, drawings):
    """Entries already in the log at its boot may have been learned one by one by a learner before it (its
    database lost): they are replayed one by one, and nothing is recorded."""
    store = tmp_path / "store"
    log_trains(Journal(LocalStorage(store)), drawings[:6])
    booted = open_learner(store, tmp_path / "a.sqlite3")
    assert booted.version == 6 and groups(store) == []
    close(booted)


def test_a_group_of_one_is_the_single_step(tmp_path, drawings, monkeypatch):
    """max_group=1: no record, the weights of one step per entry; and a group of six ends elsewhere."""
    learners = []
    for name, max_group in (("single", 1), ("grouped", 16)):
        store = tmp_path / name
        learner = open_learner(store, tmp_path / f"{name}.sqlite3", max_group=max_group)
        log_trains(Journal(LocalStorage(store)), drawings[:6])
        learner.catch_up()
        learners.append(learner)
    assert groups(tmp_path / "single") == [] and groups(tmp_path / "grouped") == ["0000000001-0000000006"]
    assert not same(*learners)
    close(*learners)


def test_a_group_crossing_a_checkpoint_is_checkpointed_at_its_end(tmp_path, drawings):
    store, journal, first = crowd(tmp_path, drawings[:12], checkpoint_every=8)
    first.flush_checkpoints()
    assert first.journal.checkpoints() == [12]  # the group 1-12 stepped over 8: its end is the checkpoint
    log_trains(journal, drawings[12:15])
    first.catch_up()
    close(first)
    restarted = open_learner(store, tmp_path / "a.sqlite3", checkpoint_every=8)  # checkpoint 12, then the group
    assert restarted.booted_at == 15 and groups(store) == ["0000000001-0000000012", "0000000013-0000000015"]
    fresh = open_learner(store, tmp_path / "b.sqlite3", checkpoint_every=10_000)
    assert same(restarted, fresh)
    close(restarted, fresh)


def test_an_exclusion_of_a_grouped_drawing_rebuilds_the_group_without_it(tmp_path, drawings):
    store, journal, learner = crowd(tmp_path, drawings[:10], checkpoint_every=4)
    before = weights(learner)
    append(journal, Entry("exclude", source="admin", samples=[5]))
    learner.catch_up()
    assert learner.version == 11 and learner.unlearned == {5}
    assert not all(np.array_equal(a, b) for a, b in zip(before, weights(learner), strict=True))
    fresh = open_learner(store, tmp_path / "b.sqlite3", checkpoint_every=10_000)
    assert same(learner, fresh)
    close(learner, fresh)


def test_a_learner_that_stopped_mid_group_is_followed_by_the_next(tmp_path, drawings, monkeypatch):
    """The group is recorded, then the learner dies before its facts are: the next learner takes the recorded
    group (though it would group otherwise), and a fresh replay lands on the same weights."""
    store = tmp_path / "store"
    dying = open_learner(store, tmp_path / "a.sqlite3")
    log_trains(Journal(LocalStorage(store)), drawings[:10])

    def crash(self, last, rows):
        raise KeyboardInterrupt("killed between recording the group and its facts")

    monkeypatch.setattr(LogLearner, "_record_group", crash)
    with pytest.raises(KeyboardInterrupt):
        dying.catch_up()
    assert groups(store) == ["0000000001-0000000010"]
    monkeypatch.undo()
    next_learner = open_learner(store, tmp_path / "a.sqlite3", max_group=4)
    assert groups(store) == ["0000000001-0000000010"] and next_learner.version == 10
    fresh = open_learner(store, tmp_path / "b.sqlite3")
    assert same(next_learner, fresh)
    close(next_learner, fresh)
