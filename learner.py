"""The learner: the one role that imports TensorFlow. It follows the log of labelled drawings, applies each
entry as one SGD step of the retrained models (in order, seeded by the entry's number), writes checkpoints,
and publishes serving snapshots that servers predict from with numpy (serving.py).

    python learner.py      # the `learn` role on its own (Procfile `worker:`), on STORAGE_URL

In the `all` role (the default) `main.create_app` runs a `LogLearner` on a thread of the web process and
hands its snapshots to the server in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import signal
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from config import Config
from conv_net import CNN, JointPredictor
from functions import augment, quantise, stored_digit
from journal import DRAWING_KINDS, Entry, Journal, exclusion_changes
from numpy_cnn import NumpyCNN, state_from_bytes, state_to_bytes
from scores import Score, review_queue, summary
from serving import Server, Snapshot, originals_id, publish_snapshot, shipped_files, write_pointer
from storage import StorageError, open_storage
from two_layer_net import FNN

logger = logging.getLogger(__name__)

# What reading a damaged checkpoint raises: a bad zip, bad JSON, a missing file, arrays that do not load.
DAMAGED = (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile)
RECENT_SAMPLES = 48  # drawings listed on the models page
# While catching up on a backlog, publish at least this often, so servers see progress.
PUBLISH_EVERY_SECONDS = 0.5
# A learner with nothing to learn still tells servers it is alive this often (one small write).
HEARTBEAT_SECONDS = 5.0
MIN_INTERVAL = 0.1  # seconds: an interval of 0 (tests) must not spin


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

    def batch(self, number: int, digit: np.ndarray, label: int) -> tuple[np.ndarray, np.ndarray]:
        """Entry `number`'s batch: (n, 28, 28) float32 images and (n,) labels, ordered
        [24 augmented views, replayed user drawings, replayed MNIST digits] so each model takes a prefix."""
        rng = np.random.default_rng(number)
        images, labels = [augment(digit, rng)], [np.full(24, label)]
        if self.recipe.user_replay and self.memory:
            picks = rng.choice(len(self.memory), min(self.recipe.user_replay, len(self.memory)), replace=False)
            images.append(np.stack([self.memory[i][0] for i in picks]) / np.float32(255))
            labels.append(np.array([self.memory[i][1] for i in picks]))
        replay_images, replay_labels = self.replay
        n_mnist = min(max(self.recipe.fnn_mnist_replay, self.recipe.cnn_mnist_replay), len(replay_labels))
        if n_mnist:
            picks = rng.choice(len(replay_labels), n_mnist, replace=False)
            images.append(replay_images[picks] / np.float32(255))
            labels.append(replay_labels[picks])
        return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int64)

    def learn(self, number: int, digit: np.ndarray, label: int) -> None:
        """One SGD step of both models on entry `number`'s batch, then remember the drawing."""
        images, labels = self.batch(number, digit, label)
        n_mnist = len(labels) - 24 - min(self.recipe.user_replay, len(self.memory))
        fnn_size = len(labels) - n_mnist + min(self.recipe.fnn_mnist_replay, n_mnist)
        cnn_size = len(labels) - n_mnist + min(self.recipe.cnn_mnist_replay, n_mnist)
        self.fnn.train_step(images[:fnn_size], labels[:fnn_size], learning_rate=self.recipe.fnn_learning_rate)
        self.cnn.train_step(images[:cnn_size], labels[:cnn_size])
        self.memory.append((quantise(digit), label))

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
        np.savez(buffer, images=images, labels=np.array([label for _, label in self.memory], dtype=np.int64))
        return buffer.getvalue()


def read_memory(data: bytes) -> list[tuple[np.ndarray, int]]:
    """The (uint8 digit, label) pairs `Learner.memory_bytes` wrote."""
    with np.load(io.BytesIO(data)) as arrays:
        return list(zip(arrays["images"], arrays["labels"].tolist(), strict=True))


