"""The snapshot format: the contract between the learner, which writes snapshots, and the servers, which
serve them. `snapshots/latest.npz` holds the retrained weights and a few figures of a fixed size, replaced
whole by each publish; a pointer in the database's meta table (and, on PostgreSQL, a notification) announces
it. One snapshot is kept: versions only grow, and a whole-object write means a reader sees a whole old or a
whole new one, never a torn one."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livedigits.state import heldout
from livedigits.state.database import SNAPSHOT_CHANNEL, Database
from livedigits.state.figures import NAMES, Figures
from livedigits.state.storage import Storage

SNAPSHOT_KEY = "snapshots/latest.npz"
POINTER = "pointer"  # the database's meta key that announces the latest snapshot
# How a reader builds the two retrained models from a snapshot's FNN config and arrays (fnn_<param>, cnn_<i>):
# the models layer's (livedigits.models.served.served_models), so that this format depends on no model class.
# A snapshot's history has a fixed size: at most this many points (Config.history_points is at most this).
HISTORY_POINTS = 200
ModelsOf = Callable[[dict, Mapping[str, np.ndarray]], tuple[Any, Any]]


def shipped_files(models_dir: Path) -> tuple[bytes, bytes]:
    """The shipped originals' files, read once: (fnn.npz, cnn.npz)."""
    return (models_dir / "fnn.npz").read_bytes(), (models_dir / "cnn.npz").read_bytes()


def originals_id(files: tuple[bytes, bytes]) -> str:
    """Which shipped originals a snapshot was learned from: a snapshot of other originals is not served."""
    return hashlib.sha256(b"".join(files)).hexdigest()[:16]


@dataclass(frozen=True)
class Snapshot:
    """The retrained models at one version of the log, and what the learner knows of it. Immutable."""

    version: int
    originals: str
    fnn: Any  # a numpy FNN: .config (a dataclass), .params {name: array}, predict_proba
    cnn: Any  # a numpy CNN: .weights [arrays], predict_proba
    stats: dict  # figures.Figures.summary: counts, prequential accuracy, degraded flags, history (fixed size)
    recent: list[dict]  # the latest labelled drawings, newest first (Config.recent_samples of them)
    published_at: float
    learner: dict  # {"applied", "booted_at", "checked_at"} of the learner that made it

    @property
    def revision(self) -> tuple[int, int]:
        """What makes one snapshot newer than another: its version, then the version its held-out figures were
        measured at (the learner scores them when idle too, so a new figure can come without a new version)."""
        return self.version, heldout.measured_at(self.stats.get("heldout", {}).get("history", []))

    @classmethod
    def initial(cls, fnn: Any, cnn: Any, originals: str) -> Snapshot:
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
    def from_bytes(cls, data: bytes, models_of: ModelsOf) -> Snapshot:
        """ValueError if `data` is not a whole snapshot; `models_of` builds the two models from its arrays."""
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
                fnn, cnn = models_of(meta.pop("fnn_config"), arrays)
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
