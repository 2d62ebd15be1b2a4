"""Non-digit families for leave-one-family-out: every family draws, repeats, keeps its sources apart, is held out."""

from __future__ import annotations

from itertools import chain

import numpy as np
import pytest

from livedigits.offline import nondigits
from livedigits.offline.nondigits import BENCH_SEED, FAMILIES, FONTS, HOLDOUTS, SIZE, font_files, from_mnist, generate

GROUPS = {"letters", "symbols", "scribbles", "text", "crossed", "shapes"}


def white_corners(canvas: np.ndarray, side: int = 8) -> int:
    edges = (slice(None, side), slice(-side, None))
    return sum(int(canvas[rows, cols].min() == 255) for rows in edges for cols in edges)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_draws_ink_on_white_repeatably_and_apart_by_source(name):
    train = generate(name, 3, "train")
    canvases = [np.asarray(image) for image in train]
    assert all(image.size == (SIZE, SIZE) and image.mode == "L" for image in train)
    assert all(canvas.min() < 128 for canvas in canvases)  # some ink on each
    assert sum(white_corners(canvas) for canvas in canvases) >= 9  # of 12: drawings sit on a white page
    again = generate(name, 3, "train")
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(canvases, again, strict=True))
    assert np.array_equal(canvases[2], np.asarray(generate(name, 1, "train", start=2)[0]))  # a seed, not a position
    bench = [np.asarray(image) for image in generate(name, 3, "bench")]
    assert not any(np.array_equal(t, b) for t, b in zip(canvases, bench, strict=True))
    assert not np.array_equal(canvases[0], canvases[1])


def test_families_and_holdouts_name_each_other():
    assert all(name == family.name and family.group in GROUPS for name, family in FAMILIES.items())
    held_out = list(chain.from_iterable(HOLDOUTS.values()))
    assert set(held_out) == set(FAMILIES)  # every family is tested on at least once, and none is made up
    assert set(HOLDOUTS["letters:glyph"]) == {f"letter-glyph-{font}" for font in FONTS}
    assert HOLDOUTS["letters:liberation-mono"] == ("letter-glyph-liberation-mono", "letter-pen-liberation-mono")
    assert {"symbols", "crossed", "scribble-spiral", "digits-side-by-side", "dot"} <= set(HOLDOUTS)


def test_fonts_are_found_and_apart():
    files = {font: set(font_files(font)) for font in FONTS}
    assert all(files.values())
    assert sum(map(len, files.values())) == len(set().union(*files.values()))  # no file in two fonts
    assert not any("Mono" in path.name for path in files["dejavu-sans"] | files["liberation-sans"])
    assert not any("Math" in path.name for path in set().union(*files.values()))


def test_train_seeds_stay_below_bench_seeds():
    assert len(generate("dot", 1, "train", start=BENCH_SEED - 1)) == 1
    with pytest.raises(ValueError):
        generate("dot", 2, "train", start=BENCH_SEED - 1)
    with pytest.raises(ValueError):
        generate("dot", 1, "test")
    with pytest.raises(ValueError):
        generate("letter", 1, "train")


@pytest.fixture
def loaded_splits(monkeypatch):
    """Records which MNIST splits the digit families read, serving each a few bars instead of real digits."""
    splits = []

    def load_split(directory, split):
        splits.append(split)
        images = np.zeros((5, 28, 28), np.uint8)
        images[:, 4:24, 12:16] = 255
        return images, np.arange(5)

    monkeypatch.setattr(from_mnist, "load_split", load_split)
    nondigits.mnist.cache_clear()
    yield splits
    nondigits.mnist.cache_clear()


def test_digit_families_draw_bench_digits_from_t10k(loaded_splits):
    for name in ("digits-side-by-side", "digit-crossed", "digit-struck"):
        generate(name, 2, "bench")
    assert loaded_splits == ["t10k"]  # read once, then cached
    generate("digits-side-by-side", 2, "train")
    assert loaded_splits == ["t10k", "train"]
