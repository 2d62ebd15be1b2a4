"""Drawings as a browser sends them: dark strokes on a white canvas, as PNG or JPEG data URLs."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw


def to_data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def canvas_of(digit: np.ndarray, size: int = 280, transparent: bool = False) -> Image.Image:
    """A (28, 28) ink-bright digit (0..255 or 0..1) rendered dark on a white (or clear) canvas."""
    ink = np.asarray(digit, dtype=np.float32)
    ink = ink / 255.0 if ink.max() > 1 else ink
    big = Image.fromarray((ink * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    if transparent:
        rgba = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        rgba.putalpha(big)
        return rgba
    return Image.fromarray(255 - np.asarray(big))


def stroke_canvas(points: list[tuple[int, int]], size: int = 280, width: int = 20) -> Image.Image:
    """A polyline drawn the way the page draws it: black, round-ish, on white."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.line(points, fill="black", width=width, joint="curve")
    for x, y in (points[0], points[-1]):
        draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill="black")
    return image


def blank_canvas(size: int = 280) -> Image.Image:
    return Image.new("RGB", (size, size), "white")
