"""Where labelled drawings and checkpoints live: one small interface, chosen by `STORAGE_URL`.

Keys are '/'-separated paths such as `log/0000000042.json`. Every write lands whole or not at all:
`create` is create-only (the log's way to number entries without a coordinator), `put` replaces.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse


class StorageError(RuntimeError):
    """The store cannot be read or written right now (disk full, read-only, unreachable)."""


class Storage(Protocol):
    def create(self, key: str, data: bytes) -> bool:
        """Write `data` at `key` unless something is already there; True if this call created it."""

    def put(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, replacing any previous value atomically."""

    def get(self, key: str) -> bytes:
        """The bytes at `key`; KeyError if there are none."""

    def list(self, prefix: str, start_after: str = "") -> list[str]:
        """Sorted keys under `prefix` (a folder ending in '/') that sort after `start_after`."""


class LocalStorage:
    """A folder on local disk. Writes go to a temp file, are fsynced, then linked or renamed in."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._scratch = self.root / ".incoming"
        try:
            self._scratch.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(f"cannot use {self.root} for storage: {error.strerror}") from None

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid key {key!r}")
        return self.root / key

    def _write_temp(self, data: bytes) -> Path:
        temp = self._scratch / uuid.uuid4().hex
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return temp

    @staticmethod
    def _sync_dir(directory: Path) -> None:
        # The new name is durable only once its directory entry is.
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        temp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = self._write_temp(data)
            try:
                os.link(temp, path)  # atomic and create-only: fails if the key exists
            except FileExistsError:
                return False
            self._sync_dir(path.parent)
            return True
        except OSError as error:
            raise StorageError(f"cannot write {key}: {error.strerror}") from None
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = self._write_temp(data)
            os.replace(temp, path)
            self._sync_dir(path.parent)
        except OSError as error:
            raise StorageError(f"cannot write {key}: {error.strerror}") from None

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as error:
            raise StorageError(f"cannot read {key}: {error.strerror}") from None

    def list(self, prefix: str, start_after: str = "") -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise StorageError(f"cannot list {prefix}: {error.strerror}") from None
        keys = (f"{prefix}{name}" for name in names)
        return sorted(key for key in keys if key > start_after)


def open_storage(url: str, endpoint_url: str | None = None) -> Storage:
    """`/path`, `file:///path` -> LocalStorage; `s3://bucket/prefix` -> S3 (not yet built)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalStorage(Path(parsed.path if parsed.scheme else url))
    if parsed.scheme == "s3":
        raise ValueError("S3 storage is not available in this version; use a local folder")
    raise ValueError(f"unsupported STORAGE_URL scheme {parsed.scheme!r}")
