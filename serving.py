"""The serving side: answers HTTP requests from the latest snapshot of the retrained models, with numpy forward
passes of all four models. Never imports TensorFlow (tests/test_roles.py checks `sys.modules`).

A server writes log entries (create-only, so many servers share one log) and never applies them: a learner
(learner.py) does, and publishes snapshots. In the `serve` role a background thread follows the snapshots the
learner writes to storage; in the `all` role the learner runs in the same process and hands them over in memory.

Snapshots in storage: `snapshots/latest.npz` (the retrained weights and a few figures of a fixed size, replaced
atomically by each publish); then a small pointer (version, originals, when the learner last looked at the log) in
the database's meta table. With PostgreSQL the learner also NOTIFYs every server, which fetches the snapshot at
once; on SQLite (one machine) servers read the pointer every SYNC_INTERVAL, which costs nothing. One snapshot is
kept: versions only grow, a reader never needs an older one, and a whole-object write means a reader sees a whole
old or a whole new one, never a torn one (the version inside the .npz is what counts, not the pointer's).
The review queue and the facts of each drawing are queried from the database (database.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import heldout
import undo
from config import Config
from database import LOG_CHANNEL, SNAPSHOT_CHANNEL, Database, DatabaseError
from digitness import Detector
from functions import MODELS, VARIANTS, InputError, digit_to_text, select_answer, to_pixels, top_k
from journal import DRAWING_KINDS, MAX_SAMPLES_PER_ENTRY, Entry, Journal
from numpy_cnn import NumpyCNN
from scores import HISTORY_POINTS, NAMES, Figures, empty_matrix, review_item
from storage import Storage, StorageError
from two_layer_net import FNN, FNNConfig

logger = logging.getLogger(__name__)

SNAPSHOT_KEY = "snapshots/latest.npz"
POINTER = "pointer"  # the database's meta key that announces the latest snapshot
# With notifications, a process still looks this often, in case one was lost (an idle fleet costs nothing).
SAFETY_NET_SECONDS = 45.0
# An appended entry rides on its notification when it is this small (PostgreSQL's limit is 8,000 bytes), and the
# drawing's digit with it when both fit: the learner then reads and decodes nothing (a GET and ~5 ms a label).
NOTIFY_ENTRY_BYTES = 7000
# A learner that has not looked at the log for this long is reported as stalled (it looks every
# LEARN_INTERVAL and says so at least every learner.HEARTBEAT_SECONDS, even with nothing to learn).
STALLED_AFTER_SECONDS = 30.0
WAITING_POLL_SECONDS = 0.1  # how often a server looks for a new snapshot while a train waits for one
MIN_INTERVAL = 0.1  # seconds: an interval of 0 (tests) must not spin
PENDING = "Stored. The models will learn from it shortly: the learner is busy or catching up."


def shipped_files(models_dir: Path) -> tuple[bytes, bytes]:
    """The shipped originals' files, read once: (fnn.npz, cnn.npz)."""
    return (models_dir / "fnn.npz").read_bytes(), (models_dir / "cnn.npz").read_bytes()


def originals_id(files: tuple[bytes, bytes]) -> str:
    """Which shipped originals a snapshot was learned from: a snapshot of other originals is not served."""
    return hashlib.sha256(b"".join(files)).hexdigest()[:16]


def load_metrics(models_dir: Path) -> dict:
    path = models_dir / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def load_detector(models_dir: Path) -> Detector | None:
    """The shipped "not a digit" detector; without its file every drawing gets an answer."""
    path = models_dir / "digitness.npz"
    return Detector.load(path) if path.exists() else None


