"""Exactly one learner per database, whatever the formation says: a process learns only while it holds the
learner's lease. Another learner process (a second worker dyno, or an `all` web beside a worker) waits, its
models loaded, and takes the lease over when the holder exits or dies.

PostgreSQL: a session-level advisory lock, on the primary connection of the process's database (which also
carries its LISTEN and queries: state.connections). The server drops the lock the moment that connection ends:
the process exited, crashed or was killed (the kernel closes its socket), or its machine vanished (the
connection's keepalives notice within about 15 s).
SQLite (one machine): an exclusive flock on a file beside the database, which the kernel drops with the process.

The lease makes the learner single; it does not make the facts correct: each entry is still recorded once,
in order, under the facts' own lock (LogLearner._record, livedigits/learning/applying.py), even if two
learners overlapped.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from pathlib import Path

from livedigits.state.database import Database

logger = logging.getLogger(__name__)

LEASE_KEY = 20261203  # the advisory lock's key (the database's transactions use ...01 and ...02)


class Lease:
    """The learner's lease on `db`'s database."""

    def __init__(self, db: Database):
        self.db = db
        self.is_postgres = db.is_postgres
        self.held = False
        self._file = None  # SQLite: the open lock file
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"Lease({'PostgreSQL' if self.is_postgres else self.db.path.name}, held={self.held})"

    def try_acquire(self) -> bool:
        """Take the lease if it is free; True if this process holds it now. Never raises: an unreachable
        database is a lease not taken (the caller asks again)."""
        with self._guard:
            if not self.held and not self.db.refused:
                try:
                    self.held = self.db.connections.try_lock(LEASE_KEY) if self.is_postgres else self._take_file()
                except Exception as error:  # psycopg's or the OS's: either way, not taken this time
                    logger.warning("cannot ask for the learner's lease: %s", error)
                    self._drop()
            return self.held

    def still_held(self) -> bool:
        """Whether the lease is still ours: on PostgreSQL, one round trip on its connection (a broken
        connection has lost the lock, and another learner may hold it now)."""
        with self._guard:
            if not self.held or not self.is_postgres:
                return self.held
            try:
                if self.db.connections.still_locked():
                    return True
                logger.error("lost the learner's lease: its connection was reopened")
            except Exception as error:  # any failure of that connection loses the lock
                logger.error("lost the learner's lease: %s", error)
            self._drop()
            return False

    def release(self) -> None:
        with self._guard:
            self._drop()

    def _take_file(self) -> bool:
        path = Path(str(self.db.path) + ".lease")
        path.parent.mkdir(parents=True, exist_ok=True)
        file = open(path, "a+")  # noqa: SIM115 - held open for as long as the lease is
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        self._file = file
        return True

    def _drop(self) -> None:
        """Let go of the lease (on PostgreSQL, unlock; a connection gone has dropped the lock already)."""
        was_held, self.held = self.held, False
        if self.is_postgres and (was_held or self.db.connections.locked_generation is not None):
            self.db.connections.unlock(LEASE_KEY)
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None
