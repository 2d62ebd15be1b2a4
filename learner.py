"""The learner: the one role that imports TensorFlow. It follows the log of labelled drawings, applies each
entry as one SGD step of the retrained models (in order, seeded by the entry's number; under a crowd, the train
entries waiting together as one group, recorded in the store), writes checkpoints, and publishes serving
snapshots that servers predict from with numpy (serving.py).

    python learner.py      # the `learn` role on its own (Procfile `worker:`), on STORAGE_URL

In the `all` role (the default) `main.create_app` runs a `LogLearner` on a thread of the web process and
hands its snapshots to the server in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import signal
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import heldout
import scores
import upgrade
from config import Config
from conv_net import CNN, JointPredictor, limit_threads
from database import LOG_CHANNEL, Database, DatabaseError
from functions import augment, digit_from_text, quantise, stored_digit
from journal import DRAWING_KINDS, Entry, Journal, exclusion_changes
from lease import Lease
from numpy_cnn import NumpyCNN, state_from_bytes, state_to_bytes
from scores import NAMES, Figures, point
from serving import SAFETY_NET_SECONDS, Server, Snapshot, originals_id, publish_snapshot, shipped_files, write_pointer
from storage import Storage, StorageError
from two_layer_net import FNN

logger = logging.getLogger(__name__)

# What reading a damaged checkpoint raises: a bad zip, bad JSON, a missing file, arrays that do not load.
DAMAGED = (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile)
RECENT_SAMPLES = 48  # drawings listed on the models page
DIFFERING_SAMPLES = 12  # ...and of those an original and its retrained model answered differently
HELDOUT = "heldout"  # meta key: the retrained models' held-out accuracy over versions (heldout.add_point)
# While catching up on a backlog, publish at least this often, so servers see progress.
PUBLISH_EVERY_SECONDS = 0.5
# ...and at most this often to storage, however fast labels arrive: a burst is published as its latest state.
PUBLISH_GAP_SECONDS = 0.1
# An exclusion (or restore) of drawings at most this many entries back rebuilds the retrained models exactly, as
# if the log had never held them: a replay of at most this many entries, plus CHECKPOINT_EVERY. Further back,
# the drawings leave the dataset, counts, figures and queue at once, and the models keep what they learned.
EXACT_WINDOW = 1000
# Between checkpoints in the store (CHECKPOINT_EVERY, 2.3 MB each), the learner keeps its state every this many
# entries in memory, the last few of them (fixed: ~9 MB): an undo of a recent label replays at most this many.
KEEP_EVERY, KEPT = 50, 4
# A learner with nothing to learn still tells servers it is alive this often (one small write).
HEARTBEAT_SECONDS = 5.0
MIN_INTERVAL = 0.1  # seconds: an interval of 0 (tests) must not spin
# The `all` role's learner writes its snapshots to storage at most this often, for processes that follow it (a
# web that replaces it, another web): the train that waits is answered from memory at once.
STORAGE_PUBLISH_SECONDS = 2.0
LEASE_POLL_SECONDS = 0.5  # how often a waiting learner asks for the lease (its takeover's delay)
WAITING = "learner_waiting"  # meta key: when a `learn` process last said it waits for the lease
WAITING_FRESH_SECONDS = 10.0
SHUTDOWN_SECONDS = 20  # after SIGTERM, the learner exits by then whatever hangs (Heroku kills it at 30)
LEARNER_POOL_SIZE = 3  # its loop, its checkpoint writer and a spare; 5 per web worker (database.POOL_SIZE)
# Labels arriving faster than one step each are learned together: the learner takes every train entry waiting
# when it starts a step (known to exist: handed over, announced or found in the log), at most this many, as one
# group (Learner.learn: an FNN step each, a CNN step per 4). One at a calm rate: one SGD step per correction.
MAX_GROUP = 16
CNN_STEPS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnn-steps")  # Learner.learn's, beside the FNN's
RECORDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")  # a group's facts, beside its step


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


class LogLearner:
    """The retrained models as a function of the originals and the log: applies entries in order, one
    thread at a time (`_lock`), records what it learns of each drawing in the database (one transaction per
    entry, with the version it reaches), writes checkpoints and makes serving snapshots. What it holds in
    memory has a fixed size (the models, the replay memory, the figures), plus the numbers of the excluded
    drawings. Requests never call into it; its owner's thread does (`run` or `catch_up`)."""

    def __init__(
        self, config: Config, journal: Journal, db: Database, fnn: FNN, cnn: CNN, replay: tuple[np.ndarray, np.ndarray]
    ):
        self.config = config
        self.journal = journal
        self.db = db
        self.original = {"fnn": fnn, "cnn": cnn}
        self.learner = Learner(fnn.copy(), cnn.copy(), replay)
        self.originals = originals_id(shipped_files(config.models_dir))
        # Checkpoints are only valid for the originals, replay sample and recipe they were made with.
        made_from = fnn.to_bytes() + cnn.to_bytes() + replay[0].tobytes() + replay[1].tobytes()
        self.fingerprint = hashlib.sha256(made_from + repr(self.learner.recipe).encode()).hexdigest()
        self.version = 0
        self.db_version = 0  # entries the database has recorded: ahead of `version` while replaying after a crash
        self.figures = Figures()
        self.heldout = heldout.load(config.models_dir)
        self.heldout_curve: list[dict] = []  # {"model_version", "fnn", "cnn"}: the latest is the published figure
        self.excluded: set[int] = set()  # drawings an admin or their author took out (exclude entries)
        self.unlearned: set[int] = set()  # excluded within EXACT_WINDOW: the models were rebuilt without them
        self.head = 0  # the newest entry known to exist (a notification, this process's own append)
        # Entries handed over (a notification, or this process's own append with the drawing's PNG): not read back.
        self.handed: dict[int, tuple[Entry, bytes | None]] = {}
        self.digits: dict[int, np.ndarray] = {}  # ...and their digits, as the server decoded them from the PNG
        self.groups: dict[int, int] = {}  # {first: last} of recorded groups not applied yet (found at a restore)
        # New groups start at this entry on: only past what the log held when this learner took over, so a learner
        # replaying entries that an earlier one applied one by one (a lost database: no facts, no record of the
        # singles) never groups them otherwise than they were.
        self.group_from = float("inf")
        self.stale = False  # the database refused a write: reload before going on
        self.applied = 0  # entries this process applied since it booted (a fleet test counts them)
        self.booted_at = 0  # the version it booted at (checkpoint + replay)
        self.checked_at = 0.0  # wall time of its latest look at the log
        self.checkpointed = 0  # the version of the last checkpoint this process wrote
        # Whether a standby learner waits for the lease (then a standby checkpoint every KEEP_EVERY entries).
        self.standby_waits: Callable[[], bool] = lambda: False
        self._published: tuple[dict, list[dict]] = (Figures().summary([]), [])
        self._kept: deque[tuple[int, dict, dict]] = deque(maxlen=KEPT)  # (version, state.json's fields, models)
        self._lock = threading.RLock()
        self._cnns = JointPredictor([cnn, self.learner.cnn])  # both CNNs' scores before a step, in one call
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self.closed = False

    @classmethod
    def load(cls, config: Config, journal: Journal, db: Database) -> LogLearner:
        """Load the shipped models once (TensorFlow, with its threads capped first): a learner ready to take
        over, which has not looked at the database or the log yet (a standby waiting for the lease)."""
        limit_threads(config.cpu_threads)
        fnn, cnn = FNN.load(config.models_dir / "fnn.npz"), CNN.load(config.models_dir / "cnn.npz")
        return cls(config, journal, db, fnn, cnn, load_replay(config.models_dir / "replay.npz"))

    @classmethod
    def open(cls, config: Config, journal: Journal, db: Database) -> LogLearner:
        """Load the shipped models, restore the newest usable checkpoint, replay the rest of the log."""
        learner = cls.load(config, journal, db)
        learner.take_over()
        return learner

    def take_over(self) -> None:
        """Start learning from what the database has recorded (at boot, or on taking the lease over from
        another learner, which may have moved on meanwhile): the newest usable checkpoint, then the log."""
        with self._lock:
            self._restore()
        self.catch_up()
        self.booted_at, self.applied = self.version, 0
        self.group_from = self.version + 1

    @property
    def models(self) -> dict:
        """The retrained models as this learner holds them (TensorFlow CNN, numpy FNN)."""
        return self.learner.models

    # --- following the log ---

    def notice(
        self, number: int, entry: Entry | None = None, png: bytes | None = None, digit: np.ndarray | None = None
    ) -> None:
        """Entry `number` exists (a notification or this process's append); with `entry` (and its drawing's
        `png`), they need not be read from storage."""
        self.head = max(self.head, number)
        if entry is not None and number > self.version:
            self.handed[number] = (entry, png)
            if digit is not None:
                self.digits[number] = digit

    def catch_up(self, budget_seconds: float | None = None, probe: bool = True) -> int:
        """Apply the entries after the current version, in order; stop after `budget_seconds` (None: all).
        Without `probe`, only up to the newest entry noticed (no storage request to find there is none).
        Returns how many were applied. StorageError if the log cannot be read, DatabaseError if the facts
        cannot be recorded (the entry is then applied again, once the database answers)."""
        started = time.monotonic()
        applied = 0
        with self._lock:
            if self.stale:
                self._restore()
            self.checked_at = time.time()
            while True:
                number = self.version + 1
                try:
                    item = self._next(number, probe)
                except StorageError:
                    if applied:
                        break  # publish what was applied (handed entries need no storage), then retry
                    raise
                if item is None:
                    break  # the end of the log, or a writer mid-claim: wait rather than apply out of order
                try:
                    group = self._group(number, *item, probe)
                    if len(group) == 1:
                        self._apply(number, *item)
                    else:
                        self._apply_group(group)
                except DatabaseError:
                    self.stale = True  # the models may be a step ahead of the facts: reload both
                    raise
                applied += len(group)
                if len(group) > 1 and budget_seconds is not None:
                    break  # following the log under a crowd: publish the group now, its trains are waiting
                if budget_seconds is not None and time.monotonic() - started > budget_seconds:
                    break
        return applied

    def _next(self, number: int, probe: bool) -> tuple[Entry | None, bytes | None] | None:
        """Entry `number` and its drawing's PNG if handed over, or None if it is not known to exist yet (KeyError
        from the log: not there yet). StorageError if the log cannot be read."""
        if number in self.handed:
            return self.handed.pop(number)
        if probe or number <= self.head:
            try:
                return self.journal.read_next(number), None
            except KeyError:
                return None
        return None

    def _group(self, number: int, entry: Entry | None, png: bytes | None, probe: bool) -> list[tuple]:
        """The entries to apply in one step from `number` on: the group recorded there (a replay, or a learner
        that stopped mid-group), else, for a new train entry, every train entry already waiting after it (at most
        MAX_GROUP): [(number, entry, png)]."""
        group = [(number, entry, png)]
        recorded = self.groups.get(number)  # forgotten only once it is applied
        if recorded is not None:
            for n in range(number + 1, recorded + 1):
                item = self._next(n, True)
                if item is None:  # a group is recorded only over entries that exist: the log is damaged
                    raise StorageError(f"entry {n} of the group {number}-{recorded} is missing")
                group.append((n, *item))
            return group
        if number < self.group_from or number <= self.db_version or entry is None or entry.kind != "train":
            return group
        while len(group) < MAX_GROUP:
            n = number + len(group)
            try:
                item = self._next(n, probe)
            except StorageError:
                break  # a group of those at hand; the rest is read again next time
            if item is None:
                break
            if item[0] is None or item[0].kind != "train":
                self.handed[n] = item  # applied on its own, next
                break
            group.append((n, *item))
        return group

    def run(
        self,
        publish: Callable[[Snapshot], None],
        wake: threading.Event,
        stop: threading.Event,
        interval: float,
        idle: Callable[[], None] = lambda: None,
        gap: float = 0.0,
        notified: bool = False,
        lease: Lease | None = None,
    ) -> None:
        """Follow the log until `stop` (or until `lease` is lost): look every `interval` seconds (or at once when
        `wake` is set), apply what is new and `publish` a snapshot after each batch, at least every
        PUBLISH_EVERY_SECONDS and at most every `gap`; call `idle` after a look that found nothing. `notified`:
        entries are announced (`notice`), so the log is probed only every SAFETY_NET_SECONDS, in case an
        announcement was lost."""
        interval = max(interval, MIN_INTERVAL)
        last_publish, last_probe, unpublished = 0.0, 0.0, False
        last_applied = time.monotonic()
        while not stop.is_set():
            if lease is not None and not lease.still_held():
                if unpublished:
                    publish(self.snapshot())
                return
            try:
                probe = not notified or time.monotonic() - last_probe >= SAFETY_NET_SECONDS
                last_probe = time.monotonic() if probe else last_probe
                if self.catch_up(PUBLISH_EVERY_SECONDS, probe):
                    last_applied, unpublished = time.monotonic(), True
                if self.heldout_due(time.monotonic() - last_applied):
                    self.score_heldout()
                    unpublished = True
                if unpublished:
                    wait = gap - (time.monotonic() - last_publish)
                    if wait > 0:
                        wake.wait(wait)  # a burst: what arrives meanwhile goes into the same snapshot
                        wake.clear()
                        continue
                    publish(self.snapshot())
                    last_publish, unpublished = time.monotonic(), False
                    continue  # look again at once: a backlog, or a burst of trains
                idle()
            except (StorageError, DatabaseError) as error:
                logger.warning("cannot follow the log: %s", error)
            except Exception:
                logger.exception("learner step failed")  # keep following: the next look may succeed
            wake.wait(interval)
            wake.clear()

    # --- applying entries ---

    def _apply(self, number: int, entry: Entry | None, png: bytes | None = None) -> None:
        """Apply entry `number`: record what it says in the database (unless the database has it already:
        a replay after a crash), then step the models, and advance the version.

        A damaged entry (None) is a no-op that still counts, so every process numbers alike.
        """
        record = number > self.db_version
        digit = None
        if entry is not None and entry.kind in DRAWING_KINDS:
            digit = self._digit(number, entry, png)
            if record:
                self._record_group(number, self._rows([(number, entry, digit)]))
        elif entry is not None and entry.kind in ("exclude", "restore"):
            self._change_exclusions(number, entry, record)
        elif record:
            self._record(number, lambda tx: None)
        self._advance(self.learner, number, entry, digit)
        self._stepped(number, 1)

    def _apply_group(self, group: list[tuple]) -> None:
        """Apply train entries first..last as one group: record the group (if this learner formed it), then every
        drawing's facts in one transaction, each scored by the models as they were before the step."""
        first, last = group[0][0], group[-1][0]
        digits = {n: self._digit(n, entry, png) if entry is not None else None for n, entry, png in group}
        recording = None
        if last > self.db_version:
            self.journal.write_group(first, last)  # before anything is recorded: a takeover follows it
            rows = self._rows([(n, entry, digits[n]) for n, entry, _ in group if entry is not None])
            # Written while the models step (the facts were scored before it): a DatabaseError reloads both.
            recording = RECORDER.submit(self._record_group, last, rows)
        try:
            self._learn_group(self.learner, [(n, entry, digits[n]) for n, entry, _ in group])
        finally:
            if recording is not None:
                recording.result()
        self.groups.pop(first, None)
        self._stepped(last, len(group))

    def _learn_group(self, learner: Learner, group: list[tuple]) -> None:
        """Learn a group's drawings [(number, entry, digit)], less the unlearned and unreadable ones."""
        drawings = [(n, digit, entry.label) for n, entry, digit in group
                    if entry is not None and digit is not None and n not in self.unlearned]  # fmt: skip
        if drawings:
            learner.learn(drawings)

    def _stepped(self, version: int, entries: int) -> None:
        """The learner is at `version`, `entries` further on: a checkpoint or a kept state when it crossed a
        multiple of CHECKPOINT_EVERY or KEEP_EVERY (a group may step over one: it is taken at the group's end)."""
        before, self.version = self.version, version
        self.applied += entries
        if version // self.config.checkpoint_every > before // self.config.checkpoint_every:
            self._schedule_checkpoint()
        elif version // KEEP_EVERY > before // KEEP_EVERY:
            self._keep()
            if self.standby_waits():
                self._schedule_checkpoint(standby=True)

    def _keep(self) -> None:
        """A checkpoint in memory only (the same state a replay to this version makes; a cache like the others)."""
        models = {
            "fnn": self.learner.fnn.copy(),
            "cnn": self.learner.cnn.get_state(),
            "memory": list(self.learner.memory),
        }
        state = {"excluded": sorted(self.excluded), "unlearned": sorted(self.unlearned)}
        self._kept.append((self.version, state, models))

    def _record(self, number: int, change: Callable) -> None:
        """One transaction: `change(tx)`, the figures and the version the database reaches. If another learner
        on the same database (two `all` processes on one store) recorded entry `number` already, take its
        figures instead: both derive the same facts from the same log."""
        with self.db.transaction() as tx:
            recorded = tx.lock_facts()
            if recorded >= number:
                self.figures = Figures.from_json(tx.meta_value("figures"), tx.history())
                self.db_version = recorded
                return
            change(tx)
            tx.set_meta("figures", self.figures.to_json())
            tx.set_meta("version", number)
        self.db_version = number

    def _record_group(self, last: int, rows: list[dict]) -> None:
        """The facts of the drawings of entries up to `last` (one, or a group's), in one transaction."""

        def change(tx) -> None:
            for row in rows:
                tx.insert_drawing(row)
                self.figures.count(row, 1)
                if row["kind"] == "train" and row["scored"] and self.figures.wants_point(row["number"]):
                    save_point(tx, self.figures, row["number"], tx.learned_before(row["number"], scores.RECENT))

        self._record(last, change)

    def _rows(self, drawings: list[tuple[int, Entry, np.ndarray | None]]) -> list[dict]:
        """The facts of the drawings of one step [(number, entry, digit)], with what each model said of them before
        it: all scored in one batch (a replay scores the same step's drawings alike, so it finds the same)."""
        rows = [{"number": n, "kind": entry.kind, "label": entry.label, "source": entry.source,
                 "created": entry.created, "excluded": False, "unlearned": False, "scored": digit is not None,
                 "predicted": {}, "probability": {}} for n, entry, digit in drawings]  # fmt: skip
        scored = [(row, digit) for row, (_, _, digit) in zip(rows, drawings, strict=True) if digit is not None]
        if scored:
            probs = self._probabilities(np.stack([digit for _, digit in scored]))
            for i, (row, _) in enumerate(scored):
                row["predicted"] = {name: int(probs[name][i].argmax()) for name in NAMES}
                row["probability"] = {name: float(probs[name][i][row["label"]]) for name in NAMES}
        return rows

    def _probabilities(self, digits: np.ndarray) -> dict[str, np.ndarray]:
        cnn_original, cnn_retrained = self._cnns(digits)
        return {
            "fnn.original": self.original["fnn"].predict_proba(digits),
            "cnn.original": cnn_original,
            "fnn.retrained": self.learner.fnn.predict_proba(digits),
            "cnn.retrained": cnn_retrained,
        }

    def _change_exclusions(self, number: int, entry: Entry, record: bool) -> None:
        """Apply exclude (restore) entry `number`: its drawings leave (rejoin) the counts, figures and queue at
        once. Those at most EXACT_WINDOW entries back also leave (rejoin) the models, which are rebuilt as if
        the log had never held (always held) them: from the newest checkpoint before the earliest one,
        replaying the rest, re-scoring as it goes."""
        rows = self.db.drawings(sorted({n for n in entry.samples or [] if n < number}))
        changed = exclusion_changes(self.excluded, number, entry, rows)
        restoring = entry.kind == "restore"
        exact = [n for n in changed if number - n <= EXACT_WINDOW and (n in self.unlearned) == restoring]
        self.excluded.symmetric_difference_update(changed)
        self.unlearned.symmetric_difference_update(exact)
        trained = [n for n in exact if rows[n]["kind"] == "train"]
        rescored = self._rebuild(min(trained), number - 1) if trained else {}
        if not record or not changed:
            if record:
                self._record(number, lambda tx: None)
            return

        def change(tx) -> None:
            for n in changed:
                row = rows[n]
                tx.set_flags(row, n in self.excluded, n in self.unlearned)
                self.figures.count(row, -1 if n in self.excluded else 1)
            before = tx.drawings(sorted(rescored))
            for n, row in rescored.items():
                if row["kind"] == "train" and row["scored"] and n not in self.excluded:
                    self.figures.count(before[n], -1)
                    self.figures.count(row, 1)
                tx.set_scores(n, row)
            self._redraw_history(tx, min(changed), number - 1 if rescored else max(changed))

        self._record(number, change)

    def _redraw_history(self, tx, first: int, last: int) -> None:
        """Recompute the history points whose window may hold a drawing from `first` to `last`."""
        for i, old in enumerate(self.figures.history):
            if old["model_version"] < first:
                continue
            window = tx.learned_before(old["model_version"], scores.RECENT)
            self.figures.history[i] = point(old["model_version"], window)
            tx.save_point(self.figures.history[i])
            if len(window) == scores.RECENT and window[-1]["number"] > last:
                break

    def _rebuild(self, first: int, last: int) -> dict[int, dict]:
        """Redo entries first..last under the current exclusions; the drawings from `first` on, re-scored."""
        restored = self._load_checkpoint(self.learner, max_version=first - 1, same_unlearned=True)
        if restored is None:
            self.learner.take_models(self.original)
            self.learner.memory.clear()
        start = 0 if restored is None else restored[0]
        return self._replay(self.learner, start, last, score_from=first)

    def _digit(self, number: int, entry: Entry, png: bytes | None) -> np.ndarray | None:
        """Entry `number`'s digit: as handed over with it (`digit_from_png` of its stored PNG is that exactly), or
        decoded from the PNG."""
        digit = self.digits.pop(number, None)
        return digit if digit is not None else self._load_digit(entry, png)

    def _load_digit(self, entry: Entry, png: bytes | None = None) -> np.ndarray | None:
        return stored_digit(png if png is not None else self.journal.drawing(entry))

    def _advance(self, learner: Learner, number: int, entry: Entry | None, digit: np.ndarray | None = None) -> None:
        """Apply entry `number` to `learner` in place: the learning part only."""
        if entry is None or entry.kind == "collect":
            return
        if entry.kind == "reset":
            learner.take_models(self.original)
        elif entry.kind == "rollback":
            if entry.target is not None and 0 <= entry.target < number:
                self._rewind(learner, entry.target)
        elif entry.kind == "train" and number not in self.unlearned:
            digit = digit if digit is not None else self._load_digit(entry)
            if digit is not None:
                learner.learn([(number, digit, entry.label)])

    def _rewind(self, learner: Learner, target: int) -> None:
        """Make `learner` what entries 1..target made it: the newest checkpoint up to `target`, then replay.
        In place and from scratch each time, so a retry after a storage error lands on the same state."""
        restored = self._load_checkpoint(learner, max_version=target, same_unlearned=True)
        if restored is None:
            learner.take_models(self.original)
            learner.memory.clear()
        start = 0 if restored is None else restored[0]
        self._replay(learner, start, target)

    def _replay(self, learner: Learner, start: int, end: int, score_from: int | None = None) -> dict[int, dict]:
        """Redo entries start+1..end on `learner` as they were learned: the recorded groups as groups (a
        group is cut at `end`: a rollback to within it). With `score_from`, the drawings from there on, re-scored
        (by this learner's models, before the step that learns them)."""
        groups = self.journal.groups_after(start)
        rescored = {}
        number = start + 1
        while number <= end:
            last = min(groups.get(number, number), end)
            items = []
            for n in range(number, last + 1):
                entry = self.journal.read(n)
                digit = self._load_digit(entry) if entry is not None and entry.kind in DRAWING_KINDS else None
                items.append((n, entry, digit))
            if score_from is not None and last >= score_from:  # the whole step's drawings, as when it was taken
                drawn = [(n, entry, digit) for n, entry, digit in items if digit is not None]
                rescored |= {row["number"]: row for row in self._rows(drawn) if row["number"] >= score_from}
            if last > number:
                self._learn_group(learner, items)
            else:
                self._advance(learner, number, *items[0][1:])
            number = last + 1
        return rescored

    # --- held-out digits ---

    def heldout_due(self, idle_seconds: float) -> bool:
        """Whether to score the held-out slice now: never scored, heldout.EVERY_VERSIONS versions since it was, or
        the version moved and nothing came for heldout.IDLE_SECONDS (a calm stream still gets a fresh figure)."""
        if self.heldout is None:
            return False
        if not self.heldout_curve:
            return True
        last = heldout.measured_at(self.heldout_curve)
        return last != self.version and (
            self.version - last >= heldout.EVERY_VERSIONS or idle_seconds >= heldout.IDLE_SECONDS
        )

    def score_heldout(self) -> None:
        """Score both retrained models on the held-out slice at the current version (~0.45 s) and record it."""
        with self._lock:
            point = {"model_version": self.version, **self.heldout.score(self.learner.models)}
            self.heldout_curve = heldout.add_point(self.heldout_curve, point)
            try:
                with self.db.transaction() as tx:
                    tx.set_meta(HELDOUT, self.heldout_curve)
            except DatabaseError as error:
                logger.warning("held-out accuracy at version %d not recorded: %s", self.version, error)
        logger.info(
            "held-out accuracy at version %d: FNN %.4f, CNN %.4f", point["model_version"], point["fnn"], point["cnn"]
        )

    # --- snapshots ---

    def snapshot(self) -> Snapshot:
        """What servers need to answer as this learner would: the retrained models' weights and a few figures
        of a fixed size (the last ones made, if the database does not answer)."""
        with self._lock:
            try:
                stats = self.figures.summary(self.db.learned_before(self.db_version, scores.RECENT))
                stats["differing"] = [
                    {"sample_id": f"{r['number']:010d}", "label": r["label"], "created": r["created"],
                     "predicted": r["predicted"]}
                    for r in self.db.differing(DIFFERING_SAMPLES)
                ]  # fmt: skip
                recent = [
                    {
                        "sample_id": f"{r['number']:010d}",
                        "label": r["label"],
                        "kind": r["kind"],
                        "created": r["created"],
                    }
                    for r in self.db.recent(RECENT_SAMPLES)
                ]
                self._published = (stats, recent)
            except DatabaseError as error:
                logger.warning("snapshot with the last figures: %s", error)
            stats, recent = self._published
            stats = {**stats, "heldout": {"history": heldout.published(self.heldout_curve)}}
            return Snapshot(
                version=self.version,
                originals=self.originals,
                fnn=FNN(self.learner.fnn.config, {k: v.copy() for k, v in self.learner.fnn.params.items()}),
                cnn=NumpyCNN(self.learner.cnn.model.get_weights()),
                stats=stats,
                recent=recent,
                published_at=time.time(),
                learner={"applied": self.applied, "booted_at": self.booted_at, "checked_at": self.checked_at},
            )

    # --- checkpoints ---

    def _schedule_checkpoint(self, standby: bool = False) -> None:
        """Snapshot under the lock (milliseconds); serialise and write in the background. `standby`: overwrite the
        standby checkpoint instead of adding a numbered one."""
        version = self.version
        if not standby:
            self.checkpointed = version
        fnn = self.learner.fnn.copy()
        cnn_config, cnn_state = self.learner.cnn.config, self.learner.cnn.get_state()
        memory = self.learner.memory_bytes()
        state = {
            "version": version,
            "fingerprint": self.fingerprint,
            "excluded": sorted(self.excluded),
            "unlearned": sorted(self.unlearned),
        }

        def write() -> None:
            files = {
                "fnn.npz": fnn.to_bytes(),
                "cnn.npz": state_to_bytes(cnn_config, *cnn_state),
                "memory.npz": memory,
                "state.json": json.dumps(state).encode(),
            }
            try:
                if standby:
                    self.journal.write_standby_checkpoint(files)
                else:
                    self.journal.write_checkpoint(version, files)
            except StorageError as error:
                logger.warning("checkpoint %d not written: %s", version, error)

        self._checkpointer.submit(write)

    def hand_over(self) -> None:
        """Before this learner stops (SIGTERM, or yielding the lease): a checkpoint at the current version, written,
        so the next learner starts exactly here instead of replaying from the last regular one."""
        with self._lock:
            if self.version > self.checkpointed:
                self._schedule_checkpoint()
        self.flush_checkpoints()

    def flush_checkpoints(self) -> None:
        """Wait for checkpoint writes in flight (tests and shutdown)."""
        self._checkpointer.submit(lambda: None).result()

    def close(self) -> None:
        """Idempotent: write what is in flight, then stop the checkpoint writer."""
        if self.closed:
            return
        self.closed = True
        self.flush_checkpoints()
        self._checkpointer.shutdown()

    def _load_checkpoint(
        self,
        learner: Learner,
        max_version: int | None = None,
        same_unlearned: bool = False,
        numbers: list[int] | None = None,
    ) -> tuple[int, dict] | None:
        """Load the newest readable checkpoint made from these originals (at most `max_version`) into
        `learner`; (its version, its state), or None with `learner` untouched. Damaged or foreign ones are skipped.

        With `same_unlearned` (a rebuild or a rollback under the current exclusions), a checkpoint counts only if
        the drawings it left out of the models are exactly the ones left out now among its entries: a checkpoint
        taken before a later exclusion of one of its drawings reflects that drawing, and is passed over. The states
        kept in memory (`_keep`) count as checkpoints too. `numbers` is the journal's listing, if already made."""
        kept = [(n, state, models) for n, state, models in self._kept if max_version is None or n <= max_version]
        kept = [
            k for k in kept if not same_unlearned or set(k[1]["unlearned"]) == {u for u in self.unlearned if u <= k[0]}
        ]
        best_kept = kept[-1] if kept else None
        for number in self.journal.checkpoints() if numbers is None else numbers:
            if best_kept is not None and number < best_kept[0]:
                break
            if max_version is not None and number > max_version:
                continue
            try:
                files = self.journal.read_checkpoint(number)
                state = json.loads(files["state.json"])
                # Before exclusions had a window, every excluded drawing was unlearned.
                theirs = set(state.get("unlearned", state.get("excluded", [])))
                same = not same_unlearned or theirs == {n for n in self.unlearned if n <= number}
                if state["fingerprint"] == self.fingerprint and state["version"] == number and same:
                    learner.load(files)
                    return number, state
            except DAMAGED as error:
                logger.warning("skipping checkpoint %d: %s", number, error)
        if best_kept is None:
            return None
        number, state, models = best_kept
        learner.fnn = models["fnn"].copy()
        learner.cnn.set_state(*models["cnn"])
        learner.memory.clear()
        learner.memory.extend(models["memory"])
        return number, {**state, "version": number}

    def _load_standby_checkpoint(self, numbers: list[int]) -> tuple[int, dict] | None:
        """The standby checkpoint, if it is newer than every numbered one (`numbers`, newest first) and usable:
        (version, state) loaded into the learner, or None with nothing changed."""
        try:
            files = self.journal.read_standby_checkpoint()
            state = json.loads(files["state.json"])
            number = state["version"]
            newest = next((n for n in numbers if n <= self.db_version), 0)
            if state["fingerprint"] != self.fingerprint or not newest < number <= self.db_version:
                return None
            self.learner.load(files)
        except KeyError:
            return None  # there is none (and a damaged one is passed over, like a numbered one)
        except DAMAGED as error:
            logger.warning("skipping the standby checkpoint: %s", error)
            return None
        return number, state

    def _restore(self) -> None:
        """Start from what the database has recorded and the newest usable checkpoint at or before it; the
        entries between them are replayed without recording them again. A database of another store or of other
        originals starts afresh, and an empty one takes the facts of a checkpoint written before the database
        existed (an upgrade), else it is filled by replaying the log from the start."""
        meta = self.db.meta()
        store = self.journal.store_id()
        if meta and (meta.get("fingerprint") != self.fingerprint or meta.get("store") != store):
            logger.warning("the database holds another store's or other originals' facts: starting it afresh")
            self.db.clear()
            meta = {}
        if not meta:
            with self.db.transaction() as tx:
                tx.set_meta("fingerprint", self.fingerprint)
                tx.set_meta("store", store)
                tx.set_meta("version", 0)
            upgrade.import_checkpoint(self)
            meta = self.db.meta()
        self.db_version = meta.get("version", 0)
        self.figures = Figures.from_json(meta.get("figures"), self.db.history())
        if self.figures.confusion is None:  # a database from before the matrices: count them (and more) once
            self.figures.confusion = self.db.count_from_every_row()
        self.heldout_curve = [p for p in meta.get(HELDOUT, []) if p["model_version"] <= self.db_version]
        numbers = self.journal.checkpoints()  # one listing for both kinds of checkpoint
        restored = self._load_standby_checkpoint(numbers) or self._load_checkpoint(
            self.learner, max_version=self.db_version, numbers=numbers
        )
        if restored is None:
            self.learner.take_models(self.original)
            self.learner.memory.clear()
        number, state = restored or (0, {})
        self.version = self.checkpointed = number
        self.excluded = set(state.get("excluded", []))
        self.unlearned = set(state.get("unlearned", self.excluded))
        self.handed = {n: handed for n, handed in self.handed.items() if n > number}
        self.digits = {n: digit for n, digit in self.digits.items() if n > number}
        self.groups = self.journal.groups_after(number)
        self.stale = False
        if number:
            logger.info("restored checkpoint %d (the database has recorded %d entries)", number, self.db_version)