@dataclass(frozen=True)
class Snapshot:
    """The retrained models at one version of the log, and what the learner knows of it. Immutable."""

    version: int
    originals: str
    fnn: FNN
    cnn: NumpyCNN
    stats: dict  # scores.Figures.summary: counts, prequential accuracy, degraded flags, history (fixed size)
    recent: list[dict]  # the latest labelled drawings, newest first (learner.RECENT_SAMPLES of them)
    published_at: float
    learner: dict  # {"applied", "booted_at", "checked_at"} of the learner that made it

    @property
    def revision(self) -> tuple[int, int]:
        """What makes one snapshot newer than another: its version, then the version its held-out figures were
        measured at (the learner scores them when idle too, so a new figure can come without a new version)."""
        return self.version, heldout.measured_at(self.stats.get("heldout", {}).get("history", []))

    @classmethod
    def initial(cls, fnn: FNN, cnn: NumpyCNN, originals: str) -> Snapshot:
        """Version 0: the retrained models are the originals, and nothing is learned yet."""
        return cls(0, originals, fnn, cnn, Figures().summary([]), [], 0.0, {})

    def to_bytes(self) -> bytes:
        """An .npz of a fixed size: the weights, the history as a (HISTORY_POINTS, 5) array padded with NaN, and
        the rest of the figures as UTF-8 JSON (a few KB: counts, accuracy, the recent drawings)."""
        meta = {k: v for k, v in asdict(self).items() if k not in ("fnn", "cnn")}
        meta["fnn_config"] = asdict(self.fnn.config)
        meta["stats"] = {k: v for k, v in self.stats.items() if k != "history"}
        history = np.full((HISTORY_POINTS, 1 + len(NAMES)), np.nan)
        for row, point in zip(history, self.stats["history"][-HISTORY_POINTS:], strict=False):
            row[:] = [point["model_version"], *(np.nan if point[n] is None else point[n] for n in NAMES)]
        arrays = {f"fnn_{k}": v for k, v in self.fnn.params.items()}
        arrays |= {f"cnn_{i}": w for i, w in enumerate(self.cnn.weights)}
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), history=history, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        """ValueError if `data` is not a whole snapshot."""
        try:
            with np.load(io.BytesIO(data)) as arrays:
                meta = json.loads(arrays["meta"].tobytes().decode())
                meta["stats"]["history"] = [
                    {
                        "model_version": int(row[0]),
                        **{n: None if np.isnan(a) else float(a) for n, a in zip(NAMES, row[1:], strict=True)},
                    }
                    for row in arrays["history"]
                    if not np.isnan(row[0])
                ]
                fnn = FNN(FNNConfig(**meta.pop("fnn_config")), {k: arrays[f"fnn_{k}"] for k in FNN.PARAMS})
                cnn = NumpyCNN([arrays[f"cnn_{i}"] for i in range(NumpyCNN.N_WEIGHTS)])
            return cls(fnn=fnn, cnn=cnn, **meta)
        except (OSError, KeyError, TypeError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"not a whole snapshot: {error}") from None


def write_pointer(db: Database, revision: tuple[int, int], originals: str, checked_at: float) -> None:
    """Announce the latest snapshot (or only that the learner is alive): a database write and, on PostgreSQL,
    a notification; no storage request."""
    version, measured = revision
    pointer = {"version": version, "heldout": measured, "originals": originals, "checked_at": checked_at}
    with db.transaction() as tx:
        tx.set_meta(POINTER, pointer)
    db.notify(SNAPSHOT_CHANNEL, pointer)


def publish_snapshot(storage: Storage, db: Database, snapshot: Snapshot) -> None:
    """The snapshot first, then the pointer that announces it."""
    storage.put(SNAPSHOT_KEY, snapshot.to_bytes())
    write_pointer(db, snapshot.revision, snapshot.originals, snapshot.learner.get("checked_at", 0.0))


def announced(pointer: dict) -> tuple[int, int]:
    """The revision of the snapshot a pointer (or its notification) announces."""
    return pointer.get("version", 0), pointer.get("heldout", -1)


