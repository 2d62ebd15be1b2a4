"""A burst of the largest drawings the API accepts, sent to a running server, and what it did to the memory of
the server's workers, read from /proc (VmRSS now, VmHWM the peak since it was last reset).

tests/processes/test_memory_burst.py asserts on it; bench/memory.py prints it."""

from __future__ import annotations

import base64
import http.client
import io
import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from server import Server, request

from livedigits.config import Config

BURST = 16  # requests at once: the `all` role's threads
JSON_OVERHEAD = 200  # bytes of a request body around its base64 image


def base64_budget(max_request_bytes: int) -> int:
    """The largest image (bytes before base64) whose request body fits in `max_request_bytes`."""
    return (max_request_bytes - JSON_OVERHEAD) * 3 // 4


def largest_square(max_pixels: int, max_side: int) -> int:
    return min(math.isqrt(max_pixels), max_side)


def clear_canvas_png(side: int) -> str:
    """The largest PNG a client can send: a `side` x `side` RGBA canvas, a seven in dark ink on a clear
    background (every pixel composited onto white), which compresses to tens of kB whatever its area."""
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    points = [(0.2, 0.18), (0.8, 0.18), (0.42, 0.85)]
    draw.line([(x * side, y * side) for x, y in points], fill=(0, 0, 0, 255), width=max(1, side // 14))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def noisy_jpeg(side: int, max_bytes: int, seed: int = 33) -> str:
    """A `side` x `side` progressive colour JPEG of noise, at the highest quality under `max_bytes`: the JPEG that
    costs most to decode (a progressive decoder holds every coefficient of the image) and to store."""
    noise = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    image = Image.fromarray(noise, "RGB")
    best = b""
    low, high = 1, 95
    while low <= high:  # the size grows with the quality: bisect for the largest that fits
        quality = (low + high) // 2
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, progressive=True, subsampling=0)
        if buffer.tell() <= max_bytes:
            best, low = buffer.getvalue(), quality + 1
        else:
            high = quality - 1
    assert best, f"no {side}x{side} noise JPEG fits in {max_bytes} bytes"
    return "data:image/jpeg;base64," + base64.b64encode(best).decode()


def noisy_png(max_bytes: int, seed: int = 33) -> str:
    """The largest square greyscale PNG of noise under `max_bytes` (noise does not compress): the most a stored
    drawing can hold, pixel for pixel."""
    side = math.isqrt(max_bytes - 4096)  # a byte a pixel, and room for the chunks and zlib's framing
    noise = np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise, "L").save(buffer, format="PNG")
    assert buffer.tell() <= max_bytes
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@dataclass(frozen=True)
class WorstCase:
    """The largest-area PNG, the noisiest JPEG, and the noisiest PNG the limits let through."""

    png: str
    jpeg: str
    noise: str
    side: int

    @classmethod
    def within(cls, max_pixels: int, max_side: int, max_request_bytes: int) -> WorstCase:
        side = largest_square(max_pixels, max_side)
        budget = base64_budget(max_request_bytes)
        return cls(clear_canvas_png(side), noisy_jpeg(side, budget), noisy_png(budget), side)

    def bodies(self) -> list[tuple[str, dict]]:
        """BURST predictions, half the largest PNG and half the noisy JPEG, and a label of each of the three."""
        predictions = [("/api/predict", {"image": self.png if i % 2 else self.jpeg}) for i in range(BURST)]
        labels = [("/api/train", {"image": image, "label": 7}) for image in (self.png, self.jpeg, self.noise)]
        return predictions + labels


def config_limits() -> tuple[int, int, int]:
    """(max pixels, max side, max request bytes) as the service is configured by default."""
    from livedigits.pipeline.drawings import MAX_IMAGE_SIDE

    return Config.max_image_pixels, MAX_IMAGE_SIDE, Config.max_request_bytes


# --- memory -----------------------------------------------------------------------------------------------------


def workers(server: Server) -> list[int]:
    """The gunicorn master's children: its workers."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if f"\nPPid:\t{server.process.pid}\n" in status:
            found.append(int(pid))
    return sorted(found)


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident MB now, peak resident MB) of a process, from /proc/<pid>/status (no psutil needed)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reset_peak(pid: int) -> None:
    """Start VmHWM again from the current resident size (proc(5): clear_refs, 5), so the peak is the burst's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def post(url: str, path: str, body: dict, timeout: float = 120) -> int:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def fire(url: str, bodies: list[tuple[str, dict]]) -> list[int]:
    """Every request at once (each on its own connection, released together); their statuses, in order."""
    statuses = [0] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        start.wait()
        statuses[i] = post(url, *bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@dataclass(frozen=True)
class Footprint:
    """A worker's resident MB before a burst, at its peak during it, and once it is over."""

    start: float
    peak: float
    after: float
    statuses: tuple[int, ...]
    seconds: float

    def __str__(self) -> str:
        codes = {code: self.statuses.count(code) for code in sorted(set(self.statuses))}
        grew = self.after - self.start
        return (
            f"start {self.start:,.0f} MB, peak {self.peak:,.0f} MB, after {self.after:,.0f} MB ({grew:+,.0f}); "
            f"{len(self.statuses)} requests in {self.seconds:.1f} s, statuses {codes}"
        )


def settle(url: str, version: int, timeout: float = 120) -> None:
    """Until the served model has learned `version` entries (an `all` learner done with the burst's labels)."""
    deadline = time.monotonic() + timeout
    while request(f"{url}/healthz")[1]["model_version"] < version and time.monotonic() < deadline:
        time.sleep(0.2)


def warm_up(server: Server, ordinary: str, learns: bool) -> int:
    """An ordinary prediction and label first, so that what the first of each costs (TensorFlow tracing the step)
    is in the start, not charged to the burst. Returns the model version reached."""
    assert request(f"{server.url}/api/predict", {"image": ordinary})[0] == 200
    status, _ = request(f"{server.url}/api/train", {"image": ordinary, "label": 7})
    assert status in (200, 202), status
    if learns:
        settle(server.url, 1)
    return request(f"{server.url}/healthz")[1]["model_version"]


def measure_burst(server: Server, bodies: list[tuple[str, dict]], ordinary: str, learns: bool) -> Footprint:
    """Warm the one worker up, then send `bodies` at once; its memory before, at the peak and after."""
    server.wait_healthy()
    (pid,) = workers(server)
    version = warm_up(server, ordinary, learns)
    time.sleep(1.0)
    start, _ = memory_mb(pid)
    reset_peak(pid)
    started = time.perf_counter()
    statuses = fire(server.url, bodies)
    seconds = time.perf_counter() - started
    if learns:
        learned = [path == "/api/train" and status == 200 for (path, _), status in zip(bodies, statuses, strict=True)]
        settle(server.url, version + sum(learned))
    time.sleep(1.0)
    after, peak = memory_mb(pid)
    return Footprint(start, peak, after, tuple(statuses), seconds)


def stored_sizes(store: Path) -> list[int]:
    """Bytes of every drawing in a local store."""
    return [path.stat().st_size for path in (store / "drawings").glob("*.png")]
