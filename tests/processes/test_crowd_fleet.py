"""A crowd over HTTP on PostgreSQL: sixteen clients train a serve process at once (the Procfile's web, ROLE=serve)
while the Procfile's learner learns. The labels that wait together are learned as groups (at most Config.max_group,
each recorded in the store), every label is learned exactly once, and the served models are the ones a replay of the
log in those groups gives, not the ones of one step per label. The learner's grouping in-process and on SQLite:
tests/unit/test_crowd.py."""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from drawings import canvas_of, to_data_url
from exported import export_weights
from server import Server, request, wait_for_learner

from livedigits.config import Config
from livedigits.learning.log_learner import LogLearner
from livedigits.state.database import Database
from livedigits.state.journal import GROUPS, Journal
from livedigits.state.storage import LocalStorage

# The fleet's database: the learner is told of each entry, and the web of each snapshot, by NOTIFY.
pytestmark = pytest.mark.postgres_only

CLIENTS, TRAINS_EACH = 16, 3
N = CLIENTS * TRAINS_EACH
TOKEN = "crowd-token"


@pytest.fixture(scope="module")
def digits(mnist_test) -> list[tuple[str, int]]:
    """N t10k digits as a browser sends them, with their labels."""
    images, labels = mnist_test
    return [(to_data_url(canvas_of(images[i])), int(labels[i])) for i in range(N)]


def admin_get(url: str) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})) as answer:
        assert answer.status == 200
        return answer.read()


def recorded_groups(store: Path) -> list[tuple[int, int]]:
    """(first, last) of each group the learner recorded in the store (groups/<first>-<last>)."""
    folder = store / GROUPS.rstrip("/")
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    return [(int(first), int(last)) for first, last in (name.split("-") for name in names)]


def replay(store: Path, folder: Path, leave_out: tuple[str, ...]) -> LogLearner:
    """A learner booting on a copy of the store without its checkpoints (and whatever else is left out): it replays
    every entry from the originals, in the recorded groups if the copy has them, else one by one."""
    shutil.copytree(store, folder, ignore=shutil.ignore_patterns("checkpoints", "standby", *leave_out))
    config = Config(storage_url=str(folder), database_url=f"sqlite:///{folder}.sqlite3", checkpoint_every=100_000)
    return LogLearner.open(config, Journal(LocalStorage(folder)), Database(config.database))


def weights_of(learner: LogLearner) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    return dict(learner.learner.fnn.params), learner.learner.cnn.model.get_weights()


def same(fnn: dict, cnn: list, other_fnn: dict, other_cnn: list) -> tuple[bool, bool]:
    """Whether the FNNs and whether the CNNs hold bit-identical weights (a replay repeats the learner exactly)."""
    same_fnn = all(np.array_equal(fnn[name], other_fnn[name]) for name in ("W1", "b1", "W2", "b2"))
    same_cnn = all(np.array_equal(a, b) for a, b in zip(cnn, other_cnn, strict=True))
    return same_fnn, same_cnn


def test_a_crowd_is_learned_in_groups_and_every_label_once(tmp_path, digits):
    store = tmp_path / "store"
    env = {"STORAGE_URL": str(store), "RATE_LIMITS": "off", "ADMIN_TOKEN": TOKEN}
    learner = Server(env, kind="worker")
    # 4 workers x 4 threads: all sixteen trains wait for the learner at once, as a crowd's do.
    web = Server({**env, "ROLE": "serve", "WEB_CONCURRENCY": "4", "TRAIN_WAIT": "30"})
    try:
        web.wait_healthy()
        wait_for_learner(web.url)
        start = threading.Barrier(CLIENTS)
        answers: dict[int, tuple[int, dict]] = {}

        def client(c: int) -> None:
            start.wait()
            for i in range(c * TRAINS_EACH, (c + 1) * TRAINS_EACH):
                image, label = digits[i]
                answers[i] = request(f"{web.url}/api/train", {"image": image, "label": label}, timeout=120)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == list(range(N)), "a client's train raised"
        assert {status for status, _ in answers.values()} <= {200, 202}, answers
        sent = {int(body["sample_id"]): digits[i][1] for i, (_, body) in answers.items()}
        assert sorted(sent) == list(range(1, N + 1))  # one entry per train, none lost, none twice
        for status, body in answers.values():
            assert status == 202 or body["model_version"] >= int(body["sample_id"]), body  # learned, if 200

        deadline, healths = time.monotonic() + 120, []  # every worker serves version N (each follows snapshots)
        while {health["model_version"] for health in healths} != {N}:
            assert time.monotonic() < deadline, healths
            time.sleep(0.2)
            healths = [request(f"{web.url}/healthz")[1] for _ in range(12)]
        assert all(health["behind"] == 0 and health["learner"] == "up_to_date" for health in healths), healths
        stats = request(f"{web.url}/api/stats")[1]
        review = json.loads(admin_get(f"{web.url}/api/review?limit={N + 10}"))
        export = admin_get(f"{web.url}/api/models/export")
    finally:
        web.kill(signal.SIGTERM)
        learner.kill(signal.SIGTERM)

    # Every label counted and scored once, as sent.
    assert stats["samples"]["total"] == N
    counts = Counter(sent.values())
    assert stats["samples"]["per_label"] == {str(digit): counts[digit] for digit in range(10)}
    assert {stats["accuracy"][m][v]["n_scored"] for m in ("fnn", "cnn") for v in ("original", "retrained")} == {N}
    assert review["total"] == N
    assert {int(s["sample_id"]): s["label"] for s in review["samples"]} == sent

    # Learned in groups: recorded, of at most max_group consecutive entries, none overlapping.
    groups = recorded_groups(store)
    sizes = [last - first + 1 for first, last in groups]
    assert groups and max(sizes) >= 2, f"a crowd of {CLIENTS} was learned one label at a time"
    assert max(sizes) <= Config.max_group and all(1 <= first <= last <= N for first, last in groups)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(groups)), groups

    # The served models are the log learned in those groups, each label once: a replay in the recorded groups
    # lands on them. One step per label would not: the FNN steps once per label either way, the CNN once per 4
    # of a group (tests/unit/test_learning.py).
    manifest, fnn, cnn = export_weights(export)
    assert manifest["model_version"] == N and manifest["users_drawings"]["learned"] == N
    grouped = replay(store, tmp_path / "grouped", ())
    singles = replay(store, tmp_path / "singles", ("groups",))
    try:
        assert grouped.version == singles.version == N
        assert same(fnn, cnn, *weights_of(grouped)) == (True, True)
        assert same(fnn, cnn, *weights_of(singles)) == (True, False)
    finally:
        for replayed in (grouped, singles):
            replayed.close()
            replayed.db.close()
