"""Upgrade a store written before the database: its newest checkpoint carried every drawing's scores, kind,
label, the counts and the exclusions. Their facts move into the (empty) database once, at the checkpoint's
version, so the learner goes on from there with the same models and the same figures; the entries after it are
applied as usual."""

from __future__ import annotations

import json
import logging
from collections import deque

from livedigits.config import Config
from livedigits.state.database import Database
from livedigits.state.figures import Figures, save_point
from livedigits.state.journal import DRAWING_KINDS, Journal

logger = logging.getLogger(__name__)


def import_checkpoint(journal: Journal, db: Database, fingerprint: str, config: Config) -> int:
    """Move the newest usable old-style checkpoint's facts (one of originals `fingerprint`) into the learner's
    empty database `db`; its version (0 if the newest usable checkpoint is new-style, or there is none)."""
    for number in journal.checkpoints():
        try:
            state = json.loads(journal.read_checkpoint(number)["state.json"])
        except (ValueError, KeyError, TypeError):
            continue
        if state.get("fingerprint") != fingerprint or state.get("version") != number:
            continue
        if "scores" not in state:
            return 0
        rows = old_rows(journal, number, state)
        figures, window = Figures(config=config), deque(maxlen=config.recent_window)
        with db.transaction() as tx:
            for row in rows:  # as the learner would have recorded them (LogLearner._record_group)
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
        logger.info("moved the facts of %d drawings from checkpoint %d into %r", len(rows), number, db)
        return number
    return 0


def old_rows(journal: Journal, number: int, state: dict) -> list[dict]:
    """The database rows an old checkpoint's state describes. Before exclusions had a window, every exclusion
    rebuilt the models, so every excluded drawing was unlearned."""
    excluded = set(state.get("excluded", []))
    scores = {s["version"]: s for s in state["scores"]}
    drawings = state.get("drawings")
    if drawings is None:  # a checkpoint from before exclusions: what it counted is in the log
        drawings = []
        for n in range(1, number + 1):
            entry = journal.read(n)
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