class Server:
    """Four models answering from the latest snapshot; safe to call from many threads.

    Readers take the current snapshot by one reference read, so a prediction never waits for a writer and
    never sees half-updated weights. Writers append log entries and, for a train, wait (bounded) for a
    snapshot that includes it.
    """

    def __init__(self, config: Config, journal: Journal, db: Database, models_dir: Path):
        self.config = config
        self.journal = journal
        self.db = db
        files = shipped_files(models_dir)
        self.original = {"fnn": FNN.from_bytes(files[0]), "cnn": NumpyCNN.from_bytes(files[1])}
        self.originals = originals_id(files)
        self.metrics = load_metrics(models_dir)
        self.detector = load_detector(models_dir)
        self.snapshot = Snapshot.initial(self.original["fnn"], self.original["cnn"], self.originals)
        # The `all` role's learner, handed each entry this process appends and its drawing's PNG.
        # With the drawing's digit too: the learner need not decode and preprocess the PNG again (~5 ms a label).
        self.on_append: Callable[..., None] = lambda number, entry, png, digit: None
        self.notified = False  # PostgreSQL tells this process of new snapshots and entries
        self._changed = threading.Condition()
        self._head = 0  # the newest log entry this process knows of
        self._head_lock = threading.Lock()
        self._waiting = 0  # trains waiting for a snapshot: the follower polls faster meanwhile
        self._learner_seen_at: float | None = None  # wall time of the learner's latest look at the log
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._follower: threading.Thread | None = None
        self._undo_key: bytes | None = None

    def follow_storage(self) -> None:
        """The `serve` role (or an `all` web whose learner does not hold the lease): take the newest published
        snapshot now, then follow the learner's in the background. Idempotent."""
        if self._follower is not None:
            return
        try:
            self.poll_snapshot()
            self.refresh_head()  # probes the log from the snapshot's version on, not from the start
        except (StorageError, DatabaseError) as error:  # an `all` web that just lost its lease to an outage
            logger.warning("cannot follow the learner yet: %s", error)  # the follower thread keeps trying
        self.notified = self.db.listen((SNAPSHOT_CHANNEL, LOG_CHANNEL), self._heard)
        self._follower = threading.Thread(target=self._follow, name="snapshot-follower", daemon=True)
        self._follower.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._follower is not None:
            self._follower.join()
        self.db.close()

    # --- following ---

    def take(self, snapshot: Snapshot) -> None:
        """Serve `snapshot` from now on if it is newer (or the served one is of other originals)."""
        with self._changed:
            current = self.snapshot
            if snapshot.originals != self.originals:
                return
            if snapshot.revision > current.revision or current.originals != self.originals:
                self.snapshot = snapshot
            self._head = max(self._head, snapshot.version)
            self._changed.notify_all()
        self.saw_learner(snapshot.learner.get("checked_at"))

    def saw_learner(self, checked_at: float | None) -> None:
        if checked_at:
            self._learner_seen_at = max(self._learner_seen_at or 0.0, checked_at)

    def _heard(self, channel: str | None, payload: dict) -> None:
        """A notification: a new snapshot (or a live learner), an appended entry, or a (re)connection."""
        if channel == LOG_CHANNEL and isinstance(payload.get("number"), int):
            with self._changed:
                self._head = max(self._head, payload["number"])
            return
        if channel == SNAPSHOT_CHANNEL:
            self.saw_learner(payload.get("checked_at"))
            if announced(payload) <= self.snapshot.revision:
                return
        self._wake.set()

    def poll_snapshot(self) -> None:
        """Fetch the published snapshot if its pointer changed (one small database read when it did not)."""
        pointer = self.db.value(POINTER)
        if not isinstance(pointer, dict):
            return
        self.saw_learner(pointer.get("checked_at"))
        # Another set of originals (a learner of an earlier deploy, replaced by this one's soon) has nothing to
        # serve here: do not fetch its 1 MB snapshot every poll.
        if pointer.get("originals") != self.originals or announced(pointer) <= self.snapshot.revision:
            return
        try:
            self.take(Snapshot.from_bytes(self.journal.storage.get(SNAPSHOT_KEY)))
        except KeyError:
            return
        except ValueError as error:
            logger.warning("skipping a damaged snapshot: %s", error)

    def refresh_head(self) -> None:
        """Learn of entries other processes appended (one probe past the last known one)."""
        head = self.journal.head_from(max(self._head, self.snapshot.version))
        with self._changed:
            self._head = max(self._head, head)

    def _follow(self) -> None:
        # Notified: look only when told, and every SAFETY_NET_SECONDS. Else poll the pointer (free on SQLite).
        interval = SAFETY_NET_SECONDS if self.notified else max(self.config.sync_interval, MIN_INTERVAL)
        while not self._stop.is_set():
            try:
                self.poll_snapshot()
                if not self.notified:
                    self.refresh_head()
            except (StorageError, DatabaseError) as error:
                logger.warning("cannot follow the learner: %s", error)
            fast = self._waiting and not self.notified
            self._wake.wait(WAITING_POLL_SECONDS if fast else interval)
            self._wake.clear()

    def wait_for(self, version: int, timeout: float) -> Snapshot | None:
        """The served snapshot once it includes entry `version`, or None after `timeout` seconds."""
        with self._changed:
            self._waiting += 1
            if not self.notified:
                self._wake.set()  # poll faster while it waits; a notified process is told
            try:
                if self._changed.wait_for(lambda: self.snapshot.version >= version, timeout):
                    return self.snapshot
                return None
            finally:
                self._waiting -= 1

    # --- reading ---

    @property
    def version(self) -> int:
        """The served model version: how many log entries the served models have learned from."""
        return self.snapshot.version

    def predict(self, digit: np.ndarray) -> dict:
        """All four models' top-3 for one (28, 28) digit, and the answer rule's verdict."""
        return self._answer(digit, self.snapshot)

    def _answer(self, digit: np.ndarray, snapshot: Snapshot) -> dict:
        probs = self._probabilities(digit, snapshot)
        is_digit = self.detector is None or self.detector.is_digit(digit)
        answer, message = select_answer(probs["fnn.retrained"], probs["cnn.retrained"], is_digit)
        return {
            "answer": None if answer is None else str(answer),  # DESIGN.md's contract: "7" or null
            "message": message,
            "model_version": snapshot.version,
            "predictions": {m: {v: top_k(probs[f"{m}.{v}"]) for v in VARIANTS} for m in MODELS},
            "preprocessed": to_pixels(digit),
        }

    def _probabilities(self, digit: np.ndarray, snapshot: Snapshot) -> dict[str, np.ndarray]:
        batch = digit[None]
        return {
            "fnn.original": self.original["fnn"].predict_proba(batch)[0],
            "cnn.original": self.original["cnn"].predict_proba(batch)[0],
            "fnn.retrained": snapshot.fnn.predict_proba(batch)[0],
            "cnn.retrained": snapshot.cnn.predict_proba(batch)[0],
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

    def learning(self) -> dict:
        """How far the served models are behind the log, and whether the learner is alive."""
        served, head = self.snapshot.version, max(self._head, self.snapshot.version)
        seen = self._learner_seen_at
        age = None if seen is None else max(0.0, time.time() - seen)
        if (age is None and head > served) or (age is not None and age > STALLED_AFTER_SECONDS):
            state = "stalled"
        else:
            state = "catching_up" if head > served else "up_to_date"
        return {
            "log_version": head,
            "behind": head - served,
            "learner": state,
            "learner_seen_seconds_ago": None if age is None else round(age, 1),
        }

    def health(self) -> dict:
        """Status, served model version, how far behind the log, degraded models: no lock, no storage."""
        snapshot = self.snapshot
        return {
            "status": "ok",
            "model_version": snapshot.version,
            **self.learning(),
            "degraded": snapshot.stats["degraded"],
        }

    def stats(self, snapshot: Snapshot | None = None) -> dict:
        """Samples per label; each model's accuracy on the held-out slice of t10k (the retrained ones as the learner
        last measured them, at `t10k_version`) and on users' drawings, per label too; the accuracy histories by
        model version, on users' drawings and held-out digits; confusion matrices (the originals on t10k, all four
        on users' drawings); the latest drawings original and retrained answered differently; and flags for
        retrained models doing worse than their originals. Of the served snapshot, or of `snapshot`."""
        snapshot = snapshot or self.snapshot
        stats = snapshot.stats
        t10k = self.metrics.get("models", {})  # the originals on all of t10k: their confusion matrices
        originals = self.metrics.get("heldout", {}).get("accuracy", {})  # ...and on the shipped slice
        curve = stats.get("heldout", {}).get("history", [])
        latest = curve[-1] if curve else {}
        accuracy = {m: {v: dict(stats["accuracy"][m][v]) for v in VARIANTS} for m in MODELS}
        for m in MODELS:
            accuracy[m]["original"]["t10k"] = originals.get(m)
            accuracy[m]["retrained"]["t10k"] = latest.get(m)
            accuracy[m]["retrained"]["t10k_version"] = latest.get("model_version")
        return {
            "model_version": snapshot.version,
            **self.learning(),
            "samples": stats["samples"],
            "accuracy": accuracy,
            "degraded": stats["degraded"],
            "history": stats["history"],
            "heldout": {"n": self.metrics.get("heldout", {}).get("n_samples", 0), "history": curve},
            "confusion": {m: t10k.get(m, {}).get("confusion_matrix") for m in MODELS},
            "users_confusion": stats.get("confusion") or {n: empty_matrix() for n in NAMES},
            "disagreements": [dict(d) for d in stats.get("differing", [])],  # main adds image URLs
        }

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
        self.db.check()
        entry = Entry("train", label, self.journal.store_drawing(png), source, strokes=strokes)
        number = self.append(entry, png, digit)
        sample_id = f"{number:010d}"
        taking_back = {"undo_token": self.undo_token(number), "undo_seconds": undo.UNDO_SECONDS}
        snapshot = self.wait_for(number, self.config.train_wait_seconds)
        if snapshot is None:
            return {
                "sample_id": sample_id,
                **taking_back,
                "status": "pending",
                "model_version": self.snapshot.version,
                "message": PENDING,
            }, False
        return {"sample_id": sample_id, **taking_back, "status": "learned", **self._answer(digit, snapshot)}, True

    def collect(self, png: bytes, label: int, source: str) -> str:
        """Store a labelled drawing without learning from it; returns its image's file name."""
        self.db.check()
        image = self.journal.store_drawing(png)
        self.append(Entry("collect", label, image, source), png)
        return image.rsplit("/", 1)[-1]

    def reset(self, source: str = "admin") -> int:
        """Make the retrained models the originals again, for every process; returns the new version."""
        return self._append_and_wait(Entry("reset", source=source))

    def rollback(self, target: int, source: str = "admin") -> int:
        """Make the retrained models what they were at version `target`, for every process."""
        self.refresh_head()
        head = max(self._head, self.snapshot.version)
        if not 0 <= target < head:
            raise InputError("invalid_version", f"Roll back to a version from 0 to {head - 1}.")
        return self._append_and_wait(Entry("rollback", source=source, target=target))

    def exclude(self, numbers: list[int], source: str = "admin") -> dict:
        """Take drawings out of the models, counts, accuracy figures and export, for every process: one log
        entry for the whole list. Idempotent: drawings already out are reported `unchanged`, and a request
        that changes nothing writes nothing."""
        return self._change_exclusions("exclude", numbers, source)

    def restore(self, numbers: list[int], source: str = "admin") -> dict:
        """Bring excluded drawings back, the same way as `exclude` takes them out."""
        return self._change_exclusions("restore", numbers, source)

    def _change_exclusions(self, kind: str, numbers: list[int], source: str) -> dict:
        rows = self.check_drawings(numbers)
        excluded = {n for n, row in rows.items() if row["excluded"]}
        changed = sorted({n for n in numbers if (n in excluded) == (kind == "restore")})
        unchanged = sorted(set(numbers) - set(changed))
        status, version = "unchanged", self.snapshot.version
        if changed:
            version = self.append(Entry(kind, source=source, samples=changed))
            applied = self.wait_for(version, self.config.train_wait_seconds) is not None
            status = "applied" if applied else "pending"
        done = "excluded" if kind == "exclude" else "restored"
        return {
            done: [f"{n:010d}" for n in changed],
            "unchanged": [f"{n:010d}" for n in unchanged],
            "status": status,
            "model_version": version,
        }

    def check_drawings(self, numbers: list[int]) -> dict[int, dict]:
        """The database's rows of these drawings; InputError unless every number names a drawing in the log
        (404 for none there, 422 for another kind). A drawing the learner has not recorded yet has no row."""
        if not 0 < len(numbers) <= MAX_SAMPLES_PER_ENTRY:
            raise InputError("invalid_sample_ids", f"Send from 1 to {MAX_SAMPLES_PER_ENTRY} sample ids.")
        rows = self.db.drawings(sorted(set(numbers)))
        missing, not_drawings = [], []
        for number in sorted(set(numbers) - set(rows)):
            entry = self.journal.read(number)
            if entry is None:
                missing.append(number)
            elif entry.kind not in DRAWING_KINDS:
                not_drawings.append(number)
        if missing:
            listed = ", ".join(f"{n:010d}" for n in missing)
            raise InputError("not_found", f"There is no drawing {listed}; nothing was changed.", 404)
        if not_drawings:
            listed = ", ".join(f"{n:010d}" for n in not_drawings)
            raise InputError("not_a_drawing", f"Entry {listed} is not a drawing; nothing was changed.", 422)
        return rows

    def undo_token(self, number: int) -> str:
        """A capability to take back drawing `number` within undo.UNDO_SECONDS."""
        return undo.issue(self._key(), number)

    def undo(self, token: object) -> dict:
        """Exclude the drawing a genuine, unexpired, unused undo token names."""
        number = undo.verify(self._key(), token)
        self.db.check()  # a token is used up only if the exclusion it asks for can be recorded
        undo.use_once(self.journal.storage, number)
        return self.exclude([number], source="undo")

    def _key(self) -> bytes:
        if self._undo_key is None:
            self._undo_key = undo.undo_key(self.journal.storage, self.config.undo_secret)
        return self._undo_key

    def _append_and_wait(self, entry: Entry) -> int:
        self.db.check()
        number = self.append(entry)
        self.wait_for(number, self.config.train_wait_seconds)
        return number

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
        self.on_append(number, entry, png, digit)
        self._announce(number, entry, digit)
        return number

    def _announce(self, number: int, entry: Entry, digit: np.ndarray | None = None) -> None:
        """Tell the learner (PostgreSQL) that entry `number` exists, with the entry itself (and its drawing's digit)
        when small, so it need not read them back. The entry is durable already: if this fails, the safety net
        finds it."""
        if not self.db.is_postgres:
            return  # nothing is notified on SQLite: build no payload
        data = entry.to_bytes()
        payload = {"number": number, "entry": json.loads(data) if len(data) <= NOTIFY_ENTRY_BYTES else None}
        if digit is not None:
            text = digit_to_text(digit)
            if len(data) + len(text) <= NOTIFY_ENTRY_BYTES:
                payload["digit"] = text
        try:
            self.db.notify(LOG_CHANNEL, payload)
        except DatabaseError as error:
            logger.warning("entry %d stored, its notification not sent: %s", number, error)
