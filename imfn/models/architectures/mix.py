"""``mix``: the tree for frames that share content.

A merge sees both children whole: a linear map of the pair (2d -> d) started at the joint PCA of adjacent
children in the level's bank, so what two neighbouring windows share is kept once, plus a residual MLP that
starts at zero (:class:`~imfn.models.layers.ResidualMap`); the inverter maps back the same way (d -> 2d). Trained
on the bank's pairs (latent MSE), then the decoder for its depth in pixels.
"""

from __future__ import annotations

import torch

from imfn.models.architectures import TeacherArchitecture
from imfn.models.architectures.pca import LinearCodec
from imfn.models.layers import ResidualMap
from imfn.models.pca import init_from_pca
from imfn.models.teacher import Sweeper, SweeperConfig


class MixSweeper(Sweeper):
    def __init__(self, config: SweeperConfig):
        super().__init__(config)
        self.merge_net = ResidualMap(2 * config.dim, config.dim, config.hidden)
        self.invert_net = ResidualMap(config.dim, 2 * config.dim, config.hidden)

    def init_from_data(self, pairs: torch.Tensor) -> None:
        """The best linear map of the pair to d numbers: their joint PCA."""
        init_from_pca(self.merge_net.linear, self.invert_net.linear, pairs.flatten(1))


ARCHITECTURE = TeacherArchitecture("mix", codec=LinearCodec, sweeper=MixSweeper)
