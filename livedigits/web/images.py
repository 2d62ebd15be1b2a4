"""Who asks for a drawing's image (`/api/samples/<n>.png`), and how long the answer may be kept.

The operator sees every drawing: with `Authorization: Bearer ADMIN_TOKEN` (scripts), or through a link that
`/api/review` signed for that one drawing (the review page). An `<img>` cannot send a header, and fetching each
image with the token would spend the admin budget (10 a minute) on one page of 20 drawings and pass the token
around once per image; a signed link names one drawing, expires (`Config.admin_image_seconds`), draws from the
`samples` budget and gives nothing away about the token. The links are HMAC-SHA256 keyed by a key derived from
ADMIN_TOKEN, so every process of a fleet checks them and changing the token revokes them all.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import request, url_for

from livedigits.errors import InputError
from livedigits.web.current import config
from livedigits.web.inputs import is_ascii_number, require_admin

LINK_PURPOSE = b"livedigits sample image links"  # the token's key for these links is used for nothing else


def link_key() -> bytes | None:
    token = config().admin_token
    return hmac.new(token.encode(), LINK_PURPOSE, hashlib.sha256).digest() if token else None


def signature(key: bytes, number: int, expires: int) -> str:
    return hmac.new(key, f"{number}.{expires}".encode(), hashlib.sha256).hexdigest()


def signed_image_url(number: int) -> str:
    """A link to drawing `number`'s image that works for Config.admin_image_seconds (call on an admin route)."""
    # Rounded up to the minute: the review page reloaded within it asks for the same URLs, which the browser has.
    expires = -(-(int(time.time()) + config().admin_image_seconds) // 60) * 60
    key = link_key()
    if key is None:  # an admin route answered, so a token is set: never sign with no key
        raise RuntimeError("image links are signed only when ADMIN_TOKEN is set")
    return url_for(
        "api.sample_image", sample_id=str(number), expires=str(expires), signature=signature(key, number, expires)
    )


def asked_by_operator(number: int) -> bool:
    """Whether the operator asks: a genuine, unexpired link signed for `number`, or the admin token. InputError for
    a link that is not (403) and for a wrong token (401/403, as on the admin routes); False for anyone else."""
    args = request.args
    if "signature" in args or "expires" in args:
        if not genuine_link(number, args.get("expires", ""), args.get("signature", "")):
            message = "This image link is wrong or has expired: reload the review page."
            raise InputError("invalid_image_link", message, 403)
        return True
    if "Authorization" in request.headers:
        require_admin()
        return True
    return False


def genuine_link(number: int, expires: str, given: str) -> bool:
    """Whether `given` is this service's signature of a link to drawing `number` that has not expired."""
    key = link_key()
    if key is None or not is_ascii_number(expires, 12) or int(expires) < time.time():
        return False
    return hmac.compare_digest(given.encode(), signature(key, number, int(expires)).encode())


def cache_control(public: bool) -> str:
    """A public drawing may be kept for Config.public_image_seconds, then asked again (its ETag makes that cheap);
    a private one is kept nowhere: the operator's view of it must not outlive the operator's page."""
    return f"public, max-age={config().public_image_seconds}" if public else "private, no-store"
