"""The TensorFlow CNN (the layout's entry point); it lives in livedigits/models/cnn.py. Importing it loads
TensorFlow: only the learner and offline training do."""

from __future__ import annotations

from livedigits.models.cnn import (
    CNN,
    IMAGES,
    LABELS,
    WEIGHTS,
    JointPredictor,
    build_export_model,
    build_model,
    layers,
    limit_threads,
)

__all__ = [
    "CNN",
    "IMAGES",
    "LABELS",
    "WEIGHTS",
    "JointPredictor",
    "build_export_model",
    "build_model",
    "layers",
    "limit_threads",
]
