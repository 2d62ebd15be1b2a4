"""The learner: the one role that imports TensorFlow. It follows the log of labelled drawings, applies each
entry as one SGD step of the retrained models (in order, seeded by the entry's number; under a crowd, the train
entries waiting together as one group, recorded in the store), writes checkpoints, and publishes serving
snapshots that servers predict from with numpy (livedigits/serving/).

    python -m livedigits.learning.worker      # the `learn` role on its own (Procfile `worker:`), on STORAGE_URL

In the `all` role (the default) `main.create_app` runs a `LogLearner` on a thread of the web process and
hands its snapshots to the server in memory.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from livedigits import threads
from livedigits.config import Config
from livedigits.learning.applying import Applying
from livedigits.learning.checkpoints import Checkpointing
from livedigits.learning.following import Following
from livedigits.learning.rebuilding import Rebuilding
from livedigits.learning.recipe import Learner, load_replay
from livedigits.learning.reporting import Reporting
from livedigits.models.cnn import CNN, JointPredictor, limit_threads
from livedigits.models.fnn import FNN
from livedigits.state import heldout
from livedigits.state.database import Database
from livedigits.state.figures import Figures
from livedigits.state.inbox import Inbox
from livedigits.state.journal import Entry, Journal
from livedigits.state.snapshot import originals_id, shipped_files

logger = logging.getLogger(__name__)


class LogLearner(Following, Applying, Rebuilding, Checkpointing, Reporting):
    """The retrained models as a function of the originals and the log: applies entries in order, one
    thread at a time (`_lock`), records what it learns of each drawing in the database (one transaction per
    entry, with the version it reaches), writes checkpoints and makes serving snapshots. What it holds in
    memory has a fixed size (the models, the replay memory, the figures), plus the numbers of the excluded
    drawings. Requests never call into it; its owner's thread does (`run` or `catch_up`)."""

    def __init__(
        self,
        config: Config,
        journal: Journal,
        db: Database,
        fnn: FNN,
        cnn: CNN,
        replay: tuple[np.ndarray, np.ndarray],
        inbox: Inbox | None = None,
    ):
        self.config = config
        self.journal = journal
        self.db = db
        self.inbox = (
            Inbox() if inbox is None else inbox
        )  # entries handed over by a server (or a notification): `receive`
        self.original = {"fnn": fnn, "cnn": cnn}
        self.learner = Learner(fnn.copy(), cnn.copy(), replay)
        self.originals = originals_id(shipped_files(config.models_dir))
        # Checkpoints are only valid for the originals, replay sample and recipe they were made with.
        made_from = fnn.to_bytes() + cnn.to_bytes() + replay[0].tobytes() + replay[1].tobytes()
        self.fingerprint = hashlib.sha256(made_from + repr(self.learner.recipe).encode()).hexdigest()
        self.version = 0
        self.db_version = 0  # entries the database has recorded: ahead of `version` while replaying after a crash
        self.figures = Figures(config=config)
        self.heldout = heldout.load(config.models_dir)
        self.heldout_curve: list[dict] = []  # {"model_version", "fnn", "cnn"}: the latest is the published figure
        self.excluded: set[int] = set()  # drawings an admin or their author took out (exclude entries)
        self.unlearned: set[int] = set()  # excluded within config.exact_window: the models were rebuilt without them
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
        # Whether a standby learner waits for the lease (then a standby checkpoint every config.keep_every entries).
        self.standby_waits: Callable[[], bool] = lambda: False
        self._published: tuple[dict, list[dict]] = (Figures().summary([]), [])
        # (version, state.json's fields, models) every keep_every entries, the latest kept_states of them
        self._kept: deque[tuple[int, dict, dict]] = deque(maxlen=config.kept_states)
        self._lock = threading.RLock()
        self._cnns = JointPredictor([cnn, self.learner.cnn])  # both CNNs' scores before a step, in one call
        self._checkpointer = threads.pool("checkpoint")
        self.closed = False

    @classmethod
    def load(cls, config: Config, journal: Journal, db: Database, inbox: Inbox | None = None) -> LogLearner:
        """Load the shipped models once (TensorFlow, with its threads capped first): a learner ready to take
        over, which has not looked at the database or the log yet (a standby waiting for the lease)."""
        limit_threads(config.cpu_threads)
        fnn, cnn = FNN.load(config.models_dir / "fnn.npz"), CNN.load(config.models_dir / "cnn.npz")
        return cls(config, journal, db, fnn, cnn, load_replay(config.models_dir / "replay.npz"), inbox)

    @classmethod
    def open(cls, config: Config, journal: Journal, db: Database, inbox: Inbox | None = None) -> LogLearner:
        """Load the shipped models, restore the newest usable checkpoint, replay the rest of the log."""
        learner = cls.load(config, journal, db, inbox)
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

    def restore(self) -> int:
        """Take over without replaying (the `all` role, whose `run` then replays the log a step at a time: it
        publishes its progress and stops between entries): the newest usable checkpoint, and the log's end as it
        stands now, by one listing. New groups form only past that end. Returns that end's number."""
        with self._lock:
            self._restore()
        head = self.journal.head_listed(self.version)
        self.checked_at = time.time()  # it has looked at the log
        self.head = max(self.head, head)
        self.booted_at, self.applied = self.version, 0
        self.group_from = head + 1
        return head

    @property
    def models(self) -> dict:
        """The retrained models as this learner holds them (TensorFlow CNN, numpy FNN)."""
        return self.learner.models

    # --- applying entries ---

    def _probabilities(self, digits: np.ndarray) -> dict[str, np.ndarray]:
        cnn_original, cnn_retrained = self._cnns(digits)
        return {
            "fnn.original": self.original["fnn"].predict_proba(digits),
            "cnn.original": cnn_original,
            "fnn.retrained": self.learner.fnn.predict_proba(digits),
            "cnn.retrained": cnn_retrained,
        }
