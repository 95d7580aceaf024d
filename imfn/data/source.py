"""What a sequence source is: the entry of :data:`imfn.registry.SOURCES` that every layer reads instead of a name.

Its data module defines it (``mnist``: :mod:`imfn.data.mnist`, T digits drawn independently, the paper's;
``moving_mnist``: :mod:`imfn.data.moving_mnist`, two digits bouncing in 64x64): its frame shape, the function that
draws its sequences, what the reports do with it, and, if it has one, the layout of its canonical test file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imfn import registry
from imfn.data.frame import FrameShape

# (digits, seed, part, start, count, T) -> (count, T, height, width) or (count, T, pixels) uint8; ``digits`` is the
# seed's split of the MNIST images (imfn.data.mnist.SplitImages), which a source may draw from
DrawFunction = Callable[[Any, int, str, int, int, int], np.ndarray]


@dataclass(frozen=True)
class CanonicalTest:
    """A published file of a source's held-out sequences (config ``sources.<name>.canonical_test``): ``frames``
    frames per sequence, read by ``open`` as stored, frames first ((frames, N, height, width) uint8), its layout
    checked (a ``ValueError`` naming the file and the layout otherwise)."""

    frames: int
    open: Callable[[Path], np.ndarray]


@dataclass(frozen=True)
class SequenceSource:
    """One kind of sequence (config ``sources``).

    ``frames_share_content``: its frames are not independent, so a memory may keep what they share: it gets clip
    PCA and the mean frame beside its teacher, and a report of its own. ``paper_figures``: the paper's Figures
    2-3 and 6, Tables 1-2, the ablation and the paper sweep are of this source's results."""

    name: str
    frame_shape: FrameShape
    draw: DrawFunction
    description: str
    frames_share_content: bool = False
    paper_figures: bool = False
    canonical_test: CanonicalTest | None = None


def source(name: str) -> SequenceSource:
    """The registered source ``name``; a ``ValueError`` naming the known ones otherwise."""
    return registry.lookup(registry.SOURCES, name)


def paper_source() -> str:
    """The registered source whose results the paper's figures and tables show (``paper_figures``)."""
    names = [name for name in registry.SOURCES if source(name).paper_figures]
    if len(names) != 1:
        raise ValueError(f"exactly one registered source must hold the paper's figures, found {names}")
    return names[0]
