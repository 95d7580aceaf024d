"""Teacher trajectories by zero padding (method.md section 4) and an incremental tree memory.

The student is trained to follow ``y_t = root(m_1..m_t, 0..0)``: the teacher's root over the
first t leaf codes with every unseen leaf set to the code of an all-zero image. Rebuilding the
tree for every t costs O(T^2) merges; since turning leaf t from zero to data only changes the
log2(T) nodes on its path to the root, a Merkle-style update costs O(T log T). The naive rebuild
stays here as the reference the fast path is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from imfn.models.teacher import Sweeper
from imfn.models.tree import depth_for, merge_up


class SweeperCounter:
    """Wraps a sweeper and counts its work, so merge and inversion costs are measured, not assumed.

    ``merges`` counts node merges *per sequence*: a call on ``(N, k, d)`` tensors counts k (it
    merges k nodes in each of the N sequences), on ``(N, d)`` counts 1, and on an unbatched
    ``(d,)`` state counts 1 (a node shared by every sequence, computed once).
    ``inverts`` counts calls to :meth:`invert` (one per node per sequence when batched over N).
    """

    def __init__(self, sweeper: Sweeper):
        self.sweeper = sweeper
        self.merges = 0
        self.inverts = 0

    def merge(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        merged = self.sweeper.merge(left, right)
        self.merges += math.prod(merged.shape[1:-1]) if merged.dim() >= 2 else 1
        return merged

    def invert(self, merged: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.inverts += 1
        return self.sweeper.invert(merged)


def count_sweepers(sweepers: Sequence[Sweeper]) -> list[SweeperCounter]:
    return [s if isinstance(s, SweeperCounter) else SweeperCounter(s) for s in sweepers]


class Trajectory(NamedTuple):
    states: torch.Tensor  # (N, T+1, d): y_0 .. y_T
    merges: int  # node merges per sequence spent computing it


def _zero_leaves(zero_leaf: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return zero_leaf.to(like).expand_as(like).clone()


@torch.no_grad()
def naive_trajectory(sweepers: Sequence[Sweeper], leaves: torch.Tensor, zero_leaf: torch.Tensor) -> Trajectory:
    """Reference: rebuild the whole zero-padded tree for every t = 0..T ((T+1)(T-1) merges).

    ``leaves``: (N, T, d) leaf codes; ``zero_leaf``: (d,) code of an all-zero image.
    """
    counters = count_sweepers(sweepers)
    T = leaves.shape[1]
    depth_for(T)
    states = []
    for t in range(T + 1):
        padded = _zero_leaves(zero_leaf, leaves)
        padded[:, :t] = leaves[:, :t]
        states.append(merge_up(counters, padded))
    return Trajectory(torch.stack(states, dim=1), sum(c.merges for c in counters))


class MerkleTree:
    """All nodes of a zero-padded tree over T = 2^L leaves, batched over N sequences.

    ``levels[l]`` is (N, T / 2^l, d); ``levels[L][:, 0]`` is the root. It starts as the all-zero
    tree, which costs one merge per level because every node of a level is the same. Setting a
    leaf recomputes only the L nodes on its path to the root.
    """

    def __init__(self, sweepers: Sequence[Sweeper], zero_leaf: torch.Tensor, batch_size: int, T: int):
        self.depth = depth_for(T)
        if len(sweepers) < self.depth:
            raise ValueError(f"T = {T} needs {self.depth} sweepers, got {len(sweepers)}")
        self.sweepers = sweepers
        self.T = T
        node = zero_leaf
        self.levels = [node.expand(batch_size, T, -1).clone()]
        for level in range(self.depth):
            node = sweepers[level].merge(node, node)
            self.levels.append(node.expand(batch_size, T >> (level + 1), -1).clone())

    @property
    def root(self) -> torch.Tensor:
        return self.levels[-1][:, 0]

    def set_leaf(self, index: int, code: torch.Tensor) -> torch.Tensor:
        """Put ``code`` (N, d) at leaf ``index``, update its path, return the new root (N, d)."""
        if not 0 <= index < self.T:
            raise IndexError(f"leaf {index} outside a tree of {self.T} leaves")
        self.levels[0][:, index] = code
        for level in range(self.depth):
            parent = index // 2
            children = self.levels[level]
            self.levels[level + 1][:, parent] = self.sweepers[level].merge(
                children[:, 2 * parent], children[:, 2 * parent + 1]
            )
            index = parent
        return self.root


@torch.no_grad()
def merkle_trajectory(sweepers: Sequence[Sweeper], leaves: torch.Tensor, zero_leaf: torch.Tensor) -> Trajectory:
    """Same as :func:`naive_trajectory` in (T+1) log2(T) merges: the zero tree, then one root path per step."""
    counters = count_sweepers(sweepers)
    N, T, _ = leaves.shape
    tree = MerkleTree(counters, zero_leaf.to(leaves), N, T)
    states = [tree.root.clone()]
    for t in range(T):
        states.append(tree.set_leaf(t, leaves[:, t]).clone())
    return Trajectory(torch.stack(states, dim=1), sum(c.merges for c in counters))


def frames_separate(sweepers: Sequence[Sweeper], T: int) -> bool:
    """Whether every level of a depth-log2(T) tree maps each frame on its own (:attr:`Sweeper.frames_separate`:
    ``framewise`` sweepers while a frame keeps two or more numbers): then its root is one block per frame, in
    sequence order."""
    return all(getattr(s, "sweeper", s).frames_separate for s in sweepers[: depth_for(T)])


@torch.no_grad()
def separable_trajectory(sweepers: Sequence[Sweeper], leaves: torch.Tensor, zero_leaf: torch.Tensor) -> Trajectory:
    """Same as :func:`merkle_trajectory` for a tree whose levels map each frame on its own
    (:func:`frames_separate`): ``y_t`` is the full root's first t frame blocks followed by the zero root's
    last T - t, so a trajectory costs one tree (T - 1 merges) and the zero root's path (log2 T)."""
    N, T, d = leaves.shape
    if not frames_separate(sweepers, T):
        raise ValueError("separable_trajectory needs sweepers that map each frame on its own (frames_separate)")
    counters = count_sweepers(sweepers)
    root = merge_up(counters, leaves).unflatten(-1, (T, d // T))  # (N, T, k): frame t's block
    zero_root = zero_leaf.to(leaves)
    for counter in counters[: depth_for(T)]:  # every node of a zero tree's level is the same: one merge each
        zero_root = counter.merge(zero_root, zero_root)
    zero_root = zero_root.unflatten(-1, (T, d // T))
    written = torch.arange(T, device=leaves.device)[None, :] < torch.arange(T + 1, device=leaves.device)[:, None]
    states = torch.where(written[None, :, :, None], root[:, None], zero_root)  # (N, T+1, T, k)
    return Trajectory(states.flatten(-2), sum(c.merges for c in counters))
