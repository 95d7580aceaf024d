"""Evaluate a per-frame autoencoder of k numbers at every (d, T) of the grid with d // T = k, on exactly
the teacher's held-out sequences with the same metric code (tidy Parquet, model ``autoencoder``, no variant)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from imfn.atomic import atomic_output
from imfn.data.sequences import Sequences, same_frame_shape
from imfn.devices import autocast, batch_size
from imfn.eval.metrics import score_held_out
from imfn.eval.roundtrip import metric_rows, to_table
from imfn.models.frame_autoencoder import FrameAutoencoder, load_frame_autoencoder

log = logging.getLogger(__name__)

FRAMES_PER_BATCH = 8192


def cells_for(k: int, dims: Sequence[int], Ts: Sequence[int], pixels: int) -> list[tuple[int, int]]:
    """The (d, T) of the grid whose memory holds k numbers per frame (a frame of ``pixels`` pixels holds at
    most that many: more keep nothing more)."""
    return [(d, T) for d in dims for T in Ts if min(d // T, pixels) == k]


@torch.no_grad()
def reconstruct_frames(model: FrameAutoencoder, frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(..., pixels) frames -> their reconstructions, in batches on ``device``, returned on the CPU."""
    flat = frames.reshape(-1, frames.shape[-1])
    with autocast():
        parts = [model(chunk.to(device)).float().cpu() for chunk in flat.split(batch_size(FRAMES_PER_BATCH, device))]
    return torch.cat(parts).reshape(frames.shape)


def evaluate_frame_autoencoder(
    checkpoint: Path,
    sequences: Sequences,
    dims: Sequence[int],
    Ts: Sequence[int],
    count: int,
    out: Path,
    device: torch.device,
) -> None:
    model = load_frame_autoencoder(checkpoint, device)
    same_frame_shape(str(checkpoint), model.config.frame_shape, sequences)
    k = model.config.k
    cells = cells_for(k, dims, Ts, sequences.frame_shape.pixels)
    if not cells:
        raise ValueError(f"no (d, T) of dims {list(dims)} x T {list(Ts)} keeps k={k} numbers per frame")
    rows = []
    for dim, T in cells:
        mse, ssim = score_held_out(sequences, T, count, lambda frames: reconstruct_frames(model, frames, device))
        rows += metric_rows(sequences.source, "autoencoder", None, sequences.seed, dim, T, mse, ssim)
        log.info("per-frame autoencoder %s seed %d d=%d T=%d (k=%d): MSE %.5f", sequences.source, sequences.seed,
                 dim, T, k, mse.mean())  # fmt: skip
    with atomic_output(out) as tmp:
        to_table(rows).to_parquet(tmp, index=False)
