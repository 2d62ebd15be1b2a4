"""Reliability: bad input on every endpoint, a full or read-only store, damaged files. Nothing acknowledged is
ever lost; nothing refused is stored. 64 trains at once and kill -9: tests/processes/test_reliability_fleet.py."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import create_app
from drawings import blank_canvas, stroke_canvas, to_data_url
from flask import Flask
from PIL import Image

from livedigits.config import Config
from main import close_service

LEAKS = re.compile(r"Traceback|File \"|/work/|/tmp/|/root/|site-packages|\.py\b")
DRAWINGS = [
    (to_data_url(stroke_canvas([(140, 40), (140, 240)])), 1),
    (to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)])), 7),
    (to_data_url(stroke_canvas([(70, 60), (200, 60), (70, 230), (210, 230)])), 2),
]
ONE = DRAWINGS[0][0]


def encoded(image: Image.Image, fmt: str, **options) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return base64.b64encode(buffer.getvalue()).decode()


def png_bytes(image: Image.Image) -> bytes:
    return base64.b64decode(encoded(image, "PNG"))


def bad_images() -> dict[str, tuple[object, int]]:
    """Every bad drawing the issue lists (and a few more), with the status each must get."""
    one = stroke_canvas([(140, 40), (140, 240)])
    frames = [one, stroke_canvas([(60, 50), (220, 50), (120, 240)])]
    svg = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>').decode()
    return {
        "malformed base64 (data URL)": ("data:image/png;base64,@@@not base64@@@", 400),
        "malformed base64 (bare, cut short)": (encoded(one, "PNG")[:-3], 400),
        "SVG data URL": (f"data:image/svg+xml;base64,{svg}", 415),
        "GIF data URL": (f"data:image/gif;base64,{encoded(one.convert('P'), 'GIF')}", 415),
        "WebP data URL": (f"data:image/webp;base64,{encoded(one, 'WEBP')}", 415),
        "GIF bytes labelled PNG": (f"data:image/png;base64,{encoded(one.convert('P'), 'GIF')}", 415),
        "WebP bytes, bare base64": (encoded(one, "WEBP"), 415),
        "text, not an image": (base64.b64encode(b"hello, this is not a drawing").decode(), 400),
        "truncated PNG": (base64.b64encode(png_bytes(one)[:300]).decode(), 400),
        "decompression bomb (20000x20000 PNG)": (encoded(Image.new("1", (20000, 20000), 1), "PNG"), 413),
        "16000x2 strip (a side over 4096)": (encoded(Image.new("L", (16000, 2), 255), "PNG"), 413),
        "animated PNG (2 frames)": (encoded(frames[0], "PNG", save_all=True, append_images=frames[1:]), 415),
        "multi-page TIFF": (encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:]), 415),
        "empty drawing": (to_data_url(blank_canvas()), 422),
        "empty string": ("", 400),
    }


def bad_requests() -> Iterator[tuple[str, str, dict, int]]:
    """(route, case, test-client request, expected status) for every endpoint that takes input."""
    huge = "A" * (3 * 1024 * 1024)
    images = bad_images()
    for route, extra in (("/api/predict", {}), ("/api/train", {"label": 1}), ("/api/internals", {})):
        for case, (image, status) in images.items():
            yield route, case, {"json": {"image": image, **extra}}, status
        yield route, "image not a string", {"json": {"image": 42, **extra}}, 400
        yield route, "missing image", {"json": {**extra}}, 400
        yield route, "huge body (3 MB)", {"json": {"image": huge, **extra}}, 413
        yield route, "broken JSON", {"data": '{"image": "abc', "content_type": "application/json"}, 400
        yield route, "JSON 100000 deep", {"data": "[" * 100_000, "content_type": "application/json"}, 400
        yield route, "JSON array, not object", {"json": [ONE, 1]}, 400
        yield route, "wrong content type (form)", {"data": {"image": ONE, **extra}}, 400
        yield route, "wrong content type (text/plain)", {"data": json.dumps({"image": ONE, **extra})}, 400
        yield route, "not UTF-8", {"data": b"\xff\xfe{", "content_type": "application/json"}, 400
    for case, label in {
        "missing label": None,
        "label 10": 10,
        "label -1": -1,
        "label 'seven'": "seven",
        "label 2.5": 2.5,
        "label 7.0": 7.0,
        "label true": True,
        "label '1.0'": "1.0",
        "label [1]": [1],
        "label 10**30": 10**30,
    }.items():
        yield "/api/train", case, {"json": {"image": ONE, "label": label}}, 400
    for case, strokes in {
        "strokes not a list": "zigzag",
        "stroke point of 2 numbers": [[[1, 2]]],
        "stroke point NaN": [[[float("nan"), 1, 2]]],
        "stroke point 1e999 (Infinity)": [[[float("inf"), 1, 2]]],
        "stroke point a string": [[["1", 1, 2]]],
        "20001 stroke points": [[[1, 2, 3]] * 20_001],
    }.items():
        yield "/api/train", case, {"json": {"image": ONE, "label": 1, "strokes": strokes}}, 400
    for route, needs_digit in (("/hook", True), ("/hook2", False), ("/hook3", True)):
        digit = {"digit": "1"} if needs_digit else {}
        for case, (image, status) in images.items():
            if route == "/hook2" and case == "empty drawing":
                continue  # the legacy contract: a 200 text "Can't predict, when nothing is drawn"
            yield route, case, {"data": {"imageBase64": image, **digit}}, status
        yield route, "missing imageBase64", {"data": digit or {"other": "x"}}, 400
        yield route, "huge form field (3 MB)", {"data": {"imageBase64": huge, **digit}}, 413
        yield route, "JSON instead of a form", {"json": {"imageBase64": ONE, **digit}}, 400
        yield route, "multipart with the image as a file", {"data": {"imageBase64": (io.BytesIO(b"x"), "a.png")}}, 400
        if needs_digit:
            for case, value in {"digit missing": None, "digit 12": "12", "digit x": "x", "digit empty": ""}.items():
                fields = {"imageBase64": ONE} if value is None else {"imageBase64": ONE, "digit": value}
                yield route, case, {"data": fields}, 400
    for case, (value, status) in {
        "input missing": (None, 400),
        "input of 3 pixels": ([1, 2, 3], 400),
        "input of 785 pixels": ([0] * 785, 400),
        "pixel 256": ([256] * 784, 400),
        "pixel -1": ([-1] * 784, 400),
        "pixels as floats": ([0.5] * 784, 400),
        "pixels as strings": (["1"] * 784, 400),
        "pixels as booleans": ([True] * 784, 400),
        "input a string": ("0" * 784, 400),
        "28x28 nested": ([[0] * 28] * 28, 400),
        "empty drawing (all 0)": ([0] * 784, 422),
    }.items():
        yield "/estimate", case, {"json": {} if value is None else {"input": value}}, status
    yield "/estimate", "broken JSON", {"data": '{"input": [1,', "content_type": "application/json"}, 400
    yield "/estimate", "huge body (3 MB)", {"json": {"input": huge}}, 413
    yield "/estimate", "JSON 100000 deep", {"data": "[" * 100_000, "content_type": "application/json"}, 400
    yield "/estimate", "wrong content type", {"data": {"input": "1"}}, 400


BAD_REQUESTS = list(bad_requests())


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Flask, Path]:
    store = tmp_path_factory.mktemp("bad") / "store"
    app = create_app(Config(storage_url=str(store), sync_interval=0, rate_limits="off"))
    client = app.test_client()
    assert client.post("/api/train", json={"image": ONE, "label": 1}).status_code == 200  # a store with history
    return app, store


def snapshot(store: Path) -> tuple[int, int, list[str]]:
    def names(folder: str) -> list[str]:
        return sorted(p.name for p in (store / folder).iterdir()) if (store / folder).exists() else []

    return len(names("log")), len(names("drawings")), names(".incoming")


@pytest.mark.parametrize(
    ("route", "case", "request_kwargs", "status"), BAD_REQUESTS, ids=[f"{r} {c}" for r, c, _, _ in BAD_REQUESTS]
)
def test_bad_input_is_a_quick_4xx_json_that_changes_nothing(shared, route, case, request_kwargs, status):
    app, store = shared
    service = app.extensions["digits"]
    before, version = snapshot(store), service.version
    response = app.test_client().post(route, **request_kwargs)  # how fast: bench/bad_inputs.py
    assert response.status_code == status, response.get_data()[:300]
    assert response.is_json and set(response.get_json()) == {"error", "message"}
    assert not LEAKS.search(response.get_data(as_text=True))
    # The learner's own atomic writes (a snapshot published in the background) pass through .incoming for a moment;
    # what a bad request left there would stay.
    deadline = time.monotonic() + 10
    while snapshot(store) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert snapshot(store) == before and service.version == version


# --- a full disk, a read-only store -----------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted on a fresh folder (we run as root; chmod would not stop root from writing)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def remount(mountpoint: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mountpoint)], check=True)


def assert_storage_503(client, store: Path) -> None:
    before = snapshot(store)
    for route, request_kwargs in (
        ("/api/train", {"json": {"image": ONE, "label": 1}}),
        ("/hook3", {"data": {"imageBase64": ONE, "digit": "1"}}),
        ("/hook", {"data": {"imageBase64": ONE, "digit": "1"}}),
    ):
        response = client.post(route, **request_kwargs)
        assert response.status_code == 503, (route, response.get_data())
        assert response.get_json()["error"] == "storage_unavailable" and response.get_json()["message"]
        assert not LEAKS.search(response.get_data(as_text=True))
    assert snapshot(store) == before  # no entry, no drawing, no half-written scratch file
    assert client.post("/api/predict", json={"image": ONE}).status_code == 200  # reading still works
    assert client.get("/healthz").status_code == 200


def test_full_disk_is_a_503_and_recovers(small_disk):
    store = small_disk / "store"
    facts = f"sqlite:///{small_disk.parent / 'facts.sqlite3'}"  # the store's disk fills, not the database's
    config = Config(storage_url=str(store), database_url=facts, sync_interval=0, rate_limits="off", checkpoint_every=1)
    app = create_app(config)
    client = app.test_client()
    assert client.post("/api/train", json={"image": ONE, "label": 1}).status_code == 200
    app.extensions["learner"].flush_checkpoints()
    filler = small_disk / "filler"
    with open(filler, "wb") as f, pytest.raises(OSError, match="No space"):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    version = app.extensions["digits"].version
    assert_storage_503(client, store)
    assert app.extensions["digits"].version == version
    filler.unlink()
    response = client.post("/api/train", json={"image": ONE, "label": 1})
    assert response.status_code == 200 and response.get_json()["model_version"] == version + 1


def test_read_only_store_is_a_503_even_after_a_restart(small_disk):
    store = small_disk / "store"
    facts = f"sqlite:///{small_disk.parent / 'facts.sqlite3'}"  # the store's disk turns read-only, not the database's
    config = Config(storage_url=str(store), database_url=facts, sync_interval=0, rate_limits="off")
    app = create_app(config)
    client = app.test_client()
    assert client.post("/api/train", json={"image": ONE, "label": 1}).status_code == 200
    remount(small_disk, "ro")
    try:
        assert_storage_503(client, store)
        close_service(app)
        rebooted = create_app(config)  # a restart on a read-only store still serves predictions
        assert rebooted.extensions["digits"].version == 1
        assert_storage_503(rebooted.test_client(), store)
    finally:
        remount(small_disk, "rw")
    assert rebooted.test_client().post("/api/train", json={"image": ONE, "label": 1}).get_json()["model_version"] == 2


# --- damaged files --------------------------------------------------------------------------------------


def rezip(path: Path, change: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in {**files, **change}.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def test_damaged_checkpoints_and_entries_are_skipped_never_fatal(store):
    config = Config(storage_url=str(store), sync_interval=0, rate_limits="off", checkpoint_every=2)
    app = create_app(config)
    client = app.test_client()
    for image, label in DRAWINGS * 2:  # entries 1..6, checkpoints 2, 4, 6
        assert client.post("/api/train", json={"image": image, "label": label}).status_code == 200
    app.extensions["learner"].flush_checkpoints()
    checkpoints = sorted((store / "checkpoints").glob("*.zip"))
    assert [p.stem for p in checkpoints] == ["0000000002", "0000000004", "0000000006"]
    checkpoints[2].write_bytes(checkpoints[2].read_bytes()[:1000])  # half-written
    with zipfile.ZipFile(checkpoints[1]) as archive:
        fnn = archive.read("fnn.npz")
    rezip(checkpoints[1], {"fnn.npz": fnn[: len(fnn) // 2]})  # a whole zip around a cut-short model
    (store / "log" / "0000000007.json").write_bytes(b'{"kind": "train", "lab')  # garbage entry
    (store / "log" / "0000000008.json").write_bytes(b"")  # empty entry
    (store / "log" / "notes.txt").write_text("an operator's file")
    (store / ".incoming" / "0123abcd").write_bytes(b"left by a crash mid-write")
    close_service(app)
    rebooted = create_app(config)
    service = rebooted.extensions["digits"]
    assert service.version == 8  # damaged entries count, as no-ops, so that every process numbers alike
    client = rebooted.test_client()
    assert client.post("/api/train", json={"image": ONE, "label": 1}).get_json()["model_version"] == 9
    served = client.post("/api/predict", json={"image": ONE}).get_json()
    fresh = store.parent / "replayed"
    shutil.copytree(store, fresh, ignore=shutil.ignore_patterns("checkpoints"))
    replayed = create_app(Config(storage_url=str(fresh), rate_limits="off", checkpoint_every=10_000)).test_client()
    assert replayed.post("/api/predict", json={"image": ONE}).get_json() == served


# --- against the real server: 64 trains at once, kill -9 ---------------------------------------------------
