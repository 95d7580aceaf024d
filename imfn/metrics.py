"""Reconstruction metrics shared by every model: MSE, PSNR, SSIM on images in [0, 1]."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

SIDE = 28


def mse_per_frame(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., P) -> (...): mean squared error of each frame over its pixels."""
    return (reconstruction - target).pow(2).mean(dim=-1)


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for pixels in [0, 1]."""
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ssim_per_frame(reconstruction: torch.Tensor, target: torch.Tensor, side: int = SIDE) -> torch.Tensor:
    """(..., side*side) -> (...): SSIM of each frame (torchmetrics, Gaussian window 11, sigma 1.5)."""
    shape = reconstruction.shape[:-1]
    as_images = lambda x: x.reshape(-1, 1, side, side).double()  # noqa: E731
    values = structural_similarity_index_measure(
        as_images(reconstruction), as_images(target), data_range=1.0, reduction="none"
    )
    return values.float().reshape(shape)
