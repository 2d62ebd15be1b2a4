"""What the service knows about its drawings, in one database: SQLite beside the local store by default,
PostgreSQL (`DATABASE_URL`) for a fleet. The bucket (or folder) stays the record of every labelled drawing;
this holds what is derived from it, so a lost database is rebuilt from the log (`python -m database rebuild`).

    drawings   one row per drawing entry: kind, label, source, time, whether it is excluded, whether the
               retrained models unlearned it, and what each of the four models said of it before learning it
               (indexed for the review queue)
    differing_drawings   the numbers of the drawings (not excluded) an original and its retrained model answered
               differently
    counts     scored drawings per (excluded, label, source): the review queue's totals without a count(*)
    history    the recent accuracy at some versions (at most 2 x scores.HISTORY_POINTS rows)
    meta       the learner's version and fingerprint, the figures (a few hundred bytes, scores.Figures) and the
               pointer to the latest serving snapshot

Only the learner writes, one transaction per log entry, with the version it reaches; servers read. Plain
DB-API (sqlite3, psycopg 3) rather than SQLAlchemy: a dozen statements that both dialects share as written
(`?` becomes `%s` for psycopg), LISTEN/NOTIFY is psycopg's own either way, and a serve worker does without
SQLAlchemy 2.0's 24 MB and ~140 ms of import (measured here).

    python -m database rebuild      # empty the database of STORAGE_URL; the learner's next boot replays the log
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

from functions import MODELS
from scores import NAMES, disagreeing, rank

logger = logging.getLogger(__name__)

COLUMNS = {name: name.replace(".", "_") for name in NAMES}  # "fnn.original" -> fnn_original
# Drawings on which an original and its retrained model answered differently, before learning them (the models
# page's gallery). Their numbers are kept in a table of their own, so the latest dozen are a dozen rows read
# backwards by its key: a partial index was left unused by both planners (a sort of every such row instead).
DIFFERS = "scored = 1 AND is_excluded = 0 AND ({})".format(
    " OR ".join(f"d_{m}_original <> d_{m}_retrained" for m in MODELS)
)
LOG_CHANNEL = "digits_log"  # a server appended entry n (payload: JSON of the entry)
SNAPSHOT_CHANNEL = "digits_snapshot"  # the learner published a snapshot, or says it is alive (payload: pointer)
# Connections per process, shared by its threads: a gunicorn worker's 4 and, in the `all` role, the learner. With
# one listening connection each, two web workers hold at most 12; the learner 5 (learner.LEARNER_POOL_SIZE, its
# listener and its lease) and a standby 2: 19 within the 20 of Heroku's Essential plans.
POOL_SIZE = 5
CONNECT_TIMEOUT = 3  # seconds: a request never hangs on an absent database

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS drawings (
        number BIGINT PRIMARY KEY, kind TEXT NOT NULL, label INTEGER NOT NULL, source TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL, is_excluded INTEGER NOT NULL DEFAULT 0,
        is_unlearned INTEGER NOT NULL DEFAULT 0, scored INTEGER NOT NULL DEFAULT 0,
        disagreeing INTEGER NOT NULL DEFAULT 0, rank DOUBLE PRECISION NOT NULL DEFAULT 1,
        {", ".join(f"d_{c} INTEGER, p_{c} DOUBLE PRECISION" for c in COLUMNS.values())})""",
    # The review queue's order (see scores.Score.suspicion), filtered by nothing, by label or by source.
    "CREATE INDEX IF NOT EXISTS queue ON drawings (scored, is_excluded, disagreeing DESC, rank, number)",
    "CREATE INDEX IF NOT EXISTS queue_label ON drawings (scored, is_excluded, label, disagreeing DESC, rank, number)",
    "CREATE INDEX IF NOT EXISTS queue_source ON drawings (scored, is_excluded, source, disagreeing DESC, rank, number)",
    "CREATE TABLE IF NOT EXISTS differing_drawings (number BIGINT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS history (version BIGINT PRIMARY KEY, point TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS counts (is_excluded INTEGER NOT NULL, label INTEGER NOT NULL, source TEXT NOT NULL,
        n BIGINT NOT NULL, PRIMARY KEY (is_excluded, label, source))""",
]
ROW = "number, kind, label, source, created, is_excluded, is_unlearned, scored, " + ", ".join(
    f"d_{c}, p_{c}" for c in COLUMNS.values()
)


class DatabaseError(RuntimeError):
    """The database cannot be read or written right now (unreachable, disk full, locked too long)."""


def default_url(storage_url: str, tmp: Path) -> str:
    """SQLite beside a local store (`tmp/store` -> `tmp/store.sqlite3`); for a bucket, a file in `tmp/`
    named after it: fine on one machine, while a fleet's processes on several need DATABASE_URL."""
    parsed = urlparse(storage_url)
    if parsed.scheme in ("", "file"):
        folder = Path(parsed.path if parsed.scheme else storage_url)
        return f"sqlite:///{folder.parent / (folder.name + '.sqlite3')}"
    digest = hashlib.sha256(storage_url.encode()).hexdigest()[:12]
    return f"sqlite:///{tmp / f'facts-{parsed.netloc}-{digest}.sqlite3'}"


