"""Read MNIST-format IDX gz files (the format livedigits/offline/train.py takes and the export writes).

IDX: a 4-byte magic (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the data. Only unsigned bytes (type 0x08) are used by MNIST.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """Return the array stored in an IDX file (gzip-compressed if the name ends in .gz)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != UBYTE:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    n_dims = data[3]
    shape = struct.unpack(f">{n_dims}I", data[4 : 4 + 4 * n_dims])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, body has {body.size} bytes")
    return body.reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def load_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load `{split}-images-idx3-ubyte.gz` and labels from a directory.

    Returns (images uint8 (n, 28, 28) ink bright on dark, labels int64 (n,)).
    """
    directory = Path(directory)
    images = read_idx(directory / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(directory / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"{directory}: {split} images {images.shape} and labels {labels.shape} disagree")
    return images, labels
