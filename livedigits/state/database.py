"""What the service knows about its drawings, in one database: SQLite beside the local store by default,
PostgreSQL (`DATABASE_URL`) for a fleet. The bucket (or folder) stays the record of every labelled drawing;
this holds what is derived from it, so a lost database is rebuilt from the log
(`python -m livedigits.learning.rebuild`).

    drawings   one row per drawing entry: kind, label, source, time, whether it is excluded, whether the
               retrained models unlearned it, and what each of the four models said of it before learning it
               (indexed for the review queue)
    differing_drawings   the numbers of the drawings (not excluded) an original and its retrained model answered
               differently
    counts     scored drawings per (excluded, label, source): the review queue's totals without a count(*)
    history    the recent accuracy at some versions (at most 2 x figures.HISTORY_POINTS rows)
    meta       the learner's version and fingerprint, the figures (a few hundred bytes, figures.Figures) and the
               pointer to the latest serving snapshot

Only the learner writes, one transaction per log entry, with the version it reaches; servers read. Plain
DB-API (sqlite3, psycopg 3) rather than SQLAlchemy: a dozen statements that both dialects share as written
(`?` becomes `%s` for psycopg), LISTEN/NOTIFY is psycopg's own either way, and a serve worker does without
SQLAlchemy 2.0's 24 MB and ~140 ms of import (measured here).

    python -m livedigits.learning.rebuild      # empty the database of STORAGE_URL and replay the log into it
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

from livedigits.config import Config, normalise_url
from livedigits.state.connections import Busy, Connections
from livedigits.state.schema import COLUMNS, DIFFERS, ROW, SCHEMA, Row, to_row
from livedigits.state.transaction import Transaction

logger = logging.getLogger(__name__)

LOG_CHANNEL = "digits_log"  # a server appended entry n (payload: JSON of the entry)
SNAPSHOT_CHANNEL = "digits_snapshot"  # the learner published a snapshot, or says it is alive (payload: pointer)


class DatabaseError(RuntimeError):
    """The database cannot be read or written right now (unreachable, disk full, locked too long)."""


class Database:
    """A process's connections, shared by its threads (on PostgreSQL at most `pool_size`, the first of which also
    listens: state.connections). Every failure is a DatabaseError. Nothing connects until something is asked:
    a database that is down at boot, or a formation over the plan's connections (`refused`), leaves the
    process serving what needs no database, and it heals on the next question that gets an answer."""

    def __init__(
        self,
        url: str,
        pool_size: int = Config.db_pool_size,
        connect_timeout: float = Config.db_connect_timeout,
        *,
        name: str = "web",
        idle_seconds: float = Config.db_idle_seconds,
        refused: str | None = None,
    ):
        self.url = normalise_url(url)
        self.connect_timeout = connect_timeout
        scheme = urlparse(self.url).scheme
        if scheme not in ("sqlite", "postgresql"):
            raise ValueError(f"DATABASE_URL: expected postgresql://, postgres:// or sqlite:///path, got {scheme}://")
        self.is_postgres = scheme == "postgresql"
        self.refused = refused
        self._closed = False
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        if self.is_postgres:
            self._connections = Connections(self.url, pool_size, connect_timeout, idle_seconds, 5.0, name)
        else:
            self.path = Path(urlparse(self.url).path)
            self._local = threading.local()  # sqlite3 connections stay in their thread
        self._errors = self._driver_errors()
        try:
            self._ensure_schema()
        except DatabaseError as error:  # served without it until it answers (/healthz says so)
            logger.error("the database is unavailable at boot: %s", error)

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            with self._transaction() as tx:
                if self.is_postgres:  # two processes creating the schema at once would collide in pg_type
                    tx.execute("SELECT pg_advisory_xact_lock(20261201)")
                for statement in SCHEMA:
                    tx.execute(statement)
            self._schema_ready = True

    @property
    def connections(self) -> Connections | None:
        """PostgreSQL's connections of this process (the lease takes its lock on their primary); None on SQLite."""
        return self._connections if self.is_postgres else None

    def state(self) -> dict:
        """For /healthz, from what the process last saw (no query): ok, unavailable (with why) or refused."""
        if self.refused:
            return {"state": "refused", "error": self.refused}
        error = self._connections.error if self.is_postgres else None
        if error is None and self._schema_ready:
            return {"state": "ok"}
        return {"state": "unavailable", "error": error or "not reached yet"}

    def __repr__(self) -> str:
        return "Database(PostgreSQL)" if self.is_postgres else f"Database(SQLite {self.path})"

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        if not self.is_postgres:
            return (sqlite3.Error,)
        import psycopg

        return (psycopg.Error, Busy)

    def _sqlite(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            for _ in range(100):  # a new file's switch to WAL needs it alone: processes booting at once take turns
                try:
                    connection.execute("PRAGMA journal_mode=WAL")  # readers never wait for the learner's writes
                    break
                except sqlite3.OperationalError:
                    time.sleep(0.1)
            connection.execute("PRAGMA synchronous=NORMAL")  # a power cut may lose the last entries: replayed
            self._local.connection = connection
        return connection

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """All or nothing: statements inside commit together, or none does (and DatabaseError is raised)."""
        self._ensure_schema()
        with self._transaction() as tx:
            yield tx

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        if self.refused:
            raise DatabaseError(self.refused)
        try:
            if self.is_postgres:
                with self._connections.connection() as connection, connection.transaction():
                    yield Transaction(connection.cursor(), "%s")
            else:
                connection = self._sqlite()
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield Transaction(connection.cursor(), "?")
                    connection.execute("COMMIT")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
        except self._errors as error:
            raise DatabaseError(f"{self!r}: {error}".strip()) from None

    def read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.transaction() as tx:
            return tx.execute(sql, params).fetchall()

    def check(self) -> None:
        """DatabaseError unless the database answers (a train stores nothing the learner could not record)."""
        self.read("SELECT 1")

    # --- meta ---

    def meta(self) -> dict:
        return {key: json.loads(value) for key, value in self.read("SELECT key, value FROM meta")}

    def clear(self) -> None:
        """Forget everything derived (the log is untouched): the learner's next boot replays it."""
        with self.transaction() as tx:
            for table in ("drawings", "differing_drawings", "counts", "history", "meta"):
                tx.execute(f"DELETE FROM {table}")

    # --- what servers ask ---

    def value(self, key: str) -> object:
        """One meta value (None if unset): what a server reads to follow the learner."""
        with self.transaction() as tx:
            return tx.meta_value(key)

    def drawings(self, numbers: list[int]) -> dict[int, Row]:
        """The rows of these drawing numbers that the learner has recorded."""
        with self.transaction() as tx:
            return tx.drawings(numbers)

    def review(self, label: int | None, source: str | None, excluded: bool, offset: int, limit: int) -> dict:
        """A page of the review queue (most suspect first) and its total, from the indexes and the counts."""
        where, params = "is_excluded = ?", [int(excluded)]
        if label is not None:
            where, params = where + " AND label = ?", [*params, label]
        if source is not None:
            where, params = where + " AND source = ?", [*params, source]
        with self.transaction() as tx:
            total = tx.execute(f"SELECT COALESCE(SUM(n), 0) FROM counts WHERE {where}", tuple(params)).fetchone()[0]
            page = tx.execute(
                f"SELECT {ROW} FROM drawings WHERE scored = 1 AND {where} "
                "ORDER BY disagreeing DESC, rank, number LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            sources = [s for (s,) in tx.execute("SELECT DISTINCT source FROM counts WHERE n > 0 ORDER BY source")]
        return {"total": int(total), "samples": [to_row(values) for values in page], "sources": sources}

    def recent(self, limit: int) -> list[Row]:
        """The latest drawings not excluded, newest first."""
        rows = self.read(f"SELECT {ROW} FROM drawings WHERE is_excluded = 0 ORDER BY number DESC LIMIT ?", (limit,))
        return [to_row(values) for values in rows]

    def differing(self, limit: int) -> list[Row]:
        """The latest drawings (not excluded) on which an original and its retrained model answered differently
        before learning them, newest first."""
        rows = self.read(
            f"SELECT {ROW} FROM drawings WHERE number IN "
            "(SELECT number FROM differing_drawings ORDER BY number DESC LIMIT ?) ORDER BY number DESC",
            (limit,),
        )
        return [to_row(values) for values in rows]

    def count_from_every_row(self) -> dict[str, list[list[int]]]:
        """Once, for a database written before the confusion matrices and the differing drawings were kept (the
        learner keeps both since): the differing drawings' numbers, and each model's confusion matrix over the
        learned drawings (train, scored, not excluded), from every row."""
        matrices = {}
        with self.transaction() as tx:
            tx.execute(
                f"INSERT INTO differing_drawings SELECT number FROM drawings WHERE {DIFFERS} ON CONFLICT DO NOTHING"
            )
            for name, column in COLUMNS.items():
                matrix = [[0] * 10 for _ in range(10)]
                for label, answer, n in tx.execute(
                    f"SELECT label, d_{column}, COUNT(*) FROM drawings WHERE kind = 'train' AND scored = 1 "
                    f"AND is_excluded = 0 GROUP BY label, d_{column}"
                ).fetchall():
                    matrix[label][answer] += n
                matrices[name] = matrix
        return matrices

    def learned_before(self, number: int, limit: int) -> list[Row]:
        with self.transaction() as tx:
            return tx.learned_before(number, limit)

    def history(self) -> list[dict]:
        with self.transaction() as tx:
            return tx.history()

    # --- notifications (PostgreSQL only; on SQLite a process polls, which costs nothing locally) ---

    def notify(self, channel: str, payload: dict) -> None:
        """Tell every listening process; a lost notification is healed by their slow safety-net polls."""
        if not self.is_postgres:
            return
        with self.transaction() as tx:
            tx.execute("SELECT pg_notify(?, ?)", (channel, json.dumps(payload, separators=(",", ":"))))

    def listen(self, channels: tuple[str, ...], on_message: Callable[[str | None, dict], None]) -> bool:
        """Call `on_message(channel, payload)` from a background thread for every notification on `channels`
        (and `on_message(None, {})` after each (re)connection: something may have been missed meanwhile).
        False on SQLite, where nothing is notified, or refused: the caller polls instead."""
        if not self.is_postgres or self.refused:
            return False
        self._connections.listen(channels, on_message)
        return True

    def close(self) -> None:
        """Idempotent: the `all` role's server and learner share one."""
        if self._closed:
            return
        self._closed = True
        if self.is_postgres:
            self._connections.close()
        elif getattr(self._local, "connection", None) is not None:
            self._local.connection.close()
