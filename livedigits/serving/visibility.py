"""Who may see a stored drawing's image.

A drawing is public when the learner has recorded it (it has a row in the database's `drawings` table: it is
scored, and in the review queue, where the operator sees it and can exclude it) and it is not excluded. Taking back
one's own drawing (`/api/undo`) excludes it, so an undone drawing is never public either. These are exactly the
drawings the models page can list (`Database.recent`, `Database.differing`): a link the public was given works,
and no other.

Everything else is private, shown only to the operator: excluded and undone drawings, and drawings stored but not
yet recorded by the learner (acknowledged, maybe answered 202 "pending"). The service has no moderation state of
its own; a drawing not yet recorded is the one awaiting review, in that no one has had the chance to see it in
the queue, or to take it back, yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from livedigits.serving.server import Server
from livedigits.state.journal import DRAWING_KINDS


@dataclass(frozen=True)
class Visible:
    """A drawing the asker may see: `public` for anyone; `tag` names its bytes (an entry never changes: its
    number and its creation time tell it apart from another store's entry of that number)."""

    public: bool
    tag: str


def visible_drawing(server: Server, number: int, operator: bool) -> Visible | None:
    """Drawing `number` if the asker may see it (the operator: whatever it is), else None. One indexed read of the
    database; storage is not asked. An entry beyond the log that this process knows of is None even for the
    operator (it has no drawing yet, and a store need not be asked about it)."""
    row = server.db.drawings([number]).get(number)
    if row is not None and row["kind"] in DRAWING_KINDS and not row["excluded"]:
        return Visible(True, f"{number}-{row['created']!r}")
    if not operator or number > server.learning()["log_version"]:
        return None
    return Visible(False, str(number))
