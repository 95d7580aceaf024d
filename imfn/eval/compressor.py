"""Evaluate a trained sequence compressor on exactly the teacher's held-out sequences.

Same sequences (``test_sequences`` of the seed at T), same metric code and the same long-format
rows as the teacher's roundtrip, so every model lands in one comparable table; a compressor has no variant,
its size is the column ``setup`` (:func:`size_label`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from imfn.atomic import atomic_output
from imfn.data.mnist import load_split_images
from imfn.devices import autocast, batch_size
from imfn.eval.metrics import mse_per_frame, psnr, ssim_per_frame
from imfn.eval.roundtrip import metric_rows, test_sequences, to_frame
from imfn.models.compressors import load_compressor
from imfn.models.layers import parameter_count

log = logging.getLogger(__name__)

SEQUENCES_PER_BATCH = 16


def size_label(model) -> str:
    """The model's size as it appears in tables: width, layers and parameters (Mamba: and its implementation)."""
    c = model.config
    label = f"width {c.width or c.dim}, {c.layers} layers, {parameter_count(model) / 1e6:.2f}M params"
    return f"{label}, {model.implementation}" if model.kind == "mamba" else label


@torch.no_grad()
def reconstruct(model, frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N, T, 784) frames -> reconstructions, in batches, on ``device``; returned on the CPU."""
    with autocast():
        parts = [
            model(batch.to(device)).float().cpu() for batch in frames.split(batch_size(SEQUENCES_PER_BATCH, device))
        ]
    return torch.cat(parts)


def evaluate_compressor(
    checkpoint: Path,
    mnist: Path,
    split: Path,
    seed: int,
    sequences: int,
    out: Path,
    device: torch.device,
    allow_slow_mamba: bool = False,
) -> None:
    model = load_compressor(checkpoint, device, allow_slow_mamba)
    dim, T = model.config.dim, model.config.T
    frames = test_sequences(load_split_images(mnist, split), seed, T, sequences)
    reconstruction = reconstruct(model, frames, device)
    mse, ssim = mse_per_frame(reconstruction, frames), ssim_per_frame(reconstruction, frames)
    frame = to_frame(metric_rows(model.kind, None, seed, dim, T, mse, ssim, setup=size_label(model)))
    with atomic_output(out) as tmp:
        frame.to_parquet(tmp, index=False)
    log.info(
        "%s seed %d d=%d T=%d: MSE %.5f, PSNR %.2f, SSIM %.4f",
        model.kind,
        seed,
        dim,
        T,
        mse.mean().item(),
        psnr(mse.mean(dim=1)).mean().item(),
        ssim.mean().item(),
    )
