"""Reconstruction metrics shared by every model: MSE, PSNR, SSIM on images in [0, 1].

torchmetrics is imported only by SSIM: importing it costs seconds per job on 2 cores, and jobs that
need only MSE and PSNR (the video evaluation) should not pay for it.
"""

from __future__ import annotations

import torch

SIDE = 28
SSIM_CHUNK = 1024


def mse_per_frame(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., P) -> (...): mean squared error of each frame over its pixels."""
    return (reconstruction - target).pow(2).mean(dim=-1)


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for pixels in [0, 1]."""
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ssim_per_frame(reconstruction: torch.Tensor, target: torch.Tensor, side: int = SIDE) -> torch.Tensor:
    """(..., side*side) -> (...): SSIM of each frame (torchmetrics, Gaussian window 11, sigma 1.5)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    shape = reconstruction.shape[:-1]
    preds, target = (x.reshape(-1, 1, side, side).float() for x in (reconstruction, target))
    values = [  # in chunks: torchmetrics' memory grows faster than linearly with the batch
        structural_similarity_index_measure(p, t, data_range=1.0, reduction="none")
        for p, t in zip(preds.split(SSIM_CHUNK), target.split(SSIM_CHUNK), strict=True)
    ]
    return torch.cat(values).reshape(shape)
