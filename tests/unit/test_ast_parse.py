"""One thread at a time turns source into `ast` objects (livedigits.threads.serialise_ast_parse): CPython 3.11's
conversion keeps one recursion count per interpreter, and two threads parsing at once end one of them in
`SystemError: AST constructor recursion depth mismatch` (numpy parses every .npy header it loads)."""

from __future__ import annotations

import ast
import io
import threading
import time

import numpy as np

import livedigits  # noqa: F401  (importing the package serialises ast.parse)
from livedigits import threads


def test_numpy_headers_and_routes_parse_through_the_lock():
    assert ast.parse is threads._parse_one_at_a_time
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    held = threading.Event()
    loaded: list[np.ndarray] = []

    def load() -> None:
        held.wait()
        buffer.seek(0)
        loaded.append(np.load(buffer))  # its header goes through ast.literal_eval, hence ast.parse

    loader = threading.Thread(target=load)
    with threads._ast_lock:
        loader.start()
        held.set()
        loader.join(0.3)
        assert loader.is_alive() and not loaded  # waits while another thread parses
    loader.join(5)
    assert loaded[0].tolist() == [0, 1, 2]


def test_two_threads_never_parse_at_once(monkeypatch):
    inside, most = [0], [0]
    original = threads._ast_parse

    def slow_parse(*args, **kwargs):  # type: ignore[no-untyped-def]
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.01)  # hands the GIL over, as the collector can mid-parse
        inside[0] -= 1
        return original(*args, **kwargs)

    monkeypatch.setattr(threads, "_ast_parse", slow_parse)
    workers = [threading.Thread(target=lambda: [ast.parse("x = (1, [2])") for _ in range(10)]) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert most[0] == 1