def save_point(tx, figures: Figures, number: int, window: list[dict]) -> None:
    """Add the history point after entry `number` to the figures and the database (thinning both when full)."""
    if figures.add_point(number, window):
        tx.thin_history(figures.stride)
    tx.save_point(figures.history[-1])


class Publisher:
    """What a leading learner tells other processes: its snapshots, written to storage with the pointer that
    announces them (at most every `gap` seconds; a newer one waits for the next call), and, when it is idle,
    that it is alive (HEARTBEAT_SECONDS: servers tell a quiet learner from a dead one by that).

    `background`: snapshots are written by a thread of their own, the newest one whenever the last write is done,
    so the learner goes on to its next step meanwhile (a snapshot's PUT takes tens of ms under a crowd)."""

    def __init__(self, storage: Storage, db: Database, learner: LogLearner, gap: float = 0.0, background: bool = False):
        self.storage, self.db, self.learner, self.gap = storage, db, learner, gap
        self._pending: Snapshot | None = None
        self._written = 0.0  # monotonic time of the last write (snapshot or heartbeat)
        self._writing = threading.RLock()  # one write at a time, so the newest is the last
        self._wanted = threading.Event() if background else None
        if self._wanted is not None:
            threading.Thread(target=self._write_wanted, daemon=True, name="publisher").start()

    def publish(self, snapshot: Snapshot) -> None:
        self._pending = snapshot
        if self._wanted is not None:
            self._wanted.set()
        elif time.monotonic() - self._written >= self.gap:
            self.flush()

    def idle(self) -> None:
        if self._pending is not None and time.monotonic() - self._written >= self.gap:
            self.flush()
        elif time.monotonic() - self._written >= HEARTBEAT_SECONDS:
            learner = self.learner
            revision = (learner.version, heldout.measured_at(learner.heldout_curve))
            self._write(lambda: write_pointer(self.db, revision, learner.originals, learner.checked_at))

    def flush(self) -> None:
        """Write the pending snapshot now, if any (after a write in flight)."""
        with self._writing:
            snapshot, self._pending = self._pending, None
            if snapshot is not None:
                self._write(lambda: publish_snapshot(self.storage, self.db, snapshot))

    def _write_wanted(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            self.flush()

    def _write(self, write: Callable[[], None]) -> None:
        with self._writing:
            try:
                write()
            except (StorageError, DatabaseError) as error:
                logger.warning("cannot publish: %s", error)
            self._written = time.monotonic()


def announce_waiting(db: Database) -> None:
    """A `learn` process waiting for the lease says so: an `all` web that holds it hands it over (below)."""
    try:
        with db.transaction() as tx:
            tx.set_meta(WAITING, time.time())
    except DatabaseError as error:
        logger.warning("cannot say this learner waits: %s", error)


def learner_waiting(db: Database) -> bool:
    """Whether a `learn` process has said it waits for the lease, lately."""
    try:
        said = db.value(WAITING)
    except DatabaseError:
        return False
    return isinstance(said, (int, float)) and time.time() - said < WAITING_FRESH_SECONDS


class InProcessLearner:
    """The `all` role's learner: a LogLearner on a thread of the web process, handing snapshots to the server
    in memory (and to storage, every STORAGE_PUBLISH_SECONDS, for any other process that follows). Woken at once
    by the server's own appends; looks for other processes' entries every `sync_interval`.

    It learns only while it holds the lease, and only while no `learn` process wants it: the web is the learner
    of last resort. If another learner holds the lease at boot (a worker dyno, or the web dyno this one
    replaces, still shutting down), the server follows that learner's snapshots, and this one waits without
    loading TensorFlow. If a `learn` process announces that it waits, this one hands the lease over."""

    def __init__(self, config: Config, journal: Journal, db: Database, server: Server):
        self.config, self.journal, self.db, self.server = config, journal, db, server
        self.lease = Lease(config.database)
        self.learner: LogLearner | None = None
        self.publisher: Publisher | None = None
        self._stop, self._wake = threading.Event(), threading.Event()
        self._asked_at = 0.0
        server.on_append = self._appended
        if self.lease.try_acquire():
            self._lead()  # at boot, before the first request: as if there were no lease
        else:
            logger.info("another learner holds the lease: serving its snapshots, waiting to take over")
            server.follow_storage()
        self._thread = threading.Thread(target=self._loop, name="learner", daemon=True)
        self._thread.start()

    def _appended(self, number: int, entry: Entry, png: bytes | None, digit: np.ndarray | None) -> None:
        if self.learner is not None and self.lease.held:
            self.learner.notice(number, entry, png, digit)
            self._wake.set()

    def _lead(self) -> None:
        if self.learner is None:
            self.learner = LogLearner.open(self.config, self.journal, self.db)
            self.publisher = Publisher(self.journal.storage, self.db, self.learner, STORAGE_PUBLISH_SECONDS)
        else:
            self.learner.take_over()
        snapshot = self.learner.snapshot()
        self.server.take(snapshot)
        self.publisher.publish(snapshot)  # for processes that follow: they may hold an older one
        logger.info("learning in this web process, from version %d", self.learner.version)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.lease.held:
                # A `learn` process that waits is first in line; this web asks only when none does.
                while not self._stop.is_set() and (learner_waiting(self.db) or not self.lease.try_acquire()):
                    self._stop.wait(LEASE_POLL_SECONDS)
                if self._stop.is_set():
                    return
                try:
                    self._lead()
                except (StorageError, DatabaseError) as error:
                    logger.warning("cannot take over yet: %s", error)
                    self.lease.release()
                    self._stop.wait(LEASE_POLL_SECONDS)
                    continue
            self.learner.run(self._publish, self._wake, self._stop, self.config.sync_interval, idle=self._idle,
                             lease=self.lease)  # fmt: skip
            self.publisher.flush()
            if not self._stop.is_set():
                self.server.follow_storage()  # lost or handed over the lease: follow whoever holds it now

    def _publish(self, snapshot: Snapshot) -> None:
        self.server.take(snapshot)
        self.publisher.publish(snapshot)
        self._yield_if_asked()

    def _idle(self) -> None:
        self.server.saw_learner(self.learner.checked_at)
        self.publisher.idle()
        self._yield_if_asked()

    def _yield_if_asked(self) -> None:
        """Hand the lease to a `learn` process that waits for it (one database read every few seconds)."""
        if time.monotonic() - self._asked_at < HEARTBEAT_SECONDS:
            return
        self._asked_at = time.monotonic()
        if learner_waiting(self.db):
            logger.info("a learner process waits for the lease: handing it over at version %d", self.learner.version)
            self.publisher.flush()
            self.learner.hand_over()
            self.lease.release()  # `run` sees it and returns; the server follows the new learner

    def flush_checkpoints(self) -> None:
        if self.learner is not None:
            self.learner.flush_checkpoints()

    def hand_over(self) -> None:
        """The web process is stopping (gunicorn's worker_exit: SIGTERM): stop learning, leave a checkpoint."""
        self._stop_thread()
        if self.learner is not None and self.lease.held:
            self.publisher.flush()
            self.learner.hand_over()
        self.lease.release()

    def _stop_thread(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def close(self) -> None:
        """Idempotent (a test may end a process before its teardown does)."""
        if self._stop.is_set() and not self._thread.is_alive() and self.learner is None:
            return
        self._stop_thread()
        self.lease.release()
        if self.learner is not None:
            self.learner.close()
            self.learner = None
        self.db.close()


def main() -> None:
    """The `learn` role: take the learner's lease (waiting, models loaded, while another process holds it), then
    follow the log on STORAGE_URL and publish snapshots for servers, until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config.from_env()
    storage = config.open_storage()
    db = Database(config.database, pool_size=LEARNER_POOL_SIZE)
    stop, wake = threading.Event(), threading.Event()

    def terminate(*_) -> None:
        # Heroku stops a dyno with SIGTERM and kills it 30 s later: finish the step, hand over, exit well before.
        stop.set()
        wake.set()
        signal.alarm(SHUTDOWN_SECONDS)  # a storage or database that hangs the hand-over cannot keep it alive

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, terminate)
    learner = LogLearner.load(config, Journal(storage), db)  # TensorFlow and the models: warm before the lease
    learner.standby_waits = lambda: learner_waiting(db)  # one database read every KEEP_EVERY entries
    publisher = Publisher(storage, db, learner, background=True)
    lease = Lease(config.database)

    def heard(channel: str | None, payload: dict) -> None:
        # A server appended an entry (with the entry itself when it fits a notification), or the listener
        # (re)connected and may have missed some: look now.
        if channel == LOG_CHANNEL and isinstance(payload.get("number"), int):
            digit = digit_from_text(payload.get("digit"))
            learner.notice(payload["number"], entry_of(payload.get("entry")), digit=digit)
        wake.set()

    notified = None
    while not stop.is_set():
        if not lease.try_acquire():
            logger.info("another learner holds the lease: waiting as a standby")
            announced = 0.0
            while not stop.is_set() and not lease.try_acquire():
                if time.monotonic() - announced >= WAITING_FRESH_SECONDS / 4:
                    announce_waiting(db)
                    announced = time.monotonic()
                stop.wait(LEASE_POLL_SECONDS)
            if stop.is_set():
                break
        try:
            learner.take_over()
        except (StorageError, DatabaseError) as error:
            logger.warning("cannot take over yet: %s", error)
            lease.release()
            stop.wait(LEASE_POLL_SECONDS)
            continue
        if notified is None:
            notified = db.listen((LOG_CHANNEL,), heard)
        publisher.publish(learner.snapshot())
        logger.info("learner at version %d (%s, %r)", learner.version, config.storage_url, db)
        # Told of every entry, it still wakes for its heartbeat (a database write, no storage request).
        interval = HEARTBEAT_SECONDS if notified else config.learn_interval
        learner.run(publisher.publish, wake, stop, interval, idle=publisher.idle, gap=PUBLISH_GAP_SECONDS,
                    notified=notified, lease=lease)  # fmt: skip
    if lease.held:
        publisher.flush()
        learner.hand_over()
        logger.info("stopped at version %d, checkpoint written", learner.version)
    lease.release()
    learner.close()
    db.close()


def entry_of(data: object) -> Entry | None:
    """The entry a notification carries, or None (absent or not one: then it is read from storage)."""
    try:
        return Entry.from_bytes(json.dumps(data).encode()) if isinstance(data, dict) else None
    except ValueError:
        return None


if __name__ == "__main__":
    main()
