"""Every background thread the service starts, named and listed here, and started only through `start` and `pool`.

A process runs the threads of its role, `ROLES` (tests/processes/test_threads.py starts the `all` and `serve`
roles and checks that the threads of ours running are exactly these):

    all      learner, cnn-steps, recorder, checkpoint (and, while another process holds the learner's lease,
             snapshot-follower: it serves that learner's snapshots)
    serve    snapshot-follower, and database-listener on PostgreSQL
    learn    publisher, cnn-steps, recorder, checkpoint, and database-listener on PostgreSQL

Pools run one job after another beside the thread that submits them; a pool's threads are named `<name>_<i>` and
start with its first job (dataset-reads only for an export or a migration, and only while it runs). Libraries
run threads of their own (the rate limiter's timers): not listed here.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

THREADS = {
    "learner": "the `all` role's learner: follows the log, learns, publishes (learning.in_process)",
    "snapshot-follower": "takes the learner's newest snapshot from storage when told or polled (serving.following)",
    "database-listener": "hears PostgreSQL's notices of entries and snapshots, on the primary (state.connections)",
    "publisher": "writes a `learn` process's snapshots to storage while it goes on learning (learning.publisher)",
}
POOLS = {
    "cnn-steps": "the CNN's SGD steps, beside the FNN's on the learner's thread (learning.recipe)",
    "recorder": "a group's facts, written to the database while the models step (learning.applying)",
    "checkpoint": "serialises and writes checkpoints, off the learner's thread (learning.checkpoints)",
    "dataset-reads": "parallel reads of the store for an export or a migration (exports.dataset)",
}


ROLES = {
    "all": {"learner", "cnn-steps", "recorder", "checkpoint"},
    "serve": {"snapshot-follower"},
    "learn": {"publisher", "cnn-steps", "recorder", "checkpoint"},
}
NOTIFIED_ROLES = ("serve", "learn")  # ...which also run database-listener on PostgreSQL


def of_role(role: str, postgres: bool) -> set[str]:
    """The threads a leading process of `role` runs once it has learned and checkpointed (or served)."""
    return ROLES[role] | ({"database-listener"} if postgres and role in NOTIFIED_ROLES else set())


def start(name: str, target: Callable[..., None], *args: object) -> threading.Thread:
    """Start the daemon thread `name` (one of THREADS) running `target(*args)`."""
    if name not in THREADS:
        raise ValueError(f"{name!r} is not listed in livedigits.threads.THREADS")
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def pool(name: str, workers: int = 1) -> ThreadPoolExecutor:
    """A pool whose threads are named `<name>_<i>` (`name`: one of POOLS)."""
    if name not in POOLS:
        raise ValueError(f"{name!r} is not listed in livedigits.threads.POOLS")
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)


def listed(thread_name: str) -> str | None:
    """The listed name a running thread carries (`cnn-steps_0` -> `cnn-steps`), or None if it is not ours."""
    if thread_name in THREADS:
        return thread_name
    base, _, index = thread_name.rpartition("_")
    return base if base in POOLS and index.isdigit() else None


_ast_parse = ast.parse
_ast_lock = threading.RLock()


def _parse_one_at_a_time(*args, **kwargs):  # type: ignore[no-untyped-def]
    with _ast_lock:
        return _ast_parse(*args, **kwargs)


def serialise_ast_parse() -> None:
    """Let one thread at a time turn source into `ast` objects. CPython 3.11 keeps that conversion's recursion count
    per interpreter, not per call: when the collector hands the GIL over mid-parse and another thread parses, the
    first ends in `SystemError: AST constructor recursion depth mismatch`. numpy parses each .npy header it loads
    (the learner's and the follower's threads), werkzeug each route it binds, inspect and pytest their sources."""
    ast.parse = _parse_one_at_a_time
