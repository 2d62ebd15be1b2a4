"""The two models keep one contract; the FNN's gradients are right; the CNN learns online."""

from __future__ import annotations

import numpy as np

from conv_net import CNN, JointPredictor
from two_layer_net import FNN, FNNConfig, softmax


def batch(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n)


def test_softmax_survives_large_logits():
    probs = softmax(np.array([[1000.0, 0.0, -1000.0]]))
    assert np.isfinite(probs).all() and np.isclose(probs.sum(), 1.0)


def test_fnn_gradients_match_finite_differences():
    x, y = batch(4)
    model = FNN(FNNConfig(l2=1e-2, seed=3))
    model.params = {k: v.astype(np.float64) for k, v in model.params.items()}
    _, grads = model.loss_and_grads(x.astype(np.float64), y)
    rng = np.random.default_rng(1)
    eps = 1e-5
    for name, param in model.params.items():
        for _ in range(5):
            index = tuple(rng.integers(0, s) for s in param.shape)
            saved = param[index]
            param[index] = saved + eps
            plus, _ = model.loss_and_grads(x.astype(np.float64), y)
            param[index] = saved - eps
            minus, _ = model.loss_and_grads(x.astype(np.float64), y)
            param[index] = saved
            numeric = (plus - minus) / (2 * eps)
            assert np.isclose(grads[name][index], numeric, rtol=1e-4, atol=1e-7), name


def test_fnn_train_step_lowers_loss_and_round_trips(tmp_path):
    x, y = batch()
    model = FNN()
    first = model.train_step(x, y)
    for _ in range(5):
        last = model.train_step(x, y)
    assert last < first
    model.save(tmp_path / "fnn.npz")
    loaded = FNN.load(tmp_path / "fnn.npz")
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.train_step(x, y) == model.train_step(x, y)  # momentum was saved too


def test_cnn_train_step_lowers_loss_on_its_batch():
    x, y = batch(24)
    model = CNN()
    probs = model.predict_proba(x)
    assert probs.shape == (24, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    first = model.train_step(x, y)
    for _ in range(5):
        last = model.train_step(x, y)
    assert last < first


def test_cnn_round_trips_with_optimizer_state():
    x, y = batch(24)
    model = CNN()
    model.train_step(x, y)
    loaded = CNN.from_bytes(model.to_bytes())
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.train_step(x, y) == model.train_step(x, y)
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_shipped_models_load_and_agree_with_their_metrics(mnist_test):
    from livedigits.config import Config

    images, labels = mnist_test
    digits = images[:500].astype(np.float32) / 255.0
    for model in (FNN.load(Config().models_dir / "fnn.npz"), CNN.load(Config().models_dir / "cnn.npz")):
        assert (model.predict_proba(digits).argmax(axis=1) == labels[:500]).mean() > 0.95


def test_joint_predictor_matches_each_cnn_and_follows_their_training():
    from livedigits.config import Config

    shipped = CNN.load(Config().models_dir / "cnn.npz")
    learning = shipped.copy()
    joint = JointPredictor([shipped, learning])
    rng = np.random.default_rng(0)
    x = rng.random((3, 28, 28), dtype=np.float32)
    before = joint(x)
    learning.train_step(rng.random((8, 28, 28), dtype=np.float32), np.arange(8))
    after = joint(x)
    assert np.array_equal(after[0], shipped.predict_proba(x)) and np.array_equal(before[0], after[0])
    assert np.array_equal(after[1], learning.predict_proba(x)) and not np.array_equal(before[1], after[1])
