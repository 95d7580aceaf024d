"""``pca``: every map linear, set in closed form from principal components of the level's own bank.

The leaf codec is per-frame PCA (:class:`LinearCodec`, also the codec of ``framewise`` and ``mix``); a merge
(2d -> d) keeps the top d/2 components of each child and the inverter (d -> 2d) maps them back
(:func:`init_pair_from_pca`): the best linear merge of two independent children, and its inverse. What is
nonlinear lives in the depth decoders.
"""

from __future__ import annotations

import torch
from torch import nn

from imfn.models.architectures import TeacherArchitecture
from imfn.models.pca import init_from_pca
from imfn.models.teacher import CodecConfig, LeafCodec, Sweeper, SweeperConfig


@torch.no_grad()
def init_pair_from_pca(merge: nn.Linear, invert: nn.Linear, codes: torch.Tensor) -> None:
    """Set a merge (2d -> d) to keep the top d/2 principal components of each child and the
    inverter (d -> 2d) to map them back.

    ``codes``: both children of a sample of the level's pairs. When the two children are independent (the
    ``mnist`` source's frames) the covariance of the pair is block-diagonal with two equal blocks, and the
    best linear merge keeps the top half of each child's components. Fitting one child's PCA estimates that
    exactly, without the noise of estimating cross-covariances that are zero; on a source whose adjacent
    windows share content it ignores what they share.
    """
    d = codes.shape[1]
    half_encode, half_decode = nn.Linear(d, d // 2).double(), nn.Linear(d // 2, d).double()
    init_from_pca(half_encode, half_decode, codes)
    merge.weight.zero_()
    invert.weight.zero_()
    for side in (slice(0, d // 2), slice(d // 2, d)):
        children = slice(0, d) if side.start == 0 else slice(d, 2 * d)
        merge.weight[side, children] = half_encode.weight
        merge.bias[side] = half_encode.bias
        invert.weight[children, side] = half_decode.weight
        invert.bias[children] = half_decode.bias


class LinearCodec(LeafCodec):
    """Per-frame PCA as the leaf codec: a linear encoder and decoder set from the principal components of a sample
    of frames, the decoder's output clipped to the pixel range."""

    def __init__(self, config: CodecConfig):
        super().__init__(config)
        self.encoder = nn.Linear(config.frame_shape.pixels, config.dim)
        self.decoder = nn.Linear(config.dim, config.frame_shape.pixels)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes).clamp(0.0, 1.0)

    def init_from_data(self, images: torch.Tensor) -> None:
        init_from_pca(self.encoder, self.decoder, images)


class PcaSweeper(Sweeper):
    def __init__(self, config: SweeperConfig):
        super().__init__(config)
        self.merge_net = nn.Linear(2 * config.dim, config.dim)
        self.invert_net = nn.Linear(config.dim, 2 * config.dim)

    def init_from_data(self, pairs: torch.Tensor) -> None:
        init_pair_from_pca(self.merge_net, self.invert_net, pairs.flatten(0, 1))


ARCHITECTURE = TeacherArchitecture("pca", codec=LinearCodec, sweeper=PcaSweeper)
