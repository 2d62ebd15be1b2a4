"""Digits rendered the way a browser sends them: dark ink on a white (or clear) canvas, as data URLs.

Used to measure the service through its real input path: evaluation, benchmarks and tests.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageFilter

CANVAS_SIZE = 280

# The pens of the stroke-width bench, the one place they are defined: a digit is rendered at 4x its
# 28-pixel frame, its strokes thinned (MinFilter) or widened (MaxFilter) by a square of this side, and
# brought back to 28x28. Fat (11) widens a stroke by about 2.7 pixels at 28, a marker; thin (5) is a
# fine stylus; "as drawn" leaves the digit as it is.
PEN_SCALE = 4
PENS: dict[str, int] = {"thin": -5, "as drawn": 0, "thick": 7, "fat": 11}


def with_pen(ink: np.ndarray, pen: str) -> np.ndarray:
    """An ink-bright digit ((h, w), 0..255 or 0..1) redrawn with one of PENS: float32 0..1, (28, 28),
    or the digit unchanged "as drawn"."""
    ink = np.asarray(ink, dtype=np.float32)
    ink = ink / 255.0 if ink.max() > 1 else ink
    size = PENS[pen]
    if not size:
        return ink
    big = Image.fromarray((np.clip(ink, 0, 1) * 255).astype(np.uint8)).resize(
        (28 * PEN_SCALE,) * 2, Image.Resampling.BICUBIC
    )
    big = big.filter(ImageFilter.MaxFilter(size) if size > 0 else ImageFilter.MinFilter(-size))
    return np.asarray(big.resize((28, 28), Image.Resampling.BOX), dtype=np.float32) / 255.0  # as a canvas shrinks


def to_data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def canvas_of(ink: np.ndarray, size: int = CANVAS_SIZE, transparent: bool = False) -> Image.Image:
    """An ink-bright digit ((h, w), 0..255 or 0..1) upscaled smoothly onto a size x size canvas:
    dark ink on white, or on a clear background (alpha = ink) when `transparent`."""
    ink = np.asarray(ink, dtype=np.float32)
    ink = ink / 255.0 if ink.max() > 1 else ink
    big = Image.fromarray((np.clip(ink, 0, 1) * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    if transparent:
        rgba = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        rgba.putalpha(big)
        return rgba
    return Image.fromarray(255 - np.asarray(big))
