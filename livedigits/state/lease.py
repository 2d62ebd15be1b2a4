"""Exactly one learner per database, whatever the formation says: a process learns only while it holds the
learner's lease. Another learner process (a second worker dyno, or an `all` web beside a worker) waits, its
models loaded, and takes the lease over when the holder exits or dies.

PostgreSQL: a session-level advisory lock, on a connection of the lease's own. The server drops the lock the
moment that connection ends: the process exited, crashed or was killed (the kernel closes its socket), or
its machine vanished (the keepalives below notice within about 15 s).
SQLite (one machine): an exclusive flock on a file beside the database, which the kernel drops with the process.

The lease makes the learner single; it does not make the facts correct: each entry is still recorded once,
in order, under the facts' own lock (LogLearner._record, livedigits/learning/applying.py), even if two
learners overlapped.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from pathlib import Path
from urllib.parse import urlparse

from livedigits.config import Config, normalise_url

logger = logging.getLogger(__name__)

LEASE_KEY = 20261203  # the advisory lock's key (the database's transactions use ...01 and ...02)
# The PostgreSQL server drops a vanished holder's connection (and lock) after idle + interval x count seconds;
# the holder, for its part, gives up on a query to an unreachable server after TCP_USER_TIMEOUT_MS.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
TCP_USER_TIMEOUT_MS = 5000


class Lease:
    """The learner's lease on the database at `url` (a DATABASE_URL, or database.default_url's SQLite)."""

    def __init__(self, url: str, connect_timeout: float = Config.db_connect_timeout):
        self.url = normalise_url(url)
        self.connect_timeout = connect_timeout
        self.is_postgres = urlparse(self.url).scheme == "postgresql"
        self.held = False
        self._connection = None  # PostgreSQL: kept open while waiting too (a try is one query, not a connection)
        self._file = None  # SQLite: the open lock file
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"Lease({'PostgreSQL' if self.is_postgres else Path(urlparse(self.url).path).name}, held={self.held})"

    def try_acquire(self) -> bool:
        """Take the lease if it is free; True if this process holds it now. Never raises: an unreachable
        database is a lease not taken (the caller asks again)."""
        with self._guard:
            if not self.held:
                try:
                    self.held = self._take_postgres() if self.is_postgres else self._take_file()
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
                self._connection.execute("SELECT 1")
                return True
            except Exception as error:  # any failure of that connection loses the lock
                logger.error("lost the learner's lease: %s", error)
                self._drop()
                return False

    def release(self) -> None:
        with self._guard:
            self._drop()

    def _take_postgres(self) -> bool:
        if self._connection is None:
            self._connection = self._connect()
        (taken,) = self._connection.execute("SELECT pg_try_advisory_lock(%s)", (LEASE_KEY,)).fetchone()
        return bool(taken)

    def _connect(self):
        import psycopg

        connection = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=self.connect_timeout,
            tcp_user_timeout=TCP_USER_TIMEOUT_MS,
            application_name=f"digits-learner-{os.environ.get('DYNO') or os.getpid()}",
            **KEEPALIVES,
        )
        try:
            # The server's side of the keepalives: it is the server that must notice a vanished holder.
            for name, value in (("idle", 5), ("interval", 2), ("count", 3)):
                connection.execute(f"SET tcp_keepalives_{name} = {value}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _take_file(self) -> bool:
        path = Path(urlparse(self.url).path + ".lease")
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
        """Let go of the lease (and, on PostgreSQL, of its connection: the server drops the lock with it)."""
        self.held = False
        if self._connection is not None:
            with contextlib.suppress(Exception):  # already broken: dropped either way
                self._connection.close()
            self._connection = None
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None
