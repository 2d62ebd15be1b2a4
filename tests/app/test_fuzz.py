"""Property: whatever arrives at any route, on SQLite and on PostgreSQL, the answer is a valid 2xx/3xx or a 4xx
JSON {error, message}, never a 5xx (nothing is down here: a 503 could only be the input's doing), a refusal changes
nothing, and the log grows by one entry exactly when a drawing was accepted for storing.

- The drawing routes get random bytes, random JSON and random form fields (drawings real, broken and not).
- Every route of the app's URL map (a new one is covered without a word here) gets random path values, query
  parameters and JSON or form bodies, named as the web layer reads them (found in its source) or at random.
- A body over the limit is a 413 on every route however it is sent, through gunicorn (which de-chunks; the Flask
  test client does not): with a Content-Length, or chunked.
"""

from __future__ import annotations

import ast
import base64
import http.client
import inspect
import io
import json
import os
import re
import select
import socket
import tempfile
import textwrap
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from conftest import create_app
from drawings import blank_canvas, stroke_canvas, to_data_url
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server import Server

import main
from livedigits.config import Config

FUZZ = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
TOKEN = "fuzz-token"

ONE = stroke_canvas([(140, 40), (140, 240)])
PNG = base64.b64decode(to_data_url(ONE).split(",", 1)[1])
JPEG = base64.b64decode(to_data_url(ONE.convert("RGB"), "JPEG").split(",", 1)[1])
IMAGES = [to_data_url(ONE), to_data_url(blank_canvas()), base64.b64encode(JPEG).decode()]
JSON_ROUTES = ("/api/predict", "/api/train", "/api/internals", "/estimate")
FORM_ROUTES = ("/hook", "/hook2", "/hook3")
STORING = {"/api/train", "/hook", "/hook3"}  # a 200 from these is one new log entry
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "image/png",
    "",
]


@st.composite
def mutated_image(draw) -> str:
    """A real PNG or JPEG with some bytes overwritten, cut short or spliced: what a broken client sends."""
    data = bytearray(draw(st.sampled_from([PNG, JPEG])))
    for position, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=6)):
        data[position] = value
    data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    text = base64.b64encode(bytes(data)).decode()
    prefix = draw(st.sampled_from(["", "data:image/png;base64,", "data:image/jpeg;base64,", "data:;base64,"]))
    return prefix + text


