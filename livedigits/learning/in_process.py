"""The `all` role's learner: a LogLearner on a thread of the web process."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from livedigits import threads
from livedigits.config import Config
from livedigits.learning.log_learner import (
    LogLearner,
)
from livedigits.learning.publisher import Publisher, learner_waiting
from livedigits.state.database import Database, DatabaseError
from livedigits.state.inbox import Inbox
from livedigits.state.journal import Journal
from livedigits.state.lease import Lease
from livedigits.state.snapshot import Snapshot
from livedigits.state.storage import StorageError

logger = logging.getLogger(__name__)


class SnapshotReceiver(Protocol):
    """What the in-process learner hands its snapshots to: the server of the same process (serving.Server)."""

    def take(self, snapshot: Snapshot) -> None: ...
    def saw_learner(self, checked_at: float | None) -> None: ...
    def follow_storage(self) -> None: ...


class InProcessLearner:
    """The `all` role's learner: a LogLearner on a thread of the web process, handing snapshots to the server
    in memory (and to storage, every config.storage_publish_seconds, for any other process that follows). Woken at once
    by the server's own appends; looks for other processes' entries every `sync_interval`.

    It learns only while it holds the lease, and only while no `learn` process wants it: the web is the learner
    of last resort. If another learner holds the lease at boot (a worker dyno, or the web dyno this one
    replaces, still shutting down), the server follows that learner's snapshots, and this one waits without
    loading TensorFlow. If a `learn` process announces that it waits, this one hands the lease over."""

    def __init__(self, config: Config, journal: Journal, db: Database, server: SnapshotReceiver, inbox: Inbox):
        self.config, self.journal, self.db, self.server, self.inbox = config, journal, db, server, inbox
        self.lease = Lease(db)
        self.learner: LogLearner | None = None
        self.publisher: Publisher | None = None
        self._stop, self._wake = threading.Event(), inbox.wake  # the server's appends wake the learner at once
        self._asked_at = 0.0
        if self.lease.try_acquire():
            self._lead()  # at boot, before the first request: as if there were no lease
        else:
            logger.info("another learner holds the lease: serving its snapshots, waiting to take over")
            server.follow_storage()
        self._thread = threads.start("learner", self._loop)

    def _lead(self) -> None:
        if self.learner is None:
            self.learner = LogLearner.open(self.config, self.journal, self.db, self.inbox)
            self.publisher = Publisher(self.journal.storage, self.db, self.learner, self.config.storage_publish_seconds)
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
                while not self._stop.is_set() and (
                    learner_waiting(self.db, self.config.waiting_fresh_seconds) or not self.lease.try_acquire()
                ):
                    self.inbox.take()  # another learner learns these: it reads them from the log
                    self._stop.wait(self.config.lease_poll_seconds)
                if self._stop.is_set():
                    return
                try:
                    self._lead()
                except (StorageError, DatabaseError) as error:
                    logger.warning("cannot take over yet: %s", error)
                    self.lease.release()
                    self._stop.wait(self.config.lease_poll_seconds)
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
        if time.monotonic() - self._asked_at < self.config.heartbeat_seconds:
            return
        self._asked_at = time.monotonic()
        if learner_waiting(self.db, self.config.waiting_fresh_seconds):
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
