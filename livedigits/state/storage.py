"""Where labelled drawings and checkpoints live: one small interface, chosen by `STORAGE_URL`.

Keys are '/'-separated paths such as `log/0000000042.json`. Every write lands whole or not at all:
`create` is create-only (the log's way to number entries without a coordinator), `put` replaces.
`LocalStorage` is a folder; `S3Storage` is a bucket (or a prefix in one) on S3 or an S3-compatible server.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from livedigits.config import Config


class StorageError(RuntimeError):
    """The store cannot be read or written right now (disk full, read-only, unreachable)."""


class Storage(Protocol):
    def create(self, key: str, data: bytes) -> bool:
        """Write `data` at `key` unless something is already there; True if this call created it."""

    def put(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, replacing any previous value atomically."""

    def get(self, key: str) -> bytes:
        """The bytes at `key`; KeyError if there are none."""

    def exists(self, key: str) -> bool:
        """Whether something is stored at `key`."""

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
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            temp.unlink(missing_ok=True)  # a full disk must not keep the half-written part of every attempt
            raise
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

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).exists()
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


# Every S3 call gives up within seconds: a request thread never hangs on a slow or absent S3.
# Standard retries cover connection errors, timeouts, throttling and 5xx with a short jittered backoff.
S3_CLIENT_CONFIG = BotoConfig(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
# After S3 fails to answer, calls fail at once for this long instead of each waiting out the timeouts:
# the service reads the store under its lock, so one slow failure per pause rather than per request.
S3_PAUSE_AFTER_FAILURE = 2.0


class S3Storage:
    """A prefix in an S3 bucket: `create` is PutObject with IfNoneMatch="*", `list` is ListObjectsV2.

    One boto3 client per instance (the service opens one storage per process); boto3 clients are
    thread-safe. Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID, ... in the
    environment) unless `credentials` (Bucketeer's) are given. A missing key raises KeyError; anything
    else that goes wrong (unreachable, timeouts, 5xx after retries, no credentials, no such bucket,
    access denied) raises StorageError.
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, credentials=None):
        if not bucket:
            raise ValueError("an S3 STORAGE_URL names a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        keys = {}
        if credentials is not None:
            keys = {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
                "region_name": credentials.region,
            }
        self._client = boto3.session.Session(**keys).client("s3", endpoint_url=endpoint_url, config=S3_CLIENT_CONFIG)
        self._paused_until = 0.0
        self._last_failure = ""
        self._state = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Storage('s3://{self.bucket}/{self.prefix}')"

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid key {key!r}")
        return self.prefix + key

    def _call(self, action: str, key: str, operation, **kwargs) -> dict:
        """Run one client operation; ClientError passes through, unavailability becomes StorageError."""
        with self._state:
            if time.monotonic() < self._paused_until:
                raise StorageError(f"cannot {action} {key} in {self!r}: S3 unavailable ({self._last_failure})")
        try:
            return operation(Bucket=self.bucket, **kwargs)
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                self._pause(str(error))
            raise
        except BotoCoreError as error:
            self._pause(str(error))
            raise StorageError(f"cannot {action} {key} in {self!r}: {error}") from None

    def _pause(self, failure: str) -> None:
        with self._state:
            self._paused_until = time.monotonic() + S3_PAUSE_AFTER_FAILURE
            self._last_failure = failure

    def _failed(self, action: str, key: str, error: ClientError) -> StorageError:
        return StorageError(f"cannot {action} {key} in {self!r}: {error_code(error)}: {error}")

    def create(self, key: str, data: bytes) -> bool:
        """Create-only PutObject. A 412 means another writer holds the key, unless what is there is our
        own bytes (a retried request whose first attempt landed), which counts as ours.
        A 409 (a concurrent conditional write to the same key in flight) also answers False: the log
        catches up and, if the key is still free, tries it again."""
        try:
            self._call("create", key, self._client.put_object, Key=self._key(key), Body=data, IfNoneMatch="*")
            return True
        except ClientError as error:
            if error_code(error) == "ConditionalRequestConflict":
                return False
            if error_code(error) not in ("PreconditionFailed", "412"):
                raise self._failed("create", key, error) from None
        return self._holds(key, data)

    def exists(self, key: str) -> bool:
        try:
            self._call("read", key, self._client.head_object, Key=self._key(key))
            return True
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchKey"):
                return False
            raise self._failed("read", key, error) from None

    def _holds(self, key: str, data: bytes) -> bool:
        """True if the object at `key` has exactly `data` (by its ETag, the MD5 of a single-part upload)."""
        try:
            head = self._call("read", key, self._client.head_object, Key=self._key(key))
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchKey"):
                return False
            raise self._failed("read", key, error) from None
        return head.get("ETag", "").strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest()

    def put(self, key: str, data: bytes) -> None:
        try:
            self._call("write", key, self._client.put_object, Key=self._key(key), Body=data)
        except ClientError as error:
            raise self._failed("write", key, error) from None

    def get(self, key: str) -> bytes:
        try:
            response = self._call("read", key, self._client.get_object, Key=self._key(key))
            return response["Body"].read()
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                raise KeyError(key) from None
            raise self._failed("read", key, error) from None
        except BotoCoreError as error:  # the body broke off mid-read
            self._pause(str(error))
            raise StorageError(f"cannot read {key} in {self!r}: {error}") from None

    def list(self, prefix: str, start_after: str = "") -> list[str]:
        """Keys directly under `prefix` (Delimiter '/', as a folder lists), after `start_after`, in order."""
        request = {"Prefix": self._key(prefix), "Delimiter": "/"}
        if start_after:
            request["StartAfter"] = self._key(start_after)
        keys: list[str] = []
        try:
            while True:
                page = self._call("list", prefix, self._client.list_objects_v2, **request)
                keys.extend(item["Key"].removeprefix(self.prefix) for item in page.get("Contents", []))
                if not page.get("IsTruncated"):
                    break
                request["ContinuationToken"] = page["NextContinuationToken"]
        except ClientError as error:
            raise self._failed("list", prefix, error) from None
        return sorted(key for key in keys if key > start_after)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def open_storage(url: str, endpoint_url: str | None = None, credentials=None) -> Storage:
    """`/path`, `file:///path` -> LocalStorage; `s3://bucket/prefix` -> S3Storage.

    `endpoint_url` points S3Storage at an S3-compatible server instead of AWS, and `credentials`
    (config.S3Credentials) give it keys other than boto3's usual ones; LocalStorage ignores both.
    """
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalStorage(Path(parsed.path if parsed.scheme else url))
    if parsed.scheme == "s3":
        return S3Storage(parsed.netloc, parsed.path, endpoint_url, credentials)
    raise ValueError(f"unsupported STORAGE_URL scheme {parsed.scheme!r}")


def open_store(config: Config, url: str | None = None) -> Storage:
    """The store of labelled drawings at `url` (default: the config's), the one way every process opens one.
    Bucketeer's keys are for its own bucket only."""
    url = url or config.storage_url
    return open_storage(url, config.s3_endpoint_url, config.s3_credentials if url == config.storage_url else None)
