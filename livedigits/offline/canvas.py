"""Digits rendered the way a browser sends them: dark ink on a white (or clear) canvas, as data URLs.

Used to measure the service through its real input path: evaluation, benchmarks and tests.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.morphology import skeletonize

CANVAS_SIZE = 280


def to_data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def page_data_url(ink: np.ndarray) -> str:
    """An ink-bright digit as the page sends it: its canvas (`canvas_of`) as Chromium's canvas encodes one, an RGBA PNG
    with every alpha 255 (tests/browser/test_browser.py checks the page's)."""
    return to_data_url(canvas_of(ink).convert("RGBA"))


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


def with_width(ink: np.ndarray, width: float, size: int = CANVAS_SIZE) -> Image.Image:
    """An ink-bright digit ((h, w), 0..255 or 0..1) redrawn on a size x size canvas (dark on white) by a round pen
    whose strokes are `width` pixels wide once the service has scaled the drawing to its 20-pixel box.

    The pen follows the digit's skeleton, found at 200 pixels a side (where the service looks at 40): the
    centre line of each stroke, as a person's hand would trace it. Scaled so that the skeleton plus the pen
    fills 93% of the canvas: a thin line drawn large, a marker drawn small.
    """
    ink = np.asarray(ink, dtype=np.float32)
    ink = ink / ink.max() if ink.max() > 0 else ink
    big = np.asarray(Image.fromarray(ink, mode="F").resize((200, 200), Image.Resampling.BICUBIC))
    ys, xs = np.nonzero(skeletonize(big >= 0.5))
    ys, xs = ys - ys.min(), xs - xs.min()
    filled = 0.93 * size  # skeleton + pen, in canvas pixels
    pen = filled * width / 20  # after the service's scale of `filled` to 20 pixels, the pen is `width` wide
    scale = (filled - pen) / max(ys.max(), xs.max(), 1)
    centre = np.array([ys.max(), xs.max()]) * scale / 2
    away = np.ones((size, size), bool)
    away[
        np.rint(ys * scale + size / 2 - centre[0]).astype(int), np.rint(xs * scale + size / 2 - centre[1]).astype(int)
    ] = False
    painted = np.clip(pen / 2 + 0.5 - ndimage.distance_transform_edt(away), 0, 1)
    return Image.fromarray(np.rint(255 * (1 - painted)).astype(np.uint8))
