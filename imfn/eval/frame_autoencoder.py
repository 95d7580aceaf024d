"""Evaluate a per-frame autoencoder of k numbers at every (d, T) of the grid with d // T = k, on exactly
the teacher's held-out sequences with the same metric code (tidy Parquet, model ``autoencoder``, no variant)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from imfn.atomic import atomic_output
from imfn.data.mnist import load_split_images
from imfn.devices import autocast, batch_size
from imfn.eval.metrics import mse_per_frame, ssim_per_frame
from imfn.eval.roundtrip import metric_rows, test_sequences, to_frame
from imfn.models.frame_autoencoder import load_frame_autoencoder

log = logging.getLogger(__name__)

FRAMES_PER_BATCH = 8192
MAX_K = 784  # a frame has 784 pixels: more numbers than that keep nothing more


def cells_for(k: int, dims: Sequence[int], Ts: Sequence[int]) -> list[tuple[int, int]]:
    """The (d, T) of the grid whose memory holds k numbers per frame."""
    return [(d, T) for d in dims for T in Ts if min(d // T, MAX_K) == k]


def evaluate_frame_autoencoder(
    checkpoint: Path,
    mnist: Path,
    split: Path,
    seed: int,
    dims: Sequence[int],
    Ts: Sequence[int],
    sequences: int,
    out: Path,
    device: torch.device,
) -> None:
    model = load_frame_autoencoder(checkpoint, device)
    k = model.config.k
    cells = cells_for(k, dims, Ts)
    if not cells:
        raise ValueError(f"no (d, T) of dims {list(dims)} x T {list(Ts)} keeps k={k} numbers per frame")
    data = load_split_images(mnist, split)
    rows = []
    for dim, T in cells:
        frames = test_sequences(data, seed, T, sequences)
        flat = frames.reshape(-1, frames.shape[-1])
        with torch.no_grad(), autocast():
            reconstruction = torch.cat(
                [model(chunk.to(device)).float().cpu() for chunk in flat.split(batch_size(FRAMES_PER_BATCH, device))]
            ).reshape(frames.shape)
        mse, ssim = mse_per_frame(reconstruction, frames), ssim_per_frame(reconstruction, frames)
        rows += metric_rows("autoencoder", None, seed, dim, T, mse, ssim)
        log.info("per-frame autoencoder seed %d d=%d T=%d (k=%d): MSE %.5f", seed, dim, T, k, mse.mean().item())
    with atomic_output(out) as tmp:
        to_frame(rows).to_parquet(tmp, index=False)
