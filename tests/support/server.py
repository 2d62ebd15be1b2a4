"""Run the app the way Heroku does: the Procfile's own `web:` command, on a free port."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def procfile_command(kind: str = "web", root: Path = ROOT) -> str:
    for line in (root / "Procfile").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return line.removeprefix(f"{kind}:").strip()
    raise AssertionError(f"Procfile has no {kind}: line")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(
    url: str, body: dict | None = None, timeout: float = 30, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class Server:
    """The Procfile's command in its own process group, so that kill -9 takes every worker."""

    def __init__(
        self, env: dict[str, str], gunicorn_args: str = "", kind: str = "web", cwd: Path = ROOT, only: bool = False
    ):
        """`gunicorn_args` go after the Procfile's own (the last of a repeated flag wins): `--workers 2`.
        `kind="worker"` runs the Procfile's learner instead (no HTTP: only `kill` and `resident_mb` apply).
        `cwd`: the project folder to run in, and whose Procfile to run (a dyno's own copy, or the code before a
        change). `only`: the process sees `env` and PATH, HOME and PORT alone, as a dyno sees its config vars, instead
        of this process's environment as well."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")} if only else os.environ
        full_env = {**base, "PORT": str(self.port), **env}
        if "STORAGE_URL" in env and "DATABASE_URL" not in env:
            # The database this test's own apps use for that store (conftest's `backend`: SQLite or PostgreSQL).
            from livedigits.config import Config

            full_env["DATABASE_URL"] = Config(storage_url=env["STORAGE_URL"]).database
        # This interpreter's environment first on PATH, so that `gunicorn` is the one beside it (.venv's).
        full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
        # Its output, kept for the message of a process that exits: what a failed boot said.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (the child writes it for its whole life)
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {procfile_command(kind, cwd)} {gunicorn_args}"],
            cwd=cwd,
            env=full_env,
            start_new_session=True,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        """What the process has printed so far (read in place: the file's offset is the child's too)."""
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def wait_healthy(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self.output()[-3000:]
                raise AssertionError(f"server exited with {self.process.returncode}; its output ended:\n{said}")
            try:
                return request(f"{self.url}/healthz", timeout=2)[1]
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        raise AssertionError("server did not become healthy")

    def _group(self, name: str) -> dict[int, str]:
        """/proc/<pid>/<name> of every process in the server's process group (the gunicorn master and workers)."""
        files = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.getpgid(int(pid)) == self.process.pid:
                    files[int(pid)] = Path(f"/proc/{pid}/{name}").read_text()
            except (OSError, ProcessLookupError):
                continue
        return files

    def resident_mb(self) -> dict[int, float]:
        """Resident MB of every process in the server's process group."""
        sizes = {}
        for pid, status in self._group("status").items():
            kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
            sizes[pid] = kb / 1024
        return sizes

    def loads_tensorflow(self) -> dict[int, bool]:
        """Whether each process of the group has TensorFlow's native library mapped (imported, in any thread)."""
        return {pid: "libtensorflow" in maps for pid, maps in self._group("maps").items()}

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process group's live processes so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        stats = self._group("stat").values()
        return sum(int(f[11]) + int(f[12]) for f in (s.rsplit(")", 1)[1].split() for s in stats)) / ticks

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)


def train_until_killed(
    server: Server, drawings: list[tuple[str, int]], delay: float, acknowledged: dict[int, int]
) -> None:
    """Three clients train until kill -9 hits every process of `server`, `delay` seconds after the first
    acknowledgement; `acknowledged` gets entry number -> label for every 200."""
    stop = threading.Event()
    first = threading.Event()

    def client(offset: int) -> None:
        i = offset
        while not stop.is_set():
            image, label = drawings[i % len(drawings)]
            try:
                status, body = request(f"{server.url}/api/train", {"image": image, "label": label}, timeout=30)
            except (OSError, http.client.HTTPException):
                return  # the server died under this request: it was never acknowledged
            if status == 200:
                acknowledged[int(body["sample_id"])] = label
                first.set()
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    assert first.wait(120), "no train was acknowledged"  # the first train traces TensorFlow's step
    time.sleep(delay)
    server.kill()  # SIGKILL to the master and every worker, mid-request
    stop.set()
    for thread in threads:
        thread.join()


def wait_for_learner(url: str, timeout: float = 120) -> None:
    """Until the serve process at `url` has heard from a learner (its first snapshot or heartbeat)."""
    deadline = time.monotonic() + timeout
    while request(f"{url}/healthz")[1]["learner_seen_seconds_ago"] is None:
        assert time.monotonic() < deadline, "no learner published anything"
        time.sleep(0.2)
