"""A process's PostgreSQL connections: at most `size`, shared by its threads, opened when first needed and
closed when idle. The first one (the primary) also carries the process's LISTEN and the learner's lease (a
session lock), so a serve worker holds exactly one connection and a learner two: Heroku's plans count
connections per app (livedigits/formation.py adds up a formation's), and a pool plus a listener plus a lease
per process did not fit (docs/heroku.md, "Connections").

Notifications: psycopg hands the ones that arrive during another thread's query to a handler, which queues
them; while the primary is idle, the listener thread waits on its socket and reads them. Either way the
listener thread calls `on_message` outside every lock.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Iterator

from livedigits import threads

logger = logging.getLogger(__name__)

RECONNECTED = object()  # queued after each (re)connection of a listening primary: something may have been missed
# The server drops a vanished client's connection (and the lease's lock with it) after idle + interval x count
# seconds; the client, for its part, gives up on a query to an unreachable server after TCP_USER_TIMEOUT_MS.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
TCP_USER_TIMEOUT_MS = 5000
SERVER_KEEPALIVES = "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"


class Busy(RuntimeError):
    """Every connection of this process stayed in use for the whole wait."""


def _broken(connection) -> bool:
    from psycopg import pq

    return connection.closed or connection.broken or connection.pgconn.status != pq.ConnStatus.OK


class _Slot:
    def __init__(self, index: int):
        self.index = index
        self.connection = None
        self.busy = False
        self.used_at = 0.0
        self.generation = 0  # counts (re)connections: a session lock lives only as long as its connection
        self.listening = False  # the connection has LISTENed (the listener's next turn does it on a new one)


class Connections:
    """At most `size` connections to the PostgreSQL at `url`, shared by a process's threads."""

    def __init__(self, url: str, size: int, connect_timeout: float, idle_seconds: float, wait_seconds: float,
                 name: str):  # fmt: skip
        if size < 1:
            raise ValueError("a process needs at least one database connection")
        self.url, self.connect_timeout = url, connect_timeout
        self.idle_seconds, self.wait_seconds = idle_seconds, wait_seconds
        self.application_name = f"digits-{name}-{os.environ.get('DYNO') or 'local'}-{os.getpid()}"
        self._slots = [_Slot(i) for i in range(size)]
        self._free = threading.Condition()
        self._queue: collections.deque = collections.deque()  # threads waiting for a slot, in arrival order
        self._channels: tuple[str, ...] = ()
        self._heard: queue.SimpleQueue = queue.SimpleQueue()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self.locked_generation: int | None = None  # the primary's generation when the lease's lock was taken
        self.error: str | None = None  # the latest failure, until a connection succeeds again (/healthz)

    @property
    def size(self) -> int:
        return len(self._slots)

    def open_count(self) -> int:
        return sum(slot.connection is not None for slot in self._slots)

    # --- taking and giving back ---

    @contextlib.contextmanager
    def connection(self, primary: bool = False) -> Iterator:
        """A connection of this process's own for the duration of the block (the primary if asked: the lease's
        statements need its session). A connection that broke inside is closed, to be reopened on next use."""
        slot = self._take(primary)
        try:
            if slot.connection is not None and not (slot.index == 0 and self._channels):
                self._check(slot)
            if slot.connection is None:
                slot.connection = self._connect(slot)
            yield slot.connection
            self.error = None
        except Exception as error:
            if slot.connection is not None and _broken(slot.connection):
                self.error = str(error).strip() or type(error).__name__
                self._drop(slot)
            raise
        finally:
            self._give(slot)
        self.reap()

    def _take(self, primary: bool) -> _Slot:
        """A free slot, first come first served: under a burst, a thread that keeps asking must not starve the
        others (measured: without the queue, one of four busy threads waited over 5 s for the only connection)."""
        deadline = time.monotonic() + self.wait_seconds
        ticket = object()
        with self._free:
            self._queue.append(ticket)
            try:
                while True:
                    slot = self._free_slot(primary) if self._queue[0] is ticket else None
                    if slot is not None:
                        slot.busy = True
                        return slot
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Busy(f"all {self.size} database connections of this process stayed busy")
                    self._free.wait(remaining)
            finally:
                self._queue.remove(ticket)
                self._free.notify_all()  # the next in line may take a slot that is free already

    def _free_slot(self, primary: bool) -> _Slot | None:
        if primary:
            return None if self._slots[0].busy else self._slots[0]
        # An open connection before a new one; the primary last when it listens or holds the lease, so those
        # statements seldom wait behind a query.
        free = [slot for slot in self._slots if not slot.busy]
        return min(free, key=lambda s: (s.index == 0 and self._pinned(), s.connection is None), default=None)

    def _give(self, slot: _Slot) -> None:
        with self._free:
            slot.busy = False
            slot.used_at = time.monotonic()
            self._free.notify_all()

    def _pinned(self) -> bool:
        """The primary stays open while it listens or holds the lease's lock."""
        return bool(self._channels) or self.locked_generation is not None

    def _connect(self, slot: _Slot):
        import psycopg

        try:
            connection = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=self.connect_timeout,
                tcp_user_timeout=TCP_USER_TIMEOUT_MS,
                application_name=self.application_name,
                **KEEPALIVES,
            )
        except Exception as error:
            self.error = str(error).strip() or type(error).__name__
            raise
        try:
            connection.execute(SERVER_KEEPALIVES)  # the server's side: it must notice a vanished lease holder
        except BaseException:
            connection.close()
            raise
        slot.generation += 1
        return connection

    def _check(self, slot: _Slot) -> None:
        """Close a connection that the server ended while it sat idle (a restart, pg_terminate_backend), so the
        question goes to a new one rather than fail. Reads only what already arrived: no round trip. Not on a
        listening primary: its listener checks it every second, and notifications read here would wait for it."""
        try:
            slot.connection.pgconn.consume_input()
            while (note := slot.connection.pgconn.notifies()) is not None:
                self._heard.put(note)
            alive = not _broken(slot.connection)
        except Exception:
            alive = False
        if not alive:
            self._drop(slot)

    def _drop(self, slot: _Slot) -> None:
        slot.listening = False
        if slot.connection is not None:
            with contextlib.suppress(Exception):  # already broken: closed either way
                slot.connection.close()
            slot.connection = None

    def reap(self) -> None:
        """Close the connections idle for idle_seconds (not a pinned primary)."""
        now = time.monotonic()
        with self._free:
            for slot in self._slots:
                idle = not slot.busy and now - slot.used_at > self.idle_seconds
                if idle and slot.connection is not None and not (slot.index == 0 and self._pinned()):
                    self._drop(slot)

    # --- the lease's session lock, on the primary ---

    def try_lock(self, key: int) -> bool:
        """The session lock `key` on the primary, if free. A primary the server had ended (a restart) is
        replaced, and asked again, once."""
        for attempt in (1, 2):
            try:
                with self.connection(primary=True) as connection:
                    (taken,) = connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                    if taken:
                        self.locked_generation = self._slots[0].generation
                    return bool(taken)
            except Exception:
                if attempt == 2 or self._slots[0].connection is not None:
                    raise
        raise AssertionError("unreachable")

    def still_locked(self) -> bool:
        """One round trip on the primary: the lock lives as long as the connection that took it."""
        with self.connection(primary=True) as connection:
            if self._slots[0].generation != self.locked_generation:
                return False
            connection.execute("SELECT 1")
            return True

    def unlock(self, key: int) -> None:
        generation, self.locked_generation = self.locked_generation, None
        if generation is None:
            return
        try:
            with self.connection(primary=True) as connection:
                if self._slots[0].generation == generation:
                    connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except Exception as error:  # a connection gone has dropped the lock already
            logger.warning("could not unlock the lease (dropped with its connection): %s", error)

    # --- notifications, on the primary ---

    def listen(self, channels: tuple[str, ...], on_message: Callable[[str | None, dict], None]) -> None:
        """Call `on_message(channel, payload)` from the listener thread for every notification on `channels`, and
        `on_message(None, {})` after each (re)connection."""
        self._channels = channels
        self._listener = threads.start("database-listener", self._listen, on_message)

    def _listen(self, on_message: Callable[[str | None, dict], None]) -> None:
        while not self._stop.is_set():
            try:
                with self.connection(primary=True) as connection:
                    if not self._slots[0].listening:  # a new primary (or the first): subscribe it
                        connection.add_notify_handler(self._heard.put)  # those that arrive during a query
                        for channel in self._channels:
                            connection.execute(f"LISTEN {channel}")
                        self._slots[0].listening = True
                        self._heard.put(RECONNECTED)
                    connection.pgconn.consume_input()  # raises on a connection that broke while idle
                    while (note := connection.pgconn.notifies()) is not None:
                        self._heard.put(note)
                    socket = connection.fileno()
            except Exception as error:
                logger.warning("database notifications interrupted: %s", error)
                self._dispatch(on_message)
                self._stop.wait(1.0)
                continue
            self._dispatch(on_message)
            self.reap()
            with contextlib.suppress(OSError, ValueError):  # closed meanwhile: the next turn reopens it
                select.select([socket], [], [], 1.0)

    def _dispatch(self, on_message: Callable[[str | None, dict], None]) -> None:
        while True:
            try:
                note = self._heard.get_nowait()
            except queue.Empty:
                return
            if note is RECONNECTED:
                on_message(None, {})
                continue
            channel = note.channel if hasattr(note, "channel") else note.relname.decode()
            text = note.payload if hasattr(note, "payload") else note.extra.decode()
            try:
                payload = json.loads(text)
            except ValueError:
                continue
            on_message(channel, payload if isinstance(payload, dict) else {})

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join()
        with self._free:
            for slot in self._slots:
                self._drop(slot)