class LogLearner:
    """The retrained models as a function of the originals and the log: applies entries in order, one
    thread at a time (`_lock`), keeps the progressive-validation scores, writes checkpoints, and makes
    serving snapshots. Requests never call into it; its owner's thread does (`run` or `catch_up`)."""

    def __init__(self, config: Config, journal: Journal, fnn: FNN, cnn: CNN, replay: tuple[np.ndarray, np.ndarray]):
        self.config = config
        self.journal = journal
        self.original = {"fnn": fnn, "cnn": cnn}
        self.learner = Learner(fnn.copy(), cnn.copy(), replay)
        self.originals = originals_id(shipped_files(config.models_dir))
        # Checkpoints are only valid for the originals, replay sample and recipe they were made with.
        made_from = fnn.to_bytes() + cnn.to_bytes() + replay[0].tobytes() + replay[1].tobytes()
        self.fingerprint = hashlib.sha256(made_from + repr(self.learner.recipe).encode()).hexdigest()
        self.version = 0
        self.label_counts = [0] * 10
        self.scores: list[Score] = []
        self.drawings: dict[int, tuple[str, int]] = {}  # entry number -> (kind, label) of every drawing
        self.excluded: set[int] = set()  # drawings an admin or their author took out (exclude entries)
        self.recent: deque[dict] = deque(maxlen=RECENT_SAMPLES)
        self.applied = 0  # entries this process applied since it booted (a fleet test counts them)
        self.booted_at = 0  # the version it booted at (checkpoint + replay)
        self.checked_at = 0.0  # wall time of its latest look at the log
        self._lock = threading.RLock()
        self._cnns = JointPredictor([cnn, self.learner.cnn])  # both CNNs' scores before a step, in one call
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")

    @classmethod
    def open(cls, config: Config, journal: Journal) -> LogLearner:
        """Load the shipped models once, restore the newest usable checkpoint, replay the rest of the log."""
        fnn, cnn = FNN.load(config.models_dir / "fnn.npz"), CNN.load(config.models_dir / "cnn.npz")
        learner = cls(config, journal, fnn, cnn, load_replay(config.models_dir / "replay.npz"))
        learner._restore()
        learner.catch_up()
        learner.booted_at, learner.applied = learner.version, 0
        return learner

    @property
    def models(self) -> dict:
        """The retrained models as this learner holds them (TensorFlow CNN, numpy FNN)."""
        return self.learner.models

    # --- following the log ---

    def catch_up(self, budget_seconds: float | None = None) -> int:
        """Apply the entries after the current version, in order; stop after `budget_seconds` (None: all).
        Returns how many were applied. StorageError if the log cannot be listed."""
        started = time.monotonic()
        applied = 0
        with self._lock:
            numbers = self.journal.numbers_after(self.version)
            self.checked_at = time.time()
            for number in numbers:
                if number != self.version + 1:
                    break  # a gap is a writer mid-claim: wait rather than apply out of order
                self._apply(number, self.journal.read(number))
                applied += 1
                if budget_seconds is not None and time.monotonic() - started > budget_seconds:
                    break
        return applied

    def run(
        self,
        publish: Callable[[Snapshot], None],
        wake: threading.Event,
        stop: threading.Event,
        interval: float,
        idle: Callable[[], None] = lambda: None,
    ) -> None:
        """Follow the log until `stop`: look every `interval` seconds (or at once when `wake` is set),
        apply what is new and `publish` a snapshot after each batch (at least every PUBLISH_EVERY_SECONDS);
        call `idle` after a look that found nothing."""
        interval = max(interval, MIN_INTERVAL)
        while not stop.is_set():
            try:
                if self.catch_up(PUBLISH_EVERY_SECONDS):
                    publish(self.snapshot())
                    continue  # look again at once: a backlog, or a burst of trains
                idle()
            except StorageError as error:
                logger.warning("cannot follow the log, storage unavailable: %s", error)
            except Exception:
                logger.exception("learner step failed")  # keep following: the next look may succeed
            wake.wait(interval)
            wake.clear()

    # --- applying entries ---

    def _apply(self, number: int, entry: Entry | None) -> None:
        """Apply entry `number`: score it, count it, step the models, advance the version.

        A damaged entry (None) is a no-op that still counts, so every process numbers alike.
        """
        digit = None
        if entry is not None and entry.kind in DRAWING_KINDS:
            self.label_counts[entry.label] += 1
            self.drawings[number] = (entry.kind, entry.label)
            self.recent.append(
                {"sample_id": f"{number:010d}", "label": entry.label, "kind": entry.kind, "created": entry.created}
            )
            digit = self._load_digit(entry)
            if digit is not None:
                self.scores.append(self._score(number, entry, digit))
        elif entry is not None and entry.kind in ("exclude", "restore"):
            self._change_exclusions(number, entry)
        self._advance(self.learner, number, entry, digit)
        self.version = number
        self.applied += 1
        if number % self.config.checkpoint_every == 0:
            self._schedule_checkpoint()

    def _score(self, number: int, entry: Entry, digit: np.ndarray) -> Score:
        """What each model said of drawing `number` before the step that learns from it."""
        probs = self._probabilities(digit)
        return Score(
            number,
            entry.label,
            {name: int(p.argmax()) for name, p in probs.items()},
            {name: float(p[entry.label]) for name, p in probs.items()},
            entry.kind,
            entry.source,
            entry.created,
        )

    def _probabilities(self, digit: np.ndarray) -> dict[str, np.ndarray]:
        batch = digit[None]
        cnn_original, cnn_retrained = self._cnns(batch)
        probs = {
            "fnn.original": self.original["fnn"].predict_proba(batch)[0],
            "cnn.original": cnn_original[0],
            "fnn.retrained": self.learner.fnn.predict_proba(batch)[0],
            "cnn.retrained": cnn_retrained[0],
        }
        return probs

    def _change_exclusions(self, number: int, entry: Entry) -> None:
        """Apply exclude (restore) entry `number`: its drawings leave (rejoin) the counts and the accuracy
        figures; if any was learned from, the models are rebuilt as if the log had never held (always held)
        them: from the newest checkpoint before the earliest one, replaying the rest, re-scoring as it goes."""
        changed = exclusion_changes(self.excluded, number, entry, self.drawings)
        sign = 1 if entry.kind == "restore" else -1
        for n in changed:
            self.label_counts[self.drawings[n][1]] += sign
        self.excluded.symmetric_difference_update(changed)
        trained = [n for n in changed if self.drawings[n][0] == "train"]
        if trained:
            self._rebuild(min(trained), number - 1)

    def _rebuild(self, first: int, last: int) -> None:
        """Redo entries first..last under the current exclusions (scores from `first` on are made anew)."""
        restored = self._load_checkpoint(self.learner, max_version=first - 1)
        if restored is None:
            self.learner.take_models(self.original)
            self.learner.memory.clear()
        start = 0 if restored is None else restored[0]
        scores = [s for s in self.scores if s.version <= start]
        for number in range(start + 1, last + 1):
            entry, digit = self.journal.read(number), None
            if entry is not None and entry.kind in DRAWING_KINDS:
                digit = self._load_digit(entry)
                if digit is not None:
                    scores.append(self._score(number, entry, digit))
            self._advance(self.learner, number, entry, digit)
        self.scores = scores

    def _load_digit(self, entry: Entry) -> np.ndarray | None:
        return stored_digit(self.journal.drawing(entry))

    def _advance(self, learner: Learner, number: int, entry: Entry | None, digit: np.ndarray | None = None) -> None:
        """Apply entry `number` to `learner` in place: the learning part only."""
        if entry is None or entry.kind == "collect":
            return
        if entry.kind == "reset":
            learner.take_models(self.original)
        elif entry.kind == "rollback":
            if entry.target is not None and 0 <= entry.target < number:
                self._rewind(learner, entry.target)
        elif entry.kind == "train" and number not in self.excluded:
            digit = digit if digit is not None else self._load_digit(entry)
            if digit is not None:
                learner.learn(number, digit, entry.label)

    def _rewind(self, learner: Learner, target: int) -> None:
        """Make `learner` what entries 1..target made it: the newest checkpoint up to `target`, then replay.
        In place and from scratch each time, so a retry after a storage error lands on the same state."""
        restored = self._load_checkpoint(learner, max_version=target)
        if restored is None:
            learner.take_models(self.original)
            learner.memory.clear()
        start = 0 if restored is None else restored[0]
        for number in range(start + 1, target + 1):
            self._advance(learner, number, self.journal.read(number))

    # --- snapshots ---

    def snapshot(self) -> Snapshot:
        """What servers need to answer as this learner would: the retrained models' weights and the stats."""
        with self._lock:
            return Snapshot(
                version=self.version,
                originals=self.originals,
                fnn=FNN(self.learner.fnn.config, {k: v.copy() for k, v in self.learner.fnn.params.items()}),
                cnn=NumpyCNN(self.learner.cnn.model.get_weights()),
                stats=summary(self.scores, self.label_counts, self.excluded),
                recent=[s for s in reversed(self.recent) if int(s["sample_id"]) not in self.excluded],
                published_at=time.time(),
                learner={"applied": self.applied, "booted_at": self.booted_at, "checked_at": self.checked_at},
                review=review_queue(self.scores, self.excluded),
            )

    # --- checkpoints ---

    def _schedule_checkpoint(self) -> None:
        """Snapshot under the lock (milliseconds); serialise and write in the background."""
        version = self.version
        fnn = self.learner.fnn.copy()
        cnn_config, cnn_state = self.learner.cnn.config, self.learner.cnn.get_state()
        memory = self.learner.memory_bytes()
        state = {
            "version": version,
            "fingerprint": self.fingerprint,
            "label_counts": list(self.label_counts),
            "scores": [asdict(s) for s in self.scores],
            "recent": list(self.recent),
            "drawings": [[n, kind, label] for n, (kind, label) in self.drawings.items()],
            "excluded": sorted(self.excluded),
        }

        def write() -> None:
            files = {
                "fnn.npz": fnn.to_bytes(),
                "cnn.npz": state_to_bytes(cnn_config, *cnn_state),
                "memory.npz": memory,
                "state.json": json.dumps(state).encode(),
            }
            try:
                self.journal.write_checkpoint(version, files)
            except StorageError as error:
                logger.warning("checkpoint %d not written: %s", version, error)

        self._checkpointer.submit(write)

    def flush_checkpoints(self) -> None:
        """Wait for checkpoint writes in flight (tests and shutdown)."""
        self._checkpointer.submit(lambda: None).result()

    def _load_checkpoint(self, learner: Learner, max_version: int | None = None) -> tuple[int, dict] | None:
        """Load the newest readable checkpoint made from these originals (at most `max_version`) into
        `learner`; (its version, its state), or None with `learner` untouched. Damaged or foreign ones are skipped.

        With `max_version` (a rebuild or a rollback under the current exclusions), a checkpoint counts only if
        the drawings it left out are exactly the ones now excluded among its entries: a checkpoint taken
        before a later exclusion of one of its drawings reflects that drawing, and is passed over."""
        for number in self.journal.checkpoints():
            if max_version is not None and number > max_version:
                continue
            try:
                files = self.journal.read_checkpoint(number)
                state = json.loads(files["state.json"])
                same_exclusions = max_version is None or set(state.get("excluded", [])) == {
                    n for n in self.excluded if n <= number
                }
                if state["fingerprint"] == self.fingerprint and state["version"] == number and same_exclusions:
                    learner.load(files)
                    return number, state
            except DAMAGED as error:
                logger.warning("skipping checkpoint %d: %s", number, error)
        return None

    def _restore(self) -> None:
        """Start from the newest usable checkpoint."""
        restored = self._load_checkpoint(self.learner)
        if restored is None:
            return
        number, state = restored
        self.version = number
        self.label_counts = state["label_counts"]
        self.scores = [Score(**s) for s in state["scores"]]
        self.excluded = set(state.get("excluded", []))
        self.drawings = {n: (kind, label) for n, kind, label in state.get("drawings", [])}
        if "drawings" not in state:  # a checkpoint from before exclusions: read what it counted from the log
            for n in range(1, number + 1):
                entry = self.journal.read(n)
                if entry is not None and entry.kind in DRAWING_KINDS:
                    self.drawings[n] = (entry.kind, entry.label)
        self.recent.extend(state.get("recent", []))
        logger.info("restored checkpoint %d", number)


