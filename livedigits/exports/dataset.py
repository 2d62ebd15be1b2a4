"""The collected drawings as a dataset people can take away, and a store copied between backends.

    python -m livedigits.exports.dataset export --out DIR [--storage URL]
    python -m livedigits.exports.dataset migrate --from URL --to URL

`export` writes every labelled drawing of the log (train and collect entries whose image reads back), except the
ones excluded (exclude entries not undone by a restore):
    train-images-idx3-ubyte.gz   (n, 28, 28) uint8, preprocessed as the service does, ink bright (MNIST's format)
    train-labels-idx1-ubyte.gz   (n,) uint8
    png/<sample_id>.png          the drawing exactly as stored
    metadata.csv                 sample_id, label, kind, source, created (UTC), image, n_strokes
    strokes.ndjson               the strokes of the drawings that came with them, one JSON object a line
so that `python -m livedigits.offline.train --data DIR` trains on it as it is. `GET /api/samples/export` (admin token)
answers a zip of the same files. `migrate` copies a store (a folder or a bucket) into another one.
URLs default to STORAGE_URL; S3_ENDPOINT_URL applies to any s3:// URL.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedigits import threads
from livedigits.config import Config
from livedigits.pipeline.drawings import quantise, stored_digit
from livedigits.state.journal import CHECKPOINTS, DRAWING_KINDS, DRAWINGS, LOG, Entry, Journal, exclusion_changes
from livedigits.state.mnist import write_idx
from livedigits.state.storage import Storage, StorageError, open_store

IMAGES = "train-images-idx3-ubyte.gz"
LABELS = "train-labels-idx1-ubyte.gz"
METADATA = "metadata.csv"
STROKES = "strokes.ndjson"
METADATA_COLUMNS = ("sample_id", "label", "kind", "source", "created", "image", "n_strokes")


class MigrationError(RuntimeError):
    """The target store already holds a different history; copying into it would mix two logs."""


@dataclass(frozen=True)
class Sample:
    number: int
    entry: Entry
    png: bytes
    digit: np.ndarray  # (28, 28) float32, ink 1.0 on 0.0, as the models saw it

    @property
    def sample_id(self) -> str:
        return f"{self.number:010d}"


# Reads from a bucket are round trips: a few in flight hide the latency (boto3 clients are thread-safe).
def read_samples(storage: Storage, parallel_reads: int = Config.parallel_reads) -> list[Sample]:
    """The labelled drawings of the log in log order, less the excluded ones; damaged entries and unreadable
    drawings are skipped. Exclusions fold as the learner folds them (journal.exclusion_changes)."""
    journal = Journal(storage)
    with threads.pool("dataset-reads", parallel_reads) as pool:
        read = pool.map(lambda number: (number, journal.read(number)), journal.numbers_after(0))
        drawings, excluded = {}, set()
        for number, entry in read:
            if entry is not None and entry.kind in DRAWING_KINDS:
                drawings[number] = entry
            elif entry is not None and entry.kind in ("exclude", "restore"):
                excluded.symmetric_difference_update(exclusion_changes(excluded, number, entry, drawings))
        kept = [(number, entry) for number, entry in drawings.items() if number not in excluded]
        samples = pool.map(lambda item: read_sample(journal, *item), kept)
        return [sample for sample in samples if sample is not None]


def read_sample(journal: Journal, number: int, entry: Entry) -> Sample | None:
    png = journal.drawing(entry)
    digit = stored_digit(png)
    return None if digit is None else Sample(number, entry, png, digit)


def export(storage: Storage, out: Path, parallel_reads: int = Config.parallel_reads) -> int:
    """Write the dataset's files into the folder `out` (created if needed); returns the number of drawings."""
    samples = read_samples(storage, parallel_reads)
    out = Path(out)
    (out / "png").mkdir(parents=True, exist_ok=True)
    for sample in samples:
        (out / "png" / f"{sample.sample_id}.png").write_bytes(sample.png)
    images = np.array([quantise(sample.digit) for sample in samples], dtype=np.uint8).reshape(-1, 28, 28)
    write_idx(out / IMAGES, images)  # uint8 as the service's memory holds them, ink bright as MNIST's
    write_idx(out / LABELS, np.array([sample.entry.label for sample in samples], dtype=np.uint8))
    with open(out / METADATA, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(METADATA_COLUMNS)
        for sample in samples:
            entry = sample.entry
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.created))
            image = f"png/{sample.sample_id}.png"
            n_strokes = len(entry.strokes or [])
            writer.writerow((sample.sample_id, entry.label, entry.kind, entry.source, created, image, n_strokes))
    with open(out / STROKES, "w") as f:
        for sample in samples:
            if sample.entry.strokes:
                line = {"sample_id": sample.sample_id, "label": sample.entry.label, "strokes": sample.entry.strokes}
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
    return len(samples)


