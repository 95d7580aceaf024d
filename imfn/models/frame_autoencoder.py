"""The per-frame autoencoder: the best code of k numbers for one frame, the limit at equal memory.

The paper's sequences are T independent digits, so a memory of d numbers can beat the best
per-frame code of k = d // T numbers only by giving hard frames more of them than easy ones
(method.md section 3c). This is that per-frame code: the top k principal components of the
frame plus a nonlinear residual on each side,

    encode(x) = P(x) + MLP_e(x)            784 -> h -> h -> k
    decode(z) = clip(P^T(z) + MLP_d(z))    k -> h -> h -> 784, pixels in [0, 1]

with ``P`` set in closed form from the training images and both MLPs starting at zero. Untrained it
is per-frame PCA; training can only move it from there, so at every k it is at least as good as the
PCA reference beside it, and it needs far fewer epochs than the same MLPs from random weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from imfn.models.layers import zero_residual
from imfn.models.teacher import N_PIXELS, init_from_pca


@dataclass(frozen=True)
class FrameAutoencoderConfig:
    k: int  # numbers per frame
    hidden: int = 1024


class FrameAutoencoder(nn.Module):
    def __init__(self, config: FrameAutoencoderConfig):
        super().__init__()
        self.config = config
        k, h = config.k, config.hidden
        self.project = nn.Linear(N_PIXELS, k)
        self.unproject = nn.Linear(k, N_PIXELS)
        self.encoder_residual = zero_residual([N_PIXELS, h, h, k])
        self.decoder_residual = zero_residual([k, h, h, N_PIXELS])

    def init_from_data(self, images: torch.Tensor) -> None:
        """Set the linear part to per-frame PCA of ``images`` (N, 784)."""
        init_from_pca(self.project, self.unproject, images)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(images) + self.encoder_residual(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return (self.unproject(codes) + self.decoder_residual(codes)).clamp(0.0, 1.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))


def frame_autoencoder_checkpoint(model: FrameAutoencoder, **extra) -> dict:
    return {"kind": "imfn-frame-autoencoder", "config": asdict(model.config), "model": model.state_dict(), **extra}


def load_frame_autoencoder(path, device: torch.device | str = "cpu") -> FrameAutoencoder:
    state = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(state, dict) or state.get("kind") != "imfn-frame-autoencoder":
        raise ValueError(f"{path} is not a per-frame autoencoder checkpoint")
    model = FrameAutoencoder(FrameAutoencoderConfig(**state["config"])).to(device)
    model.load_state_dict(state["model"])
    return model.eval()
