"""The models as servers hold them: numpy FNNs and ONNX Runtime CNNs, built from a snapshot's arrays."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from livedigits.models.fnn import FNN, FNNConfig
from livedigits.models.numpy_cnn import NumpyCNN
from livedigits.models.onnx_cnn import OnnxCNN


def served_models(fnn_config: dict, arrays: Mapping[str, np.ndarray]) -> tuple[FNN, OnnxCNN]:
    """The FNN and the CNN a snapshot holds (its arrays `fnn_<param>` and `cnn_<i>`); KeyError if one is
    missing (the snapshot is not whole)."""
    fnn = FNN(FNNConfig(**fnn_config), {k: arrays[f"fnn_{k}"] for k in FNN.PARAMS})
    cnn = OnnxCNN([arrays[f"cnn_{i}"] for i in range(NumpyCNN.N_WEIGHTS)])
    return fnn, cnn


def served(snapshot: Any) -> Any:
    """A snapshot the learner made in this process (its CNN numpy's), with the CNN servers predict with."""
    if isinstance(snapshot.cnn, OnnxCNN):
        return snapshot
    return dataclasses.replace(snapshot, cnn=OnnxCNN(snapshot.cnn.weights))
