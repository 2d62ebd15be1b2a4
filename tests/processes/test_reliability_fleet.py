"""Reliability under the Procfile's own command: 64 trains at once from 16 clients, and kill -9 in the middle of
training traffic. Nothing acknowledged is ever lost; nothing refused is stored."""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

from conftest import create_app
from drawings import stroke_canvas, to_data_url
from PIL import Image
from server import Server, train_until_killed

from livedigits.config import Config

DRAWINGS = [
    (to_data_url(stroke_canvas([(140, 40), (140, 240)])), 1),
    (to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)])), 7),
    (to_data_url(stroke_canvas([(70, 60), (200, 60), (70, 230), (210, 230)])), 2),
]


ONE = DRAWINGS[0][0]


def call(
    url: str, path: str, body: dict | None = None, headers: dict | None = None, timeout: float = 120
) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(
            "POST" if body is not None else "GET",
            path,
            body=payload,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def log_numbers(store: Path) -> list[int]:
    return sorted(int(p.stem) for p in (store / "log").glob("*.json"))


def test_64_simultaneous_trains_from_16_clients(tmp_path):
    store = tmp_path / "store"
    # Default rate limits, behind one trusted proxy: 16 addresses, 4 trains each, within their budgets.
    env = {"WEB_CONCURRENCY": "2", "STORAGE_URL": str(store), "SYNC_INTERVAL": "0.2", "TRUSTED_PROXIES": "1"}
    env["RATE_LIMITS"] = ""  # the defaults, whatever the caller's environment says
    server = Server(env)
    try:
        server.wait_healthy()
        start = threading.Barrier(16)
        results: list[tuple[int, dict]] = []

        def client(n: int) -> None:
            start.wait()
            for k in range(4):
                image, label = DRAWINGS[(n + k) % len(DRAWINGS)]
                headers = {"X-Forwarded-For": f"203.0.113.{n}"}
                results.append(call(server.url, "/api/train", {"image": image, "label": label}, headers))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [status for status, _ in results] == [200] * 64, [b for s, b in results if s != 200][:3]
        assert sorted(int(body["sample_id"]) for _, body in results) == list(range(1, 65))
        assert log_numbers(store) == list(range(1, 65))
        assert len(list((store / "drawings").glob("*.png"))) == 64
        deadline = time.monotonic() + 30
        versions: set[int] = set()
        while versions != {64} and time.monotonic() < deadline:  # both workers, once caught up
            versions = {call(server.url, "/api/stats")[1]["model_version"] for _ in range(6)}
            time.sleep(0.3)
        assert versions == {64}
        assert_chunked_huge_body_is_refused(server.url)
    finally:
        server.kill(signal.SIGTERM)


def assert_chunked_huge_body_is_refused(url: str) -> None:
    """A body without Content-Length (chunked) is held to the same 2 MB as one that declares it: werkzeug reads
    no more than that, so the JSON arrives cut short (400) or the read goes past the limit (413)."""
    host, port = url.removeprefix("http://").split(":")
    chunk = b"A" * 65536
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        try:
            sock.sendall(b'b\r\n{"image": "\r\n')
            for _ in range(48):  # 3 MB; the server may answer and stop reading well before the end
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while part := sock.recv(65536):
                answer += part
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] in (b"400", b"413"), answer[:300]
    body = rest.partition(b"\r\n\r\n")[2]
    assert set(json.loads(body)) == {"error", "message"}


def caught_up(server: Server, timeout: float = 120) -> dict:
    """/healthz once the learner has caught up with the log."""
    deadline = time.monotonic() + timeout
    while (health := call(server.url, "/healthz")[1])["behind"] or health["learner"] != "up_to_date":
        assert time.monotonic() < deadline, health
        time.sleep(0.1)
    return health


def test_kill_9_at_random_points_loses_no_acknowledged_drawing(tmp_path):
    rng = random.Random(20240608)
    store = tmp_path / "store"
    # One worker: test_deploy kills two; here the rounds vary where the kill lands (checkpoints every 3 entries).
    env = {"WEB_CONCURRENCY": "1", "STORAGE_URL": str(store), "CHECKPOINT_EVERY": "3", "RATE_LIMITS": "off"}
    acknowledged: dict[int, int] = {}  # entry number -> the label sent
    server = Server(env)
    try:
        server.wait_healthy()
        for _ in range(3):
            train_until_killed(server, DRAWINGS, rng.uniform(0.05, 2.5), acknowledged)
            server = Server(env)
            server.wait_healthy()  # it answers at once and replays the log on its learner's thread
            numbers = log_numbers(store)
            assert numbers == list(range(1, len(numbers) + 1))
            assert caught_up(server)["model_version"] == len(numbers)
            assert set(acknowledged) <= set(numbers)
            for number, label in acknowledged.items():
                entry = json.loads((store / "log" / f"{number:010d}.json").read_text())
                assert entry["kind"] == "train" and entry["label"] == label
                assert Image.open(store / entry["image"]).size == (280, 280)
        status, served = call(server.url, "/api/predict", {"image": ONE})
        assert status == 200
    finally:
        server.kill(signal.SIGTERM)
    fresh = tmp_path / "replayed"
    shutil.copytree(store, fresh, ignore=shutil.ignore_patterns("checkpoints"))
    replayed = create_app(Config(storage_url=str(fresh), rate_limits="off", checkpoint_every=10_000)).test_client()
    assert replayed.post("/api/predict", json={"image": ONE}).get_json() == served  # applied, all of it
