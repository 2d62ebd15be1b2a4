"""Stage timers installed in a running web worker (bench/profiling/gunicorn_profiled.py), for bench/profile.py.

Each timed function records, for the request on its thread, its own time: wall clock and the thread's CPU, less what
the timed functions it calls record themselves. Wall less CPU is time the thread waited: for the GIL, a lock, a decode
slot, the kernel. `GET /__profile` (answered by a middleware in front of the app, on the same connection, so from the
same worker) returns the stages of the requests since the last `GET /__profile?reset=1`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import flask

from livedigits.models import digitness, fnn, numpy_cnn
from livedigits.pipeline import drawings
from livedigits.serving import server as serving
from livedigits.state import journal
from livedigits.web import api, encoding, inputs

_local = threading.local()
_records: dict[str, list[dict[str, tuple[float, float]]]] = defaultdict(list)  # path -> one {stage: (wall, cpu)} each
_lock = threading.Lock()


def timed(stage: str | Callable[..., str], function: Callable) -> Callable:
    def run(*args, **kwargs):
        stack = getattr(_local, "stack", None)
        if stack is None:  # outside a request (the follower's thread): not a request's time
            return function(*args, **kwargs)
        name = stage(*args) if callable(stage) else stage
        wall, cpu = time.perf_counter(), time.thread_time()
        stack.append([0.0, 0.0])
        try:
            return function(*args, **kwargs)
        finally:
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            inner = stack.pop()
            spent = _local.spent.setdefault(name, [0.0, 0.0])
            spent[0] += wall - inner[0]
            spent[1] += cpu - inner[1]
            if stack:
                stack[-1][0] += wall
                stack[-1][1] += cpu

    return run


def model_stage(model, *_args) -> str:
    service = flask.current_app.extensions["digits"]
    if model is service.original["fnn"]:
        return "forward: FNN original"
    if model is service.original["cnn"]:
        return "forward: CNN original"
    if model is service.snapshot.fnn:
        return "forward: FNN retrained"
    if model is service.snapshot.cnn:
        return "forward: CNN retrained"
    return "not-a-digit verdict"  # the detector's own network


def install(app: flask.Flask) -> None:
    """Time the stages of every request to `app` (patched where each is looked up)."""
    flask.Request.get_json = timed("JSON parsing (request body)", flask.Request.get_json)
    drawings.base64_payload = timed("base64", drawings.base64_payload)
    drawings.decode_image = timed("PNG decode", drawings.decode_image)
    inputs.decode_grey = timed("greyscale and bounds", inputs.decode_grey)
    inputs.digit_of = timed("preprocess (crop, box, pen, centre)", inputs.digit_of)
    drawings.digit_of = timed("preprocess (crop, box, pen, centre)", drawings.digit_of)  # a train's, via drawing_of
    drawings.encode_png = timed("train: PNG to store", drawings.encode_png)
    api.parse_digit = timed("checks and a decode slot", api.parse_digit)
    api.parse_drawing = timed("checks and a decode slot", api.parse_drawing)
    journal.Journal.store_drawing = timed("train: store the drawing", journal.Journal.store_drawing)
    serving.Server.append = timed("train: append the entry, tell the learner", serving.Server.append)
    serving.Server.wait_learned = timed("train: wait for the learner", serving.Server.wait_learned)
    fnn.FNN.predict_proba = timed(model_stage, fnn.FNN.predict_proba)
    numpy_cnn.NumpyCNN.predict_proba = timed(model_stage, numpy_cnn.NumpyCNN.predict_proba)
    digitness.Detector.are_digits = timed("not-a-digit verdict", digitness.Detector.are_digits)
    serving.Server._answers = timed("answer rule, top-3, pixels", serving.Server._answers)
    encoding.FastJSON.response = timed("JSON encoding", encoding.FastJSON.response)
    app.wsgi_app = timed("Flask: routing, hooks, limits, headers", app.wsgi_app)
    inner = app.wsgi_app

    def profiled(environ, start_response):
        if environ["PATH_INFO"] == "/__profile":
            with _lock:
                body = json.dumps({"pid": os.getpid(), "records": _records}).encode()
                if "reset=1" in environ.get("QUERY_STRING", ""):
                    _records.clear()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        _local.stack, _local.spent = [], {}
        try:
            return inner(environ, start_response)
        finally:
            spent = {name: tuple(value) for name, value in _local.spent.items()}
            _local.stack = None
            with _lock:
                _records[environ["PATH_INFO"]].append(spent)

    app.wsgi_app = profiled
