"""One transaction of the learner: what it records of a step (a drawing's facts, the counts, the history, the
meta values), all or nothing."""

from __future__ import annotations

import json

from livedigits.state.figures import NAMES, disagreeing, rank
from livedigits.state.schema import COLUMNS, DIFFERS, ROW, Row, score_values, to_row


class Transaction:
    """A cursor that takes `?` placeholders on either database."""

    def __init__(self, cursor, mark: str):
        self.cursor = cursor
        self.mark = mark

    def execute(self, sql: str, params: tuple = ()):
        if self.mark != "?":
            sql = sql.replace("%", "%%").replace("?", self.mark)  # psycopg reads % as a placeholder
        self.cursor.execute(sql, params)
        return self.cursor

    def drawings(self, numbers: list[int]) -> dict[int, Row]:
        rows: dict[int, Row] = {}
        for start in range(0, len(numbers), 500):
            chunk = tuple(numbers[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for values in self.execute(f"SELECT {ROW} FROM drawings WHERE number IN ({marks})", chunk).fetchall():
                rows[values[0]] = to_row(values)
        return rows

    def learned_before(self, number: int, limit: int) -> list[Row]:
        """The latest scored, learned (train, not excluded) drawings up to `number`, newest first: the windows
        of the recent accuracy and of its history."""
        # `+`: not the queue's indexes (a sort of every learned drawing) but the primary key, read backwards.
        rows = self.execute(
            f"SELECT {ROW} FROM drawings WHERE number <= ? AND kind = 'train' AND +scored = 1 AND +is_excluded = 0 "
            "ORDER BY number DESC LIMIT ?",
            (number, limit),
        ).fetchall()
        return [to_row(values) for values in rows]

    def meta_value(self, key: str) -> object:
        rows = self.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()
        return json.loads(rows[0][0]) if rows else None

    def lock_facts(self) -> int:
        """Hold the learners' write lock until the transaction ends (SQLite's BEGIN IMMEDIATE holds it
        already); the version the database has recorded."""
        if self.mark != "?":
            self.execute("SELECT pg_advisory_xact_lock(20261202)")
        return int(self.meta_value("version") or 0)

    def history(self) -> list[dict]:
        return [json.loads(p) for (p,) in self.execute("SELECT point FROM history ORDER BY version").fetchall()]

    def save_point(self, point: dict) -> None:
        self.execute(
            "INSERT INTO history (version, point) VALUES (?, ?) "
            "ON CONFLICT (version) DO UPDATE SET point = excluded.point",
            (point["model_version"], json.dumps(point, separators=(",", ":"))),
        )

    def thin_history(self, stride: int) -> None:
        self.execute("DELETE FROM history WHERE version % ? != 0", (stride,))

    def set_meta(self, key: str, value: object) -> None:
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, separators=(",", ":"))),
        )

    def insert_drawing(self, row: dict) -> None:
        """A drawing as the learner first applies it (never excluded yet)."""
        marks = ",".join("?" * (10 + 2 * len(NAMES)))
        self.execute(
            f"INSERT INTO drawings ({ROW}, disagreeing, rank) VALUES ({marks})",
            (row["number"], row["kind"], row["label"], row["source"], row["created"], int(row["excluded"]),
             int(row["unlearned"]), int(row["scored"]), *score_values(row), disagreeing(row), rank(row)),
        )  # fmt: skip
        if row["scored"]:
            self.count(row["excluded"], row["label"], row["source"], 1)
        self.sync_differing(row["number"])

    def sync_differing(self, number: int) -> None:
        """Drawing `number` in the differing drawings or not, as its row now says."""
        self.execute("DELETE FROM differing_drawings WHERE number = ?", (number,))
        self.execute(
            f"INSERT INTO differing_drawings SELECT number FROM drawings WHERE number = ? AND {DIFFERS}", (number,)
        )

    def count(self, excluded: bool, label: int, source: str, change: int) -> None:
        self.execute(
            "INSERT INTO counts (is_excluded, label, source, n) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (is_excluded, label, source) DO UPDATE SET n = counts.n + excluded.n",
            (int(excluded), label, source, change),
        )

    def set_flags(self, row: Row, excluded: bool, unlearned: bool) -> None:
        self.execute("UPDATE drawings SET is_excluded = ?, is_unlearned = ? WHERE number = ?",
                     (int(excluded), int(unlearned), row["number"]))  # fmt: skip
        if row["scored"] and excluded != row["excluded"]:
            self.count(row["excluded"], row["label"], row["source"], -1)
            self.count(excluded, row["label"], row["source"], 1)
        self.sync_differing(row["number"])

    def set_scores(self, number: int, row: dict) -> None:
        assignments = ", ".join(f"d_{c} = ?, p_{c} = ?" for c in COLUMNS.values())
        self.execute(f"UPDATE drawings SET {assignments}, disagreeing = ?, rank = ? WHERE number = ?",
                     (*score_values(row), disagreeing(row), rank(row), number))  # fmt: skip
        self.sync_differing(number)
