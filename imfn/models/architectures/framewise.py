"""``framewise``: the ``pca`` tree made nonlinear where it matters, for sequences of independent frames.

The frames of a sequence are independent, so the best merge keeps the most of each frame's share on its own: a
level cuts each child into blocks (one per frame while a frame still has two or more numbers, :attr:`blocks`) and
maps every block to half its size with one shared map, a linear PCA projection plus a residual MLP that starts
at zero (:class:`~imfn.models.layers.ResidualMap`); the inverter maps each half-block back the same way. A level
is trained in pixel space through the frozen stack below it, together with its depth decoder
(:mod:`imfn.train.depth_decoder`), so every level learns the best code of half the size for what the frame looks
like, not for the code below it.
"""

from __future__ import annotations

import torch
from torch import nn

from imfn.models.architectures import TeacherArchitecture
from imfn.models.architectures.pca import LinearCodec
from imfn.models.layers import ResidualMap
from imfn.models.pca import init_from_pca
from imfn.models.teacher import Sweeper, SweeperConfig


def blocks(config: SweeperConfig) -> int:
    """Blocks per child, one per frame (2^level of them) while a frame keeps two or more numbers; past that,
    blocks of two numbers that span several frames."""
    return min(2**config.level, max(config.dim // 2, 1))


class FramewiseSweeper(Sweeper):
    def __init__(self, config: SweeperConfig):
        super().__init__(config)
        d, h, n = config.dim, config.hidden, blocks(config)
        self.size = d // n  # numbers per block of a child
        if self.size < 2 or self.size % 2 or self.size * n != d:
            raise ValueError(f"framewise: d={d} does not split into {n} blocks of an even size")
        self.merge_net = ResidualMap(self.size, self.size // 2, h)
        self.invert_net = ResidualMap(self.size // 2, self.size, h)

    @property
    def frames_separate(self) -> bool:
        return blocks(self.config) == 2**self.config.level

    def _blockwise(self, net: nn.Module, x: torch.Tensor, size: int) -> torch.Tensor:
        return net(x.unflatten(-1, (-1, size))).flatten(-2)

    def merge(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        # each block (in sequence order) to half its size
        return self._blockwise(self.merge_net, torch.cat([left, right], dim=-1), self.size)

    def invert(self, merged: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        left, right = self._blockwise(self.invert_net, merged, self.size // 2).chunk(2, dim=-1)
        return left, right

    def init_from_data(self, pairs: torch.Tensor) -> None:
        """The best linear map of a block to half its size, and back: the blocks' PCA."""
        init_from_pca(self.merge_net.linear, self.invert_net.linear, pairs.reshape(-1, self.size))


ARCHITECTURE = TeacherArchitecture("framewise", codec=LinearCodec, sweeper=FramewiseSweeper, trains_in_pixels=True)
