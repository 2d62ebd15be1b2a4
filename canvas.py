"""Digits rendered the way a browser sends them: dark ink on a white (or clear) canvas, as data URLs.

Used to measure the service through its real input path: evaluation, benchmarks and tests.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

CANVAS_SIZE = 280


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
