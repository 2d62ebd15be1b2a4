"""Following the learner: the served snapshot, swapped whole when a newer one is published (in memory by the
`all` role's learner, or in storage and announced by the database), and how far the log is ahead of it. The wait of
a train for the snapshot that includes it: serving/waiting.py."""

from __future__ import annotations

import logging
import time

from livedigits import threads
from livedigits.models.served import served_models
from livedigits.state.database import LOG_CHANNEL, SNAPSHOT_CHANNEL, DatabaseError
from livedigits.state.snapshot import POINTER, SNAPSHOT_KEY, Snapshot, announced
from livedigits.state.storage import StorageError

logger = logging.getLogger(__name__)

MIN_INTERVAL = 0.1  # seconds: an interval of 0 (tests) must not spin


class Following:
    """The part of the Server (serving.server) that follows the learner's snapshots. Readers take the current
    snapshot by one reference read, so a prediction never waits for a writer and never sees half-updated
    weights."""

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
        self._follower = threads.start("snapshot-follower", self._follow)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._follower is not None:
            self._follower.join()
        self.db.close()

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
        try:
            pointer = self.db.value(POINTER)
        except DatabaseError:
            self._take_stored()  # no pointer to follow: serve the newest snapshot storage holds meanwhile
            raise
        if not isinstance(pointer, dict):
            return
        self.saw_learner(pointer.get("checked_at"))
        # Another set of originals (a learner of an earlier deploy, replaced by this one's soon) has nothing to
        # serve here: do not fetch its 1 MB snapshot every poll.
        if pointer.get("originals") != self.originals or announced(pointer) <= self.snapshot.revision:
            return
        self._take_stored(every=0.0)

    def _take_stored(self, every: float | None = None) -> None:
        """Take the snapshot in storage, if newer; without a database, at most every safety_net_seconds."""
        every = self.config.safety_net_seconds if every is None else every
        if time.monotonic() - self._stored_read_at < every:
            return
        self._stored_read_at = time.monotonic()
        try:
            self.take(Snapshot.from_bytes(self.journal.storage.get(SNAPSHOT_KEY), served_models))
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
        # Notified: look only when told, and every config.safety_net_seconds. Else poll the pointer (free on SQLite).
        interval = self.config.safety_net_seconds if self.notified else max(self.config.sync_interval, MIN_INTERVAL)
        while not self._stop.is_set():
            try:
                self.poll_snapshot()
                if not self.notified:
                    self.refresh_head()
            except (StorageError, DatabaseError) as error:
                logger.warning("cannot follow the learner: %s", error)
            fast = self._waiting and not self.notified
            self._wake.wait(self.config.waiting_poll_seconds if fast else interval)
            self._wake.clear()

    def learning(self) -> dict:
        """How far the served models are behind the log, and whether the learner is alive."""
        served, head = self.snapshot.version, max(self._head, self.snapshot.version)
        seen = self._learner_seen_at
        age = None if seen is None else max(0.0, time.time() - seen)
        if (age is None and head > served) or (age is not None and age > self.config.stalled_after_seconds):
            state = "stalled"
        else:
            state = "catching_up" if head > served else "up_to_date"
        return {
            "log_version": head,
            "behind": head - served,
            "learner": state,
            "learner_seen_seconds_ago": None if age is None else round(age, 1),
        }
