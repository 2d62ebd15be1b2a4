"""A real PostgreSQL on loopback for the tests: Debian's binaries, a fresh cluster (initdb) per server on a free
port, tuned for speed over durability. A test can stop it and start it again on the same port with its data
(the database goes away and comes back), and make a fresh database per test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from server import free_port

# Debian installs each major version side by side: take the newest.
BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name))
# Durability costs time and a test's cluster is thrown away; no unix socket, as tests connect over TCP.
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "300"}
SETTINGS |= {"listen_addresses": "127.0.0.1", "unix_socket_directories": ""}


class PostgresServer:
    """`postgres` on 127.0.0.1 with trust authentication; `url` connects as the superuser `postgres`."""

    def __init__(self, folder: Path):
        if not BINARIES:
            pytest.fail("/usr/lib/postgresql is missing: `bash scripts/test.sh` installs Debian's postgresql")
        self.bin = BINARIES[-1]
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "postgres.log"  # opened by this process, so it may stay where the user can't reach
        self.user = None
        self.temp: Path | None = None
        data_parent = folder
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root (as CI does): run it as Debian's `postgres` user, in a folder of
            # its own under /tmp, since that user may not traverse the caller's (/tmp/pytest-of-root is 0700).
            self.user = next((name for name in ("postgres", "nobody") if user_exists(name)), None)
            self.temp = data_parent = Path(tempfile.mkdtemp(prefix="pg-"))
            shutil.chown(self.temp, self.user, pwd.getpwnam(self.user).pw_gid)
        self.data = data_parent / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen | None = None
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        result = self._run([*initdb, "--no-sync", "--no-locale", "-E", "UTF8"], stdout=subprocess.PIPE)
        if result.wait() != 0:
            raise AssertionError(f"initdb failed:\n{result.stdout.read().decode()}")
        self.start()

    def _run(self, command: list[str], **kwargs) -> subprocess.Popen:
        # Popen's user/group switch in the child before exec, so `process` is postgres itself (not a runuser
        # in between), and signals reach it directly. The cwd must be one the user can enter.
        as_user = {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []} if self.user else {}
        return subprocess.Popen(command, cwd=self.data.parent, stderr=subprocess.STDOUT, **as_user, **kwargs)

    def start(self) -> None:
        settings = [arg for name, value in SETTINGS.items() for arg in ("-c", f"{name}={value}")]
        with self.log.open("ab") as log:
            command = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), *settings]
            self.process = self._run(command, stdout=log)
        deadline = time.monotonic() + 30
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"postgres did not start on port {self.port}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2) as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.OperationalError:  # refused, or "the database system is starting up"
            return False

    def stop(self, how: signal.Signals = signal.SIGINT) -> None:
        """Fast shutdown (SIGINT) keeping the data: sessions are cut and the port refuses until `start`."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(how)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """Immediate shutdown (SIGQUIT, no checkpoint: the data is thrown away), then remove the cluster."""
        self.stop(signal.SIGQUIT)
        shutil.rmtree(self.temp or self.data, ignore_errors=True)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url, autocommit=True) as connection:  # CREATE DATABASE refuses a transaction
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url.rsplit("/", 1)[0] + "/" + urllib.parse.quote(name)

    def create_app_role(self, name: str, connection_limit: int) -> str:
        """A login role that is not a superuser, allowed `connection_limit` connections as a Heroku plan's,
        owning a database of its name; the URL connects as it (the superuser's `url` stays free to watch)."""
        with psycopg.connect(self.url, autocommit=True) as connection:
            role = sql.Identifier(name)
            connection.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT {}").format(role, connection_limit))
            connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
        return f"postgresql://{name}@127.0.0.1:{self.port}/{name}"


def user_exists(name: str) -> bool:
    with contextlib.suppress(KeyError):
        return bool(pwd.getpwnam(name))
    return False


def self_check(folder: Path) -> None:
    began = time.monotonic()
    server = PostgresServer(folder)
    print(f"initdb and start took {time.monotonic() - began:.2f} s; {server.url}")
    try:
        url = server.create_database("check")
        with psycopg.connect(url, autocommit=True) as listener, psycopg.connect(url, autocommit=True) as notifier:
            assert listener.execute("SELECT 1").fetchone() == (1,)
            listener.execute("LISTEN entries")
            notifier.execute("SELECT pg_notify('entries', 'hello')")
            notices = [(notice.channel, notice.payload) for notice in listener.notifies(timeout=5, stop_after=1)]
            assert notices == [("entries", "hello")], notices
        server.stop()
        assert not server.answers()
        began = time.monotonic()
        server.start()
        print(f"restart took {time.monotonic() - began:.2f} s")
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.kill()
    assert not server.data.exists()
    print("ok")


if __name__ == "__main__":  # `.venv/bin/python tests/pgserver.py`
    with tempfile.TemporaryDirectory(prefix="pgserver-check-") as check_folder:
        self_check(Path(check_folder))
