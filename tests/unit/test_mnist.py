from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest import MNIST

from livedigits.state.mnist import load_split, read_idx, write_idx


def test_reads_the_shared_mnist_files():
    images, labels = load_split(MNIST, "t10k")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert labels[:3].tolist() == [7, 2, 1]  # the famous first t10k digits


def test_write_then_read_round_trips(tmp_path):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "x-images-idx3-ubyte.gz", array)
    write_idx(tmp_path / "x-labels-idx1-ubyte.gz", np.array([3, 4], dtype=np.uint8))
    images, labels = load_split(tmp_path, "x")
    assert np.array_equal(images, array) and labels.tolist() == [3, 4]


def test_rejects_wrong_magic_and_short_body(tmp_path):
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00")
    with pytest.raises(ValueError):
        read_idx(bad)
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02")
    with pytest.raises(ValueError):
        read_idx(bad)
