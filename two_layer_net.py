"""The numpy FNN (the layout's entry point): 784-100-10, ReLU then softmax; it lives in livedigits/models/fnn.py."""

from __future__ import annotations

from livedigits.models.fnn import (
    FNN,
    FNNConfig,
    softmax,
)

__all__ = ["FNN", "FNNConfig", "softmax"]
