"""Write models/heldout.npz: PER_LABEL t10k digits of each label, preprocessed as the service does.

python -m livedigits.offline.heldout_slice --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from livedigits.pipeline.drawings import prepare, quantise
from livedigits.state.heldout import PER_LABEL, SEED
from livedigits.state.mnist import load_split


def make_slice(data: Path, path: Path) -> None:
    """Pick PER_LABEL t10k digits of each label (seeded), preprocess them as the service does, save them."""

    images, labels = load_split(data, "t10k")
    rng = np.random.default_rng(SEED)
    picks = np.sort(
        np.concatenate([rng.choice(np.flatnonzero(labels == d), PER_LABEL, replace=False) for d in range(10)])
    )
    digits = np.stack([quantise(d) for d in prepare(images[picks])])
    np.savez_compressed(path, images=digits, labels=labels[picks].astype(np.uint8), t10k_index=picks.astype(np.uint16))
    print(f"{path}: {len(picks)} t10k digits ({PER_LABEL} per label), {path.stat().st_size / 1e3:.0f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder with t10k-images/labels-idx*-ubyte.gz")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "models" / "heldout.npz")
    args = parser.parse_args()
    make_slice(args.data, args.out)


if __name__ == "__main__":
    main()
