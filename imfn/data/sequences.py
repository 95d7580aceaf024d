"""Sequence sources: what a sequence of frames is made of, and the one place that draws the T-frame sequences every
consumer reads.

A *source* (config ``sources``, the workflow's ``{source}`` wildcard) is a
:class:`~imfn.data.source.SequenceSource` registered by name in :data:`imfn.registry.SOURCES`; :class:`Sequences`
draws the sequences of one source for one seed.

Sequence ``index`` of a part (``train`` or ``test``) of seed ``seed`` is a pure function of (source, seed, part,
index): the same in any batch, and its first frames are the same whatever T is asked for. The roundtrip
evaluation, the trajectory sets, the compressors, the per-frame references and the tree's levels all draw from
here, each from its own range of indices where it needs sequences of its own. With a canonical test file, the
``test`` part is that file's sequences instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imfn.data.frame import FrameShape
from imfn.data.mnist import SplitImages, load_split_images
from imfn.data.source import SequenceSource, source

if TYPE_CHECKING:  # torch is imported by the functions that return tensors, when called
    import torch

PARTS = ("train", "test")

def _check_range(part: str, start: int, count: int, T: int) -> None:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if start < 0 or count < 0:
        raise ValueError(f"sequence indices must be >= 0: start {start}, count {count}")
    if T < 1:
        raise ValueError(f"a sequence needs at least one frame, got T={T}")


@dataclass(frozen=True)
class Sequences:
    """The sequences of one source for one seed: :meth:`draw` gives any range of them, at any length."""

    kind: SequenceSource
    seed: int
    digits: SplitImages
    canonical: Path | None = None  # the source's canonical test file: its sequences replace the generated test part

    def __post_init__(self):
        if self.canonical is not None:
            check_canonical(self.kind, self.canonical)  # its layout, checked before anything reads it

    @property
    def source(self) -> str:
        return self.kind.name

    @property
    def frame_shape(self) -> FrameShape:
        return self.kind.frame_shape

    def max_frames(self, part: str) -> int | None:
        """The most frames a sequence of ``part`` can hold (None: any number; a canonical test file: its own)."""
        return self.kind.canonical_test.frames if part == "test" and self.canonical is not None else None

    def draw(self, part: str, start: int, count: int, T: int) -> np.ndarray:
        """Sequences ``start .. start + count - 1`` of ``part``: (count, T, pixels) uint8."""
        _check_range(part, start, count, T)
        if part == "test" and self.canonical is not None:
            frames = self._canonical(start, count, T)
        else:
            frames = self.kind.draw(self.digits, self.seed, part, start, count, T)
        return frames.reshape(count, T, self.frame_shape.pixels)

    def draw_float(self, part: str, start: int, count: int, T: int):
        """:meth:`draw` as a float32 torch tensor of pixels in [0, 1]."""
        import torch

        return torch.from_numpy(self.draw(part, start, count, T)).float() / 255.0

    def _canonical(self, start: int, count: int, T: int) -> np.ndarray:
        data = self.kind.canonical_test.open(self.canonical)
        if data.shape[0] < T:
            raise ValueError(f"{self.canonical} holds {data.shape[0]} frames per sequence; T={T} asked for")
        if start + count > data.shape[1]:
            raise ValueError(
                f"{self.canonical} holds {data.shape[1]} sequences; sequences {start}..{start + count - 1} asked for"
            )
        return np.ascontiguousarray(data[:T, start : start + count].transpose(1, 0, 2, 3))


def check_canonical(kind: SequenceSource, path: Path, T: int = 1, sequences: int = 1) -> None:
    """Stop before anything runs unless ``path`` is a canonical test file of ``kind`` holding at least ``sequences``
    sequences of ``T`` frames, naming what is wrong (the config check and :class:`Sequences` both call it)."""
    if kind.canonical_test is None:
        raise ValueError(f"a canonical test file ({path}) is for a source that publishes one; {kind.name} does not")
    data = kind.canonical_test.open(Path(path))
    if data.shape[0] < T:
        raise ValueError(f"{path} holds {data.shape[0]} frames per sequence; T up to {T} asked for")
    if sequences > data.shape[1]:
        raise ValueError(f"{path} holds {data.shape[1]} sequences; {sequences} held-out sequences asked for "
                         "(config evaluation.sequences)")  # fmt: skip


def same_sequences(what: str, attrs: dict, sequences: Sequences) -> None:
    """Stop, naming both, when a file's attrs (``source``, ``seed``) are not of ``sequences``' source and seed:
    the one identity check of every file drawn from a source (banks, trajectory sets, frame PCA)."""
    if (attrs.get("source"), attrs.get("seed")) != (sequences.source, sequences.seed):
        raise ValueError(f"{what} holds {attrs.get('source')} seed {attrs.get('seed')} data, not "
                         f"{sequences.source} seed {sequences.seed}")  # fmt: skip


def same_frame_shape(what: str, frame_shape: FrameShape, sequences: Sequences) -> None:
    """Stop, naming both, when a model (``what``, coding frames of ``frame_shape``) is not for ``sequences``' frames:
    the one frame check of every model that reads a source's pixels."""
    if frame_shape != sequences.frame_shape:
        raise ValueError(f"{what} codes {frame_shape.height}x{frame_shape.width} frames, {sequences.source}'s are "
                         f"{sequences.frame_shape.height}x{sequences.frame_shape.width}")  # fmt: skip


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
    same_sequences("the trajectory set", attrs, sequences)
    return sequences.draw_float(attrs["part"], attrs["start"] + start, count, attrs["T"])


def open_sequences(name: str, mnist: Path, split: Path, seed: int, canonical: Path | None = None) -> Sequences:
    """The sequences of source ``name`` for ``seed``, built from the MNIST store and the seed's split."""
    kind = source(name)
    for path, what in ((mnist, "the MNIST store"), (split, "the split")):
        if not Path(path).exists():
            raise FileNotFoundError(f"{what} {path} not found")
    return Sequences(kind, seed, load_split_images(Path(mnist), Path(split)), Path(canonical) if canonical else None)
