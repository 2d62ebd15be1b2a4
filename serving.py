"""The serving side: answers HTTP requests from the latest snapshot of the retrained models, with numpy forward
passes of all four models. Never imports TensorFlow (tests/test_roles.py checks `sys.modules`).

A server writes log entries (create-only, so many servers share one log) and never applies them: a learner
(learner.py) does, and publishes snapshots. In the `serve` role a background thread follows the snapshots the
learner writes to storage; in the `all` role the learner runs in the same process and hands them over in memory.

Snapshots in storage: `snapshots/latest.npz` (the whole snapshot, replaced atomically by each publish) and
`snapshots/latest.json` (a small pointer: version, originals, when the learner last looked at the log), written
after it. Servers poll the pointer and fetch the snapshot only when it changed. One snapshot is kept: versions
only grow, a reader never needs an older one, and a whole-object write means a reader sees a whole old or a
whole new one, never a torn one (the version inside the .npz is what counts, not the pointer's).
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import undo
from config import Config
from digitness import Detector
from functions import MODELS, VARIANTS, InputError, select_answer, to_pixels, top_k
from journal import DRAWING_KINDS, MAX_SAMPLES_PER_ENTRY, Entry, Journal
from numpy_cnn import NumpyCNN
from scores import summary
from storage import Storage, StorageError
from two_layer_net import FNN, FNNConfig

logger = logging.getLogger(__name__)

SNAPSHOT_KEY = "snapshots/latest.npz"
POINTER_KEY = "snapshots/latest.json"
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
    stats: dict  # scores.summary: counts, prequential accuracy, degraded flags, history
    recent: list[dict]  # the latest labelled drawings, newest first
    published_at: float
    learner: dict  # {"applied", "booted_at", "checked_at"} of the learner that made it
    review: list[dict] = field(default_factory=list)  # scores.review_queue: every scored drawing, most suspect first

    @classmethod
    def initial(cls, fnn: FNN, cnn: NumpyCNN, originals: str) -> Snapshot:
        """Version 0: the retrained models are the originals, and nothing is learned yet."""
        return cls(0, originals, fnn, cnn, summary([], [0] * 10), [], 0.0, {})

    def to_bytes(self) -> bytes:
        meta = {k: v for k, v in asdict(self).items() if k not in ("fnn", "cnn")}
        meta["fnn_config"] = asdict(self.fnn.config)
        arrays = {f"fnn_{k}": v for k, v in self.fnn.params.items()}
        arrays |= {f"cnn_{i}": w for i, w in enumerate(self.cnn.weights)}
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        """ValueError if `data` is not a whole snapshot."""
        try:
            with np.load(io.BytesIO(data)) as arrays:
                meta = json.loads(str(arrays["meta"]))
                fnn = FNN(FNNConfig(**meta.pop("fnn_config")), {k: arrays[f"fnn_{k}"] for k in FNN.PARAMS})
                cnn = NumpyCNN([arrays[f"cnn_{i}"] for i in range(NumpyCNN.N_WEIGHTS)])
            return cls(fnn=fnn, cnn=cnn, **meta)
        except (OSError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"not a whole snapshot: {error}") from None


def write_pointer(storage: Storage, version: int, originals: str, checked_at: float) -> None:
    pointer = {"version": version, "originals": originals, "checked_at": checked_at}
    storage.put(POINTER_KEY, json.dumps(pointer).encode())


def publish_snapshot(storage: Storage, snapshot: Snapshot) -> None:
    """The snapshot first, then the pointer that announces it."""
    storage.put(SNAPSHOT_KEY, snapshot.to_bytes())
    write_pointer(storage, snapshot.version, snapshot.originals, snapshot.learner.get("checked_at", 0.0))


def read_json(storage: Storage, key: str) -> dict | None:
    try:
        value = json.loads(storage.get(key))
    except (KeyError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class Server:
    """Four models answering from the latest snapshot; safe to call from many threads.

    Readers take the current snapshot by one reference read, so a prediction never waits for a writer and
    never sees half-updated weights. Writers append log entries and, for a train, wait (bounded) for a
    snapshot that includes it.
    """

    def __init__(self, config: Config, journal: Journal, models_dir: Path):
        self.config = config
        self.journal = journal
        files = shipped_files(models_dir)
        self.original = {"fnn": FNN.from_bytes(files[0]), "cnn": NumpyCNN.from_bytes(files[1])}
        self.originals = originals_id(files)
        self.metrics = load_metrics(models_dir)
        self.detector = load_detector(models_dir)
        self.snapshot = Snapshot.initial(self.original["fnn"], self.original["cnn"], self.originals)
        self.on_append: Callable[[], None] = lambda: None  # the `all` role wakes its learner
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
        """The `serve` role: take the newest published snapshot now, then follow the learner's in the background."""
        self.poll_snapshot()
        self.refresh_head()  # lists the log from the snapshot's version on, not from the start
        self._follower = threading.Thread(target=self._follow, name="snapshot-follower", daemon=True)
        self._follower.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._follower is not None:
            self._follower.join()

    # --- following ---

    def take(self, snapshot: Snapshot) -> None:
        """Serve `snapshot` from now on if it is newer (or the served one is of other originals)."""
        with self._changed:
            current = self.snapshot
            if snapshot.originals != self.originals:
                return
            if snapshot.version > current.version or current.originals != self.originals:
                self.snapshot = snapshot
            self._head = max(self._head, snapshot.version)
            self._changed.notify_all()
        self.saw_learner(snapshot.learner.get("checked_at"))

    def saw_learner(self, checked_at: float | None) -> None:
        if checked_at:
            self._learner_seen_at = max(self._learner_seen_at or 0.0, checked_at)

    def poll_snapshot(self) -> None:
        """Fetch the published snapshot if its pointer changed (one small read when it did not)."""
        pointer = read_json(self.journal.storage, POINTER_KEY)
        if pointer is None:
            return
        self.saw_learner(pointer.get("checked_at"))
        # Another set of originals (a learner of an earlier deploy, replaced by this one's soon) has nothing to
        # serve here: do not fetch its 1 MB snapshot every poll.
        if pointer.get("originals") != self.originals or pointer.get("version", 0) <= self.snapshot.version:
            return
        try:
            self.take(Snapshot.from_bytes(self.journal.storage.get(SNAPSHOT_KEY)))
        except KeyError:
            return
        except ValueError as error:
            logger.warning("skipping a damaged snapshot: %s", error)

    def refresh_head(self) -> None:
        """Learn of entries other processes appended (one cheap listing from the last known one)."""
        numbers = self.journal.numbers_after(self._head)
        if numbers:
            with self._changed:
                self._head = max(self._head, numbers[-1])

    def _follow(self) -> None:
        interval = max(self.config.sync_interval, MIN_INTERVAL)
        last_listing = 0.0
        while not self._stop.is_set():
            try:
                self.poll_snapshot()
                if time.monotonic() - last_listing >= interval:
                    self.refresh_head()
                    last_listing = time.monotonic()
            except StorageError as error:
                logger.warning("cannot follow the learner, storage unavailable: %s", error)
            self._wake.wait(WAITING_POLL_SECONDS if self._waiting else interval)
            self._wake.clear()

    def wait_for(self, version: int, timeout: float) -> Snapshot | None:
        """The served snapshot once it includes entry `version`, or None after `timeout` seconds."""
        with self._changed:
            self._waiting += 1
            self._wake.set()
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

    def stats(self) -> dict:
        """Samples per label, each model's accuracy on held-out (t10k) and users' drawings, the accuracy
        history by model version, and flags for retrained models doing worse than their originals."""
        snapshot = self.snapshot
        held_out = self.metrics.get("models", {})
        accuracy = {
            m: {
                v: {
                    "t10k": held_out.get(m, {}).get("accuracy") if v == "original" else None,
                    **snapshot.stats["accuracy"][m][v],
                }
                for v in VARIANTS
            }
            for m in MODELS
        }
        return {
            "model_version": snapshot.version,
            **self.learning(),
            "samples": snapshot.stats["samples"],
            "accuracy": accuracy,
            "degraded": snapshot.stats["degraded"],
            "history": snapshot.stats["history"],
            "confusion": {m: held_out.get(m, {}).get("confusion_matrix") for m in MODELS},
        }

    def recent_samples(self) -> list[dict]:
        """The latest labelled drawings, newest first."""
        return list(self.snapshot.recent)

    def review(self, label: int | None, source: str | None, excluded: bool, offset: int, limit: int) -> dict:
        """A page of the review queue (drawings most likely mislabelled first), filtered by label and source;
        the excluded drawings instead with `excluded`, to restore them."""
        snapshot = self.snapshot
        items = [
            item
            for item in snapshot.review
            if item["excluded"] == excluded
            and (label is None or item["label"] == label)
            and (source is None or item["source"] == source)
        ]
        sources = sorted({item["source"] for item in snapshot.review})
        return {
            "model_version": snapshot.version,
            "total": len(items),
            "offset": offset,
            "limit": limit,
            "sources": sources,
            "samples": items[offset : offset + limit],
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

        Learned: what the updated models say now. Not learned in time: the drawing is stored and pending."""
        number = self.append(Entry("train", label, self.journal.store_drawing(png), source, strokes=strokes))
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
        image = self.journal.store_drawing(png)
        self.append(Entry("collect", label, image, source))
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
        self.check_drawings(numbers)
        excluded = set(self.snapshot.stats.get("excluded", []))
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

    def check_drawings(self, numbers: list[int]) -> None:
        """InputError unless every number names a drawing in the log (404 for none there, 422 for another kind)."""
        if not 0 < len(numbers) <= MAX_SAMPLES_PER_ENTRY:
            raise InputError("invalid_sample_ids", f"Send from 1 to {MAX_SAMPLES_PER_ENTRY} sample ids.")
        known = {int(item["sample_id"]) for item in self.snapshot.review}
        missing, not_drawings = [], []
        for number in sorted(set(numbers) - known):
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

    def undo_token(self, number: int) -> str:
        """A capability to take back drawing `number` within undo.UNDO_SECONDS."""
        return undo.issue(self._key(), number)

    def undo(self, token: object) -> dict:
        """Exclude the drawing a genuine, unexpired, unused undo token names."""
        number = undo.verify(self._key(), token)
        undo.use_once(self.journal.storage, number)
        return self.exclude([number], source="undo")

    def _key(self) -> bytes:
        if self._undo_key is None:
            self._undo_key = undo.undo_key(self.journal.storage, self.config.undo_secret)
        return self._undo_key

    def _append_and_wait(self, entry: Entry) -> int:
        number = self.append(entry)
        self.wait_for(number, self.config.train_wait_seconds)
        return number

    def append(self, entry: Entry) -> int:
        """Claim the next log number for `entry` with a create-only write; returns the number."""
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
        self.on_append()
        return number
