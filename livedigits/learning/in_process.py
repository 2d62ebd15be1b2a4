"""The `all` role's learner: a LogLearner on a thread of the web process.

The thread loads TensorFlow and the models, restores the newest checkpoint and replays the log after it a step at a
time, publishing as it goes; the web answers from the last published snapshot meanwhile. A boot that replayed before
serving left requests queued for the whole replay, and Heroku's router gives up on one after 30 s. At SIGTERM the
learner stops between entries and hands over with a checkpoint at its version."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol

from livedigits import threads
from livedigits.config import Config
from livedigits.learning.publisher import Publisher, learner_waiting
from livedigits.state.database import Database, DatabaseError
from livedigits.state.inbox import Inbox
from livedigits.state.journal import Journal
from livedigits.state.lease import Lease
from livedigits.state.snapshot import Snapshot
from livedigits.state.storage import StorageError

if TYPE_CHECKING:
    from livedigits.learning.log_learner import LogLearner

logger = logging.getLogger(__name__)


class SnapshotReceiver(Protocol):
    """What the in-process learner hands its snapshots to: the server of the same process (serving.Server)."""

    snapshot: Snapshot

    def take(self, snapshot: Snapshot) -> None: ...
    def saw_learner(self, checked_at: float | None) -> None: ...
    def follow_storage(self) -> None: ...
    def serve_last_published(self) -> None: ...


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
        self._hand_over_by: float | None = None  # monotonic deadline of the hand-over, from SIGTERM on
        self._booted = threading.Event()  # see wait_booted
        self._end_at_takeover = 0
        if self.lease.try_acquire():
            server.serve_last_published()  # while this learner loads and replays, on its thread
        else:
            logger.info("another learner holds the lease: serving its snapshots, waiting to take over")
            server.follow_storage()
            self._booted.set()
        self._thread = threads.start("learner", self._loop)

    def _loop(self) -> None:
        try:
            self._learn()
        except Exception:
            logger.exception("the learner stopped")  # the web goes on serving; /healthz says the learner stalled
        finally:
            if self._hand_over_by is not None:
                self._leave_checkpoint()
            self._booted.set()  # nobody waits for a learner that stopped

    def _learn(self) -> None:
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
                self._booted.set()  # the web serves what it has; this learner tries again
                self.lease.release()
                self.server.follow_storage()  # whoever takes the lease meanwhile, the server follows it
                self._stop.wait(self.config.lease_poll_seconds)
                continue
            # Replays what the checkpoint lacks, then follows the log; returns at `_stop` or when the lease is gone.
            self.learner.run(self._publish, self._wake, self._stop, self.config.sync_interval, idle=self._idle,
                             lease=self.lease)  # fmt: skip
            self.publisher.flush()
            if not self._stop.is_set():
                self.server.follow_storage()  # lost or handed over the lease: follow whoever holds it now

    def _lead(self) -> None:
        """Start learning: load the models (TensorFlow, on this thread, the first time) and the newest checkpoint.
        `run` replays the rest of the log."""
        if self.learner is None:
            from livedigits.learning.log_learner import LogLearner  # TensorFlow: here, while the web answers

            self.learner = LogLearner.load(self.config, self.journal, self.db, self.inbox)
            self.publisher = Publisher(self.journal.storage, self.db, self.learner, self.config.storage_publish_seconds)
        self._end_at_takeover = self.learner.restore()
        self._show(self.learner.snapshot())
        logger.info(
            "learning in this web process from version %d; the log runs to %d", self.learner.version,
            self._end_at_takeover,
        )  # fmt: skip

    def _show(self, snapshot: Snapshot) -> None:
        self.server.take(snapshot)
        if snapshot.revision >= self.server.snapshot.revision:  # not while replaying up to the last published one
            self.publisher.publish(snapshot)
        if snapshot.version >= self._end_at_takeover:
            self._booted.set()

    def _publish(self, snapshot: Snapshot) -> None:
        self._show(snapshot)
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

    def wait_booted(self, timeout: float | None = None) -> bool:
        """Until the learner has learned the log as it stood when it took the lease (loaded, restored, replayed), or
        could not take over (it tries again), or another process learns; False after `timeout` seconds. For tools,
        benches and tests that start from the state a boot replays to: the web itself answers meanwhile."""
        return self._booted.wait(timeout)

    def flush_checkpoints(self) -> None:
        if self.learner is not None:
            self.learner.flush_checkpoints()

    def begin_hand_over(self) -> None:
        """SIGTERM (gunicorn.conf.py): stop between entries, then, on the learner's own thread, leave a checkpoint at
        its version and let the lease go, while the requests in flight finish. Returns at once (a signal handler)."""
        if self._hand_over_by is None:
            self._hand_over_by = time.monotonic() + self.config.hand_over_seconds
        self._stop.set()
        self._wake.set()

    def hand_over(self) -> None:
        """The web process is stopping (gunicorn's worker_exit): the hand-over begun at SIGTERM (or now), waited for
        until config.hand_over_seconds after it began. A learner still inside one long entry (an exclusion's rebuild)
        is left behind: the process exits without a new checkpoint, and the next learner replays from the last one."""
        self.begin_hand_over()
        if not self._join():
            logger.warning("the learner did not stop in time: exiting without a hand-over checkpoint")

    def _leave_checkpoint(self) -> None:
        if self.learner is not None and self.lease.held:
            self.publisher.flush()
            self.learner.hand_over()
            logger.info("handed over at version %d", self.learner.version)
        self.lease.release()

    def _join(self) -> bool:
        """Wait for the learner's thread: without limit, or after SIGTERM until the hand-over's deadline."""
        timeout = None if self._hand_over_by is None else max(0.0, self._hand_over_by - time.monotonic())
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _stop_thread(self) -> bool:
        self._stop.set()
        self._wake.set()
        return self._join()

    def close(self) -> None:
        """Idempotent (a test may end a process before its teardown does)."""
        if self._stop.is_set() and not self._thread.is_alive() and self.learner is None:
            return
        if not self._stop_thread():
            return  # stuck inside one entry past the hand-over's deadline: the process exits around it
        self.lease.release()
        if self.learner is not None:
            self.learner.close()
            self.learner = None
        self.db.close()
