"""Teacher roundtrip evaluation (method.md section 3) as tidy Parquet.

For one (source, variant, seed, d, T): the held-out sequences of the source (:mod:`imfn.data.sequences`,
part ``test``, indices 0..sequences-1) are encoded, merged to one root, inverted back and decoded. Rows are
long format: one per (source, model, variant, seed, dim, T, position, metric); ``position`` is the frame
index, or null for the average over frames.
``variant`` is the model's named override set (config ``teacher.variants``), null for a model without one
(the per-frame references, the compressors: their size is in a ``setup`` column).
PSNR is computed per sequence (from that sequence's MSE) and then averaged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from imfn.atomic import atomic_output
from imfn.data.sequences import Sequences, same_frame_shape
from imfn.devices import autocast, batch_size
from imfn.eval.metrics import mse_per_frame, psnr, ssim_per_frame
from imfn.models.teacher import Teacher
from imfn.progress import progress

log = logging.getLogger(__name__)

FRAMES_PER_BATCH = 8192


def metric_rows(
    source: str,
    model: str,
    variant: str | None,
    seed: int,
    dim: int,
    T: int,
    mse: torch.Tensor,
    ssim: torch.Tensor,
    setup: str | None = None,
) -> list[dict]:
    """Long-format rows from per-frame MSE and SSIM, both (sequences, T), of sequences of ``source``. ``variant``:
    the model's named override set, None for a model without one; ``setup`` (a column only when given): what else
    tells the model apart, e.g. a compressor's size."""
    base = {"source": source, "model": model, "variant": variant, **({"setup": setup} if setup is not None else {})}
    base |= {"seed": seed, "dim": dim, "T": T}
    rows = [
        {**base, "position": None, "metric": "mse", "value": mse.mean().item()},
        {**base, "position": None, "metric": "psnr", "value": psnr(mse.mean(dim=1)).mean().item()},
        {**base, "position": None, "metric": "ssim", "value": ssim.mean().item()},
    ]
    for position in range(T):
        rows.append({**base, "position": position, "metric": "mse", "value": mse[:, position].mean().item()})
        rows.append({**base, "position": position, "metric": "ssim", "value": ssim[:, position].mean().item()})
    return rows


def to_table(rows: list[dict]) -> pd.DataFrame:
    """The rows as a table; ``variant`` is a string column even when every row's is null."""
    table = pd.DataFrame(rows)
    table["position"] = table["position"].astype("Int64")
    table["variant"] = table["variant"].astype("string")  # null stays null (pandas 2 writes None as "None" for "str")
    return table


def evaluate_roundtrip(
    checkpoints: Sequence[Path],
    sequences: Sequences,
    dim: int,
    T: int,
    count: int,
    out: Path,
    device: torch.device,
    variant: str = "paper",
) -> None:
    """The teacher's roundtrip on held-out sequences ``0 .. count - 1`` of ``sequences`` at ``T`` frames."""
    teacher = Teacher.load_for(T, checkpoints, device)
    same_frame_shape("the teacher", teacher.frame_shape, sequences)
    step = max(1, batch_size(FRAMES_PER_BATCH, device) // T)
    mse_parts, ssim_parts = [], []
    for start in progress(range(0, count, step), f"roundtrip T={T}"):
        batch = sequences.draw_float("test", start, min(step, count - start), T).to(device)
        with autocast():
            reconstruction = teacher.roundtrip(batch).float()
        mse_parts.append(mse_per_frame(reconstruction, batch).cpu())
        ssim_parts.append(ssim_per_frame(reconstruction, batch, sequences.frame_shape).cpu())
    mse, ssim = torch.cat(mse_parts), torch.cat(ssim_parts)
    seed = sequences.seed
    table = to_table(metric_rows(sequences.source, "imfn-teacher", variant, seed, dim, T, mse, ssim))
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    log.info(
        "roundtrip %s %s seed %d d=%d T=%d: MSE %.5f, PSNR %.2f, SSIM %.4f",
        sequences.source,
        variant,
        seed,
        dim,
        T,
        mse.mean().item(),
        psnr(mse.mean(dim=1)).mean().item(),
        ssim.mean().item(),
    )
