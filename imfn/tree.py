"""The teacher's binary tree: merge leaves upward to one root, invert the root back downward."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from imfn.models.teacher import LeafCodec, Sweeper, load_sweeper_checkpoint


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
    """Leaf codec plus the sweepers of levels 0..L-1, loaded from their checkpoints."""

    def __init__(self, codec: LeafCodec, sweepers: Sequence[Sweeper]):
        super().__init__()
        self.codec = codec
        self.sweepers = torch.nn.ModuleList(sweepers)

    @classmethod
    def load(cls, checkpoints: Sequence[Path], device: torch.device | str = "cpu") -> "Teacher":
        """``checkpoints`` in level order, starting with level 0 (which holds the codec)."""
        loaded = [load_sweeper_checkpoint(path, device) for path in checkpoints]
        for expected, (path, (_, _, state)) in enumerate(zip(checkpoints, loaded)):
            if state["level"] != expected:
                raise ValueError(f"{path} holds level {state['level']}, expected level {expected}")
        codec = loaded[0][1]
        if codec is None:
            raise ValueError(f"{checkpoints[0]} holds no leaf codec")
        return cls(codec, [sweeper for sweeper, _, _ in loaded]).eval()

    @torch.no_grad()
    def roundtrip(self, images: torch.Tensor) -> torch.Tensor:
        """(N, T, 784) images in [0, 1] -> their reconstruction through the tree's root."""
        N, T, P = images.shape
        leaves = self.codec.encode(images.reshape(N * T, P)).reshape(N, T, -1)
        root = merge_up(self.sweepers, leaves)
        decoded = invert_down(self.sweepers, root, T)
        return self.codec.decode(decoded.reshape(N * T, -1)).reshape(N, T, P)
