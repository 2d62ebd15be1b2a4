"""Exclusions, restores and rollbacks: the models rebuilt as if the log had never held the excluded drawings
(within Config.exact_window), re-scored, and the history redrawn; or rewound to an earlier version."""

from __future__ import annotations

import logging

from livedigits.learning.recipe import Learner
from livedigits.state.figures import point
from livedigits.state.journal import DRAWING_KINDS, Entry, exclusion_changes

logger = logging.getLogger(__name__)


class Rebuilding:
    """The part of LogLearner (learning.log_learner) that rebuilds and rewinds."""

    def _change_exclusions(self, number: int, entry: Entry, record: bool) -> None:
        """Apply exclude (restore) entry `number`: its drawings leave (rejoin) the counts, figures and queue at
        once. Those at most config.exact_window entries back also leave (rejoin) the models, which are rebuilt as if
        the log had never held (always held) them: from the newest checkpoint before the earliest one,
        replaying the rest, re-scoring as it goes."""
        rows = self.db.drawings(sorted({n for n in entry.samples or [] if n < number}))
        changed = exclusion_changes(self.excluded, number, entry, rows)
        restoring = entry.kind == "restore"
        exact = [n for n in changed if number - n <= self.config.exact_window and (n in self.unlearned) == restoring]
        self.excluded.symmetric_difference_update(changed)
        self.unlearned.symmetric_difference_update(exact)
        trained = [n for n in exact if rows[n]["kind"] == "train"]
        rescored = self._rebuild(min(trained), number - 1) if trained else {}
        if not record or not changed:
            if record:
                self._record(number, lambda tx: None)
            return

        def change(tx) -> None:
            for n in changed:
                row = rows[n]
                tx.set_flags(row, n in self.excluded, n in self.unlearned)
                self.figures.count(row, -1 if n in self.excluded else 1)
            before = tx.drawings(sorted(rescored))
            for n, row in rescored.items():
                if row["kind"] == "train" and row["scored"] and n not in self.excluded:
                    self.figures.count(before[n], -1)
                    self.figures.count(row, 1)
                tx.set_scores(n, row)
            self._redraw_history(tx, min(changed), number - 1 if rescored else max(changed))

        self._record(number, change)

    def _redraw_history(self, tx, first: int, last: int) -> None:
        """Recompute the history points whose window may hold a drawing from `first` to `last`."""
        for i, old in enumerate(self.figures.history):
            if old["model_version"] < first:
                continue
            window = tx.learned_before(old["model_version"], self.config.recent_window)
            self.figures.history[i] = point(old["model_version"], window)
            tx.save_point(self.figures.history[i])
            if len(window) == self.config.recent_window and window[-1]["number"] > last:
                break

    def _rebuild(self, first: int, last: int) -> dict[int, dict]:
        """Redo entries first..last under the current exclusions; the drawings from `first` on, re-scored."""
        restored = self._load_checkpoint(self.learner, max_version=first - 1, same_unlearned=True)
        if restored is None:
            self.learner.take_models(self.original)
            self.learner.memory.clear()
        start = 0 if restored is None else restored[0]
        return self._replay(self.learner, start, last, score_from=first)

    def _rewind(self, learner: Learner, target: int) -> None:
        """Make `learner` what entries 1..target made it: the newest checkpoint up to `target`, then replay.
        In place and from scratch each time, so a retry after a storage error lands on the same state."""
        restored = self._load_checkpoint(learner, max_version=target, same_unlearned=True)
        if restored is None:
            learner.take_models(self.original)
            learner.memory.clear()
        start = 0 if restored is None else restored[0]
        self._replay(learner, start, target)

    def _replay(self, learner: Learner, start: int, end: int, score_from: int | None = None) -> dict[int, dict]:
        """Redo entries start+1..end on `learner` as they were learned: the recorded groups as groups (a
        group is cut at `end`: a rollback to within it). With `score_from`, the drawings from there on, re-scored
        (by this learner's models, before the step that learns them)."""
        groups = self.journal.groups_after(start)
        rescored = {}
        number = start + 1
        while number <= end:
            last = min(groups.get(number, number), end)
            items = []
            for n in range(number, last + 1):
                entry = self.journal.read(n)
                digit = self._load_digit(entry) if entry is not None and entry.kind in DRAWING_KINDS else None
                items.append((n, entry, digit))
            if score_from is not None and last >= score_from:  # the whole step's drawings, as when it was taken
                drawn = [(n, entry, digit) for n, entry, digit in items if digit is not None]
                rescored |= {row["number"]: row for row in self._rows(drawn) if row["number"] >= score_from}
            if last > number:
                self._learn_group(learner, items)
            else:
                self._advance(learner, number, *items[0][1:])
            number = last + 1
        return rescored
