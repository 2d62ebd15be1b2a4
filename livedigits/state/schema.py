"""The database's tables, as both dialects (SQLite and PostgreSQL) share them, and how a row reads and writes."""

from __future__ import annotations

from livedigits.state.figures import MODELS, NAMES

COLUMNS = {name: name.replace(".", "_") for name in NAMES}  # "fnn.original" -> fnn_original
# Drawings on which an original and its retrained model answered differently, before learning them (the models
# page's gallery). Their numbers are kept in a table of their own, so the latest dozen are a dozen rows read
# backwards by its key: a partial index was left unused by both planners (a sort of every such row instead).
DIFFERS = "scored = 1 AND is_excluded = 0 AND ({})".format(
    " OR ".join(f"d_{m}_original <> d_{m}_retrained" for m in MODELS)
)
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS drawings (
        number BIGINT PRIMARY KEY, kind TEXT NOT NULL, label INTEGER NOT NULL, source TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL, is_excluded INTEGER NOT NULL DEFAULT 0,
        is_unlearned INTEGER NOT NULL DEFAULT 0, scored INTEGER NOT NULL DEFAULT 0,
        disagreeing INTEGER NOT NULL DEFAULT 0, rank DOUBLE PRECISION NOT NULL DEFAULT 1,
        {", ".join(f"d_{c} INTEGER, p_{c} DOUBLE PRECISION" for c in COLUMNS.values())})""",
    # The review queue's order (see scores.Score.suspicion), filtered by nothing, by label or by source.
    "CREATE INDEX IF NOT EXISTS queue ON drawings (scored, is_excluded, disagreeing DESC, rank, number)",
    "CREATE INDEX IF NOT EXISTS queue_label ON drawings (scored, is_excluded, label, disagreeing DESC, rank, number)",
    "CREATE INDEX IF NOT EXISTS queue_source ON drawings (scored, is_excluded, source, disagreeing DESC, rank, number)",
    "CREATE TABLE IF NOT EXISTS differing_drawings (number BIGINT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS history (version BIGINT PRIMARY KEY, point TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS counts (is_excluded INTEGER NOT NULL, label INTEGER NOT NULL, source TEXT NOT NULL,
        n BIGINT NOT NULL, PRIMARY KEY (is_excluded, label, source))""",
]
ROW = "number, kind, label, source, created, is_excluded, is_unlearned, scored, " + ", ".join(
    f"d_{c}, p_{c}" for c in COLUMNS.values()
)


Row = dict  # one drawing's facts: number, kind, label, source, created, excluded, unlearned, scored, predicted, ...


def to_row(values: tuple) -> Row:
    number, kind, label, source, created, excluded, unlearned, scored, *scores = values
    predicted = {name: scores[2 * i] for i, name in enumerate(NAMES)} if scored else {}
    probability = {name: scores[2 * i + 1] for i, name in enumerate(NAMES)} if scored else {}
    return dict(
        number=number, kind=kind, label=label, source=source, created=created, excluded=bool(excluded),
        unlearned=bool(unlearned), scored=bool(scored), predicted=predicted, probability=probability,
    )  # fmt: skip


def score_values(row: dict) -> list:
    """The d_*, p_* columns' values, in COLUMNS' order."""
    return [value for name in NAMES for value in (row["predicted"].get(name), row["probability"].get(name))]
