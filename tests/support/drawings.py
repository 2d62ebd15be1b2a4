"""Drawings as a browser sends them: dark strokes on a white canvas, as PNG or JPEG data URLs."""

from __future__ import annotations

from PIL import Image, ImageDraw

from livedigits.offline.canvas import canvas_of, to_data_url

__all__ = ["blank_canvas", "canvas_of", "stroke_canvas", "to_data_url"]


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