class InProcessLearner:
    """The `all` role's learner: a LogLearner on a thread of the web process, handing snapshots to the
    server in memory. Woken at once by the server's own appends; looks for other processes' entries
    every `sync_interval`."""

    def __init__(self, config: Config, journal: Journal, server: Server):
        self.learner = LogLearner.open(config, journal)
        server.take(self.learner.snapshot())
        self._stop, self._wake = threading.Event(), threading.Event()
        server.on_append = self._wake.set
        self._thread = threading.Thread(
            target=self.learner.run,
            args=(server.take, self._wake, self._stop, config.sync_interval),
            kwargs={"idle": lambda: server.saw_learner(self.learner.checked_at)},
            name="learner",
            daemon=True,
        )
        self._thread.start()

    def flush_checkpoints(self) -> None:
        self.learner.flush_checkpoints()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.learner.flush_checkpoints()


def main() -> None:
    """The `learn` role: follow the log on STORAGE_URL, publish snapshots for servers, until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config.from_env()
    storage = open_storage(config.storage_url, config.s3_endpoint_url)
    learner = LogLearner.open(config, Journal(storage))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # Heroku stops a dyno with SIGTERM
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    last_write = 0.0

    def publish(snapshot: Snapshot) -> None:
        nonlocal last_write
        publish_snapshot(storage, snapshot)
        last_write = time.monotonic()

    def heartbeat() -> None:
        # Servers tell a quiet learner from a dead one by the age of its last look at the log.
        nonlocal last_write
        if time.monotonic() - last_write >= HEARTBEAT_SECONDS:
            write_pointer(storage, learner.version, learner.originals, learner.checked_at)
            last_write = time.monotonic()

    publish(learner.snapshot())
    logger.info("learner at version %d (%s)", learner.version, config.storage_url)
    learner.run(publish, threading.Event(), stop, config.learn_interval, idle=heartbeat)
    learner.flush_checkpoints()


if __name__ == "__main__":
    main()