def normalise_url(url: str) -> str:
    """Heroku Postgres sets DATABASE_URL with the `postgres://` scheme; psycopg takes `postgresql://`."""
    return "postgresql://" + url.removeprefix("postgres://") if url.startswith("postgres://") else url


Row = dict  # one drawing's facts: number, kind, label, source, created, excluded, unlearned, scored, predicted, ...


def to_row(values: tuple) -> Row:
    number, kind, label, source, created, excluded, unlearned, scored, *scores = values
    predicted = {name: scores[2 * i] for i, name in enumerate(NAMES)} if scored else {}
    probability = {name: scores[2 * i + 1] for i, name in enumerate(NAMES)} if scored else {}
    return dict(
        number=number, kind=kind, label=label, source=source, created=created, excluded=bool(excluded),
        unlearned=bool(unlearned), scored=bool(scored), predicted=predicted, probability=probability,
    )  # fmt: skip


class Database:
    """One pool of connections per process, shared by its threads. Every failure is a DatabaseError."""

    def __init__(self, url: str, pool_size: int = POOL_SIZE):
        self.url = normalise_url(url)
        scheme = urlparse(self.url).scheme
        if scheme not in ("sqlite", "postgresql"):
            raise ValueError(f"DATABASE_URL: expected postgresql://, postgres:// or sqlite:///path, got {scheme}://")
        self.is_postgres = scheme == "postgresql"
        self._closed = False
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        if self.is_postgres:
            from psycopg_pool import ConnectionPool

            kwargs = {"connect_timeout": CONNECT_TIMEOUT, "autocommit": True}
            self._pool = ConnectionPool(self.url, min_size=1, max_size=pool_size, kwargs=kwargs, open=False, timeout=5)
            self._pool.open(wait=False)
        else:
            self.path = Path(urlparse(self.url).path)
            self._local = threading.local()  # sqlite3 connections stay in their thread
        self._errors = self._driver_errors()
        with self.transaction() as tx:
            if self.is_postgres:  # two processes creating the schema at once would collide in pg_type
                tx.execute("SELECT pg_advisory_xact_lock(20261201)")
            for statement in SCHEMA:
                tx.execute(statement)

    def __repr__(self) -> str:
        return "Database(PostgreSQL)" if self.is_postgres else f"Database(SQLite {self.path})"

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        if not self.is_postgres:
            return (sqlite3.Error,)
        import psycopg
        import psycopg_pool

        return (psycopg.Error, psycopg_pool.PoolTimeout)

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
        try:
            if self.is_postgres:
                with self._pool.connection() as connection, connection.transaction():
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
        False on SQLite, where nothing is notified: the caller polls instead."""
        if not self.is_postgres:
            return False
        self._listener = threading.Thread(target=self._listen, args=(channels, on_message), daemon=True,
                                          name="database-listener")  # fmt: skip
        self._listener.start()
        return True

    def _listen(self, channels: tuple[str, ...], on_message: Callable[[str | None, dict], None]) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as connection:
                    for channel in channels:
                        connection.execute(f"LISTEN {channel}")
                    on_message(None, {})
                    while not self._stop.is_set():
                        for note in connection.notifies(timeout=1.0):
                            try:
                                payload = json.loads(note.payload)
                            except ValueError:
                                continue
                            on_message(note.channel, payload if isinstance(payload, dict) else {})
            except psycopg.Error as error:
                logger.warning("database notifications interrupted: %s", error)
                self._stop.wait(1.0)

    def close(self) -> None:
        """Idempotent: the `all` role's server and learner share one."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._listener is not None:
            self._listener.join()
        if self.is_postgres:
            self._pool.close()
        elif getattr(self._local, "connection", None) is not None:
            self._local.connection.close()


