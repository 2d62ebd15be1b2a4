"""The online recipe: one SGD step per labelled drawing (a CNN step per few under a crowd), on a batch of
the drawing's 24 augmented views, past user drawings replayed from memory and MNIST digits shipped in
models/replay.npz. Everything is seeded by the entry number: processes applying the same log hold the same
state."""

from __future__ import annotations

import io
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedigits import threads
from livedigits.models.cnn import CNN
from livedigits.models.fnn import FNN
from livedigits.models.numpy_cnn import state_from_bytes
from livedigits.pipeline.drawings import augment, quantise

CNN_STEPS = threads.pool("cnn-steps")  # Learner.learn's CNN steps, beside the FNN's


# --- online learning --------------------------------------------------------------------------------
# One SGD step per labelled drawing, on a batch of the drawing's 24 augmented views, past user drawings
# replayed from memory (a correction is not undone by the next person) and MNIST digits shipped in
# models/replay.npz (the models do not forget MNIST). bench/online.py measured the alternatives.
# Everything is seeded by the entry number: processes applying the same log hold the same state.


@dataclass(frozen=True)
class Recipe:
    # MNIST digits mixed into every step, per model: the main guard against forgetting MNIST.
    # The FNN's steps cost microseconds, so it takes many; the CNN's cost grows with the batch (128:
    # the pen-trained originals forgot up to 0.88 point of MNIST with 64 and 2,000 replay digits).
    fnn_mnist_replay: int = 768
    cnn_mnist_replay: int = 128
    user_replay: int = 32  # past user drawings mixed in: what other people taught stays learned
    # Rates of the one SGD step per drawing (momentum 0.5, from the models' configs); bench/online.py:
    # higher rates learn a hand faster but forget MNIST, lower ones barely move on a 600-drawing stream.
    fnn_learning_rate: float = 0.07
    cnn_learning_rate: float = 0.02
    user_memory: int = 1000  # past user drawings kept to replay from (~0.8 MB)
    # Under a crowd the CNN takes one step per `cnn_step_entries` entries, each bringing every `cnn_view_stride`th
    # of its views (Learner.learn): 4 and 4 make that step the size of one single step. bench/online.py --crowd 16
    # (the last half's accuracy, MNIST forgotten): one step for 16 fell 2-3 points behind one by one and forgot
    # 0.9; steps of 8 forgot 0.5-1.0; steps of 4 with all views cost 40% more and forgot 0.6.
    cnn_step_entries: int = 4
    cnn_view_stride: int = 4


