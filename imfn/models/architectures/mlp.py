"""``mlp``: the paper's networks, from random initialisation (method.md section 2).

Encoder a 3-layer ReLU MLP (pixels -> h -> h -> d), decoder d -> h -> h -> pixels ending in a sigmoid; a merge
(2d -> h -> d) and an inverter (d -> h -> 2d) of one hidden layer each.
"""

from __future__ import annotations

import torch
from torch import nn

from imfn.models.architectures import TeacherArchitecture
from imfn.models.layers import mlp
from imfn.models.teacher import CodecConfig, LeafCodec, Sweeper, SweeperConfig


class MlpCodec(LeafCodec):
    def __init__(self, config: CodecConfig):
        super().__init__(config)
        h, d, p = config.hidden, config.dim, config.frame_shape.pixels
        self.encoder = mlp([p, h, h, d])
        self.decoder = mlp([d, h, h, p], nn.Sigmoid())

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes)  # in [0, 1] already: the sigmoid


class MlpSweeper(Sweeper):
    def __init__(self, config: SweeperConfig):
        super().__init__(config)
        d, h = config.dim, config.hidden
        self.merge_net = mlp([2 * d, h, d])
        self.invert_net = mlp([d, h, 2 * d])


ARCHITECTURE = TeacherArchitecture("mlp", codec=MlpCodec, sweeper=MlpSweeper, starts_from_data=False)
