"""Sequence sources: the one place that draws the T-frame sequences every consumer reads.

A *source* is what a sequence of frames is made of (config ``sources``, the workflow's ``{source}`` wildcard):

- ``mnist``: the paper's sequences, T digits drawn independently (with replacement) from one part of a seed's
  split; frames are 28x28.
- ``moving_mnist``: two digits of that part bouncing in a 64x64 frame (:mod:`imfn.data.moving_mnist`).

Sequence ``index`` of a part (``train`` or ``test``) of seed ``seed`` is a pure function of (source, seed, part,
index): the same in any batch, and its first frames are the same whatever T is asked for. The roundtrip
evaluation, the trajectory sets, the compressors, the per-frame references and the tree's levels all draw from
here, each from its own range of indices where it needs sequences of its own.

With a canonical Moving MNIST file (``mnist_test_seq.npy``), the ``test`` part of ``moving_mnist`` is that file's
sequences instead (T <= 20).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imfn.data import moving_mnist
from imfn.data.frame import MNIST_FRAME, FrameShape
from imfn.data.mnist import SplitImages, load_split_images
from imfn.job import numpy_generator

if TYPE_CHECKING:  # torch is imported by the functions that return tensors, when called
    import torch

SOURCES = ("mnist", "moving_mnist")
PARTS = ("train", "test")
FRAMES = {"mnist": MNIST_FRAME, "moving_mnist": moving_mnist.FRAME}
MNIST_SEQUENCE_STREAM = "mnist-sequence"


def frame_shape(source: str) -> FrameShape:
    """The frame geometry of ``source``."""
    check_source(source)
    return FRAMES[source]


def check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown sequence source {source!r}; expected one of {SOURCES}")


def _check_range(part: str, start: int, count: int, T: int) -> None:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if start < 0 or count < 0:
        raise ValueError(f"sequence indices must be >= 0: start {start}, count {count}")
    if T < 1:
        raise ValueError(f"a sequence needs at least one frame, got T={T}")


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


@dataclass(frozen=True)
class Sequences:
    """The sequences of one source for one seed: :meth:`draw` gives any range of them, at any length."""

    source: str
    seed: int
    digits: SplitImages
    canonical: Path | None = None  # moving_mnist: the canonical test file replaces the generated test part

    def __post_init__(self):
        check_source(self.source)
        if self.canonical is not None:
            if self.source != "moving_mnist":
                raise ValueError(f"a canonical test file ({self.canonical}) is for moving_mnist, not {self.source}")
            moving_mnist.open_canonical(self.canonical)  # its layout, checked before anything reads it

    @property
    def frame(self) -> FrameShape:
        return FRAMES[self.source]

    def max_frames(self, part: str) -> int | None:
        """The most frames a sequence of ``part`` can hold (None: any number; a canonical test file: its 20)."""
        return moving_mnist.CANONICAL_FRAMES if part == "test" and self.canonical is not None else None

    def draw(self, part: str, start: int, count: int, T: int) -> np.ndarray:
        """Sequences ``start .. start + count - 1`` of ``part``: (count, T, pixels) uint8."""
        _check_range(part, start, count, T)
        if self.source == "mnist":
            return independent_digits(self.digits, self.seed, part, start, count, T)
        if part == "test" and self.canonical is not None:
            return self._canonical(start, count, T)
        frames = moving_mnist.moving_mnist_sequences(self.digits, self.seed, part, start, count, T)
        return frames.reshape(count, T, -1)

    def draw_float(self, part: str, start: int, count: int, T: int):
        """:meth:`draw` as a float32 torch tensor of pixels in [0, 1]."""
        import torch

        return torch.from_numpy(self.draw(part, start, count, T)).float() / 255.0

    def _canonical(self, start: int, count: int, T: int) -> np.ndarray:
        data = moving_mnist.open_canonical(self.canonical)
        if T > moving_mnist.CANONICAL_FRAMES:
            raise ValueError(
                f"{self.canonical} holds {moving_mnist.CANONICAL_FRAMES} frames per sequence; T={T} asked for"
            )
        if start + count > data.shape[1]:
            raise ValueError(
                f"{self.canonical} holds {data.shape[1]} sequences; sequences {start}..{start + count - 1} asked for"
            )
        frames = np.ascontiguousarray(data[:T, start : start + count].transpose(1, 0, 2, 3))
        return frames.reshape(count, T, -1)


def training_frames(sequences: Sequences, count: int | None = None) -> torch.Tensor:
    """(count, pixels) uint8: the frames the per-frame references learn from, the first frame of training
    sequences 0 .. count - 1 (one frame per sequence: as independent as the source's frames get). None: as many
    frames as the seed's split has training digits (for ``mnist`` that many draws from them)."""
    count = len(sequences.digits.train) if count is None else count
    if count < 2:
        raise ValueError(f"per-frame references need at least 2 training frames, got {count}")
    import torch

    return torch.from_numpy(sequences.draw("train", 0, count, 1)[:, 0])


def trajectory_frames(sequences: Sequences, attrs: dict, start: int, count: int) -> torch.Tensor:
    """Float pixels (count, T, pixels) of rows ``start .. start + count - 1`` of the trajectory set with ``attrs``."""
    if (attrs.get("source"), attrs.get("seed")) != (sequences.source, sequences.seed):
        raise ValueError(f"the trajectory set holds {attrs.get('source')} seed {attrs.get('seed')} sequences, "
                         f"not {sequences.source} seed {sequences.seed}")  # fmt: skip
    return sequences.draw_float(attrs["part"], attrs["start"] + start, count, attrs["T"])


def open_sequences(source: str, mnist: Path, split: Path, seed: int, canonical: Path | None = None) -> Sequences:
    """The sequences of ``source`` for ``seed``, built from the MNIST store and the seed's split."""
    check_source(source)
    return Sequences(source, seed, load_split_images(Path(mnist), Path(split)), Path(canonical) if canonical else None)
