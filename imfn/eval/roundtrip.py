"""Teacher roundtrip evaluation (method.md section 3) as tidy Parquet.

For one (variant, seed, d, T): held-out sequences of T random test images are encoded, merged to
one root, inverted back and decoded. Rows are long format: one per (model, variant, seed,
dim, T, position, metric); ``position`` is the frame index, or null for the average over frames.
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
from imfn.data.mnist import SplitImages, load_split_images
from imfn.devices import autocast, batch_size
from imfn.eval.metrics import mse_per_frame, psnr, ssim_per_frame
from imfn.job import seeded_generator
from imfn.models.teacher import Teacher
from imfn.progress import progress

log = logging.getLogger(__name__)

FRAMES_PER_BATCH = 8192


def test_sequences(data: SplitImages, seed: int, T: int, sequences: int) -> torch.Tensor:
    """(sequences, T, 784) float images in [0, 1], drawn from the seed's held-out split."""
    test = torch.from_numpy(data.test)
    images = torch.from_numpy(data.images)
    picks = torch.randint(len(test), (sequences, T), generator=seeded_generator("roundtrip-sequences", seed, T))
    return images[test[picks]].float() / 255.0


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
    """Long-format rows from per-frame MSE and SSIM, both (sequences, T). ``variant``: the model's named override
    set, None for a model without one; ``setup`` (a column only when given): what else tells the model apart,
    e.g. a compressor's size."""
    base = {"source": source, "model": model, "variant": variant}
    base |= {**({"setup": setup} if setup is not None else {}), "seed": seed}
    base |= {"dim": dim, "T": T}
    rows = [
        {**base, "position": None, "metric": "mse", "value": mse.mean().item()},
        {**base, "position": None, "metric": "psnr", "value": psnr(mse.mean(dim=1)).mean().item()},
        {**base, "position": None, "metric": "ssim", "value": ssim.mean().item()},
    ]
    for position in range(T):
        rows.append({**base, "position": position, "metric": "mse", "value": mse[:, position].mean().item()})
        rows.append({**base, "position": position, "metric": "ssim", "value": ssim[:, position].mean().item()})
    return rows


def to_frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as a table; ``variant`` is a string column even when every row's is null."""
    frame = pd.DataFrame(rows)
    frame["position"] = frame["position"].astype("Int64")
    frame["variant"] = frame["variant"].astype("string")  # null stays null (pandas 2 writes None as "None" for "str")
    return frame


def evaluate_roundtrip(
    checkpoints: Sequence[Path],
    mnist: Path,
    split: Path,
    seed: int,
    dim: int,
    T: int,
    sequences: int,
    out: Path,
    device: torch.device,
    variant: str = "paper",
) -> None:
    teacher = Teacher.load_for(T, checkpoints, device)
    images = test_sequences(load_split_images(mnist, split), seed, T, sequences)
    step = max(1, batch_size(FRAMES_PER_BATCH, device) // T)
    mse_parts, ssim_parts = [], []
    for start in progress(range(0, sequences, step), f"roundtrip T={T}"):
        batch = images[start : start + step].to(device)
        with autocast():
            reconstruction = teacher.roundtrip(batch).float()
        mse_parts.append(mse_per_frame(reconstruction, batch).cpu())
        ssim_parts.append(ssim_per_frame(reconstruction, batch).cpu())
    mse, ssim = torch.cat(mse_parts), torch.cat(ssim_parts)
    frame = to_frame(metric_rows("mnist", "imfn-teacher", variant, seed, dim, T, mse, ssim))
    with atomic_output(out) as tmp:
        frame.to_parquet(tmp, index=False)
    log.info(
        "roundtrip %s seed %d d=%d T=%d: MSE %.5f, PSNR %.2f, SSIM %.4f",
        variant,
        seed,
        dim,
        T,
        mse.mean().item(),
        psnr(mse.mean(dim=1)).mean().item(),
        ssim.mean().item(),
    )
