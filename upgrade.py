"""Upgrade a store written before the database: its newest checkpoint carried every drawing's scores, kind,
label, the counts and the exclusions. Their facts move into the (empty) database once, at the checkpoint's
version, so the learner goes on from there with the same models and the same figures; the entries after it are
applied as usual."""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import TYPE_CHECKING

from journal import DRAWING_KINDS
from scores import RECENT, Figures

if TYPE_CHECKING:
    from learner import LogLearner

logger = logging.getLogger(__name__)


def import_checkpoint(learner: LogLearner) -> int:
    from learner import save_point

    """Move the newest usable old-style checkpoint's facts into the learner's empty database; its version (0 if
    the newest usable checkpoint is new-style, or there is none)."""
    for number in learner.journal.checkpoints():
        try:
            state = json.loads(learner.journal.read_checkpoint(number)["state.json"])
        except (ValueError, KeyError, TypeError):
            continue
        if state.get("fingerprint") != learner.fingerprint or state.get("version") != number:
            continue
        if "scores" not in state:
            return 0
        rows = old_rows(learner, number, state)
        figures, window = Figures(), deque(maxlen=RECENT)
        with learner.db.transaction() as tx:
            for row in rows:  # as the learner would have recorded them (learner.LogLearner._record_drawing)
                tx.insert_drawing(row)
                if not row["excluded"]:
                    figures.count(row, 1)
                if row["kind"] == "train" and row["scored"]:
                    if not row["excluded"]:
                        window.appendleft(row)
                    if figures.wants_point(row["number"]):
                        save_point(tx, figures, row["number"], list(window))
            tx.set_meta("figures", figures.to_json())
            tx.set_meta("version", number)
        logger.info("moved the facts of %d drawings from checkpoint %d into %r", len(rows), number, learner.db)
        return number
    return 0


def old_rows(learner: LogLearner, number: int, state: dict) -> list[dict]:
    """The database rows an old checkpoint's state describes. Before exclusions had a window, every exclusion
    rebuilt the models, so every excluded drawing was unlearned."""
    excluded = set(state.get("excluded", []))
    scores = {s["version"]: s for s in state["scores"]}
    drawings = state.get("drawings")
    if drawings is None:  # a checkpoint from before exclusions: what it counted is in the log
        drawings = []
        for n in range(1, number + 1):
            entry = learner.journal.read(n)
            if entry is not None and entry.kind in DRAWING_KINDS:
                drawings.append([n, entry.kind, entry.label])
    rows = []
    for n, kind, label in sorted(drawings):
        score = scores.get(n, {})
        facts = {"number": n, "kind": kind, "label": label, "excluded": n in excluded, "unlearned": n in excluded}
        rows.append(
            facts
            | {"source": score.get("source", ""), "created": score.get("created", 0.0), "scored": bool(score)}
            | {"predicted": score.get("predicted", {}), "probability": score.get("probability", {})}
        )
    return rows
