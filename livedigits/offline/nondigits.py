"""Drawings that are not digits, generated: letters, scribbles, dots, lines and filled blobs.

Each is a 280x280 canvas as a browser would send it (dark ink on white), drawn with a random pen.
Two disjoint sources, so that what teaches the service to refuse is never what measures it:

- "train": letters from the DejaVu fonts, shapes from seeds below BENCH_SEED (livedigits/offline/train.py fits and
  calibrates the refusal on these);
- "bench": letters from the Liberation fonts, shapes from seeds from BENCH_SEED on (bench/nondigits.py).

Letters that people also write as digits (O for 0, l and I for 1, Z for 2, S for 5, b and G for 6,
B for 8, g and q for 9, ...) are left out: refusing them would refuse real digits.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = 280
BENCH_SEED = 1_000_000
LETTERS = "ACEFHJKLMNPRTUVWXYacdefhkmnprtuvwxy"
FONT_DIRS = {"train": "dejavu", "bench": "liberation"}
FONT_ROOT = Path("/usr/share/fonts/truetype")
KINDS = ("letter", "scribble", "dot", "line", "blob")


@cache  # one directory listing per source, not one per letter drawn
def fonts(source: str) -> list[Path]:
    """The font files of one source (DejaVu for training, Liberation for the bench), Math fonts left out."""
    found = sorted(p for p in (FONT_ROOT / FONT_DIRS[source]).glob("*.ttf") if "Math" not in p.name)
    if not found:
        raise FileNotFoundError(f"no {FONT_DIRS[source]} fonts under {FONT_ROOT} (Debian: fonts-{FONT_DIRS[source]})")
    return found


def pen_width(rng: np.random.Generator) -> int:
    """From a stylus to a marker: 6..36 pixels on the 280 canvas (the page's own pen is 20)."""
    return int(rng.integers(6, 37))


def blank() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (SIZE, SIZE), 255)
    return image, ImageDraw.Draw(image)


def polyline(draw: ImageDraw.ImageDraw, points: np.ndarray, width: int) -> None:
    """A stroke as the page draws one: round joints and round ends."""
    draw.line([tuple(p) for p in points], fill=0, width=width, joint="curve")
    for x, y in points:
        draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)


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


def letter(rng: np.random.Generator, source: str) -> Image.Image:
    glyph = LETTERS[rng.integers(len(LETTERS))]
    files = fonts(source)
    font = ImageFont.truetype(str(files[rng.integers(len(files))]), int(rng.integers(140, 260)))
    image, draw = blank()
    left, top, right, bottom = draw.textbbox((0, 0), glyph, font=font)
    x = (SIZE - (right - left)) / 2 - left + rng.uniform(-30, 30)
    y = (SIZE - (bottom - top)) / 2 - top + rng.uniform(-30, 30)
    draw.text((x, y), glyph, font=font, fill=0)
    return image.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR, fillcolor=255)


def scribble(rng: np.random.Generator) -> Image.Image:
    """Back-and-forth strokes over one spot: 6..16 random points joined by a smooth curve."""
    image, draw = blank()
    centre, spread = rng.uniform(100, 180, 2), rng.uniform(40, 110)
    points = np.clip(centre + rng.normal(0, spread, (int(rng.integers(6, 17)), 2)), 10, SIZE - 10)
    polyline(draw, smooth(points), pen_width(rng))
    return image


def dot(rng: np.random.Generator) -> Image.Image:
    """A tap or a short dab: one disc 4..40 pixels across, anywhere."""
    image, draw = blank()
    radius = rng.uniform(2, 20)
    x, y = rng.uniform(30, SIZE - 30, 2)
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=0)
    return image


def line(rng: np.random.Generator) -> Image.Image:
    """One straight stroke at least 35 degrees from vertical (steeper ones are how people write 1)."""
    image, draw = blank()
    angle = np.deg2rad(rng.uniform(35, 145) * rng.choice([-1, 1]))
    length = rng.uniform(60, 240)
    centre = rng.uniform(110, 170, 2)
    offset = 0.5 * length * np.array([np.sin(angle), np.cos(angle)])
    polyline(draw, np.array([centre - offset, centre + offset]), pen_width(rng))
    return image


def blob(rng: np.random.Generator) -> Image.Image:
    """A filled shape: a smooth closed outline around a centre, coloured in."""
    image, draw = blank()
    n = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(30, 110) * rng.uniform(0.5, 1.0, n)
    centre = rng.uniform(110, 170, 2)
    points = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    outline = smooth(np.vstack([points, points[:2]]))
    draw.polygon([tuple(p) for p in outline], fill=0)
    return image


GENERATORS: dict[str, Callable[[np.random.Generator], Image.Image]] = {
    "scribble": scribble,
    "dot": dot,
    "line": line,
    "blob": blob,
}


def generate(kind: str, n: int, source: str, start: int = 0) -> list[Image.Image]:
    """`n` canvases of one kind from one source ("train" or "bench"), each from its own seed."""
    first = start + (BENCH_SEED if source == "bench" else 0)
    if source == "train" and start + n > BENCH_SEED:
        raise ValueError("training seeds must stay below BENCH_SEED")
    draw = (lambda rng: letter(rng, source)) if kind == "letter" else GENERATORS[kind]
    return [draw(np.random.default_rng([KINDS.index(kind), seed])) for seed in range(first, first + n)]
