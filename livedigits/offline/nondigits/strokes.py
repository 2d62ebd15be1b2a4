"""Canvas and pen for the non-digit families: a blank 280x280 page, strokes drawn as the page draws them, and
drawings placed at a random size and spot."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageOps

SIZE = 280
EXTENT = (0.4, 0.95)  # a drawing's larger side as a share of the canvas: from a corner sketch to edge to edge
MARGIN = 4  # pixels kept clear at the canvas's edges, so that its corners stay white


def pen_width(rng: np.random.Generator) -> int:
    """From a stylus to a marker: 6..36 pixels on the 280 canvas (the page's own pen is 20)."""
    return int(rng.integers(6, 37))


def blank() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (SIZE, SIZE), 255)
    return image, ImageDraw.Draw(image)


def polyline(draw: ImageDraw.ImageDraw, points: np.ndarray, width: int) -> None:
    """A stroke as the page draws one: round joints and round ends."""
    draw.line([tuple(p) for p in points], fill=0, width=width, joint="curve")
    dabs(draw, points, width)


def dabs(draw: ImageDraw.ImageDraw, points: np.ndarray, width: int) -> None:
    """One round pen tip pressed at each point ((n, 2) x, y)."""
    radius = width / 2
    for x, y in points:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=0)


def smooth(points: np.ndarray, per_segment: int = 8) -> np.ndarray:
    """A Catmull-Rom curve through the points: a hand's curve, not a polygon."""
    padded = np.vstack([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    curve = []
    for p0, p1, p2, p3 in zip(padded, padded[1:], padded[2:], padded[3:], strict=False):
        curve.append(
            0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
        )
    return np.vstack([*curve, points[-1:]])


def place(
    strokes: list[np.ndarray], rng: np.random.Generator, width: int, smallest: float = EXTENT[0] * SIZE
) -> list[np.ndarray]:
    """Strokes ((n, 2) points, any units) scaled so that their larger side spans `smallest`..95% of the canvas,
    at a random spot, the pen's width included: drawings are not always centred nor always canvas-filling."""
    points = np.vstack(strokes)
    low, high = points.min(axis=0), points.max(axis=0)
    most = EXTENT[1] * SIZE - width
    scale = rng.uniform(min(smallest, most), most) / max((high - low).max(), 1e-6)
    room = SIZE - 2 * MARGIN - width - (high - low) * scale
    corner = MARGIN + width / 2 + rng.uniform(0, 1, 2) * np.maximum(room, 0)
    return [(stroke - low) * scale + corner for stroke in strokes]


def pen_drawing(strokes: list[np.ndarray], rng: np.random.Generator, gap: float | None = None) -> Image.Image:
    """Strokes drawn with one random pen, placed anywhere on a blank canvas. Shapes whose strokes run `gap` apart
    (in the strokes' units: a spiral's turns, a hatch's lines) are drawn large enough, and with a pen thin enough,
    that a gap stays at least 1.5 pen widths wide: a marker's dense hatch would be a blob, not a hatch."""
    width, smallest = pen_width(rng), EXTENT[0] * SIZE
    if gap:
        gaps = np.ptp(np.vstack(strokes), axis=0).max() / gap  # how many gaps span the larger side
        width = min(width, max(6, int((EXTENT[1] * SIZE - width) / (1.5 * gaps))))
        smallest = max(smallest, 1.5 * gaps * width)
    image, draw = blank()
    for stroke in place(strokes, rng, width, smallest):
        polyline(draw, stroke, width)
    return image


def placed(drawing: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A dark-on-white drawing cut to its ink and pasted at a random spot of a blank canvas (shrunk if too big)."""
    cut = drawing.crop(ImageOps.invert(drawing).getbbox())
    cut.thumbnail((SIZE - 2 * MARGIN,) * 2, Image.Resampling.BILINEAR)
    canvas, _ = blank()
    x, y = (rng.integers(MARGIN, SIZE - MARGIN - side + 1) for side in cut.size)
    canvas.paste(cut, (int(x), int(y)))
    return canvas