def export_zip(storage: Storage, parallel_reads: int = Config.parallel_reads) -> io.BytesIO:
    """The files `export` writes, as one zip in memory (what GET /api/samples/export answers)."""
    with tempfile.TemporaryDirectory() as folder:
        export(storage, Path(folder), parallel_reads)
        return zip_folder(Path(folder))


def zip_folder(folder: Path) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    buffer.seek(0)
    return buffer


# --- migration ------------------------------------------------------------------------------------


def migrate(source: Storage, target: Storage, parallel_reads: int = Config.parallel_reads) -> dict[str, int]:
    """Copy the drawings, then the log, then the checkpoints of `source` into `target`.

    Drawings go first so that a process reading the target never meets an entry without its image.
    Writes are create-only and keys already holding the same bytes are skipped, so an interrupted
    migration can simply be run again. Keys outside the three folders (an old app's files) stay behind.
    Raises MigrationError, before copying anything, if the target's log is not a prefix of the source's.
    Returns, per folder, how many of the source's keys the target now holds with the same bytes.
    """
    copied = {}
    with threads.pool("dataset-reads", parallel_reads) as pool:
        source_log = set(source.list(LOG))
        list(pool.map(lambda key: check_same_entry(source, target, source_log, key), target.list(LOG)))
        for folder in (DRAWINGS, LOG, CHECKPOINTS):
            copy = copier(source, target, conflicts_matter=folder != CHECKPOINTS)
            copied[folder.rstrip("/")] = sum(pool.map(copy, source.list(folder)))
    return copied


def check_same_entry(source: Storage, target: Storage, source_log: set[str], key: str) -> None:
    if key not in source_log or source.get(key) != target.get(key):
        raise MigrationError(f"the target already holds {key}, which differs from the source's: not migrating")


def copier(source: Storage, target: Storage, conflicts_matter: bool) -> Callable[[str], bool]:
    def copy(key: str) -> bool:
        """Copy one key; True if the target now holds the source's bytes there."""
        data = source.get(key)
        if target.create(key, data) or target.get(key) == data:
            return True
        if conflicts_matter:
            raise MigrationError(f"the target already holds a different {key}")
        return False  # a checkpoint is a cache: a different one for the same entries is as good

    return copy


def main(argv: Iterable[str] | None = None) -> None:
    config = Config.from_env()
    parser = argparse.ArgumentParser(prog="python -m livedigits.exports.dataset", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export_command = commands.add_parser("export", help="write the collected drawings as an MNIST-format dataset")
    export_command.add_argument("--out", type=Path, required=True, help="folder to write the dataset into")
    export_command.add_argument("--storage", default=config.storage_url, help="store to read (default STORAGE_URL)")
    migrate_command = commands.add_parser("migrate", help="copy a store (folder or bucket) into another")
    migrate_command.add_argument("--from", dest="source", default=config.storage_url, help="default STORAGE_URL")
    migrate_command.add_argument("--to", dest="target", required=True)
    args = parser.parse_args(None if argv is None else list(argv))

    try:
        if args.command == "export":
            n_samples = export(open_store(config, args.storage), args.out, config.parallel_reads)
            print(f"exported {n_samples} labelled drawings to {args.out}")
        else:
            source = open_store(config, args.source)
            target = open_store(config, args.target)
            copied = migrate(source, target, config.parallel_reads)
            print(f"{args.target} holds the source's " + ", ".join(f"{n} {folder}" for folder, n in copied.items()))
    except (StorageError, MigrationError, ValueError) as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()
