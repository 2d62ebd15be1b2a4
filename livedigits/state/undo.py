"""Undo capabilities: `/api/train` hands its caller a token that lets them, and only them, take back that one
drawing for Config.undo_seconds, without an account or the admin token.

A token is `<sample number>.<expiry unix time>.<HMAC-SHA256 of both>`: bound to its sample and its expiry (neither
can be changed without the key), checked in constant time, and valid on every process of a fleet, since they share
the key (UNDO_SECRET, or a random key stored once in the store with a create-only write). A token undoes once: its
use is marked with a create-only write, so a replay is refused on any process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from livedigits.errors import InputError
from livedigits.state.storage import Storage

KEY = "secrets/undo-key"
USED = "undo/"


def undo_key(storage: Storage, secret: str | None) -> bytes:
    """The signing key: `secret` if given, else the store's (made by the first process to ask)."""
    if secret:
        return secret.encode()
    storage.create(KEY, secrets.token_hex(32).encode())
    return storage.get(KEY)


def sign(key: bytes, number: int, expires: int) -> str:
    return hmac.new(key, f"{number}.{expires}".encode(), hashlib.sha256).hexdigest()


def issue(key: bytes, number: int, seconds: int, now: float | None = None) -> str:
    """A token that undoes drawing `number` for `seconds`."""
    expires = int(now if now is not None else time.time()) + seconds
    return f"{number}.{expires}.{sign(key, number, expires)}"


def verify(key: bytes, token: object, seconds: int, now: float | None = None) -> int:
    """The sample number a genuine, unexpired token undoes; InputError otherwise (`seconds`: how long tokens last)."""
    match = re.fullmatch(r"(\d{1,10})\.(\d{1,12})\.([0-9a-f]{64})", token) if isinstance(token, str) else None
    if match is None:
        raise InputError("invalid_undo_token", "Send the 'undo_token' that /api/train answered.")
    number, expires = int(match.group(1)), int(match.group(2))
    if not hmac.compare_digest(match.group(3), sign(key, number, expires)):
        raise InputError("invalid_undo_token", "This undo token was not issued by this service.", 403)
    if (now if now is not None else time.time()) > expires:
        raise InputError("undo_expired", f"Undo is possible for {seconds} seconds after training.", 410)
    return number


def use_once(storage: Storage, number: int) -> None:
    """Mark the undo of `number` as used; InputError (409) if it was already."""
    if not storage.create(f"{USED}{number:010d}", b""):
        raise InputError("undo_used", "This drawing was already taken back.", 409)
