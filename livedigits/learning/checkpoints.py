"""Checkpoints: caches of the learner's state (weights, optimizer, replay memory, exclusions) written off the
learner's thread, restored at boot or takeover, and handed over when a learner stops."""

from __future__ import annotations

import json
import logging
import zipfile

from livedigits.learning.recipe import Learner
from livedigits.learning.reporting import HELDOUT
from livedigits.models.numpy_cnn import state_to_bytes
from livedigits.state import upgrade
from livedigits.state.figures import Figures
from livedigits.state.storage import StorageError

logger = logging.getLogger(__name__)

# What reading a damaged checkpoint raises: a bad zip, bad JSON, a missing file, arrays that do not load.
DAMAGED = (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile)


class Checkpointing:
    """The part of LogLearner (learning.log_learner) that writes and restores checkpoints."""

    def _schedule_checkpoint(self, standby: bool = False) -> None:
        """Snapshot under the lock (milliseconds); serialise and write in the background. `standby`: overwrite the
        standby checkpoint instead of adding a numbered one."""
        version = self.version
        if not standby:
            self.checkpointed = version
        fnn = self.learner.fnn.copy()
        cnn_config, cnn_state = self.learner.cnn.config, self.learner.cnn.get_state()
        memory = self.learner.memory_bytes()
        state = {
            "version": version,
            "fingerprint": self.fingerprint,
            "excluded": sorted(self.excluded),
            "unlearned": sorted(self.unlearned),
        }

        def write() -> None:
            files = {
                "fnn.npz": fnn.to_bytes(),
                "cnn.npz": state_to_bytes(cnn_config, *cnn_state),
                "memory.npz": memory,
                "state.json": json.dumps(state).encode(),
            }
            try:
                if standby:
                    self.journal.write_standby_checkpoint(files)
                else:
                    self.journal.write_checkpoint(version, files)
            except StorageError as error:
                logger.warning("checkpoint %d not written: %s", version, error)

        self._checkpointer.submit(write)

    def hand_over(self) -> None:
        """Before this learner stops (SIGTERM, or yielding the lease): a checkpoint at the current version, written,
        so the next learner starts exactly here instead of replaying from the last regular one."""
        with self._lock:
            if self.version > self.checkpointed:
                self._schedule_checkpoint()
        self.flush_checkpoints()

    def flush_checkpoints(self) -> None:
        """Wait for checkpoint writes in flight (tests and shutdown)."""
        self._checkpointer.submit(lambda: None).result()

    def close(self) -> None:
        """Idempotent: write what is in flight, then stop the checkpoint writer."""
        if self.closed:
            return
        self.closed = True
        self.flush_checkpoints()
        self._checkpointer.shutdown()

    def _load_checkpoint(
        self,
        learner: Learner,
        max_version: int | None = None,
        same_unlearned: bool = False,
        numbers: list[int] | None = None,
    ) -> tuple[int, dict] | None:
        """Load the newest readable checkpoint made from these originals (at most `max_version`) into
        `learner`; (its version, its state), or None with `learner` untouched. Damaged or foreign ones are skipped.

        With `same_unlearned` (a rebuild or a rollback under the current exclusions), a checkpoint counts only if
        the drawings it left out of the models are exactly the ones left out now among its entries: a checkpoint
        taken before a later exclusion of one of its drawings reflects that drawing, and is passed over. The states
        kept in memory (`_keep`) count as checkpoints too. `numbers` is the journal's listing, if already made."""
        kept = [(n, state, models) for n, state, models in self._kept if max_version is None or n <= max_version]
        kept = [
            k for k in kept if not same_unlearned or set(k[1]["unlearned"]) == {u for u in self.unlearned if u <= k[0]}
        ]
        best_kept = kept[-1] if kept else None
        for number in self.journal.checkpoints() if numbers is None else numbers:
            if best_kept is not None and number < best_kept[0]:
                break
            if max_version is not None and number > max_version:
                continue
            try:
                files = self.journal.read_checkpoint(number)
                state = json.loads(files["state.json"])
                # Before exclusions had a window, every excluded drawing was unlearned.
                theirs = set(state.get("unlearned", state.get("excluded", [])))
                same = not same_unlearned or theirs == {n for n in self.unlearned if n <= number}
                if state["fingerprint"] == self.fingerprint and state["version"] == number and same:
                    learner.load(files)
                    return number, state
            except DAMAGED as error:
                logger.warning("skipping checkpoint %d: %s", number, error)
        if best_kept is None:
            return None
        number, state, models = best_kept
        learner.fnn = models["fnn"].copy()
        learner.cnn.set_state(*models["cnn"])
        learner.memory.clear()
        learner.memory.extend(models["memory"])
        return number, {**state, "version": number}

    def _load_standby_checkpoint(self, numbers: list[int]) -> tuple[int, dict] | None:
        """The standby checkpoint, if it is newer than every numbered one (`numbers`, newest first) and usable:
        (version, state) loaded into the learner, or None with nothing changed."""
        try:
            files = self.journal.read_standby_checkpoint()
            state = json.loads(files["state.json"])
            number = state["version"]
            newest = next((n for n in numbers if n <= self.db_version), 0)
            if state["fingerprint"] != self.fingerprint or not newest < number <= self.db_version:
                return None
            self.learner.load(files)
        except KeyError:
            return None  # there is none (and a damaged one is passed over, like a numbered one)
        except DAMAGED as error:
            logger.warning("skipping the standby checkpoint: %s", error)
            return None
        return number, state

    def _restore(self) -> None:
        """Start from what the database has recorded and the newest usable checkpoint at or before it; the
        entries between them are replayed without recording them again. A database of another store or of other
        originals starts afresh, and an empty one takes the facts of a checkpoint written before the database
        existed (an upgrade), else it is filled by replaying the log from the start."""
        meta = self.db.meta()
        store = self.journal.store_id()
        if meta and (meta.get("fingerprint") != self.fingerprint or meta.get("store") != store):
            logger.warning("the database holds another store's or other originals' facts: starting it afresh")
            self.db.clear()
            meta = {}
        if not meta:
            with self.db.transaction() as tx:
                tx.set_meta("fingerprint", self.fingerprint)
                tx.set_meta("store", store)
                tx.set_meta("version", 0)
            upgrade.import_checkpoint(self.journal, self.db, self.fingerprint, self.config)
            meta = self.db.meta()
        self.db_version = meta.get("version", 0)
        self.figures = Figures.from_json(meta.get("figures"), self.db.history(), self.config)
        if self.figures.confusion is None:  # a database from before the matrices: count them (and more) once
            self.figures.confusion = self.db.count_from_every_row()
        self.heldout_curve = [p for p in meta.get(HELDOUT, []) if p["model_version"] <= self.db_version]
        numbers = self.journal.checkpoints()  # one listing for both kinds of checkpoint
        restored = self._load_standby_checkpoint(numbers) or self._load_checkpoint(
            self.learner, max_version=self.db_version, numbers=numbers
        )
        if restored is None:
            self.learner.take_models(self.original)
            self.learner.memory.clear()
        number, state = restored or (0, {})
        self.version = self.checkpointed = number
        self.excluded = set(state.get("excluded", []))
        self.unlearned = set(state.get("unlearned", self.excluded))
        self.handed = {n: handed for n, handed in self.handed.items() if n > number}
        self.digits = {n: digit for n, digit in self.digits.items() if n > number}
        self.groups = self.journal.groups_after(number)
        self.stale = False
        if number:
            logger.info("restored checkpoint %d (the database has recorded %d entries)", number, self.db_version)
