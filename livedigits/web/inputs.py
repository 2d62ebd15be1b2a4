"""Parsing a request's inputs at the edge: each bad input raises InputError with a code and a sentence, mapped
once to a 4xx JSON answer (livedigits.web.errors)."""

from __future__ import annotations

import contextlib
import hmac
import math
import re
import threading
import unicodedata
from collections.abc import Iterator

import numpy as np
from flask import current_app, request
from PIL import Image

from livedigits.errors import InputError
from livedigits.pipeline.drawings import decode_grey, digit_of, drawing_of
from livedigits.web.current import config

MAX_BATCH = 64  # drawings in one /api/predict/batch (DESIGN.md)


def json_body() -> dict:
    body = json_or_none()
    if not isinstance(body, dict):
        raise InputError("invalid_json", "Send a JSON object with Content-Type: application/json.")
    return body


def json_or_none() -> object:
    """The request's JSON (parsed once, then cached by Flask), or None if it has none."""
    try:
        return request.get_json(silent=True)
    except RecursionError:  # nesting deeper than the parser's stack: not a body this API takes
        return None


def batch_images(value: object) -> list:
    """'images': a list of 1 to MAX_BATCH drawings, each checked on its own later; anything else is refused whole."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_BATCH:
        raise InputError(
            "invalid_images", f"Send 'images' as a list of 1 to {MAX_BATCH} drawings (data URLs or bare base64)."
        )
    return value


def batch_cost() -> int:
    """A batch's rate-limit cost: one per drawing (a body refused whole costs one, as any refused request)."""
    body = json_or_none()
    images = body.get("images") if isinstance(body, dict) else None
    return len(images) if isinstance(images, list) and 1 <= len(images) <= MAX_BATCH else 1


def form_field(name: str) -> str:
    value = request.form.get(name)
    if value is None:
        raise InputError("missing_field", f"The form field '{name}' is required.")
    return value


def parse_digit(value: object) -> np.ndarray:
    """A drawing sent to be read: the (28, 28) digit the models see."""
    return digit_of(decoded(value))


def parse_drawing(value: object) -> tuple[np.ndarray, bytes]:
    """A drawing sent to be kept: its (28, 28) digit and the PNG to store."""
    return drawing_of(decoded(value))


def decoded(value: object) -> Image.Image:
    """The drawing in greyscale within Config.stored_side, decoded in one of the process's few slots.

    What a drawing costs before it is shrunk grows with its area (Config.max_image_pixels bounds it); the slots
    bound how many are that large at once.
    """
    settings = config()
    with decode_slot():
        return decode_grey(value, settings.max_image_pixels, settings.stored_side)


@contextlib.contextmanager
def decode_slot() -> Iterator[None]:
    """One of the process's Config.decode_slots, waited for at most Config.decode_wait_seconds (then 503 busy)."""
    settings = config()
    slots = current_app.extensions.get("decode_slots")
    if slots is None:  # made with the app's first drawing; setdefault keeps the first of two racing threads'
        slots = current_app.extensions.setdefault("decode_slots", threading.BoundedSemaphore(settings.decode_slots))
    if not slots.acquire(timeout=settings.decode_wait_seconds):
        raise InputError(
            "busy", "The server is busy reading other drawings; nothing was done. Try again in a few seconds.", 503
        )
    try:
        yield
    finally:
        slots.release()


