"""The append-only log of labelled drawings, and checkpoints of the models derived from it.

Layout in a store (the same for a folder and a bucket):
    drawings/<time>-<id>.png      one image per drawing, written before its entry
    log/<n:010d>.json             entry n: kind, label, image key, time, source, strokes
    checkpoints/<n:010d>.zip      retrained models and stats after applying entries 1..n
    groups/<n:010d>-<m:010d>      entries n..m were learned in one step (a crowd: livedigits/learning/), empty

An entry is claimed with a create-only write; a writer that loses the race for n tries n+1.
A drawing whose entry was never written (a crash in between) was never acknowledged.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
import zipfile
from collections.abc import Container
from dataclasses import asdict, dataclass, field

from livedigits.state.storage import Storage

LOG = "log/"
DRAWINGS = "drawings/"
CHECKPOINTS = "checkpoints/"
GROUPS = "groups/"
# While a standby learner waits, the leader overwrites this one every Config.keep_every entries: a crash then
# costs the standby at most that many entries of replay, and the bucket does not grow. Not a numbered checkpoint.
STANDBY_CHECKPOINT = "standby/checkpoint.zip"
STORE_ID = "meta/store-id"
KINDS = ("train", "collect", "reset", "rollback", "exclude", "restore")
DRAWING_KINDS = ("train", "collect")
MAX_SAMPLES_PER_ENTRY = 1000  # one exclude/restore entry names at most this many drawings


def entry_key(number: int) -> str:
    return f"{LOG}{number:010d}.json"


def checkpoint_key(number: int) -> str:
    return f"{CHECKPOINTS}{number:010d}.zip"


def group_key(first: int, last: int) -> str:
    return f"{GROUPS}{first:010d}-{last:010d}"


def zip_files(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def number_of(key: str) -> int | None:
    """The entry or checkpoint number in a key, or None for a key that is not ours (`log/5.json.tmp`, say)."""
    match = re.fullmatch(r"(\d+)\.(json|zip)", key.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Entry:
    # "train": learn from the drawing; "collect": store only; "reset": retrained := original;
    # "rollback": retrained := as it was at version `target`;
    # "exclude"/"restore": the drawings numbered `samples` leave (come back to) the models, counts and export
    kind: str
    label: int | None = None
    image: str | None = None
    source: str = ""
    created: float = field(default_factory=time.time)
    strokes: list | None = None
    target: int | None = None
    samples: list[int] | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Entry:
        """Parse an entry; ValueError if it is not one (a foreign or damaged file)."""
        try:
            fields = json.loads(data)
            entry = cls(
                **{
                    k: fields[k]
                    for k in ("kind", "label", "image", "source", "created", "strokes", "target", "samples")
                    if k in fields
                }
            )
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as error:
            raise ValueError(f"not a log entry: {error}") from None
        if entry.kind not in KINDS or (
            entry.kind in ("train", "collect") and not (isinstance(entry.label, int) and 0 <= entry.label <= 9)
        ):
            raise ValueError("not a log entry: bad kind or label")
        if entry.kind == "rollback" and not (isinstance(entry.target, int) and entry.target >= 0):
            raise ValueError("not a log entry: bad rollback target")
        if entry.kind in ("exclude", "restore") and not (
            isinstance(entry.samples, list)
            and 0 < len(entry.samples) <= MAX_SAMPLES_PER_ENTRY
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in entry.samples)
        ):
            raise ValueError("not a log entry: bad list of samples")
        return entry


class Journal:
    """Appends entries and reads them back in order, over any Storage."""

    def __init__(self, storage: Storage):
        self.storage = storage

    def store_drawing(self, png: bytes) -> str:
        """Write a drawing's PNG under a fresh unique key; returns the key."""
        key = f"{DRAWINGS}{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}.png"
        self.storage.put(key, png)
        return key

    def try_append(self, number: int, entry: Entry) -> bool:
        """Claim entry `number`; False if another writer holds it (catch up, then try the next)."""
        return self.storage.create(entry_key(number), entry.to_bytes())

    def numbers_after(self, number: int) -> list[int]:
        """The entry numbers after `number`, in order (one listing: what a dataset export or a migration reads;
        following the log probes the next number instead, whose cost does not grow with the log)."""
        keys = self.storage.list(LOG, start_after=entry_key(number))
        return [n for n in map(number_of, keys) if n is not None and n > number]

    def read(self, number: int) -> Entry | None:
        """Entry `number`, or None if it is damaged (it still counts as applied, as a no-op)."""
        try:
            return Entry.from_bytes(self.storage.get(entry_key(number)))
        except (KeyError, ValueError):
            return None

    def read_next(self, number: int) -> Entry | None:
        """Entry `number` to apply: KeyError if it is not there (yet), None if it is damaged."""
        try:
            return Entry.from_bytes(self.storage.get(entry_key(number)))
        except ValueError:
            return None

    def head_from(self, number: int) -> int:
        """The last entry of an unbroken run from `number` (which exists, or is 0): one probe per entry
        beyond it, so a process that follows the log pays for what is new, not for what is held."""
        while self.storage.exists(entry_key(number + 1)):
            number += 1
        return number

    def head_listed(self, number: int) -> int:
        """`head_from` by one listing (a request per 1,000 entries on S3) instead of a probe per entry: for a look
        at a log that may run far past `number` (a boot, a takeover)."""
        for listed in self.numbers_after(number):
            if listed != number + 1:
                break  # a writer mid-claim: the run ends before its hole
            number = listed
        return number

    def store_id(self) -> str:
        """A random id written once into the store: a database that names another store is not this one's."""
        try:
            return self.storage.get(STORE_ID).decode()
        except KeyError:
            self.storage.create(STORE_ID, uuid.uuid4().hex.encode())  # create-only: every process reads one id
            return self.storage.get(STORE_ID).decode()

    def drawing(self, entry: Entry) -> bytes | None:
        try:
            return self.storage.get(entry.image) if entry.image else None
        except KeyError:
            return None

    # --- groups: the learner's record of entries it learned in one step --------------------------

    def write_group(self, first: int, last: int) -> None:
        """Record that entries first..last are learned in one step, before it is taken: a replay, or the learner
        that takes over from one that stopped mid-group, groups them the same way. Create-only."""
        self.storage.create(group_key(first, last), b"")

    def groups_after(self, number: int) -> dict[int, int]:
        """{first: last} of the groups recorded from entry `number` + 1 on (one listing)."""
        groups = {}
        for key in self.storage.list(GROUPS, start_after=group_key(number, 0)):
            match = re.fullmatch(r"(\d{10})-(\d{10})", key.rsplit("/", 1)[-1])
            if match and int(match.group(1)) > number:
                groups[int(match.group(1))] = int(match.group(2))
        return groups

    # --- checkpoints ---------------------------------------------------------------------------

    def write_checkpoint(self, number: int, files: dict[str, bytes]) -> bool:
        """Store a checkpoint (a zip of named files) for entries 1..number; False if one exists."""
        return self.storage.create(checkpoint_key(number), zip_files(files))

    def write_standby_checkpoint(self, files: dict[str, bytes]) -> None:
        """Overwrite the one standby checkpoint (STANDBY_CHECKPOINT: a fixed size, whatever the log's length)."""
        self.storage.put(STANDBY_CHECKPOINT, zip_files(files))

    def read_standby_checkpoint(self) -> dict[str, bytes]:
        """Its files; KeyError if there is none, ValueError if it is damaged."""
        data = self.storage.get(STANDBY_CHECKPOINT)
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return {name: archive.read(name) for name in archive.namelist()}
        except (zipfile.BadZipFile, OSError) as error:
            raise ValueError(f"the standby checkpoint is unreadable: {error}") from None

    def checkpoints(self) -> list[int]:
        """Checkpoint numbers, newest first."""
        numbers = [number_of(key) for key in self.storage.list(CHECKPOINTS)]
        return sorted((n for n in numbers if n is not None), reverse=True)

    def read_checkpoint(self, number: int) -> dict[str, bytes]:
        """The files of checkpoint `number`; ValueError if it is damaged."""
        try:
            with zipfile.ZipFile(io.BytesIO(self.storage.get(checkpoint_key(number)))) as archive:
                return {name: archive.read(name) for name in archive.namelist()}
        except (KeyError, zipfile.BadZipFile, OSError) as error:
            raise ValueError(f"checkpoint {number} is unreadable: {error}") from None


def exclusion_changes(excluded: set[int], number: int, entry: Entry, drawings: Container[int]) -> list[int]:
    """The drawings an exclude (restore) entry `number` changes: those it names that are drawings logged
    before it and not yet excluded (currently excluded). Anything else it names is ignored, so a foreign
    or repeated entry changes nothing; every process folds the log alike."""
    wanted = entry.kind == "restore"
    named = entry.samples or []
    return sorted({n for n in named if n < number and n in drawings and (n in excluded) == wanted})


def entry_of(data: object) -> Entry | None:
    """The entry a notification carries, or None (absent or not one: then it is read from storage)."""
    try:
        return Entry.from_bytes(json.dumps(data).encode()) if isinstance(data, dict) else None
    except ValueError:
        return None