class Transaction:
    """A cursor that takes `?` placeholders on either database."""

    def __init__(self, cursor, mark: str):
        self.cursor = cursor
        self.mark = mark

    def execute(self, sql: str, params: tuple = ()):
        if self.mark != "?":
            sql = sql.replace("%", "%%").replace("?", self.mark)  # psycopg reads % as a placeholder
        self.cursor.execute(sql, params)
        return self.cursor

    def drawings(self, numbers: list[int]) -> dict[int, Row]:
        rows: dict[int, Row] = {}
        for start in range(0, len(numbers), 500):
            chunk = tuple(numbers[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for values in self.execute(f"SELECT {ROW} FROM drawings WHERE number IN ({marks})", chunk).fetchall():
                rows[values[0]] = to_row(values)
        return rows

    def learned_before(self, number: int, limit: int) -> list[Row]:
        """The latest scored, learned (train, not excluded) drawings up to `number`, newest first: the windows
        of the recent accuracy and of its history."""
        # `+`: not the queue's indexes (a sort of every learned drawing) but the primary key, read backwards.
        rows = self.execute(
            f"SELECT {ROW} FROM drawings WHERE number <= ? AND kind = 'train' AND +scored = 1 AND +is_excluded = 0 "
            "ORDER BY number DESC LIMIT ?",
            (number, limit),
        ).fetchall()
        return [to_row(values) for values in rows]

    def meta_value(self, key: str) -> object:
        rows = self.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()
        return json.loads(rows[0][0]) if rows else None

    def lock_facts(self) -> int:
        """Hold the learners' write lock until the transaction ends (SQLite's BEGIN IMMEDIATE holds it
        already); the version the database has recorded."""
        if self.mark != "?":
            self.execute("SELECT pg_advisory_xact_lock(20261202)")
        return int(self.meta_value("version") or 0)

    def history(self) -> list[dict]:
        return [json.loads(p) for (p,) in self.execute("SELECT point FROM history ORDER BY version").fetchall()]

    def save_point(self, point: dict) -> None:
        self.execute(
            "INSERT INTO history (version, point) VALUES (?, ?) "
            "ON CONFLICT (version) DO UPDATE SET point = excluded.point",
            (point["model_version"], json.dumps(point, separators=(",", ":"))),
        )

    def thin_history(self, stride: int) -> None:
        self.execute("DELETE FROM history WHERE version % ? != 0", (stride,))

    def set_meta(self, key: str, value: object) -> None:
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, separators=(",", ":"))),
        )

    def insert_drawing(self, row: dict) -> None:
        """A drawing as the learner first applies it (never excluded yet)."""
        marks = ",".join("?" * (10 + 2 * len(NAMES)))
        self.execute(
            f"INSERT INTO drawings ({ROW}, disagreeing, rank) VALUES ({marks})",
            (row["number"], row["kind"], row["label"], row["source"], row["created"], int(row["excluded"]),
             int(row["unlearned"]), int(row["scored"]), *score_values(row), disagreeing(row), rank(row)),
        )  # fmt: skip
        if row["scored"]:
            self.count(row["excluded"], row["label"], row["source"], 1)
        self.sync_differing(row["number"])

    def sync_differing(self, number: int) -> None:
        """Drawing `number` in the differing drawings or not, as its row now says."""
        self.execute("DELETE FROM differing_drawings WHERE number = ?", (number,))
        self.execute(
            f"INSERT INTO differing_drawings SELECT number FROM drawings WHERE number = ? AND {DIFFERS}", (number,)
        )

    def count(self, excluded: bool, label: int, source: str, change: int) -> None:
        self.execute(
            "INSERT INTO counts (is_excluded, label, source, n) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (is_excluded, label, source) DO UPDATE SET n = counts.n + excluded.n",
            (int(excluded), label, source, change),
        )

    def set_flags(self, row: Row, excluded: bool, unlearned: bool) -> None:
        self.execute("UPDATE drawings SET is_excluded = ?, is_unlearned = ? WHERE number = ?",
                     (int(excluded), int(unlearned), row["number"]))  # fmt: skip
        if row["scored"] and excluded != row["excluded"]:
            self.count(row["excluded"], row["label"], row["source"], -1)
            self.count(excluded, row["label"], row["source"], 1)
        self.sync_differing(row["number"])

    def set_scores(self, number: int, row: dict) -> None:
        assignments = ", ".join(f"d_{c} = ?, p_{c} = ?" for c in COLUMNS.values())
        self.execute(f"UPDATE drawings SET {assignments}, disagreeing = ?, rank = ? WHERE number = ?",
                     (*score_values(row), disagreeing(row), rank(row), number))  # fmt: skip
        self.sync_differing(number)


def score_values(row: dict) -> list:
    """The d_*, p_* columns' values, in COLUMNS' order."""
    return [value for name in NAMES for value in (row["predicted"].get(name), row["probability"].get(name))]


def main() -> None:
    from config import Config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["rebuild"])
    parser.parse_args()
    config = Config.from_env()
    from lease import Lease

    lease = Lease(config.database)
    if not lease.try_acquire():  # a running learner would go on from facts that are no longer there
        parser.exit(1, "error: a learner is running on this database: stop it first (heroku ps:scale worker=0 web=0)\n")
    database = Database(config.database)
    started = time.monotonic()
    database.clear()
    print(f"emptied {database!r} in {time.monotonic() - started:.2f} s; replaying the log of {config.storage_url}")
    from journal import Journal
    from learner import LogLearner

    learner = LogLearner.open(config, Journal(config.open_storage()), database)
    seconds = time.monotonic() - started
    per_thousand = seconds / max(learner.version, 1) * 1000
    print(f"rebuilt {learner.version} entries in {seconds:.1f} s ({per_thousand:.1f} s per 1,000 entries)")
    learner.close()
    database.close()
    lease.release()


if __name__ == "__main__":
    main()
