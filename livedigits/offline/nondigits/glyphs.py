"""Fonts: glyphs as typed, and as a pen would draw them (traced along their skeletons), alone or as text."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from skimage.morphology import skeletonize

from livedigits.offline.nondigits.strokes import EXTENT, SIZE, blank, dabs, pen_width, place, placed

LETTERS = "ACEFHKLMNPRTUVWXYacdefhkmnprtuvwxy"
SYMBOLS = "#@&%$?+=*<>~^"
FONT_ROOT = Path("/usr/share/fonts/truetype")
FONTS: dict[str, tuple[str, ...]] = {
    "dejavu-sans": ("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-*.ttf", "dejavu/DejaVuSansCondensed*.ttf"),
    "dejavu-serif": ("dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSerif-*.ttf", "dejavu/DejaVuSerifCondensed*.ttf"),
    "dejavu-mono": ("dejavu/DejaVuSansMono*.ttf",),
    "liberation-sans": ("liberation/LiberationSans-*.ttf", "liberation/LiberationSansNarrow-*.ttf"),
    "liberation-serif": ("liberation/LiberationSerif-*.ttf",),
    "liberation-mono": ("liberation/LiberationMono-*.ttf",),
}
SKELETON_SIZE = 140  # pen drawings are traced from type of this size: skeletonize costs ~0.6 ms here, 4x that at 280
SPUR = 9  # skeleton branches shorter than this (in SKELETON_SIZE type) are a glyph's serifs and corners, not strokes


@cache  # one directory listing per font, not one per glyph drawn
def font_files(font: str) -> tuple[Path, ...]:
    """The .ttf files of one of FONTS (its weights, slants and widths)."""
    found = sorted({path for pattern in FONTS[font] for path in FONT_ROOT.glob(pattern)})
    if not found:
        raise FileNotFoundError(f"no {font} fonts under {FONT_ROOT} (Debian: fonts-dejavu, fonts-liberation)")
    return tuple(found)


def font_file(rng: np.random.Generator, font: str | None = None) -> Path:
    """A random file of one font, or of a random font."""
    font = font or list(FONTS)[rng.integers(len(FONTS))]
    files = font_files(font)
    return files[rng.integers(len(files))]


def typed(text: str, font: ImageFont.FreeTypeFont) -> Image.Image:
    """Text filled in dark on white, on a canvas cut to its bounding box."""
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left, bottom - top), 255)
    ImageDraw.Draw(image).text((-left, -top), text, font=font, fill=0)
    return image


def glyph_drawing(text: str, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> Image.Image:
    """Typed text, tilted -15..15 degrees, anywhere on the canvas."""
    tilted = typed(text, font).rotate(
        rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255
    )
    return placed(tilted, rng)


def skeleton(text: str, path: Path) -> np.ndarray:
    """The centre lines of text typed in SKELETON_SIZE-pixel type (long strings smaller, at most 2.5 times that
    wide): (n, 2) x, y pixel coordinates."""
    font = ImageFont.truetype(str(path), SKELETON_SIZE)
    left, _, right, _ = font.getbbox(text)
    too_wide = (right - left) / (2.5 * SKELETON_SIZE)
    if too_wide > 1:  # long strings: skeletonize's cost grows with the area
        font = ImageFont.truetype(str(path), int(SKELETON_SIZE / too_wide))
    return smoothed(pruned(skeletonize(np.asarray(typed(text, font)) < 128), SPUR))


def neighbourhood_sum(values: np.ndarray) -> np.ndarray:
    """Each pixel's sum over its 3x3 neighbourhood, itself included (zeros beyond the edges)."""
    padded = np.pad(values, 1)
    height, width = values.shape
    return sum(padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3))


def pruned(skeleton: np.ndarray, spur: int) -> np.ndarray:
    """A skeleton without the short branches that a glyph's wide ends, serifs and corners grow and no pen draws:
    cut at its junctions, the pieces with a free end and fewer than `spur` pixels go (whole short strokes stay)."""
    neighbours = neighbourhood_sum(skeleton.astype(np.int32)) - 1
    junctions = skeleton & (neighbours >= 3)
    pieces, n_pieces = ndimage.label(skeleton & ~junctions, structure=np.ones((3, 3)))
    ends = skeleton & (neighbours == 1)
    touches_junction = neighbourhood_sum(junctions.astype(np.int32)) > 0
    sizes = np.bincount(pieces.ravel(), minlength=n_pieces + 1)
    has_end = np.bincount(pieces[ends], minlength=n_pieces + 1) > 0
    attached = np.bincount(pieces[touches_junction & (pieces > 0)], minlength=n_pieces + 1) > 0
    spurs = has_end & attached & (sizes < spur)
    spurs[0] = False
    return skeleton & ~spurs[pieces]


