"""Scribbles and shapes: drawings made from a random generator alone, with no font and no MNIST digit."""

from __future__ import annotations

import numpy as np
from PIL import Image

from livedigits.offline.nondigits.strokes import SIZE, blank, pen_width, polyline, smooth

# --- scribbles: stroke shapes in their own units, placed and drawn by pen_drawing --------------------------------


def walk(rng: np.random.Generator) -> list[np.ndarray]:
    """A random walk: 120..300 unit steps whose heading drifts, from a meander to a tight squiggle (a walk of fewer
    steps or steadier heading is an arc, and arcs are parts of digits)."""
    n = int(rng.integers(120, 301))
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, rng.uniform(0.35, 0.9), n))
    return [np.vstack([[0.0, 0.0], np.cumsum(np.stack([np.cos(heading), np.sin(heading)], axis=1), axis=0)])]


def bezier(rng: np.random.Generator) -> list[np.ndarray]:
    """3..5 cubic Bezier curves in the unit square, chained without a kink (two would often be an arc or an S)."""
    t = np.linspace(0, 1, 24)[:, None]
    start, handle = rng.uniform(0, 1, (2, 2))
    curves = []
    for _ in range(int(rng.integers(3, 6))):
        control, end = rng.uniform(0, 1, (2, 2))
        curves.append((1 - t) ** 3 * start + 3 * (1 - t) ** 2 * t * handle + 3 * (1 - t) * t**2 * control + t**3 * end)
        start, handle = end, 2 * end - control  # the next curve leaves along the tangent this one arrived on
    return [np.vstack(curves)]


def spiral(rng: np.random.Generator) -> list[np.ndarray]:
    """An Archimedean spiral of 1.5..4 turns either way, squashed a little, its radius wavering by a few percent."""
    turns = rng.uniform(1.5, 4)
    theta = np.linspace(0, 2 * np.pi * turns, int(60 * turns))
    waver = 1 + 0.05 * np.sin(theta * rng.uniform(0.5, 2) + rng.uniform(0, 2 * np.pi))
    radius = (0.1 + theta / (2 * np.pi)) * waver
    angle = rng.choice([-1, 1]) * theta + rng.uniform(0, 2 * np.pi)
    return [np.stack([rng.uniform(0.75, 1.25) * radius * np.cos(angle), radius * np.sin(angle)], axis=1)]


def rotated(points: np.ndarray, degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    return points @ np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])


def zigzag(rng: np.random.Generator) -> list[np.ndarray]:
    """4..10 teeth along a line at any angle, each corner a little off."""
    corners = 2 * int(rng.integers(4, 11)) + 1
    along = np.arange(corners) + rng.uniform(-0.2, 0.2, corners)
    across = (np.arange(corners) % 2) * rng.uniform(1.5, 5) + rng.uniform(-0.2, 0.2, corners)
    return [rotated(np.stack([along, across], axis=1), rng.uniform(0, 180))]


def hatch(rng: np.random.Generator) -> list[np.ndarray]:
    """4..9 parallel strokes at any angle, crossed by a second set two times in five."""
    strokes = []
    for angle in [rng.uniform(0, 180)] + ([rng.uniform(50, 130)] if rng.random() < 0.4 else []):
        n = int(rng.integers(4, 10))
        length = rng.uniform(3, 8)
        for i in range(n):
            start = rng.uniform(-0.5, 0.5)
            stroke = np.array([[start, i + rng.uniform(-0.15, 0.15)], [start + length, i + rng.uniform(-0.3, 0.3)]])
            strokes.append(rotated(stroke - [length / 2, n / 2], angle))
    return strokes


def scribble(rng: np.random.Generator) -> Image.Image:
    """Back-and-forth strokes over one spot: 6..16 random points joined by a smooth curve."""
    image, draw = blank()
    centre, spread = rng.uniform(100, 180, 2), rng.uniform(40, 110)
    points = np.clip(centre + rng.normal(0, spread, (int(rng.integers(6, 17)), 2)), 10, SIZE - 10)
    polyline(draw, smooth(points), pen_width(rng))
    return image


# --- shapes -------------------------------------------------------------------------------------------------------


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
