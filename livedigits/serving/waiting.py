"""Waiting for the learner: a train (or an admin change) waits for the snapshot that includes its entry, bounded so
that no request outlives Heroku's router (which gives up after 30 s without a byte) and no crowd of waiting trains
takes the threads that predictions and /healthz need."""

from __future__ import annotations

import time

from livedigits.state.snapshot import Snapshot


class Waiting:
    """The part of the Server (serving.server) that waits for the learner. A wait ends when the served snapshot
    includes the entry, Config.answer_within_seconds after the request arrived, or when the process stops; at most
    Config.max_waiting requests of a worker wait at once, and the others answer at once. The entry is durable
    before any wait: a request that stops waiting answers 202 (pending), and the entry is learned all the same."""

    def wait_learned(self, number: int, arrived: float, patience: float) -> Snapshot | None:
        """The served snapshot once it includes entry `number`, or None: not within `patience` seconds, nor by
        Config.answer_within_seconds after `arrived` (time.monotonic() when the request came), with
        Config.max_waiting others waiting already, or once `stop_waiting` was called."""
        deadline = arrived + min(patience, self.config.answer_within_seconds)
        with self._changed:
            if self.snapshot.version >= number:
                return self.snapshot
            if self._stopping or self._waiting >= self.config.max_waiting:
                return None
            self._waiting += 1
            if not self.notified:
                self._wake.set()  # poll faster while it waits; a notified process is told
            try:
                self._changed.wait_for(
                    lambda: self.snapshot.version >= number or self._stopping, deadline - time.monotonic()
                )
                return self.snapshot if self.snapshot.version >= number else None
            finally:
                self._waiting -= 1

    def stop_waiting(self) -> None:
        """The process is stopping (SIGTERM): every waiting request answers now, and none waits from now on.
        Safe from a signal handler on a thread that never holds `_changed` (gunicorn's main thread)."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()

    @property
    def waiting(self) -> int:
        """How many requests wait for the learner now."""
        return self._waiting
