"""A store whose log runs far past anything learned: entries written straight into it, as a long tail after the
last checkpoint leaves it (a dyno that replays at boot, a learner that takes over), quickly and through the
project's own code (`Journal.store_drawing`, `Entry`, `Journal.write_group`), as bench/scale.py builds its stores."""

from __future__ import annotations

from pathlib import Path

from livedigits.config import ROOT
from livedigits.offline.canvas import canvas_of, to_data_url
from livedigits.pipeline.drawings import decode_drawing
from livedigits.state.journal import Entry, Journal, entry_key
from livedigits.state.mnist import load_split
from livedigits.state.storage import LocalStorage

MNIST = ROOT.parent / "shared" / "data" / "mnist"


def write_backlog(store: Path, entries: int, group: int = 1, drawings: int = 20) -> dict[int, int]:
    """Append `entries` train entries to the log of the local store `store` (its next numbers on), pointing at
    `drawings` MNIST digits stored as canvas PNGs; each run of `group` of them recorded as one group, as a crowd's
    labels are. Nothing is learned or recorded in the database: a learner applies them all. Returns
    {entry number: label}. Files are written without an fsync each: a test's store, not a user's."""
    journal = Journal(LocalStorage(store))
    images, labels = load_split(MNIST, "train")
    keys = [journal.store_drawing(decode_drawing(to_data_url(canvas_of(images[i])))[1]) for i in range(drawings)]
    first = journal.head_from(0) + 1
    (store / "log").mkdir(parents=True, exist_ok=True)
    written = {}
    for number in range(first, first + entries):
        i = number % drawings
        entry = Entry("train", int(labels[i]), keys[i], "api/train")
        (store / entry_key(number)).write_bytes(entry.to_bytes())
        written[number] = int(labels[i])
    for start in range(first, first + entries - group + 1, group) if group > 1 else ():
        journal.write_group(start, start + group - 1)
    return written
