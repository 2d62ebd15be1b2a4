"""The retrained models as servers hold them: numpy forward passes, built from a snapshot's arrays."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from livedigits.models.fnn import FNN, FNNConfig
from livedigits.models.numpy_cnn import NumpyCNN


def served_models(fnn_config: dict, arrays: Mapping[str, np.ndarray]) -> tuple[FNN, NumpyCNN]:
    """The FNN and the numpy CNN a snapshot holds (its arrays `fnn_<param>` and `cnn_<i>`); KeyError if one is
    missing (the snapshot is not whole)."""
    fnn = FNN(FNNConfig(**fnn_config), {k: arrays[f"fnn_{k}"] for k in FNN.PARAMS})
    cnn = NumpyCNN([arrays[f"cnn_{i}"] for i in range(NumpyCNN.N_WEIGHTS)])
    return fnn, cnn
