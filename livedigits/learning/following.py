"""Following the log: what the learner knows exists (its inbox, notifications, its own probes), the next entries
in order, the groups a crowd's waiting labels make, and the loop that looks, applies and publishes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from livedigits.state.database import DatabaseError
from livedigits.state.journal import Entry
from livedigits.state.lease import Lease
from livedigits.state.snapshot import Snapshot
from livedigits.state.storage import StorageError

logger = logging.getLogger(__name__)

MIN_INTERVAL = 0.1  # seconds: an interval of 0 (tests) must not spin


class Following:
    """The part of LogLearner (learning.log_learner) that follows the log."""

    def receive(self) -> None:
        """Take what waits in the inbox: entries known to exist, most with their drawing (not read back)."""
        for delivery in self.inbox.take():
            self.notice(*delivery)

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
        self.receive()
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
        config.max_group): [(number, entry, png)]."""
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
        while len(group) < self.config.max_group:
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
        config.publish_every_seconds and at most every `gap`; call `idle` after a look that found nothing. `notified`:
        entries are announced (`notice`), so the log is probed only every config.safety_net_seconds, in case an
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
                probe = not notified or time.monotonic() - last_probe >= self.config.safety_net_seconds
                last_probe = time.monotonic() if probe else last_probe
                if self.catch_up(self.config.publish_every_seconds, probe):
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