def smoothed(skeleton: np.ndarray, passes: int = 2) -> np.ndarray:
    """A skeleton's pixels as (n, 2) x, y points, each averaged with its skeleton neighbours `passes` times: a
    pixel staircase, scaled up, would draw as a ragged stroke."""
    ys, xs = np.nonzero(skeleton)
    weight = skeleton.astype(np.float64)
    count = neighbourhood_sum(weight)
    grid = np.zeros((2, *skeleton.shape))
    grid[0][ys, xs], grid[1][ys, xs] = xs, ys
    for _ in range(passes):
        grid = np.stack([neighbourhood_sum(axis * weight) for axis in grid]) / np.maximum(count, 1)
    return np.stack([grid[0][ys, xs], grid[1][ys, xs]], axis=1)


def hand_moved(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Points ((n, 2)) as a hand would place them: a random slant, shear and aspect, and a smooth wobble of a
    few percent of the size, so that traced glyphs look drawn rather than typed."""
    angle, shear, aspect = np.deg2rad(rng.uniform(-15, 15)), rng.uniform(-0.25, 0.25), rng.uniform(0.85, 1.15)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (points - points.mean(axis=0)) @ (rotation @ np.array([[aspect, shear], [0, 1 / aspect]])).T
    span = max(np.ptp(moved, axis=0).max(), 1.0)
    # Three waves per axis, each at most ~1.5 periods across the drawing: a low-frequency displacement field.
    frequencies = rng.normal(0, 1.5, (2, 3, 2)) * 2 * np.pi / span
    amplitudes = rng.uniform(0.005, 0.015, (2, 3)) * span
    phases = rng.uniform(0, 2 * np.pi, (2, 3))
    for axis in range(2):
        moved[:, axis] += (amplitudes[axis] * np.sin(moved @ frequencies[axis].T + phases[axis])).sum(axis=1)
    return moved


def traced_drawing(text: str, path: Path, rng: np.random.Generator, width: int, smallest: float) -> Image.Image:
    """Text redrawn along its skeleton with a round pen of `width`, its larger side at least `smallest` pixels."""
    (points,) = place([hand_moved(skeleton(text, path), rng)], rng, width, smallest)
    # One dab per pen-quarter is enough for a solid stroke (the skeleton's pixels are denser once scaled up); the
    # dabs keep their own spots, as snapping them to the grid would draw a staircase.
    _, first = np.unique(np.round(points / max(1.0, width / 4)), axis=0, return_index=True)
    points = points[first]
    image, draw = blank()
    dabs(draw, points, width)
    return image


def glyph(rng: np.random.Generator, characters: str, font: str | None = None) -> Image.Image:
    """One character typed 140..260 pixels large (as a font fills it)."""
    character = characters[rng.integers(len(characters))]
    typeface = ImageFont.truetype(str(font_file(rng, font)), int(rng.integers(140, 261)))
    return glyph_drawing(character, typeface, rng)


def pen_glyph(rng: np.random.Generator, characters: str, font: str | None = None) -> Image.Image:
    """One character as a pen draws it: at least six pen widths large, so that a marker's letter stays legible."""
    character = characters[rng.integers(len(characters))]
    path = font_file(rng, font)
    width = pen_width(rng)
    return traced_drawing(character, path, rng, width, max(EXTENT[0] * SIZE, 6 * width))


def text(rng: np.random.Generator) -> Image.Image:
    """2..5 letters and symbols in a row, in one font, typed or drawn, across 60..95% of the canvas's width."""
    string = "".join(rng.choice(list(LETTERS + SYMBOLS), int(rng.integers(2, 6))))
    path = font_file(rng)
    target = rng.uniform(0.6, EXTENT[1]) * SIZE
    if rng.random() < 0.5:
        sized = ImageFont.truetype(str(path), 100)
        left, top, right, bottom = sized.getbbox(string)
        size = 100 * min(target / (right - left), 0.8 * SIZE / (bottom - top))
        return glyph_drawing(string, ImageFont.truetype(str(path), max(int(size), 10)), rng)
    # A pen fatter than a fifth of a character would fill its loops: cap it.
    width = min(pen_width(rng), max(6, int(target / len(string) / 5)))
    return traced_drawing(string, path, rng, width, target)
