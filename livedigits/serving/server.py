"""The serving side: answers HTTP requests from the latest snapshot of the retrained models, with numpy forward
passes of all four models. Never imports TensorFlow (tests/processes/test_roles.py checks `sys.modules`).

A server writes log entries (create-only, so many servers share one log) and never applies them: a learner
(livedigits/learning/) does, and publishes snapshots. In the `serve` role a background thread follows the snapshots the
learner writes to storage; in the `all` role the learner runs in the same process and hands them over in memory.

Snapshots in storage: `snapshots/latest.npz` (the retrained weights and a few figures of a fixed size, replaced
atomically by each publish); then a small pointer (version, originals, when the learner last looked at the log) in
the database's meta table. With PostgreSQL the learner also NOTIFYs every server, which fetches the snapshot at
once; on SQLite (one machine) servers read the pointer every SYNC_INTERVAL, which costs nothing. One snapshot is
kept: versions only grow, a reader never needs an older one, and a whole-object write means a reader sees a whole
old or a whole new one, never a torn one (the version inside the .npz is what counts, not the pointer's).
The review queue and the facts of each drawing are queried from the database (livedigits/state/database.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np

from livedigits.config import Config
from livedigits.models.digitness import Detector
from livedigits.models.fnn import FNN
from livedigits.models.numpy_cnn import NumpyCNN
from livedigits.pipeline.answers import select_answer, to_pixels, top_k
from livedigits.pipeline.drawings import digit_to_text
from livedigits.serving.curation import Curating
from livedigits.serving.following import Following
from livedigits.serving.waiting import Waiting
from livedigits.state.database import LOG_CHANNEL, Database, DatabaseError
from livedigits.state.figures import MODELS, VARIANTS, review_item
from livedigits.state.inbox import Inbox
from livedigits.state.journal import Entry, Journal
from livedigits.state.snapshot import Snapshot, originals_id, shipped_files
from livedigits.state.storage import StorageError

logger = logging.getLogger(__name__)

PENDING = "Stored. The models will learn from it shortly: the learner is busy or catching up."


def load_metrics(models_dir: Path) -> dict:
    path = models_dir / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def load_detector(models_dir: Path) -> Detector | None:
    """The shipped "not a digit" detector; without its file every drawing gets an answer."""
    path = models_dir / "digitness.npz"
    return Detector.load(path) if path.exists() else None


class Server(Following, Curating, Waiting):
    """Four models answering from the latest snapshot; safe to call from many threads.

    Readers take the current snapshot by one reference read, so a prediction never waits for a writer and
    never sees half-updated weights. Writers append log entries and, for a train, wait (bounded) for a
    snapshot that includes it.
    """

    def __init__(self, config: Config, journal: Journal, db: Database, inbox: Inbox | None = None):
        self.config = config
        self.journal = journal
        self.db = db
        # The `all` role's learner's inbox: each entry this process appends, with its drawing's PNG and digit (the
        # learner then need not read, decode and preprocess it again: ~5 ms a label). None: the learner is another
        # process, told by a notification (`_announce`).
        self.inbox = inbox
        files = shipped_files(config.models_dir)
        self.original = {"fnn": FNN.from_bytes(files[0]), "cnn": NumpyCNN.from_bytes(files[1])}
        self.originals = originals_id(files)
        self.metrics = load_metrics(config.models_dir)
        self.detector = load_detector(config.models_dir)
        self.snapshot = Snapshot.initial(self.original["fnn"], self.original["cnn"], self.originals)
        self.notified = False  # PostgreSQL tells this process of new snapshots and entries
        self._changed = threading.Condition()
        self._head = 0  # the newest log entry this process knows of
        self._head_lock = threading.Lock()
        self._waiting = 0  # requests waiting for a snapshot (at most config.max_waiting): the follower polls faster
        self._stopping = False  # SIGTERM came: no request waits any more
        self._learner_seen_at: float | None = None  # wall time of the learner's latest look at the log
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._follower: threading.Thread | None = None
        self._stored_read_at = float("-inf")  # the latest read of the stored snapshot without its pointer
        self._undo_key: bytes | None = None

    # --- reading ---

    @property
    def version(self) -> int:
        """The served model version: how many log entries the served models have learned from."""
        return self.snapshot.version

    def predict(self, digit: np.ndarray) -> dict:
        """All four models' top-3 for one (28, 28) digit, and the answer rule's verdict."""
        return self.predict_many(digit[None])[0]

    def predict_many(self, digits: np.ndarray) -> list[dict]:
        """`predict` for each of (n, 28, 28) digits, from one snapshot: one forward pass of each model for them all."""
        return self._answers(digits, self.snapshot)

    def _answers(self, digits: np.ndarray, snapshot: Snapshot) -> list[dict]:
        probs = self._probabilities(digits, snapshot)
        if self.detector is None:
            verdicts = np.ones(len(digits), dtype=bool)
        else:
            verdicts = self.detector.are_digits(digits, probs["fnn.original"], probs["cnn.original"])
        answers = []
        for i, digit in enumerate(digits):
            mine = {name: p[i] for name, p in probs.items()}
            answer, message = select_answer(mine["fnn.retrained"], mine["cnn.retrained"], bool(verdicts[i]))
            answers.append(
                {
                    "answer": None if answer is None else str(answer),  # DESIGN.md's contract: "7" or null
                    "message": message,
                    "model_version": snapshot.version,
                    "predictions": {m: {v: top_k(mine[f"{m}.{v}"]) for v in VARIANTS} for m in MODELS},
                    "preprocessed": to_pixels(digit),
                }
            )
        return answers

    def _probabilities(self, digits: np.ndarray, snapshot: Snapshot) -> dict[str, np.ndarray]:
        """Each model's (n, 10) probabilities for (n, 28, 28) digits."""
        return {
            "fnn.original": self.original["fnn"].predict_proba(digits),
            "cnn.original": self.original["cnn"].predict_proba(digits),
            "fnn.retrained": snapshot.fnn.predict_proba(digits),
            "cnn.retrained": snapshot.cnn.predict_proba(digits),
        }

    def internals(self, digit: np.ndarray, channels: int = 16) -> dict:
        """What the retrained models compute inside for one digit: FNN hidden units, CNN feature maps."""
        snapshot = self.snapshot
        hidden = snapshot.fnn.hidden_activations(digit[None])[0]
        layers = []
        for name, activation in snapshot.cnn.feature_maps(digit[None]):
            activation = activation[0][..., :channels]
            peak = float(activation.max()) or 1.0
            pixels = np.rint(activation / peak * 255).astype(int)
            layers.append({"name": name, "shape": list(activation.shape), "maps": np.moveaxis(pixels, -1, 0).tolist()})
        peak = float(hidden.max()) or 1.0
        return {
            "model_version": snapshot.version,
            "preprocessed": to_pixels(digit),
            "fnn_hidden": [round(float(h) / peak, 4) for h in hidden],
            "cnn_layers": layers,
        }

    def health(self) -> dict:
        """Status, served model version, how far behind the log, degraded models: no lock, no storage."""
        snapshot = self.snapshot
        return {
            "status": "ok",
            "model_version": snapshot.version,
            **self.learning(),
            "waiting": self.waiting,
            "degraded": snapshot.stats["degraded"],
            "database": self.db.state(),
        }

    def serve_last_published(self) -> None:
        """The `all` role at boot, while its own learner loads and replays the log on its thread: serve the last
        published snapshot, know how far the log runs (by one listing: probing a long tail costs a request per entry),
        and count the learner as alive from now. StorageError if the store cannot be read (the boot fails fast: the
        learner could not start either); without the database it serves the shipped models meanwhile."""
        self.saw_learner(time.time())
        try:
            self.poll_snapshot()
        except DatabaseError as error:
            logger.warning("serving without the last published snapshot for now: %s", error)
        head = self.journal.head_listed(self.snapshot.version)
        with self._changed:
            self._head = max(self._head, head)

    def recent_samples(self) -> list[dict]:
        """The latest labelled drawings, newest first."""
        return list(self.snapshot.recent)

    def review(self, label: int | None, source: str | None, excluded: bool, offset: int, limit: int) -> dict:
        """A page of the review queue (drawings most likely mislabelled first), filtered by label and source;
        the excluded drawings instead with `excluded`, to restore them."""
        page = self.db.review(label, source, excluded, offset, limit)
        return {
            "model_version": self.snapshot.version,
            "total": page["total"],
            "offset": offset,
            "limit": limit,
            "sources": page["sources"],
            "samples": [review_item(row) for row in page["samples"]],
        }

    def drawing(self, sample_id: int) -> bytes:
        """The stored PNG of log entry `sample_id`; KeyError if there is none."""
        entry = self.journal.read(sample_id)
        png = self.journal.drawing(entry) if entry is not None else None
        if png is None:
            raise KeyError(sample_id)
        return png

    # --- writing ---

    def train(
        self, digit: np.ndarray, png: bytes, label: int, strokes: list | None = None, source: str = "api"
    ) -> tuple[dict, bool]:
        """Store a labelled drawing durably, wait (bounded) for the models to learn it; (answer, learned).

        Learned: what the updated models say now. Not learned in time: the drawing is stored and pending.
        DatabaseError (503), with nothing stored, if the database does not answer."""
        arrived = time.monotonic()
        self.db.check()
        entry = Entry("train", label, self.journal.store_drawing(png), source, strokes=strokes)
        number = self.append(entry, png, digit)
        sample_id = f"{number:010d}"
        taking_back = {"undo_token": self.undo_token(number), "undo_seconds": self.config.undo_seconds}
        snapshot = self.wait_learned(number, arrived, self.config.train_wait_seconds)
        if snapshot is None:
            return {
                "sample_id": sample_id,
                **taking_back,
                "status": "pending",
                "model_version": self.snapshot.version,
                "message": PENDING,
            }, False
        answer = self._answers(digit[None], snapshot)[0]
        return {"sample_id": sample_id, **taking_back, "status": "learned", **answer}, True

    def collect(self, png: bytes, label: int, source: str) -> str:
        """Store a labelled drawing without learning from it; returns its image's file name."""
        self.db.check()
        image = self.journal.store_drawing(png)
        self.append(Entry("collect", label, image, source), png)
        return image.rsplit("/", 1)[-1]

    def append(self, entry: Entry, png: bytes | None = None, digit: np.ndarray | None = None) -> int:
        """Claim the next log number for `entry` with a create-only write; returns the number. Callers check
        the database first (`db.check`): an entry the learner cannot record is not acknowledged."""
        with self._head_lock:
            for _ in range(1000):
                number = max(self._head, self.snapshot.version) + 1
                if self.journal.try_append(number, entry):
                    with self._changed:
                        self._head = max(self._head, number)
                    break
                self.refresh_head()  # another writer took it: learn how far the log is, take the next
            else:
                raise StorageError("could not claim a log entry: the log keeps moving")
        if self.inbox is not None:
            self.inbox.put(number, entry, png, digit)
        self._announce(number, entry, digit)
        return number

    def _announce(self, number: int, entry: Entry, digit: np.ndarray | None = None) -> None:
        """Tell the learner (PostgreSQL) that entry `number` exists, with the entry itself (and its drawing's digit)
        when small, so it need not read them back. The entry is durable already: if this fails, the safety net
        finds it."""
        if not self.db.is_postgres:
            return  # nothing is notified on SQLite: build no payload
        data = entry.to_bytes()
        payload = {"number": number, "entry": json.loads(data) if len(data) <= self.config.notify_entry_bytes else None}
        if digit is not None:
            text = digit_to_text(digit)
            if len(data) + len(text) <= self.config.notify_entry_bytes:
                payload["digit"] = text
        try:
            self.db.notify(LOG_CHANNEL, payload)
        except DatabaseError as error:
            logger.warning("entry %d stored, its notification not sent: %s", number, error)