def parse_strokes(value: object) -> list | None:
    """Optional strokes: [[[x, y, t_ms], ...], ...] of numbers, kept with the entry's metadata.

    Bounded in count (Config.max_strokes and max_stroke_points) and in size: |x| and |y| within
    Config.max_stroke_coordinate, t_ms from 0 to Config.max_stroke_ms.
    """
    if value is None:
        return None
    settings = config()
    message = "'strokes' must be a list of strokes, each a list of [x, y, t_ms] numbers."
    if not isinstance(value, list) or not all(isinstance(stroke, list) for stroke in value):
        raise InputError("invalid_strokes", message)
    if len(value) > settings.max_strokes:
        raise InputError("invalid_strokes", f"At most {settings.max_strokes} strokes are kept; {len(value)} were sent.")
    points = [point for stroke in value for point in stroke]
    most = settings.max_stroke_points
    if len(points) > most:
        raise InputError("invalid_strokes", f"At most {most} stroke points are kept.")
    for point in points:
        if not (isinstance(point, list) and len(point) == 3 and all(is_finite_number(v) for v in point)):
            raise InputError("invalid_strokes", message)
    reach, longest = settings.max_stroke_coordinate, settings.max_stroke_ms
    for x, y, t_ms in points:
        if abs(x) > reach or abs(y) > reach:
            raise InputError(
                "invalid_strokes", f"Stroke coordinates are the drawing's pixels: |x| and |y| at most {reach:g}."
            )
        if not 0 <= t_ms <= longest:
            raise InputError(
                "invalid_strokes", f"t_ms counts milliseconds from the drawing's first point: 0 to {longest:,}."
            )
    return value


def is_finite_number(value: object) -> bool:
    """An int or a finite float, not a bool: Python's JSON parser also reads NaN and Infinity."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


def parse_label(value: object) -> int:
    """A label from JSON or a form field: an integer 0..9 (or its decimal string)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and re.fullmatch(r"\s*\d\s*", value):
        value = int(value)
    if value is None or value == "":
        raise InputError("missing_field", "Send the digit's label (0-9) in 'label'.")
    if not isinstance(value, int) or not 0 <= value <= 9:
        raise InputError("invalid_label", "The label must be an integer from 0 to 9.")
    return value


def query_int(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in ASCII digits (str.isdigit also takes '²' and '①', which int() refuses)."""
    value = request.args.get(name)
    if value is None:
        return default
    if not is_ascii_number(value, 20) or not low <= int(value) <= high:
        raise InputError(f"invalid_{name}", f"'{name}' must be an integer from {low} to {high}.")
    return int(value)


def is_ascii_number(text: str, most_digits: int) -> bool:
    """1 to `most_digits` ASCII digits, nothing else."""
    return 0 < len(text) <= most_digits and text.isascii() and text.isdigit()


def query_text(name: str, most: int = 200) -> str | None:
    """An optional text query parameter; None when absent or empty. PostgreSQL refuses NUL in text (and a lone
    surrogate cannot be encoded): refused here with the other control characters, which no filter value holds."""
    value = request.args.get(name)
    if not value:
        return None
    if len(value) > most or any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise InputError(f"invalid_{name}", f"'{name}' must be printable text of at most {most} characters.")
    return value


def sample_number(text: str) -> int:
    """The entry number in an image's path (`/api/samples/<n>.png`): 1 to 10 ASCII digits, not 0. Any other is no
    drawing: 404, answered without asking storage (a 300-digit name is no file name a store can even look up)."""
    if not is_ascii_number(text, 10) or int(text) == 0:
        raise InputError("not_found", "There is no such drawing.", 404)
    return int(text)


def sample_ids(value: object) -> list[int]:
    """'sample_ids': a list of entry numbers, as integers or as the 10-digit strings the API answers."""
    message = "Send 'sample_ids' as a non-empty list of sample ids (integers or strings of digits)."
    if not isinstance(value, list) or not value:
        raise InputError("invalid_sample_ids", message)
    numbers = []
    for item in value:
        if isinstance(item, str) and is_ascii_number(item, 10):
            item = int(item)
        if not isinstance(item, int) or isinstance(item, bool) or not 0 < item < 10**10:
            raise InputError("invalid_sample_ids", message)
        numbers.append(item)
    return numbers


def require_admin() -> None:
    """Bearer ADMIN_TOKEN, compared in constant time; admin routes are off when it is unset."""
    token = config().admin_token
    if not token:
        raise InputError("admin_disabled", "Admin actions are disabled: ADMIN_TOKEN is not set.", 403)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not given:
        raise InputError("unauthorized", "Send the admin token as 'Authorization: Bearer <token>'.", 401)
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise InputError("forbidden", "The admin token is wrong.", 403)
