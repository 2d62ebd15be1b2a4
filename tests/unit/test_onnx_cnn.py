"""The CNN servers run in ONNX Runtime (livedigits/models/onnx_cnn.py) is the numpy CNN's network, to 1e-5, whatever
its weights; and its graph file is what livedigits/offline/onnx_graph.py writes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT

from livedigits.models.numpy_cnn import NumpyCNN
from livedigits.models.onnx_cnn import GRAPH, OnnxCNN
from livedigits.offline.onnx_graph import graph_bytes
from livedigits.pipeline.drawings import prepare

ORIGINAL = NumpyCNN.from_bytes((ROOT / "models" / "cnn.npz").read_bytes()).weights


def test_the_graph_file_is_what_its_builder_writes():
    assert GRAPH.read_bytes() == graph_bytes(), "run `python -m livedigits.offline.onnx_graph`"


@pytest.mark.parametrize("weights", ["original", "another"])
def test_onnx_runtime_answers_as_numpy_does(mnist_test, weights):
    chosen = ORIGINAL
    if weights == "another":  # a retrained model's weights are other numbers in the same shapes
        rng = np.random.default_rng(0)
        chosen = [w * rng.uniform(0.8, 1.2, w.shape).astype(np.float32) for w in ORIGINAL]
    digits = prepare(mnist_test[0][:1000])
    numpy_cnn, onnx_cnn = NumpyCNN(chosen), OnnxCNN(chosen)
    np.testing.assert_allclose(onnx_cnn.predict_proba(digits), numpy_cnn.predict_proba(digits), atol=1e-5)
    one = onnx_cnn.predict_proba(digits[:1])
    assert one.shape == (1, 10)
    np.testing.assert_allclose(one, numpy_cnn.predict_proba(digits[:1]), atol=1e-5)
    assert np.array_equal(onnx_cnn.feature_maps(digits[:2])[0][1], numpy_cnn.feature_maps(digits[:2])[0][1])


def test_weights_of_another_shape_are_refused():
    wrong = [*ORIGINAL[:8], ORIGINAL[8][:512], *ORIGINAL[9:]]
    with pytest.raises(ValueError, match="weight 8"):
        OnnxCNN(wrong)
