"""The per-frame autoencoder: the best code of k numbers for one frame, the limit at equal memory for sequences
of independent frames.

On the paper's sequences (T independent digits) a memory of d numbers can beat the best per-frame code of
k = d // T numbers only by giving hard frames more of them than easy ones (method.md section 3c). This is that
per-frame code: the top k principal components of the frame plus a nonlinear residual on each side,

    encode(x) = P(x) + MLP_e(x)            pixels -> h -> h -> k
    decode(z) = clip(P^T(z) + MLP_d(z))    k -> h -> h -> pixels, in [0, 1]

with ``P`` set in closed form from training frames and both MLPs starting at zero. Untrained it is per-frame
PCA; training can only move it from there, so at every k it is at least as good as the PCA reference beside it,
and it needs far fewer epochs than the same MLPs from random weights. Frames that share content across time
(a source whose ``frames_share_content``) can be coded jointly, so there it is a reference, not the limit.

The frame shape is part of the config (and so of the checkpoint).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from imfn.data.frame import FrameShape
from imfn.models.checkpoint import load_checkpoint, save_checkpoint
from imfn.models.layers import zero_residual


@dataclass(frozen=True)
class FrameAutoencoderConfig:
    k: int  # numbers per frame
    frame_shape: FrameShape
    hidden: int = 1024

    def __post_init__(self):
        object.__setattr__(self, "frame_shape", FrameShape.of(self.frame_shape))
        if self.k < 1 or self.hidden < 1:
            raise ValueError(f"a per-frame autoencoder needs k and hidden >= 1, got {self}")

    @property
    def pixels(self) -> int:
        return self.frame_shape.pixels


class FrameAutoencoder(nn.Module):
    def __init__(self, config: FrameAutoencoderConfig):
        super().__init__()
        self.config = config
        k, h, pixels = config.k, config.hidden, config.pixels
        self.project = nn.Linear(pixels, k)
        self.unproject = nn.Linear(k, pixels)
        self.encoder_residual = zero_residual([pixels, h, h, k])
        self.decoder_residual = zero_residual([k, h, h, pixels])

    @torch.no_grad()
    def init_from_pca(self, mean: torch.Tensor, basis: torch.Tensor) -> None:
        """Set the linear part to per-frame PCA: ``mean`` (pixels,) and principal directions ``basis``
        (pixels, >= k) by decreasing variance (:func:`imfn.eval.pca.fit_pca`); codes beyond the basis are zero."""
        pixels, k = self.config.pixels, self.config.k
        if mean.shape != (pixels,) or basis.shape[0] != pixels:
            raise ValueError(f"PCA {tuple(basis.shape)}, mean {tuple(mean.shape)} is not of {pixels}-pixel frames")
        kept = min(k, basis.shape[1])
        components = torch.zeros(pixels, k)
        components[:, :kept] = basis[:, :kept].float()
        self.project.weight.copy_(components.T)
        self.project.bias.copy_(-(components.T @ mean.float()))
        self.unproject.weight.copy_(components)
        self.unproject.bias.copy_(mean.float())

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(images) + self.encoder_residual(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return (self.unproject(codes) + self.decoder_residual(codes)).clamp(0.0, 1.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))


def save_frame_autoencoder(path, model: FrameAutoencoder, **extra) -> None:
    save_checkpoint(path, "imfn-frame-autoencoder", asdict(model.config), model.state_dict(), **extra)


def load_frame_autoencoder(path, device: torch.device | str = "cpu") -> FrameAutoencoder:
    saved = load_checkpoint(path, "imfn-frame-autoencoder", device)
    model = FrameAutoencoder(FrameAutoencoderConfig(**saved["config"])).to(device)
    model.load_state_dict(saved["state"])
    return model.eval()
