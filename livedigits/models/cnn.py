"""A TensorFlow (Keras 3) convolutional network for 28x28 digits.

Prediction and the online training step are `tf.function`s with fixed input signatures, traced
once per process, so a request never rebuilds a graph. The online optimizer's state is saved with
the weights, so a restarted process continues exactly where the last one stopped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from livedigits.models.numpy_cnn import INPUT_SHAPE, NUM_CLASSES, CNNConfig, state_from_bytes, state_to_bytes

# Retrained models are a function of the log: two processes replaying the same entries must hold
# bit-identical weights, which multi-threaded CPU kernels only promise with determinism on.
tf.config.experimental.enable_op_determinism()


def limit_threads(threads: int) -> None:
    """Run TensorFlow's kernels on `threads` threads (config.cpu_threads: the dyno's share of the CPU, not the 8
    CPUs a Standard dyno shows). Only before TensorFlow's first op; later calls (tests that open many learners in
    one process) keep the count the first one set."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow runs already: its count was set by the first call, from the same config


def build_model(config: CNNConfig) -> keras.Model:
    """The learner's CNN: (n, 28, 28, 1) digits in, 10 logits out."""
    return keras.Sequential([keras.Input(shape=INPUT_SHAPE), *layers(config)])


def build_export_model(config: CNNConfig) -> keras.Model:
    """The model /api/models/export ships (livedigits/exports/models.py): the same layers, so the same weights,
    taking the
    service's (n, 28, 28) digits and answering probabilities."""
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE[:2]),
            keras.layers.Reshape(INPUT_SHAPE),
            *layers(config),
            keras.layers.Softmax(),
        ],
        name="digits_cnn",
    )


def layers(config: CNNConfig) -> list[keras.layers.Layer]:
    """Two conv blocks (two 3x3 convs and a 2x2 max-pool each), a dense layer, 10 logits: Keras's weight order
    (kernel, bias per layer) is what numpy_cnn mirrors."""
    small, large = config.conv_filters
    return [
        keras.layers.Conv2D(small, 3, activation="relu"),
        keras.layers.Conv2D(small, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(large, 3, activation="relu"),
        keras.layers.Conv2D(large, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(config.dropout),
        keras.layers.Dense(config.dense_units, activation="relu"),
        keras.layers.Dropout(config.dropout),
        keras.layers.Dense(NUM_CLASSES),
    ]


IMAGES = tf.TensorSpec([None, 28, 28], tf.float32)
LABELS = tf.TensorSpec([None], tf.int32)
WEIGHTS = tf.TensorSpec([None], tf.float32)


class CNN:
    """Inputs (n, 28, 28) float32 ink 1.0 on 0.0; outputs (n, 10) probabilities."""

    def __init__(self, config: CNNConfig = CNNConfig()):
        self.config = config
        self.model = build_model(config)
        self.optimizer = keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum)
        self.optimizer.build(self.model.trainable_variables)
        self._loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        # Concrete functions: called directly, they skip tf.function's argument binding (~0.2 ms a call). No
        # autograph (the graphs have no Python control flow): it parses source with `ast` on the learner's thread,
        # and CPython 3.11's AST recursion counter is shared by threads, so a parse elsewhere at the same moment (a
        # test runner formatting a failure) died with "AST constructor recursion depth mismatch".
        self._predict = tf.function(
            self._predict_graph, input_signature=[IMAGES], autograph=False
        ).get_concrete_function()
        signature = [IMAGES, LABELS, WEIGHTS]
        self._train = tf.function(self._train_graph, input_signature=signature, autograph=False).get_concrete_function()

    def _predict_graph(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(self.model(x[..., None], training=False))

    def _train_graph(self, x: tf.Tensor, y: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        # No dropout online: its random masks would make replicas that replay the same log diverge.
        with tf.GradientTape() as tape:
            loss = self._loss(y, self.model(x[..., None], training=False), sample_weight=w)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
        return loss

    def set_learning_rate(self, rate: float) -> None:
        """The online step's rate: set by whoever drives the learning, not stored in weight files."""
        self.optimizer.learning_rate.assign(rate)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, 28, 28) -> (n, 10), rows sum to 1."""
        return self._predict(tf.constant(x, tf.float32)).numpy()

    def feature_maps(self, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(n, 28, 28) -> [(layer name, (n, h, w, channels) activations)] for every conv layer.

        For showing what the network sees; not on the prediction path, so it runs eagerly.
        """
        outputs = tf.convert_to_tensor(x[..., None], tf.float32)
        maps = []
        for layer in self.model.layers:
            outputs = layer(outputs, training=False)
            if isinstance(layer, keras.layers.Conv2D):
                maps.append((layer.name, outputs.numpy()))
        return maps

    def train_step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """One online SGD step on the batch (its loss the mean over the batch of each image's loss times its
        weight: 1 unless given, which is bit for bit the plain mean); returns the loss before the step."""
        weights = np.ones(len(y), np.float32) if weights is None else np.asarray(weights, np.float32)
        return float(self._train(tf.constant(x, tf.float32), tf.constant(y, tf.int32), tf.constant(weights)))

    def copy(self) -> CNN:
        clone = CNN(self.config)
        clone.set_state(*self.get_state())
        return clone

    def take_weights(self, other: CNN) -> None:
        """Copy `other`'s weights into this model inside TensorFlow (no numpy round trip; ~0.2 ms)."""
        for mine, theirs in zip(self.model.weights, other.model.weights, strict=True):
            mine.assign(theirs)

    def get_state(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(weights, optimizer variables) as numpy arrays: a snapshot safe to write from another thread."""
        return self.model.get_weights(), [v.numpy() for v in self._optimizer_slots()]

    def set_state(self, weights: list[np.ndarray], optimizer_state: list[np.ndarray]) -> None:
        """Take a `get_state` snapshot; ValueError, with nothing changed, if it does not fit this model."""
        variables = [*self.model.weights, *self._optimizer_slots()]
        values = [*weights, *optimizer_state]
        if len(values) != len(variables) or any(v.shape != np.shape(a) for v, a in zip(variables, values, strict=True)):
            raise ValueError("the CNN state does not fit this model's shapes")
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)

    def _optimizer_slots(self) -> list[keras.Variable]:
        # The learning rate comes from the config, not the file, so tuning it takes effect on load.
        return [v for v in self.optimizer.variables if "learning_rate" not in v.path]

    def to_bytes(self) -> bytes:
        return state_to_bytes(self.config, *self.get_state())

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        config, weights, optimizer_state = state_from_bytes(data)
        model = cls(config)
        model.set_state(weights, optimizer_state)
        return model

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls.from_bytes(Path(path).read_bytes())


class JointPredictor:
    """Several CNNs on the same input in one graph: (n, 28, 28) -> (k, n, 10) probabilities.

    The graph reads the models' variables, so it follows their weights as they change.
    """

    def __init__(self, models: list[CNN]):
        graph = tf.function(
            lambda x: tf.stack([m._predict_graph(x) for m in models]), input_signature=[IMAGES], autograph=False
        )
        self._predict = graph.get_concrete_function()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._predict(tf.constant(x, tf.float32)).numpy()
