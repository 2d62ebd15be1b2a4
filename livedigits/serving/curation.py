"""The operator's and the authors' changes to what the models learned from: reset, roll back, exclude and
restore drawings, and undo one's own. Each is one log entry, so every process agrees on it. Each waits for the
learner as a train does (serving.waiting), and if the learner is busy or catching up it is answered "pending": the
entry is durable, and /healthz's model_version reaches its number once it is applied."""

from __future__ import annotations

import time

from livedigits.errors import InputError
from livedigits.state import undo
from livedigits.state.journal import DRAWING_KINDS, MAX_SAMPLES_PER_ENTRY, Entry


class Curating:
    """The part of the Server (serving.server) that appends curation entries and waits for the learner."""

    def reset(self, source: str = "admin") -> dict:
        """Make the retrained models the originals again, for every process: {"model_version": the entry's number,
        "status": "applied" or "pending"}."""
        return self._append_and_wait(Entry("reset", source=source), time.monotonic())

    def rollback(self, target: int, source: str = "admin") -> dict:
        """Make the retrained models what they were at version `target`, for every process (as `reset` answers)."""
        arrived = time.monotonic()
        self.refresh_head()
        head = max(self._head, self.snapshot.version)
        if not 0 <= target < head:
            raise InputError("invalid_version", f"Roll back to a version from 0 to {head - 1}.")
        return self._append_and_wait(Entry("rollback", source=source, target=target), arrived)

    def exclude(self, numbers: list[int], source: str = "admin") -> dict:
        """Take drawings out of the models, counts, accuracy figures and export, for every process: one log
        entry for the whole list. Idempotent: drawings already out are reported `unchanged`, and a request
        that changes nothing writes nothing."""
        return self._change_exclusions("exclude", numbers, source)

    def restore(self, numbers: list[int], source: str = "admin") -> dict:
        """Bring excluded drawings back, the same way as `exclude` takes them out."""
        return self._change_exclusions("restore", numbers, source)

    def _change_exclusions(self, kind: str, numbers: list[int], source: str) -> dict:
        arrived = time.monotonic()
        rows = self.check_drawings(numbers)
        excluded = {n for n, row in rows.items() if row["excluded"]}
        changed = sorted({n for n in numbers if (n in excluded) == (kind == "restore")})
        unchanged = sorted(set(numbers) - set(changed))
        status, version = "unchanged", self.snapshot.version
        if changed:
            version = self.append(Entry(kind, source=source, samples=changed))
            applied = self.wait_learned(version, arrived, self.config.train_wait_seconds) is not None
            status = "applied" if applied else "pending"
        done = "excluded" if kind == "exclude" else "restored"
        return {
            done: [f"{n:010d}" for n in changed],
            "unchanged": [f"{n:010d}" for n in unchanged],
            "status": status,
            "model_version": version,
        }

    def check_drawings(self, numbers: list[int]) -> dict[int, dict]:
        """The database's rows of these drawings; InputError unless every number names a drawing in the log
        (404 for none there, 422 for another kind). A drawing the learner has not recorded yet has no row."""
        if not 0 < len(numbers) <= MAX_SAMPLES_PER_ENTRY:
            raise InputError("invalid_sample_ids", f"Send from 1 to {MAX_SAMPLES_PER_ENTRY} sample ids.")
        rows = self.db.drawings(sorted(set(numbers)))
        missing, not_drawings = [], []
        for number in sorted(set(numbers) - set(rows)):
            entry = self.journal.read(number)
            if entry is None:
                missing.append(number)
            elif entry.kind not in DRAWING_KINDS:
                not_drawings.append(number)
        if missing:
            listed = ", ".join(f"{n:010d}" for n in missing)
            raise InputError("not_found", f"There is no drawing {listed}; nothing was changed.", 404)
        if not_drawings:
            listed = ", ".join(f"{n:010d}" for n in not_drawings)
            raise InputError("not_a_drawing", f"Entry {listed} is not a drawing; nothing was changed.", 422)
        return rows

    def undo_token(self, number: int) -> str:
        """A capability to take back drawing `number` within Config.undo_seconds."""
        return undo.issue(self._key(), number, self.config.undo_seconds)

    def undo(self, token: object) -> dict:
        """Exclude the drawing a genuine, unexpired, unused undo token names."""
        number = undo.verify(self._key(), token, self.config.undo_seconds)
        self.db.check()  # a token is used up only if the exclusion it asks for can be recorded
        undo.use_once(self.journal.storage, number)
        return self.exclude([number], source="undo")

    def _key(self) -> bytes:
        if self._undo_key is None:
            self._undo_key = undo.undo_key(self.journal.storage, self.config.undo_secret)
        return self._undo_key

    def _append_and_wait(self, entry: Entry, arrived: float) -> dict:
        self.db.check()
        number = self.append(entry)
        applied = self.wait_learned(number, arrived, self.config.train_wait_seconds) is not None
        return {"model_version": number, "status": "applied" if applied else "pending"}
