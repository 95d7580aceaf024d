"""The one function that draws sequences: every source keys a sequence by (seed, part, index), any T is a prefix of
a longer one, the parts draw from their own digits, and the canonical test file replaces moving_mnist's test part."""

from __future__ import annotations

import numpy as np
import pytest

from imfn.data.frame import MNIST_FRAME
from imfn.data.mnist import write_split
from imfn.data.moving_mnist import FRAME
from imfn.data.sequences import Sequences, open_sequences
from imfn.data.source import source
from imfn.registry import SOURCES


@pytest.fixture(scope="module")
def split(mnist_store, tmp_path_factory):
    path = tmp_path_factory.mktemp("sequences") / "split.parquet"
    write_split(mnist_store, 0, 0.1, path)
    return path


@pytest.mark.parametrize("name", list(SOURCES))
def test_a_sequence_depends_on_its_index_alone_and_shorter_ones_are_its_prefix(name, mnist_store, split):
    sequences = open_sequences(name, mnist_store, split, seed=0)
    batch = sequences.draw("train", 10, 4, 8)
    assert batch.shape == (4, 8, source(name).frame_shape.pixels) and batch.dtype == np.uint8
    assert np.array_equal(sequences.draw("train", 12, 1, 8)[0], batch[2])  # same index, other batch
    assert np.array_equal(sequences.draw("train", 10, 4, 3), batch[:, :3])  # a shorter T is a prefix
    assert not np.array_equal(sequences.draw("test", 10, 4, 8), batch)  # the parts differ
    assert not np.array_equal(open_sequences(name, mnist_store, split, seed=1).draw("train", 10, 4, 8), batch)


def test_mnist_sequences_hold_digits_of_their_part_only(mnist_store, split):
    sequences = open_sequences("mnist", mnist_store, split, seed=0)
    test_rows = {row.tobytes() for row in sequences.digits.images[sequences.digits.test]}
    drawn = sequences.draw("test", 0, 20, 4).reshape(-1, MNIST_FRAME.pixels)
    assert all(row.tobytes() in test_rows for row in drawn)


def test_the_canonical_file_is_moving_mnists_test_part_and_is_checked_first(mnist_store, split, tmp_path):
    clips = np.random.default_rng(0).integers(0, 256, (20, 3, FRAME.height, FRAME.width), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", clips)
    sequences = open_sequences("moving_mnist", mnist_store, split, 0, canonical=tmp_path / "mnist_test_seq.npy")
    test = sequences.draw("test", 1, 2, 16)
    assert np.array_equal(test, clips[:16, 1:3].transpose(1, 0, 2, 3).reshape(2, 16, -1))
    assert sequences.draw("train", 0, 1, 4).shape == (1, 4, FRAME.pixels)  # training stays generated
    assert (sequences.max_frames("test"), sequences.max_frames("train")) == (20, None)
    assert open_sequences("moving_mnist", mnist_store, split, 0).max_frames("test") is None
    with pytest.raises(ValueError, match="20 frames per sequence; T=32"):
        sequences.draw("test", 0, 1, 32)
    with pytest.raises(ValueError, match="holds 3 sequences"):
        sequences.draw("test", 2, 2, 4)
    np.save(tmp_path / "wrong.npy", clips[:, :, :32])
    with pytest.raises(ValueError, match=r"wrong\.npy.*\(20, N, 64, 64\) uint8"):
        open_sequences("moving_mnist", mnist_store, split, 0, canonical=tmp_path / "wrong.npy")


def test_an_unknown_source_is_named(mnist_store, split):
    with pytest.raises(ValueError, match="unknown sequence source 'kth'"):
        open_sequences("kth", mnist_store, split, 0)
    with pytest.raises(ValueError, match="is for a source that publishes one; mnist does not"):
        Sequences(source("mnist"), 0, open_sequences("mnist", mnist_store, split, 0).digits, canonical=split)
    with pytest.raises(FileNotFoundError, match="the split .*missing.parquet not found"):
        open_sequences("mnist", mnist_store, split.parent / "missing.parquet", 0)
