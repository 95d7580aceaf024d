"""Evaluate a trained sequence compressor on exactly the teacher's held-out sequences.

Same sequences (part ``test`` of the source, indices 0 .. sequences - 1, at the model's T), same metric code
and the same long-format rows as the teacher's roundtrip, so every model lands in one comparable table; a
compressor has no variant, its size is the column ``setup`` (:func:`size_label`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from imfn.atomic import atomic_output
from imfn.data.sequences import Sequences, same_frame_shape
from imfn.devices import autocast, batch_size
from imfn.eval.metrics import psnr, score_held_out
from imfn.eval.roundtrip import metric_rows, to_table
from imfn.models.compressors import load_compressor
from imfn.models.layers import parameter_count

log = logging.getLogger(__name__)

SEQUENCES_PER_BATCH = 16


def size_label(model) -> str:
    """The model's size as it appears in tables: width, layers and parameters (Mamba: and its implementation)."""
    c = model.config
    label = f"width {c.width or c.dim}, {c.layers} layers, {parameter_count(model) / 1e6:.2f}M params"
    return f"{label}, {model.implementation}" if model.implementation else label


@torch.no_grad()
def reconstruct(model, frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N, T, pixels) frames -> reconstructions, in batches, on ``device``; returned on the CPU."""
    with autocast():
        parts = [
            model(batch.to(device)).float().cpu() for batch in frames.split(batch_size(SEQUENCES_PER_BATCH, device))
        ]
    return torch.cat(parts)


def evaluate_compressor(
    checkpoint: Path,
    sequences: Sequences,
    count: int,
    out: Path,
    device: torch.device,
    allow_slow_mamba: bool = False,
) -> None:
    """Rows of the compressor on held-out sequences ``0 .. count - 1`` of ``sequences`` (the source it was
    trained on: a checkpoint of another source or frame shape is an error)."""
    model = load_compressor(checkpoint, device, allow_slow_mamba)
    if model.source != sequences.source:
        raise ValueError(f"{checkpoint} was trained on {model.source} sequences, not {sequences.source}")
    same_frame_shape(str(checkpoint), model.config.frame_shape, sequences)
    dim, T, seed = model.config.dim, model.config.T, sequences.seed
    mse, ssim = score_held_out(sequences, T, count, lambda frames: reconstruct(model, frames, device))
    rows = metric_rows(sequences.source, model.architecture, None, seed, dim, T, mse, ssim, setup=size_label(model))
    with atomic_output(out) as tmp:
        to_table(rows).to_parquet(tmp, index=False)
    log.info(
        "%s %s seed %d d=%d T=%d: MSE %.5f, PSNR %.2f, SSIM %.4f",
        model.architecture,
        sequences.source,
        seed,
        dim,
        T,
        mse.mean().item(),
        psnr(mse.mean(dim=1)).mean().item(),
        ssim.mean().item(),
    )