images = st.one_of(st.sampled_from(IMAGES), mutated_image(), st.text(max_size=40))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=True), st.text(max_size=20)
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)
labels = st.one_of(st.integers(-3, 12), st.sampled_from(["0", "7", " 3 ", "10", "x", "", "1.0", "٣"]), anything)
strokes = st.one_of(
    st.none(), st.lists(st.lists(st.lists(st.one_of(st.integers(), st.floats()), max_size=4), max_size=4), max_size=3)
)
pixels = st.one_of(
    st.lists(st.integers(-2, 300), min_size=784, max_size=784),
    st.lists(st.integers(0, 255), max_size=800),
    anything,
)
json_bodies = st.one_of(
    anything,
    st.fixed_dictionaries(
        {}, optional={"image": st.one_of(images, anything), "label": labels, "strokes": strokes, "input": pixels}
    ),
)
form_bodies = st.dictionaries(
    st.sampled_from(["imageBase64", "digit", "image", "label", "x"]),
    st.one_of(images, st.sampled_from(["0", "1", "9", "10", "-1", "a", ""]), st.text(max_size=20)),
    max_size=4,
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzzed(request, tmp_path_factory) -> tuple[Flask, Path]:
    """One app per database for the module (the admin routes open: their inputs are fuzzed too), that has learned
    a drawing (entry 1: its image, the review queue and the exclusions have something to answer with)."""
    store = tmp_path_factory.mktemp("fuzz") / "store"
    database = None
    if request.param == "postgres":
        database = request.getfixturevalue("postgres").create_database(f"fuzz{uuid.uuid4().hex[:12]}")
    settings = {"sync_interval": 0, "rate_limits": "off", "admin_token": TOKEN}
    app = create_app(Config(storage_url=str(store), database_url=database, **settings))
    assert app.test_client().post("/api/train", json={"image": IMAGES[0], "label": 1}).status_code == 200
    return app, store


def n_entries(store: Path) -> int:
    return len(os.listdir(store / "log")) if (store / "log").exists() else 0


def check(app: Flask, store: Path, route: str, **request) -> None:
    before = n_entries(store)
    response = app.test_client().post(route, **request)
    status, text = response.status_code, response.get_data(as_text=True)
    assert status < 500, f"{route} answered {status}: {text[:300]}"
    if status == 200:
        assert_valid_answer(route, response)
    else:
        assert 400 <= status < 500 and response.is_json, f"{route}: {status} {text[:200]}"
        body = response.get_json()
        assert set(body) == {"error", "message"} and body["error"] and body["message"]
    assert n_entries(store) == before + (status == 200 and route in STORING)


def assert_valid_answer(route: str, response) -> None:
    text = response.get_data(as_text=True)
    if route == "/hook":
        assert text.startswith("Image saved successfully with the name ")
    elif route == "/hook3":
        assert text == "Trained"
    elif route == "/hook2":
        assert text == "Can't predict, when nothing is drawn" or set(json.loads(text)) == {
            "answer",
            "fnn",
            "fnn_t",
            "cnn",
            "cnn_t",
        }
    elif route == "/estimate":
        assert 0 <= response.get_json()["estimated"] <= 9
    elif route == "/api/train":
        assert {"sample_id", "model_version", "predictions"} <= set(response.get_json())
    elif route == "/api/internals":
        assert len(response.get_json()["fnn_hidden"]) == 100
    else:
        assert {"answer", "model_version", "predictions"} <= set(response.get_json())


@pytest.mark.parametrize("route", JSON_ROUTES + FORM_ROUTES)
@FUZZ
@given(body=st.binary(max_size=2048), content_type=st.sampled_from(CONTENT_TYPES))
def test_random_bytes(fuzzed, route, body, content_type):
    app, store = fuzzed
    check(app, store, route, data=body, content_type=content_type)


@pytest.mark.parametrize("route", JSON_ROUTES)
@FUZZ
@given(body=json_bodies)
def test_random_json(fuzzed, route, body):
    app, store = fuzzed
    check(app, store, route, data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("route", FORM_ROUTES)
@FUZZ
@given(fields=form_bodies, multipart=st.booleans())
def test_random_form_fields(fuzzed, route, fields, multipart):
    app, store = fuzzed
    data = {k: (io.BytesIO(v.encode()), "f.txt") if multipart and k == "x" else v for k, v in fields.items()}
    check(app, store, route, data=data, content_type="multipart/form-data" if multipart else None)


# --- every parameter of every route ----------------------------------------------------------------------

PARAMETERS = {"args", "request.args", "form", "request.form", "body", "json_body()"}  # what a route reads from
READERS = {"query_int", "query_text", "form_field"}  # ...and the parsers that read one by name


def names_read(function, seen: set | None = None) -> set[str]:
    """The parameter names a function of the web layer reads (`args.get("name")`, `body["name"]`,
    `json_body().get("name")`, `query_int("name", ...)`, `form_field("name")`), and those of the web layer's
    functions it calls (`asked_by_operator` reads the image links' `expires` and `signature`)."""
    seen = (seen or set()) | {function}
    names = set()
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) in PARAMETERS:
            names.add(text_of(node.slice))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr == "get" and ast.unparse(node.func.value) in PARAMETERS:
                names.add(text_of(node.args[0]))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called = function.__globals__.get(node.func.id)
            if node.func.id in READERS and node.args:
                names.add(text_of(node.args[0]))
            elif inspect.isfunction(called) and called.__module__.startswith("livedigits.web.") and called not in seen:
                names |= names_read(called, seen)
    return names - {None}


def text_of(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def url_map_routes() -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, rule, the names its view reads) for every route of the app `create_app` builds (a `serve` app: the
    same map, without TensorFlow), read when the tests are collected: a new route, or a new parameter of one, is
    fuzzed without a word here."""
    with tempfile.TemporaryDirectory() as folder:
        app = main.create_app(Config(storage_url=f"{folder}/store", role="serve", rate_limits="off"))
        try:
            return sorted(
                (method, rule.rule, tuple(sorted(names_read(app.view_functions[rule.endpoint]))))
                for rule in app.url_map.iter_rules()
                for method in sorted(rule.methods & {"GET", "POST", "PUT", "PATCH", "DELETE"})
            )
        finally:
            main.close_service(app)


ROUTES = url_map_routes()
ALL_NAMES = sorted({name for _, _, names in ROUTES for name in names})
TRICKY = [
    "", "0", "1", "2", "7", "10", "200", "-1", "1.5", "1e3", "0x1", " 1", "²", "①", "1¹", "Ⅻ",
    "\u0661\u0662", "\uff19",  # Arabic-Indic and fullwidth digits: int() takes them, str.isascii does not
    "\x00", "a\x00b", "\x01", "\u202e", "9" * 30, "9" * 5000, "true", "null", "NaN", "[]", "{}", "é☃", "%00",
]  # fmt: skip
TRICKY_JSON = [
    *TRICKY, "\ud800", 0, 1, 7, -1, 10**30, -(10**30), 1.5, 1e308, float("nan"), float("inf"), None, True, [], {},
    [1], ["1"], [0], [-1], [1.5], [None], [[1]], {"a": 1}, ["\x00"], [10**30],
]  # fmt: skip
texts = st.one_of(st.sampled_from(TRICKY), st.text(max_size=20), st.integers().map(str), st.floats().map(str))
PATH_VALUES = ["1", "0000000001", "0", "9" * 11, "9" * 300, *TRICKY]
path_values = st.one_of(st.sampled_from(PATH_VALUES), texts)
values = st.one_of(texts, st.sampled_from(TRICKY_JSON), st.sampled_from(IMAGES), st.integers(-3, 12), anything)


def fill_path(rule: str, value: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?[^<>]+>", lambda _: quote(value, safe="") or "x", rule)


def form_of(fields: dict) -> dict:
    """JSON values as a form sends them (text), less what UTF-8 cannot carry (a lone surrogate)."""
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    return {k: v for k, v in text.items() if not re.search("[\ud800-\udfff]", k + v)}


@st.composite
def requests(draw, method: str, rule: str, read: tuple[str, ...]) -> dict:
    """A request to `rule`: path values, a few query parameters, and for a POST a JSON or form body, named mostly
    as its view reads them; with the admin token, mostly (the admin routes' parsing comes after it)."""
    names = st.one_of(st.sampled_from(read or ALL_NAMES), st.sampled_from(ALL_NAMES), st.text(max_size=8))
    request = {"path": fill_path(rule, draw(path_values)), "method": method}
    request["query_string"] = draw(st.dictionaries(names, texts, max_size=3))
    if draw(st.integers(0, 3)):
        request["headers"] = {"Authorization": f"Bearer {TOKEN}"}
    if method != "GET":
        body = draw(st.dictionaries(names, values, max_size=4))
        if draw(st.booleans()):
            request["data"], request["content_type"] = json.dumps(body), "application/json"
        else:
            request["data"] = form_of(body)
    return request


def problem(app: Flask, store: Path, request: dict) -> str | None:
    """What is wrong with the answer to `request`, if anything: a 5xx; a 4xx that is not JSON {error, message}, or
    that changed the log."""
    before = n_entries(store)
    response = app.test_client().open(**request)
    status, text = response.status_code, response.get_data().decode(errors="replace")  # zips, PNGs too
    where = f"{request['method']} {request['path'][:80]} {request.get('query_string') or ''} {request.get('data', '')}"
    if status >= 500:
        return f"{where[:300]} answered {status}: {text[:200]}"
    if status >= 400:
        body = response.get_json(silent=True)
        if not (isinstance(body, dict) and set(body) == {"error", "message"} and body["error"] and body["message"]):
            return f"{where[:300]}: {status} {text[:200]}"
        if n_entries(store) != before:
            return f"{where[:300]}: refused ({status}), yet the log changed"
    return None


def test_the_fuzzer_finds_what_each_route_reads():
    read = {rule: set(names) for _, rule, names in ROUTES}
    assert read["/api/review"] == {"label", "offset", "limit", "excluded", "source"}
    assert read["/api/train"] == {"image", "label", "strokes"} and read["/hook"] == {"digit", "imageBase64"}
    assert {"expires", "signature"} <= read["/api/samples/<sample_id>.png"]


@pytest.mark.parametrize(("method", "rule", "read"), ROUTES, ids=[f"{m} {r}" for m, r, _ in ROUTES])
def test_each_parameter_with_each_tricky_value(fuzzed, method, rule, read):
    """Every name the route reads, alone, with every tricky value, in the query and (for a POST) in a JSON and a
    form body, with the admin token; and every path value. Exhaustive where Hypothesis below samples."""
    app, store = fuzzed
    token = {"Authorization": f"Bearer {TOKEN}"}
    paths = PATH_VALUES if "<" in rule else ["-"]
    asked = [{"path": fill_path(rule, value), "headers": headers} for value in paths for headers in ({}, token)]
    for name in read:
        asked += [{"query_string": {name: value}} for value in TRICKY]
        if method != "GET":
            asked += [{"data": json.dumps({name: value}), "content_type": "application/json"} for value in TRICKY_JSON]
            asked += [{"data": form_of({name: value})} for value in TRICKY_JSON]
    found = [problem(app, store, {"method": method, "path": fill_path(rule, "1"), "headers": token} | r) for r in asked]
    found = [p for p in found if p]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("method", "rule", "read"), ROUTES, ids=[f"{m} {r}" for m, r, _ in ROUTES])
@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_every_parameter_of_every_route(fuzzed, method, rule, read, data):
    """Several parameters at once, of every type (lists, nested objects, huge numbers, text with NUL)."""
    app, store = fuzzed
    assert problem(app, store, data.draw(requests(method, rule, read))) is None


# --- bodies over the limit, however they are sent ---------------------------------------------------------

LIMIT = Config().max_request_bytes


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    """The Procfile's command, a `serve` process (no TensorFlow, no learner): chunked bodies are gunicorn's to
    de-chunk, which the Flask test client does not do."""
    store = tmp_path_factory.mktemp("bodies") / "store"
    server = Server({"STORAGE_URL": str(store), "ROLE": "serve", "RATE_LIMITS": "off", "TRAIN_WAIT": "0.1"})
    try:
        server.wait_healthy()
        yield server
    finally:
        server.kill()


def send(port: int, method: str, path: str, body: bytes, content_type: str, chunk: int | None) -> tuple[int, dict]:
    """One request on a raw socket: with a Content-Length, or chunked in pieces of `chunk` bytes. It stops sending
    as soon as the server answers (a refusal need not wait for the rest of the body)."""
    framing = "Transfer-Encoding: chunked" if chunk else f"Content-Length: {len(body)}"
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{framing}\r\n"
    pieces = [body] if not chunk else [b"%x\r\n%s\r\n" % (len(p), p) for p in chunks(body, chunk)] + [b"0\r\n\r\n"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"{head}Connection: close\r\n\r\n".encode())
        for piece in (part for whole in pieces for part in chunks(whole, 1 << 16)):
            if select.select([sock], [], [], 0)[0]:
                break  # answered already
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return response.status, json.loads(data) if is_json else {}


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


@settings(FUZZ, max_examples=30)
@given(
    route=st.sampled_from([(m, r) for m, r, _ in ROUTES if m == "POST"] + [("GET", "/api/stats")]),
    size=st.sampled_from([0, 100, LIMIT - 1, LIMIT, LIMIT + 1, 2 * LIMIT, 3 * LIMIT + 7]),
    chunk=st.sampled_from([None, None, 1000, 1 << 16, 1 << 20]),
    content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"]),
)
def test_a_body_over_the_limit_is_413_however_it_is_sent(gunicorn, route, size, chunk, content_type):
    method, rule = route
    start = b'{"image": "' if content_type == "application/json" else b"imageBase64="
    body = (start + b"A" * size)[:size]
    status, answer = send(gunicorn.port, method, fill_path(rule, "1"), body, content_type, chunk)
    if size > LIMIT:
        assert status == 413 and answer["error"] == "request_entity_too_large", (status, answer)
    else:
        assert status != 413 and status < 500 and (status < 400 or set(answer) == {"error", "message"}), status


def test_a_chunked_body_under_the_limit_is_read_whole(gunicorn):
    body = json.dumps({"image": IMAGES[0]}).encode()
    for chunk in (7, 1000, None):
        status, answer = send(gunicorn.port, "POST", "/api/predict", body, "application/json", chunk)
        assert status == 200 and answer["model_version"] == 0, (chunk, status, answer)
    form = urlencode({"imageBase64": IMAGES[0]}).encode()
    assert send(gunicorn.port, "POST", "/hook2", form, "application/x-www-form-urlencoded", 999)[0] == 200
