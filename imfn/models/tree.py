"""The binary tree both memories build (method.md sections 2 and 6), whatever its nodes hold.

A level has a merge ``merge(left, right) -> node`` of two children into one and an inverter
``invert(node) -> (left, right)`` back, on batches with any leading dimensions, (..., *child) and (..., *node):
the tree hands a level all nodes of a level at once, (N sequences, K nodes, *node). The vector tree's levels
(:class:`imfn.models.teacher.Sweeper`) merge d-dim codes; the video tree's (:mod:`imfn.models.video`) merge two
frames into memory tokens at level 0 and two token sets into one above it. Level l merges nodes of 2^l leaves,
so a sequence of T = 2^L leaves goes through levels 0..L-1 to one root and back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch


class Level(Protocol):
    def merge(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor: ...

    def invert(self, node: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def depth_for(T: int) -> int:
    depth = int(math.log2(T)) if T >= 1 else -1
    if T < 2 or 2**depth != T:
        raise ValueError(f"sequence length T must be a power of two >= 2, got {T}")
    return depth


def merge_up(levels: Sequence[Level], leaves: torch.Tensor) -> torch.Tensor:
    """(N, T, *leaf) leaves -> (N, *root), merging neighbours with level 0, 1, ..., log2(T)-1."""
    nodes = leaves
    for level in range(depth_for(leaves.shape[1])):
        nodes = levels[level].merge(nodes[:, 0::2], nodes[:, 1::2])
    return nodes[:, 0]


def invert_down(levels: Sequence[Level], root: torch.Tensor, T: int) -> torch.Tensor:
    """(N, *root) root -> (N, T, *leaf) leaves read back, inverting with level log2(T)-1, ..., 0."""
    nodes = root[:, None]
    for level in reversed(range(depth_for(T))):
        left, right = levels[level].invert(nodes)
        nodes = torch.stack([left, right], dim=2).flatten(1, 2)  # children stay in sequence order
    return nodes


def invert_path(levels: Sequence[Level], root: torch.Tensor, positions: torch.Tensor, T: int) -> list[torch.Tensor]:
    """(N, *root) roots and (N,) leaf positions -> the log2(T) nodes on each root-to-leaf path below the root,
    top first; the last is the leaf. Inverts one node per level, not the whole tree."""
    nodes, node = [], root
    for level in reversed(range(depth_for(T))):
        left, right = levels[level].invert(node)
        right_side = ((positions >> level) & 1).bool().view(-1, *[1] * (left.dim() - 1))
        node = torch.where(right_side, right, left)
        nodes.append(node)
    return nodes
