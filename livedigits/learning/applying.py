"""Applying entries: record what each drawing's entry says in the database (one transaction per step, each drawing
scored before it is learned), then step the models, and keep a state in memory every so many entries."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from livedigits import threads
from livedigits.learning.recipe import Learner
from livedigits.pipeline.drawings import stored_digit
from livedigits.state.figures import NAMES, Figures, save_point
from livedigits.state.journal import DRAWING_KINDS, Entry

logger = logging.getLogger(__name__)

RECORDER = threads.pool("recorder")  # a group's facts, written beside its step


class Applying:
    """The part of LogLearner (learning.log_learner) that applies entries."""

    def _apply(self, number: int, entry: Entry | None, png: bytes | None = None) -> None:
        """Apply entry `number`: record what it says in the database (unless the database has it already:
        a replay after a crash), then step the models, and advance the version.

        A damaged entry (None) is a no-op that still counts, so every process numbers alike.
        """
        record = number > self.db_version
        digit = None
        if entry is not None and entry.kind in DRAWING_KINDS:
            digit = self._digit(number, entry, png)
            if record:
                self._record_group(number, self._rows([(number, entry, digit)]))
        elif entry is not None and entry.kind in ("exclude", "restore"):
            self._change_exclusions(number, entry, record)
        elif record:
            self._record(number, lambda tx: None)
        self._advance(self.learner, number, entry, digit)
        self._stepped(number, 1)

    def _apply_group(self, group: list[tuple]) -> None:
        """Apply train entries first..last as one group: record the group (if this learner formed it), then every
        drawing's facts in one transaction, each scored by the models as they were before the step."""
        first, last = group[0][0], group[-1][0]
        digits = {n: self._digit(n, entry, png) if entry is not None else None for n, entry, png in group}
        recording = None
        if last > self.db_version:
            self.journal.write_group(first, last)  # before anything is recorded: a takeover follows it
            rows = self._rows([(n, entry, digits[n]) for n, entry, _ in group if entry is not None])
            # Written while the models step (the facts were scored before it): a DatabaseError reloads both.
            recording = RECORDER.submit(self._record_group, last, rows)
        try:
            self._learn_group(self.learner, [(n, entry, digits[n]) for n, entry, _ in group])
        finally:
            if recording is not None:
                recording.result()
        self.groups.pop(first, None)
        self._stepped(last, len(group))

    def _learn_group(self, learner: Learner, group: list[tuple]) -> None:
        """Learn a group's drawings [(number, entry, digit)], less the unlearned and unreadable ones."""
        drawings = [(n, digit, entry.label) for n, entry, digit in group
                    if entry is not None and digit is not None and n not in self.unlearned]  # fmt: skip
        if drawings:
            learner.learn(drawings)

    def _stepped(self, version: int, entries: int) -> None:
        """The learner is at `version`, `entries` further on: a checkpoint or a kept state when it crossed a
        multiple of checkpoint_every or keep_every (a group may step over one: it is taken at the group's end)."""
        before, self.version = self.version, version
        self.applied += entries
        if version // self.config.checkpoint_every > before // self.config.checkpoint_every:
            self._schedule_checkpoint()
        elif version // self.config.keep_every > before // self.config.keep_every:
            self._keep()
            if self.standby_waits():
                self._schedule_checkpoint(standby=True)

    def _keep(self) -> None:
        """A checkpoint in memory only (the same state a replay to this version makes; a cache like the others)."""
        models = {
            "fnn": self.learner.fnn.copy(),
            "cnn": self.learner.cnn.get_state(),
            "memory": list(self.learner.memory),
        }
        state = {"excluded": sorted(self.excluded), "unlearned": sorted(self.unlearned)}
        self._kept.append((self.version, state, models))

    def _record(self, number: int, change: Callable) -> None:
        """One transaction: `change(tx)`, the figures and the version the database reaches. If another learner
        on the same database (two `all` processes on one store) recorded entry `number` already, take its
        figures instead: both derive the same facts from the same log."""
        with self.db.transaction() as tx:
            recorded = tx.lock_facts()
            if recorded >= number:
                self.figures = Figures.from_json(tx.meta_value("figures"), tx.history(), self.config)
                self.db_version = recorded
                return
            change(tx)
            tx.set_meta("figures", self.figures.to_json())
            tx.set_meta("version", number)
        self.db_version = number

    def _record_group(self, last: int, rows: list[dict]) -> None:
        """The facts of the drawings of entries up to `last` (one, or a group's), in one transaction."""

        def change(tx) -> None:
            for row in rows:
                tx.insert_drawing(row)
                self.figures.count(row, 1)
                if row["kind"] == "train" and row["scored"] and self.figures.wants_point(row["number"]):
                    save_point(
                        tx, self.figures, row["number"], tx.learned_before(row["number"], self.config.recent_window)
                    )

        self._record(last, change)

    def _rows(self, drawings: list[tuple[int, Entry, np.ndarray | None]]) -> list[dict]:
        """The facts of the drawings of one step [(number, entry, digit)], with what each model said of them before
        it: all scored in one batch (a replay scores the same step's drawings alike, so it finds the same)."""
        rows = [{"number": n, "kind": entry.kind, "label": entry.label, "source": entry.source,
                 "created": entry.created, "excluded": False, "unlearned": False, "scored": digit is not None,
                 "predicted": {}, "probability": {}} for n, entry, digit in drawings]  # fmt: skip
        scored = [(row, digit) for row, (_, _, digit) in zip(rows, drawings, strict=True) if digit is not None]
        if scored:
            probs = self._probabilities(np.stack([digit for _, digit in scored]))
            for i, (row, _) in enumerate(scored):
                row["predicted"] = {name: int(probs[name][i].argmax()) for name in NAMES}
                row["probability"] = {name: float(probs[name][i][row["label"]]) for name in NAMES}
        return rows

    def _digit(self, number: int, entry: Entry, png: bytes | None) -> np.ndarray | None:
        """Entry `number`'s digit: as handed over with it (`digit_from_png` of its stored PNG is that exactly), or
        decoded from the PNG."""
        digit = self.digits.pop(number, None)
        return digit if digit is not None else self._load_digit(entry, png)

    def _load_digit(self, entry: Entry, png: bytes | None = None) -> np.ndarray | None:
        return stored_digit(png if png is not None else self.journal.drawing(entry))

    def _advance(self, learner: Learner, number: int, entry: Entry | None, digit: np.ndarray | None = None) -> None:
        """Apply entry `number` to `learner` in place: the learning part only."""
        if entry is None or entry.kind == "collect":
            return
        if entry.kind == "reset":
            learner.take_models(self.original)
        elif entry.kind == "rollback":
            if entry.target is not None and 0 <= entry.target < number:
                self._rewind(learner, entry.target)
        elif entry.kind == "train" and number not in self.unlearned:
            digit = digit if digit is not None else self._load_digit(entry)
            if digit is not None:
                learner.learn([(number, digit, entry.label)])
