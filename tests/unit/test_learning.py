"""The online recipe: what one step trains on, and that replicas applying the same entries agree."""

from __future__ import annotations

import numpy as np
from conftest import ROOT

from conv_net import CNN
from functions import preprocess
from livedigits.learning.recipe import Learner, Recipe, load_replay, read_memory
from two_layer_net import FNN

MODELS = ROOT / "models"


def learner(recipe: Recipe = Recipe()) -> Learner:
    return Learner(
        FNN.load(MODELS / "fnn.npz"), CNN.load(MODELS / "cnn.npz"), load_replay(MODELS / "replay.npz"), recipe
    )


def digit(seed: int) -> np.ndarray:
    ink = np.zeros((100, 100), dtype=np.float32)
    rng = np.random.default_rng(seed)
    top, left = rng.integers(5, 40, 2)
    ink[top : top + 50, left : left + 12] = 1.0
    return preprocess(ink)


def test_shipped_replay_sample_is_small_and_balanced():
    images, labels = load_replay(MODELS / "replay.npz")
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
    assert np.bincount(labels, minlength=10).min() >= 100
    assert (MODELS / "replay.npz").stat().st_size < 2 * 1024 * 1024


def test_batch_mixes_views_memory_and_mnist():
    recipe = Recipe(fnn_mnist_replay=40, cnn_mnist_replay=10, user_replay=5)
    model = learner(recipe)
    images, labels, users = model.batch(1, digit(1), 3)
    assert images.shape == (24 + 40, 28, 28) and (labels[:24] == 3).all() and users == 0  # no memory yet
    for n in range(2, 9):
        model.learn([(n, digit(n), n % 10)])
    images, labels, users = model.batch(9, digit(9), 4)
    assert images.shape == (24 + 5 + 40, 28, 28) and images.dtype == np.float32 and users == 5
    assert set(labels[24:29]) <= {n % 10 for n in range(2, 9)}
    assert np.array_equal(model.batch(9, digit(9), 4)[0], images)  # seeded by the entry number


def test_replicas_applying_the_same_entries_agree_exactly():
    first, second = learner(), learner()
    for n in range(1, 6):
        first.learn([(n, digit(n), 1)])
    checkpointed = learner()
    files = {"fnn.npz": first.fnn.to_bytes(), "cnn.npz": first.cnn.to_bytes(), "memory.npz": first.memory_bytes()}
    checkpointed.load(files)
    for n in range(1, 6):
        second.learn([(n, digit(n), 1)])
    for n in range(6, 9):
        first.learn([(n, digit(n), 7)])
        second.learn([(n, digit(n), 7)])
        checkpointed.learn([(n, digit(n), 7)])
    probe = np.stack([digit(n) for n in range(20, 24)])
    for model in ("fnn", "cnn"):
        expected = first.models[model].predict_proba(probe)
        assert np.array_equal(second.models[model].predict_proba(probe), expected)
        assert np.array_equal(checkpointed.models[model].predict_proba(probe), expected)


def test_memory_survives_a_checkpoint():
    model = learner()
    for n in range(1, 4):
        model.learn([(n, digit(n), n)])
    restored = learner()
    restored.memory.extend(read_memory(model.memory_bytes()))
    assert [label for _, label in restored.memory] == [1, 2, 3]
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(restored.memory, model.memory, strict=True))


def test_a_group_steps_the_fnn_once_per_entry_and_remembers_every_drawing():
    """Under a crowd the FNN still takes each label's own single step, so its weights are those of the entries
    learned one by one; the CNN takes one step for the group (its own, different weights)."""
    grouped, singles = learner(), learner()
    for n in range(1, 4):  # a few drawings in the user memory, so the replay picks from it
        grouped.learn([(n, digit(n), n)])
        singles.learn([(n, digit(n), n)])
    group = [(n, digit(n), n % 10) for n in range(4, 9)]
    grouped.learn(group)
    for entry in group:
        singles.learn([entry])
    probe = np.stack([digit(n) for n in range(20, 24)])
    assert np.array_equal(grouped.fnn.predict_proba(probe), singles.fnn.predict_proba(probe))
    assert not np.array_equal(grouped.cnn.predict_proba(probe), singles.cnn.predict_proba(probe))
    assert [label for _, label in grouped.memory] == [label for _, label in singles.memory]


def test_a_crowd_of_sixteen_costs_the_cnn_four_single_steps(monkeypatch):
    """Each CNN step of a group takes 4 entries: 6 of each one's 24 views, weighted 4, and a quarter of each one's
    replay, weighted 4: 184 images, the size of one single step, that stand for the 4 single steps."""
    model = learner()
    for n in range(1, 41):  # a full user memory: every batch at its steady-state size
        model.learn([(n, digit(n), n % 10)])
    steps = []
    monkeypatch.setattr(model.cnn, "train_step", lambda x, y, weights=None: steps.append((x, y, weights)))
    group = [(n, digit(n), n % 10) for n in range(41, 57)]
    model.learn(group)
    assert len(steps) == 4
    for i, (x, y, weights) in enumerate(steps):
        assert x.shape == (184, 28, 28) and len(y) == len(weights) == 184
        views = np.concatenate([np.arange(j * 46, j * 46 + 6) for j in range(4)])
        assert (weights[views] == 4).all() and weights.sum() == 4 * 184
        assert [int(y[j * 46]) for j in range(4)] == [label for _, _, label in group[4 * i : 4 * i + 4]]
        first = model.batch(*group[4 * i])[0]  # the first entry's views, every 4th, lead the batch
        assert np.array_equal(x[:6], first[0:24:4])