def load_replay(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The shipped MNIST sample: (n, 28, 28) uint8 preprocessed digits, (n,) labels (none if absent)."""
    if not path.exists():
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    with np.load(path) as data:
        return data["images"], data["labels"].astype(np.int64)


class Learner:
    """The retrained FNN and CNN and the memory of user drawings they replay from."""

    def __init__(self, fnn: FNN, cnn: CNN, replay: tuple[np.ndarray, np.ndarray], recipe: Recipe = Recipe()):
        self.fnn = fnn
        self.cnn = cnn
        self.replay = replay
        self.recipe = recipe
        self.memory: deque[tuple[np.ndarray, int]] = deque(maxlen=recipe.user_memory)
        cnn.set_learning_rate(recipe.cnn_learning_rate)

    @property
    def models(self) -> dict:
        return {"fnn": self.fnn, "cnn": self.cnn}

    def batch(self, number: int, digit: np.ndarray, label: int) -> tuple[np.ndarray, np.ndarray, int]:
        """One entry's single-step batch: (n, 28, 28) float32 images and (n,) labels, ordered [its 24 augmented
        views, replayed user drawings, replayed MNIST digits] so each model takes a prefix, all seeded by the
        entry's number; and how many of them are user drawings."""
        rng = np.random.default_rng(number)
        images, labels = [augment(digit, rng)], [np.full(24, label)]
        users = min(self.recipe.user_replay, len(self.memory))
        if users:
            picks = rng.choice(len(self.memory), users, replace=False)
            images.append(np.stack([self.memory[i][0] for i in picks]) / np.float32(255))
            labels.append(np.array([self.memory[i][1] for i in picks]))
        replay_images, replay_labels = self.replay
        n_mnist = min(max(self.recipe.fnn_mnist_replay, self.recipe.cnn_mnist_replay), len(replay_labels))
        if n_mnist:
            picks = rng.choice(len(replay_labels), n_mnist, replace=False)
            images.append(replay_images[picks] / np.float32(255))
            labels.append(replay_labels[picks])
        return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int64), users

    def learn(self, group: list[tuple[int, np.ndarray, int]]) -> None:
        """Learn a group of entries [(number, digit, label)]: one at a calm rate, the entries waiting together
        under a crowd. A group of one is exactly one entry's single step.

        The FNN takes each entry's own single step in turn (~3 ms each). The CNN's step costs ~0.26 ms an image
        and most of a single step's 184 are replay, so it takes one step per `cnn_step_entries` entries: every
        `cnn_view_stride`th of each one's views, weighted by the stride (its views' worth), and one single step's
        replay, a share of each one's picks weighted by their number (their single steps' worth of anchoring)."""
        recipe, parts = self.recipe, []
        for number, digit, label in group:
            images, labels, users = self.batch(number, digit, label)  # each sees the memory as its single step would
            parts.append((images, labels, users, len(labels) - 24 - users))
            self.memory.append((quantise(digit), label))
        # The two models are independent: the CNN's steps (TensorFlow, off the GIL) run beside the FNN's.
        cnn_steps = CNN_STEPS.submit(lambda: [self._cnn_step(parts[at : at + recipe.cnn_step_entries])
                                              for at in range(0, len(parts), recipe.cnn_step_entries)])  # fmt: skip
        for images, labels, users, mnist in parts:
            fnn = 24 + users + min(recipe.fnn_mnist_replay, mnist)
            self.fnn.train_step(images[:fnn], labels[:fnn], learning_rate=recipe.fnn_learning_rate)
        cnn_steps.result()

    def _cnn_step(self, parts: list[tuple[np.ndarray, np.ndarray, int, int]]) -> None:
        """One CNN step for these entries' single-step batches [(images, labels, user drawings, MNIST digits)]."""
        j, stride = len(parts), self.recipe.cnn_view_stride if len(parts) > 1 else 1
        mnist_share = [math.ceil(min(self.recipe.cnn_mnist_replay, mnist) / j) for *_, mnist in parts]
        takes = [np.r_[0 : 24 : stride, 24 : 24 + math.ceil(users / j), 24 + users + np.arange(share)]
                 for (_, _, users, _), share in zip(parts, mnist_share, strict=True)]  # fmt: skip
        images = np.concatenate([part[0][take] for part, take in zip(parts, takes, strict=True)])
        labels = np.concatenate([part[1][take] for part, take in zip(parts, takes, strict=True)])
        views = 24 // stride  # a single step: every view and its whole replay, all weighted 1
        weights = np.concatenate([np.r_[np.full(views, stride), np.full(len(take) - views, j)] for take in takes])
        self.cnn.train_step(images, labels, weights)

    def take_models(self, models: dict) -> None:
        """Take copies of these models (keeping this CNN object, so its traced functions stay warm)."""
        self.fnn = models["fnn"].copy()
        self.cnn.set_state(*models["cnn"].get_state())

    def load(self, files: dict[str, bytes]) -> None:
        """Become the learner a checkpoint's files hold, keeping this CNN object (its compiled functions stay
        warm, and no model is built). One of DAMAGED, with nothing changed, if the files are damaged."""
        fnn = FNN.from_bytes(files["fnn.npz"])
        _, *cnn_state = state_from_bytes(files["cnn.npz"])
        memory = read_memory(files["memory.npz"])
        self.cnn.set_state(*cnn_state)  # checks every shape before it assigns anything
        self.fnn = fnn
        self.memory.clear()
        self.memory.extend(memory)

    def memory_bytes(self) -> bytes:
        buffer = io.BytesIO()
        images = np.stack([d for d, _ in self.memory]) if self.memory else np.zeros((0, 28, 28), np.uint8)
        np.savez_compressed(buffer, images=images, labels=np.array([label for _, label in self.memory], dtype=np.int64))
        return buffer.getvalue()


def read_memory(data: bytes) -> list[tuple[np.ndarray, int]]:
    """The (uint8 digit, label) pairs `Learner.memory_bytes` wrote."""
    with np.load(io.BytesIO(data)) as arrays:
        return list(zip(arrays["images"], arrays["labels"].tolist(), strict=True))
