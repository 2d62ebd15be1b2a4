"""A request body over Config.max_request_bytes is refused with 413, however it is sent and whatever the route.

werkzeug refuses a body whose Content-Length is over the limit, but only when a route reads it. A chunked body
has no length: under gunicorn (which sets `wsgi.input_terminated`) werkzeug reads it up to the limit and stops
there without a word, so an oversized JSON body was parsed cut short (400 `invalid_json`) and a form lost its
fields (400 `missing_field`). `BoundedBody` reads such a body first, one byte past the limit at most, and hands it
on with the length it has; `refuse_large_bodies` then answers 413 for every route, before any of them runs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge


class BoundedBody:
    """WSGI middleware: a body without Content-Length (chunked) is read here, up to `limit` + 1 bytes."""

    def __init__(self, app: Callable, limit: int):
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            try:
                body = environ["wsgi.input"].read(self.limit + 1)
            except OSError:  # a broken chunk or a client gone: no body (the route says what is missing)
                body = b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # de-chunked: werkzeug ignores a length beside "chunked"
        return self.app(environ, start_response)


def refuse_large_bodies() -> None:
    """Before every route (a before_request hook): 413 for a body over the limit, read or not."""
    most = current_app.config["MAX_CONTENT_LENGTH"]  # Flask's own, which the factory sets from the config
    if most is not None and (request.content_length or 0) > most:
        raise RequestEntityTooLarge(f"The request body is over the limit of {most:,} bytes.")
