"""A 784-100-10 fully connected network in numpy: ReLU, softmax, L2, backprop by hand.

No TensorFlow here: the FNN is the model anyone can read end to end, and it costs nothing to load.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Self

import numpy as np
from threadpoolctl import threadpool_limits

# One BLAS thread for the whole process. The FNN's products are small (a step on 824 images takes ~3 ms),
# and OpenBLAS's extra threads spin after every call, stealing the second core from TensorFlow: with them,
# the CNN's online step took 94 ms instead of 60 (bench/profile.py). One thread also sums in one order on
# every machine, which keeps replicas that replay the same log bit-identical.
threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True)
class FNNConfig:
    n_input: int = 784
    n_hidden: int = 100
    n_output: int = 10
    # Default step size; the service passes its own online rate (functions.Recipe).
    learning_rate: float = 0.05
    momentum: float = 0.5
    l2: float = 1e-4
    seed: int = 0


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; subtracting the row max keeps large logits from overflowing to nan."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class FNN:
    """Two-layer network. Inputs (n, 28, 28) float32 ink 1.0 on 0.0; outputs (n, 10) probabilities."""

    PARAMS = ("W1", "b1", "W2", "b2")

    def __init__(self, config: FNNConfig = FNNConfig(), params: dict[str, np.ndarray] | None = None):
        self.config = config
        if params is None:
            rng = np.random.default_rng(config.seed)
            # He initialisation suits ReLU: it keeps activations' variance steady through the layer.
            params = {
                "W1": rng.normal(0, np.sqrt(2 / config.n_input), (config.n_input, config.n_hidden)),
                "b1": np.zeros(config.n_hidden),
                "W2": rng.normal(0, np.sqrt(2 / config.n_hidden), (config.n_hidden, config.n_output)),
                "b2": np.zeros(config.n_output),
            }
        self.params = {k: np.asarray(params[k], dtype=np.float32) for k in self.PARAMS}
        self.velocity = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flat = x.reshape(len(x), -1).astype(np.float32, copy=False)
        hidden = np.maximum(flat @ self.params["W1"] + self.params["b1"], 0)
        probs = softmax(hidden @ self.params["W2"] + self.params["b2"])
        return flat, hidden, probs

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, 28, 28) -> (n, 10), rows sum to 1."""
        return self._forward(x)[2]

    def hidden_activations(self, x: np.ndarray) -> np.ndarray:
        """(n, 28, 28) -> (n, n_hidden) ReLU outputs, for showing what the network sees."""
        return self._forward(x)[1]

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy plus L2 penalty on the weights, and its gradient for every parameter."""
        flat, hidden, probs = self._forward(x)
        n = len(x)
        l2 = self.config.l2
        data_loss = -np.log(probs[np.arange(n), y] + 1e-12).mean()
        loss = data_loss + 0.5 * l2 * (np.sum(self.params["W1"] ** 2) + np.sum(self.params["W2"] ** 2))
        d_logits = probs.copy()
        d_logits[np.arange(n), y] -= 1
        d_logits /= n
        d_hidden = (d_logits @ self.params["W2"].T) * (hidden > 0)
        grads = {
            "W2": hidden.T @ d_logits + l2 * self.params["W2"],
            "b2": d_logits.sum(axis=0),
            "W1": flat.T @ d_hidden + l2 * self.params["W1"],
            "b1": d_hidden.sum(axis=0),
        }
        return float(loss), grads

    def train_step(self, x: np.ndarray, y: np.ndarray, learning_rate: float | None = None) -> float:
        """One SGD-with-momentum step on the batch; returns the loss before the step."""
        rate = self.config.learning_rate if learning_rate is None else learning_rate
        loss, grads = self.loss_and_grads(x, np.asarray(y, dtype=np.int64))
        for name, grad in grads.items():
            velocity = self.config.momentum * self.velocity[name] - rate * grad
            self.velocity[name] = velocity.astype(np.float32)
            self.params[name] = self.params[name] + self.velocity[name]
        return loss

    def copy(self) -> FNN:
        clone = FNN(self.config, self.params)
        clone.velocity = {k: v.copy() for k, v in self.velocity.items()}
        return clone

    def to_bytes(self) -> bytes:
        """Weights, optimizer state and config as one .npz, so a model is rebuilt from it alone."""
        arrays = {**self.params, **{f"velocity_{k}": v for k, v in self.velocity.items()}}
        buffer = io.BytesIO()
        np.savez(buffer, config=np.array(json.dumps(asdict(self.config))), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        with np.load(io.BytesIO(data)) as data:
            model = cls(FNNConfig(**json.loads(str(data["config"]))), {k: data[k] for k in cls.PARAMS})
            for k in cls.PARAMS:
                if f"velocity_{k}" in data:
                    model.velocity[k] = data[f"velocity_{k}"].astype(np.float32)
        return model

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls.from_bytes(Path(path).read_bytes())
