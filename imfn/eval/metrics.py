"""Reconstruction metrics shared by every model: MSE, PSNR, SSIM on images in [0, 1], and the scoring of a
reconstruction on the held-out sequences of a source.

SSIM is the standard one (Gaussian window 11, sigma 1.5, reflect padding, K1 = 0.01, K2 = 0.03, as
torchmetrics computes it; ``tests/test_metrics.py`` checks the two agree). The Gaussian window is
separable and the frames are small, so each local mean is ``G_h @ X @ G_w.T`` with one matrix per side of the
frame (height x height, width x width) that holds the window and the reflect padding: two small matrix
products per map instead of an 11 x 11 convolution, about 10 times faster on the CPU.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from imfn.data.frame import FrameShape

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # window 11 = int(3.5 * sigma + 0.5) * 2 + 1
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # (K * data range)^2 for pixels in [0, 1]
# Pixels handled at once, by SSIM and by the held-out scoring: 10,700 MNIST frames, 2,048 of 64x64 (32 MB as float32;
# SSIM's dozen intermediate maps and a reconstruction's stay a few hundred MB at any frame size).
CHUNK_PIXELS = 2**23


def mse_per_frame(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., P) -> (...): mean squared error of each frame over its pixels."""
    return (reconstruction - target).pow(2).mean(dim=-1)


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for pixels in [0, 1]."""
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))


@functools.cache
def gaussian_window_matrix(side: int) -> torch.Tensor:
    """(side, side) ``G`` with ``(G @ x)[i] = sum_j w[j] x[reflect(i + j)]``: the 1-D Gaussian window,
    normalized to sum 1, over the signal padded by reflection (the edge sample is not repeated)."""
    if side <= SSIM_RADIUS:
        raise ValueError(f"SSIM's window of {2 * SSIM_RADIUS + 1} needs frame sides over {SSIM_RADIUS}, got {side}")
    offsets = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64)
    weights = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    weights /= weights.sum()
    matrix = torch.zeros(side, side, dtype=torch.float64)
    for i in range(side):
        for offset, weight in zip(range(-SSIM_RADIUS, SSIM_RADIUS + 1), weights.tolist(), strict=True):
            j = abs(i + offset)
            j = 2 * (side - 1) - j if j > side - 1 else j
            matrix[i, j] += weight
    return matrix.float()


def as_frame_shape(frame: FrameShape | tuple[int, int] | list[int] | None, pixels: int) -> FrameShape:
    """``frame`` as a :class:`FrameShape` of ``pixels`` pixels; None: square frames, the side from ``pixels``."""
    if frame is None:
        side = math.isqrt(pixels)
        if side * side != pixels:
            raise ValueError(f"frames of {pixels} pixels are not square: name their height and width")
        return FrameShape(side, side)
    shape = FrameShape.of(frame)
    if shape.pixels != pixels:
        raise ValueError(f"frames of {pixels} pixels are not {shape.height}x{shape.width}")
    return shape


def ssim_per_frame(
    reconstruction: torch.Tensor, target: torch.Tensor, frame: FrameShape | tuple[int, int] | None = None
) -> torch.Tensor:
    """(..., height*width) -> (...): SSIM of each frame. ``frame``: the frames' height and width (a source's
    :attr:`~imfn.data.sequences.Sequences.frame_shape`); None: square frames."""
    shape = reconstruction.shape[:-1]
    frame = as_frame_shape(frame, reconstruction.shape[-1])
    rows = gaussian_window_matrix(frame.height).to(reconstruction.device)
    columns = gaussian_window_matrix(frame.width).to(reconstruction.device)
    preds, target = (x.reshape(-1, frame.height, frame.width).float() for x in (reconstruction, target))
    values = []
    chunk = max(1, CHUNK_PIXELS // frame.pixels)
    for p, t in zip(preds.split(chunk), target.split(chunk), strict=True):
        mu_p, mu_t, pp, tt, pt = (rows @ x @ columns.T for x in (p, t, p * p, t * t, p * t))
        mu_pp, mu_tt, mu_pt = mu_p * mu_p, mu_t * mu_t, mu_p * mu_t
        var_p, var_t = (pp - mu_pp).clamp_min(0.0), (tt - mu_tt).clamp_min(0.0)
        covariance = pt - mu_pt
        index = ((2 * mu_pt + SSIM_C1) * (2 * covariance + SSIM_C2)) / (
            (mu_pp + mu_tt + SSIM_C1) * (var_p + var_t + SSIM_C2)
        )
        values.append(index.flatten(1).mean(dim=1))
    return torch.cat(values).reshape(shape)


def score_held_out(
    sequences, T: int, count: int, reconstruct: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame MSE and SSIM, both (count, T), of ``reconstruct`` on held-out sequences ``0 .. count - 1`` of
    ``sequences`` (a :class:`~imfn.data.sequences.Sequences`, part ``test``) at length T.

    ``reconstruct`` maps (n, T, pixels) float frames in [0, 1] to their reconstruction (on the CPU); the sequences
    are drawn and scored ``CHUNK_PIXELS`` at a time, so a long T at 64x64 never holds all of them as floats at once."""
    if count < 1:
        raise ValueError(f"need at least one held-out sequence, got {count}")
    step = max(1, CHUNK_PIXELS // (T * sequences.frame_shape.pixels))
    mse, ssim = [], []
    for start in range(0, count, step):
        frames = sequences.draw_float("test", start, min(step, count - start), T)
        reconstruction = reconstruct(frames).float()
        mse.append(mse_per_frame(reconstruction, frames))
        ssim.append(ssim_per_frame(reconstruction, frames, sequences.frame_shape))
    return torch.cat(mse), torch.cat(ssim)
