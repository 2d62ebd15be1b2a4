"""Drawings that are not digits, generated in families, to measure a "not a digit" detector leave-one-family-out.

A detector trained on every family but one and tested on the one left out shows whether it learned "not a digit"
or only the families it was shown. Families too alike to test each other (one font's glyphs and its pen drawings,
the two symbol renderings, the two ways of crossing out a digit) are held out together: see HOLDOUTS.

Each drawing is a 280x280 greyscale canvas as a browser sends one (dark ink 0 on white 255), from its own seed.
Two disjoint sources, so that what teaches the service to refuse is never what measures it: "train" seeds lie below
BENCH_SEED and the families built on MNIST take their digits from its train split; "bench" seeds start at
BENCH_SEED and those families take t10k's digits (from MNIST_DIR: ../shared/data/mnist, or the MNIST_DIR
environment variable).

Letters that people also write as digits (O for 0, l, I and J for 1, Z for 2, S for 5, b and G for 6, B for 8, g and
q for 9, ...) are left out, and so are symbols that are one near-vertical stroke, as a 1 is (| ! / \\ ( ) [ ] { }):
refusing them would refuse real digits. For the same reason no 7 is struck through: much of Europe bars its 7s.

This module names the families and draws them from their seeds; the drawing is done in its modules: strokes (the
canvas and the pen), glyphs (letters and symbols from fonts, typed or traced), scribbles (scribbles and shapes) and
from_mnist (MNIST digits with something added).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image

from livedigits.offline.nondigits.from_mnist import (
    MNIST_SPLITS,
    digit_crossed,
    digit_struck,
    digits_side_by_side,
    mnist,
)
from livedigits.offline.nondigits.glyphs import FONTS, LETTERS, SYMBOLS, font_files, glyph, pen_glyph, text
from livedigits.offline.nondigits.scribbles import bezier, blob, dot, hatch, line, scribble, spiral, walk, zigzag
from livedigits.offline.nondigits.strokes import SIZE, pen_drawing

__all__ = ["BENCH_SEED", "FAMILIES", "FONTS", "HOLDOUTS", "SIZE", "Family", "font_files", "generate", "mnist"]

BENCH_SEED = 1_000_000


@dataclass(frozen=True)
class Family:
    """One kind of non-digit drawing: the unit a detector is trained without and then tested on."""

    name: str
    group: str  # "letters", "symbols", "scribbles", "text", "crossed" or "shapes"
    tags: tuple[str, ...]  # what it is made of, e.g. ("letters", "font:dejavu-sans", "method:glyph")
    draw: Callable[[np.random.Generator, str], Image.Image]  # (rng, source) -> a 280x280 "L" canvas


# --- families -----------------------------------------------------------------------------------------------------


def any_source(draw: Callable[[np.random.Generator], Image.Image]) -> Callable[[np.random.Generator, str], Image.Image]:
    """A family drawn alike from either source: only the seeds keep train and bench apart."""
    return lambda rng, source: draw(rng)


def strokes_family(
    shape: Callable[[np.random.Generator], list[np.ndarray]], gap: float | None = None
) -> Callable[[np.random.Generator, str], Image.Image]:
    """A family of stroke shapes, each drawn with one random pen at a random size and spot (see pen_drawing)."""
    return any_source(lambda rng: pen_drawing(shape(rng), rng, gap))


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        *(
            Family(
                f"letter-{method}-{font}",
                "letters",
                ("letters", f"font:{font}", f"method:{method}"),
                any_source(partial(draw, characters=LETTERS, font=font)),
            )
            for method, draw in (("glyph", glyph), ("pen", pen_glyph))
            for font in FONTS
        ),
        Family("symbol-glyph", "symbols", ("symbols", "method:glyph"), any_source(partial(glyph, characters=SYMBOLS))),
        Family("symbol-pen", "symbols", ("symbols", "method:pen"), any_source(partial(pen_glyph, characters=SYMBOLS))),
        Family("scribble-walk", "scribbles", ("scribbles", "method:stroke"), strokes_family(walk, gap=3)),
        Family("scribble-bezier", "scribbles", ("scribbles", "method:stroke"), strokes_family(bezier)),
        Family("scribble-spiral", "scribbles", ("scribbles", "method:stroke"), strokes_family(spiral, gap=0.75)),
        Family("scribble-zigzag", "scribbles", ("scribbles", "method:stroke"), strokes_family(zigzag, gap=1)),
        Family("scribble-hatch", "scribbles", ("scribbles", "method:stroke"), strokes_family(hatch, gap=1)),
        Family("scribble-smooth", "scribbles", ("scribbles", "method:stroke"), any_source(scribble)),
        Family("text-letters", "text", ("text", "letters", "symbols", "method:glyph", "method:pen"), any_source(text)),
        Family("digits-side-by-side", "text", ("text", "mnist"), digits_side_by_side),
        Family("digit-crossed", "crossed", ("crossed", "mnist", "method:stroke"), digit_crossed),
        Family("digit-struck", "crossed", ("crossed", "mnist", "method:stroke"), digit_struck),
        Family("dot", "shapes", ("shapes", "method:fill"), any_source(dot)),
        Family("line", "shapes", ("shapes", "method:stroke"), any_source(line)),
        Family("blob", "shapes", ("shapes", "method:fill"), any_source(blob)),
    )
}

# What a leave-one-out run holds out together: families alone, except where two would teach each other the answer.
HOLDOUTS: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name, family in FAMILIES.items() if family.group in ("scribbles", "text", "shapes")},
    **{f"letters:{font}": (f"letter-glyph-{font}", f"letter-pen-{font}") for font in FONTS},
    **{f"letters:{method}": tuple(f"letter-{method}-{font}" for font in FONTS) for method in ("glyph", "pen")},
    "symbols": ("symbol-glyph", "symbol-pen"),
    "crossed": ("digit-crossed", "digit-struck"),
}


def generate(family: str, n: int, source: str, start: int = 0) -> list[Image.Image]:
    """`n` canvases (280x280, "L") of one family from one source, each from its own seed
    np.random.default_rng([the family's index in FAMILIES, seed]): "train" seeds start..start+n (below BENCH_SEED),
    "bench" seeds BENCH_SEED+start on. New families go at the end of FAMILIES, so that old seeds keep their drawings.
    """
    if source not in MNIST_SPLITS:
        raise ValueError(f"source must be 'train' or 'bench', not {source!r}")
    if source == "train" and start + n > BENCH_SEED:
        raise ValueError("training seeds must stay below BENCH_SEED")
    if family not in FAMILIES:
        raise ValueError(f"no family {family!r}; FAMILIES has {', '.join(FAMILIES)}")
    index = list(FAMILIES).index(family)
    draw = FAMILIES[family].draw
    first = start + (BENCH_SEED if source == "bench" else 0)
    return [draw(np.random.default_rng([index, seed]), source) for seed in range(first, first + n)]
