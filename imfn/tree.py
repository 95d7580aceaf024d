"""The teacher's binary tree: merge leaves upward to one root, invert the root back downward."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from imfn.models.teacher import N_PIXELS, DepthDecoder, LeafCodec, Sweeper, load_sweeper_checkpoint


def depth_for(T: int) -> int:
    depth = int(math.log2(T)) if T >= 1 else -1
    if T < 2 or 2**depth != T:
        raise ValueError(f"sequence length T must be a power of two >= 2, got {T}")
    return depth


def merge_up(sweepers: Sequence[Sweeper], leaves: torch.Tensor) -> torch.Tensor:
    """(N, T, d) leaf codes -> (N, d) root, merging neighbours with sweeper 0, 1, ..., log2(T)-1."""
    nodes = leaves
    for level in range(depth_for(leaves.shape[1])):
        nodes = sweepers[level].merge(nodes[:, 0::2], nodes[:, 1::2])
    return nodes[:, 0]


def invert_down(sweepers: Sequence[Sweeper], root: torch.Tensor, T: int) -> torch.Tensor:
    """(N, d) root -> (N, T, d) reconstructed leaf codes, inverting with sweeper log2(T)-1, ..., 0."""
    nodes = root[:, None]
    for level in reversed(range(depth_for(T))):
        left, right = sweepers[level].invert(nodes)
        nodes = torch.stack([left, right], dim=2).flatten(1, 2)  # children stay in sequence order
    return nodes


class Teacher(torch.nn.Module):
    """Leaf codec, the sweepers of levels 0..L-1 and any depth decoders, loaded from checkpoints."""

    def __init__(
        self, codec: LeafCodec, sweepers: Sequence[Sweeper], depth_decoders: dict[int, DepthDecoder] | None = None
    ):
        super().__init__()
        self.codec = codec
        self.sweepers = torch.nn.ModuleList(sweepers)
        self.depth_decoders = torch.nn.ModuleDict({str(k): v for k, v in (depth_decoders or {}).items()})

    @classmethod
    def load(cls, checkpoints: Sequence[Path], device: torch.device | str = "cpu") -> Teacher:
        """``checkpoints`` in level order, starting with level 0 (which holds the codec)."""
        loaded = [load_sweeper_checkpoint(path, device) for path in checkpoints]
        for expected, (path, level) in enumerate(zip(checkpoints, loaded, strict=True)):
            if level.state["level"] != expected:
                raise ValueError(f"{path} holds level {level.state['level']}, expected level {expected}")
        if not loaded or loaded[0].codec is None:
            raise ValueError(f"{checkpoints[0] if checkpoints else 'no checkpoint'} holds no leaf codec")
        decoders = {level + 1: c.depth_decoder for level, c in enumerate(loaded) if c.depth_decoder is not None}
        return cls(loaded[0].codec, [c.sweeper for c in loaded], decoders).eval()

    @classmethod
    def load_for(cls, T: int, checkpoints: Sequence[Path], device: torch.device | str = "cpu") -> Teacher:
        """The levels a sequence of length T goes through: the first log2(T) of ``checkpoints``."""
        depth = depth_for(T)
        if len(checkpoints) < depth:
            raise ValueError(f"T={T} needs {depth} teacher levels, got {len(checkpoints)}")
        return cls.load(list(checkpoints)[:depth], device).requires_grad_(False)

    @torch.no_grad()
    def zero_leaf(self) -> torch.Tensor:
        """(d,) code of an all-zero image: the leaf every frame not yet seen is padded with."""
        device = next(self.codec.parameters()).device
        return self.codec.encode(torch.zeros(1, N_PIXELS, device=device))[0]

    def encode_leaves(self, images: torch.Tensor) -> torch.Tensor:
        """(N, T, 784) images -> (N, T, d) leaf codes."""
        N, T, P = images.shape
        return self.codec.encode(images.reshape(N * T, P)).reshape(N, T, -1)

    def read_back(self, images: torch.Tensor) -> torch.Tensor:
        """(N, T, 784) images -> (N, T, d) leaf codes as the tree gives them back from its root."""
        T = images.shape[1]
        return invert_down(self.sweepers, merge_up(self.sweepers, self.encode_leaves(images)), T)

    def decode(self, codes: torch.Tensor, depth: int) -> torch.Tensor:
        """(..., d) leaf codes read back through ``depth`` levels -> pixels, with that depth's decoder if any."""
        decoder = self.depth_decoders[str(depth)] if str(depth) in self.depth_decoders else None  # noqa: SIM401
        return decoder(self.codec, codes) if decoder is not None else self.codec.decode(codes)

    @torch.no_grad()
    def roundtrip(self, images: torch.Tensor) -> torch.Tensor:
        """(N, T, 784) images in [0, 1] -> their reconstruction through the tree's root."""
        N, T, P = images.shape
        codes = self.read_back(images)
        return self.decode(codes.reshape(N * T, -1), depth_for(T)).reshape(N, T, P)
