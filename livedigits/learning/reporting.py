"""What the learner reports: the retrained models' accuracy on the held-out slice, scored in the background, and
the serving snapshot (weights and fixed-size figures) servers answer from."""

from __future__ import annotations

import logging
import time

from livedigits.models.fnn import FNN
from livedigits.models.numpy_cnn import NumpyCNN
from livedigits.state import heldout
from livedigits.state.database import DatabaseError
from livedigits.state.snapshot import Snapshot

logger = logging.getLogger(__name__)

HELDOUT = "heldout"  # meta key: the retrained models' held-out accuracy over versions (heldout.add_point)


class Reporting:
    """The part of LogLearner (learning.log_learner) that scores the held-out slice and makes snapshots."""

    def heldout_due(self, idle_seconds: float) -> bool:
        """Whether to score the held-out slice now: never scored, heldout_every_versions versions since it was, or
        the version moved and nothing came for heldout_idle_seconds (a calm stream still gets a fresh figure)."""
        if self.heldout is None:
            return False
        if not self.heldout_curve:
            return True
        last = heldout.measured_at(self.heldout_curve)
        return last != self.version and (
            self.version - last >= self.config.heldout_every_versions
            or idle_seconds >= self.config.heldout_idle_seconds
        )

    def score_heldout(self) -> None:
        """Score both retrained models on the held-out slice at the current version (~0.45 s) and record it."""
        with self._lock:
            point = {
                "model_version": self.version,
                **self.heldout.score(self.learner.models, self.config.heldout_batch),
            }
            self.heldout_curve = heldout.add_point(self.heldout_curve, point, self.config.heldout_points)
            try:
                with self.db.transaction() as tx:
                    tx.set_meta(HELDOUT, self.heldout_curve)
            except DatabaseError as error:
                logger.warning("held-out accuracy at version %d not recorded: %s", self.version, error)
        logger.info(
            "held-out accuracy at version %d: FNN %.4f, CNN %.4f", point["model_version"], point["fnn"], point["cnn"]
        )

    def snapshot(self) -> Snapshot:
        """What servers need to answer as this learner would: the retrained models' weights and a few figures
        of a fixed size (the last ones made, if the database does not answer)."""
        with self._lock:
            try:
                stats = self.figures.summary(self.db.learned_before(self.db_version, self.config.recent_window))
                stats["differing"] = [
                    {"sample_id": f"{r['number']:010d}", "label": r["label"], "created": r["created"],
                     "predicted": r["predicted"]}
                    for r in self.db.differing(self.config.differing_samples)
                ]  # fmt: skip
                recent = [
                    {
                        "sample_id": f"{r['number']:010d}",
                        "label": r["label"],
                        "kind": r["kind"],
                        "created": r["created"],
                    }
                    for r in self.db.recent(self.config.recent_samples)
                ]
                self._published = (stats, recent)
            except DatabaseError as error:
                logger.warning("snapshot with the last figures: %s", error)
            stats, recent = self._published
            stats = {
                **stats,
                "heldout": {"history": heldout.published(self.heldout_curve, self.config.heldout_published_points)},
            }
            return Snapshot(
                version=self.version,
                originals=self.originals,
                fnn=FNN(self.learner.fnn.config, {k: v.copy() for k, v in self.learner.fnn.params.items()}),
                cnn=NumpyCNN(self.learner.cnn.model.get_weights()),
                stats=stats,
                recent=recent,
                published_at=time.time(),
                learner={"applied": self.applied, "booted_at": self.booted_at, "checked_at": self.checked_at},
            )
