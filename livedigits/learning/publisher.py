"""What a leading learner tells other processes: its snapshots, and that it is alive."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from livedigits import threads
from livedigits.state import heldout
from livedigits.state.database import Database, DatabaseError
from livedigits.state.snapshot import Snapshot, publish_snapshot, write_pointer
from livedigits.state.storage import Storage, StorageError

if TYPE_CHECKING:  # TensorFlow: the `all` role's web imports this module before its learner loads (in_process.py)
    from livedigits.learning.log_learner import LogLearner

logger = logging.getLogger(__name__)

WAITING = "learner_waiting"  # meta key: when a `learn` process last said it waits for the lease


class Publisher:
    """What a leading learner tells other processes: its snapshots, written to storage with the pointer that
    announces them (at most every `gap` seconds; a newer one waits for the next call), and, when it is idle,
    that it is alive (config.heartbeat_seconds: servers tell a quiet learner from a dead one by that).

    `background`: snapshots are written by a thread of their own, the newest one whenever the last write is done,
    so the learner goes on to its next step meanwhile (a snapshot's PUT takes tens of ms under a crowd)."""

    def __init__(self, storage: Storage, db: Database, learner: LogLearner, gap: float = 0.0, background: bool = False):
        self.storage, self.db, self.learner, self.gap = storage, db, learner, gap
        self._pending: Snapshot | None = None
        self._written = 0.0  # monotonic time of the last write (snapshot or heartbeat)
        self._writing = threading.RLock()  # one write at a time, so the newest is the last
        self._wanted = threading.Event() if background else None
        if self._wanted is not None:
            threads.start("publisher", self._write_wanted)

    def publish(self, snapshot: Snapshot) -> None:
        self._pending = snapshot
        if self._wanted is not None:
            self._wanted.set()
        elif time.monotonic() - self._written >= self.gap:
            self.flush()

    def idle(self) -> None:
        if self._pending is not None and time.monotonic() - self._written >= self.gap:
            self.flush()
        elif time.monotonic() - self._written >= self.learner.config.heartbeat_seconds:
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


def learner_waiting(db: Database, fresh_seconds: float) -> bool:
    """Whether a `learn` process has said it waits for the lease, lately."""
    try:
        said = db.value(WAITING)
    except DatabaseError:
        return False
    return isinstance(said, (int, float)) and time.time() - said < fresh_seconds
