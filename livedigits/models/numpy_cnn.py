"""The CNN without TensorFlow: its file format and its forward pass in numpy, for serving processes.

livedigits/models/cnn.py builds, trains and saves the network with TensorFlow; a server only ever runs it forward,
and importing TensorFlow for that costs ~530 MB and ~1 ms of dispatch a call. The layer list here mirrors
`cnn.build_model` (Keras's `Sequential` weight order: kernel, bias per layer), and
tests/processes/test_roles.py holds the two to 1e-5 on all of t10k.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass

import numpy as np

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
KERNEL = 3  # every conv is 3x3, valid padding, stride 1
POOL = 2
CHUNK = 4  # drawings per forward pass (NumpyCNN.predict_proba)


@dataclass(frozen=True)
class CNNConfig:
    conv_filters: tuple[int, int] = (32, 64)
    dense_units: int = 128
    dropout: float = 0.4
    # Online steps: SGD with momentum. The learner sets its own rate (learner.Recipe).
    learning_rate: float = 0.01
    momentum: float = 0.5


def state_to_bytes(config: CNNConfig, weights: list[np.ndarray], optimizer_state: list[np.ndarray]) -> bytes:
    """A CNN snapshot (config, weights, optimizer variables) as one .npz, rebuilt by `CNN.from_bytes`."""
    arrays = {f"weight_{i}": w for i, w in enumerate(weights)}
    arrays |= {f"optimizer_{i}": v for i, v in enumerate(optimizer_state)}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        config=np.array(json.dumps(asdict(config))),
        n_weights=len(weights),
        n_optimizer=len(optimizer_state),
        **arrays,
    )
    return buffer.getvalue()


def state_from_bytes(data: bytes) -> tuple[CNNConfig, list[np.ndarray], list[np.ndarray]]:
    """What `state_to_bytes` wrote, without building a model."""
    with np.load(io.BytesIO(data)) as arrays:
        config = json.loads(str(arrays["config"]))
        weights = [arrays[f"weight_{i}"] for i in range(int(arrays["n_weights"]))]
        optimizer_state = [arrays[f"optimizer_{i}"] for i in range(int(arrays["n_optimizer"]))]
    return CNNConfig(**{**config, "conv_filters": tuple(config["conv_filters"])}), weights, optimizer_state


def conv_relu(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(n, h, w, c) -> (n, h-2, w-2, f): a valid 3x3 convolution as one matmul over im2col patches, then ReLU.
    `kernel` is Keras's (3, 3, c, f) as a (9 * c, f) matrix. The patches are nine shifted slices side by side,
    in Keras's (kh, kw, c) order: copying whole channel runs is twice as fast as copying a strided window view."""
    n, height, width, _ = x.shape
    shifts = [x[:, i : i + height - 2, j : j + width - 2] for i in range(KERNEL) for j in range(KERNEL)]
    patches = np.concatenate(shifts, axis=-1).reshape(n * (height - 2) * (width - 2), -1)
    out = patches @ kernel + bias
    return np.maximum(out, 0, out=out).reshape(n, height - 2, width - 2, -1)


def max_pool(x: np.ndarray) -> np.ndarray:
    """(n, h, w, c) -> (n, h/2, w/2, c), 2x2 windows (Keras floors odd sides)."""
    n, height, width, channels = x.shape
    x = x[:, : height // POOL * POOL, : width // POOL * POOL]
    return x.reshape(n, height // POOL, POOL, width // POOL, POOL, channels).max(axis=(2, 4))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class NumpyCNN:
    """The CNN's forward pass: (n, 28, 28) float32 ink 1.0 on 0.0 -> (n, 10) probabilities. Read-only weights."""

    N_WEIGHTS = 12  # four convs and two dense layers, a kernel and a bias each

    def __init__(self, weights: list[np.ndarray]):
        if len(weights) != self.N_WEIGHTS:
            raise ValueError(f"expected {self.N_WEIGHTS} CNN weight arrays, got {len(weights)}")
        self.weights = [np.ascontiguousarray(w, dtype=np.float32) for w in weights]
        self._kernels = [self.weights[2 * i].reshape(-1, self.weights[2 * i].shape[-1]) for i in range(4)]

    @classmethod
    def from_bytes(cls, data: bytes) -> NumpyCNN:
        """A CNN file (`conv_net.CNN.to_bytes`, models/cnn.npz): its weights; the optimizer state is not needed."""
        return cls(state_from_bytes(data)[1])

    def _convs(self, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """The four conv layers' activations, named as Keras names them in a fresh process."""
        w = self.weights
        outputs = x.astype(np.float32, copy=False)[..., None]
        maps = []
        for i, name in enumerate(("conv2d", "conv2d_1", "conv2d_2", "conv2d_3")):
            outputs = conv_relu(outputs, self._kernels[i], w[2 * i + 1])
            maps.append((name, outputs))
            if i % 2 == 1:
                outputs = max_pool(outputs)
        return maps

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, 28, 28) -> (n, 10), rows sum to 1 (dropout is off when predicting, as in Keras).

        CHUNK drawings at a time: the im2col patches of more than a few outgrow the CPU's caches (a batch of 64 costs
        0.79 ms a drawing at once, 0.39 four at a time)."""
        if len(x) > CHUNK:
            return np.concatenate([self.predict_proba(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)])
        w = self.weights
        features = max_pool(self._convs(x)[-1][1]).reshape(len(x), -1)  # Flatten: (h, w, c) order
        hidden = np.maximum(features @ w[8] + w[9], 0)
        return softmax(hidden @ w[10] + w[11])

    def feature_maps(self, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(n, 28, 28) -> [(layer name, (n, h, w, channels) activations)] for every conv layer."""
        return self._convs(x)
