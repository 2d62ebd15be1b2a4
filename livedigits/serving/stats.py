"""GET /api/stats, built in one place from the served snapshot (the figures the learner published with it) and
the shipped originals' figures."""

from __future__ import annotations

from collections.abc import Callable

from livedigits.serving.server import Server
from livedigits.state.figures import MODELS, NAMES, VARIANTS, empty_matrix
from livedigits.state.snapshot import Snapshot


def build_stats(
    server: Server, snapshot: Snapshot | None = None, image_url: Callable[[str], str] | None = None
) -> dict:
    """Samples per label; each model's accuracy on the held-out slice of t10k (the retrained ones as the learner
    last measured them, at `t10k_version`) and on users' drawings, per label too; the accuracy histories by
    model version, on users' drawings and held-out digits; confusion matrices (the originals on t10k, all four
    on users' drawings); the latest drawings original and retrained answered differently (with `image_url` of
    each, when given); and flags for retrained models doing worse than their originals. Of the served snapshot,
    or of `snapshot`."""
    snapshot = snapshot or server.snapshot
    stats, metrics = snapshot.stats, server.metrics
    t10k = metrics.get("models", {})  # the originals on all of t10k: their confusion matrices
    originals = metrics.get("heldout", {}).get("accuracy", {})  # ...and on the shipped slice
    curve = stats.get("heldout", {}).get("history", [])
    latest = curve[-1] if curve else {}
    accuracy = {m: {v: dict(stats["accuracy"][m][v]) for v in VARIANTS} for m in MODELS}
    for m in MODELS:
        accuracy[m]["original"]["t10k"] = originals.get(m)
        accuracy[m]["retrained"]["t10k"] = latest.get(m)
        accuracy[m]["retrained"]["t10k_version"] = latest.get("model_version")
    disagreements = [dict(d) for d in stats.get("differing", [])]
    if image_url is not None:
        for drawing in disagreements:
            drawing["image_url"] = image_url(drawing["sample_id"])
    return {
        "model_version": snapshot.version,
        **server.learning(),
        "samples": stats["samples"],
        "accuracy": accuracy,
        "degraded": stats["degraded"],
        "history": stats["history"],
        "heldout": {"n": metrics.get("heldout", {}).get("n_samples", 0), "history": curve},
        "confusion": {m: t10k.get(m, {}).get("confusion_matrix") for m in MODELS},
        "users_confusion": stats.get("confusion") or {n: empty_matrix() for n in NAMES},
        "disagreements": disagreements,
    }
