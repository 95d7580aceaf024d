"""Video evaluation (method.md section 6): per-video MSE and PSNR of validation clips, per level.

Per level k: every validation clip is cut into aligned windows of 2^(k+1) frames, each window is
encoded through levels 0..k to one memory and decoded back, and the clip's MSE is taken over all
its frames and pixels (the same frames at every level, so levels compare fairly). PSNR is per video,
10 log10(1 / MSE).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from imfn.atomic import atomic_output
from imfn.data.video import frames_tensor, read_clips
from imfn.devices import autocast, batch_size
from imfn.eval.metrics import psnr
from imfn.models.video import decode, encode, load_levels
from imfn.progress import progress
from imfn.store import read_attrs, write_arrays

log = logging.getLogger(__name__)

EVAL_BATCH = 32  # windows per forward pass
EVAL_VIDEOS = 64  # validation clips read and reconstructed at a time


@torch.no_grad()
def reconstruct_clips(levels: list[torch.nn.Module], clips: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 clips (V, F, H, W, C) -> float reconstructions (V, F, C, H, W) through ``levels``."""
    span = 2 ** len(levels)
    v, f = clips.shape[:2]
    if f % span:
        raise ValueError(f"clips of {f} frames do not split into windows of {span} frames")
    windows = clips.reshape(v * f // span, span, *clips.shape[2:])
    out = []
    for batch in windows.split(batch_size(EVAL_BATCH, device)):
        frames = frames_tensor(batch).to(device)
        with autocast():
            out.append(decode(levels, encode(levels, frames)).float().clamp(0, 1).cpu())
    return torch.cat(out).reshape(v, f, *out[0].shape[2:])


def evaluate_video_level(
    level_paths: list[Path],
    bank: Path,
    split: Path,
    out: Path,
    reconstructions_out: Path,
    device: torch.device,
    max_videos: int | None = None,
    show: int = 2,
) -> pd.DataFrame:
    """Per-video MSE and PSNR of the validation clips through levels 0..k (tidy Parquet), and
    the first ``show`` validation clips with their reconstructions (uint8 Zarr) for the figure."""
    levels = load_levels(level_paths, device)
    level = len(levels) - 1
    attrs = read_attrs(bank)
    table = pd.read_parquet(split).sort_values("path")
    validation = table[table["split"] == "validation"]
    if max_videos is not None:
        validation = validation.iloc[:max_videos]
    indices = validation["bank_index"].to_numpy(dtype=np.int64)
    # clips spread over the validation set (in path order: for the demo, different films) for the figure
    shown = np.unique(np.linspace(0, len(indices) - 1, min(show, len(indices))).round().astype(int))
    mse_parts, originals, kept = [], [], []
    for start in progress(range(0, len(indices), EVAL_VIDEOS), f"video L{level} evaluation"):
        clips = torch.from_numpy(read_clips(bank, indices[start : start + EVAL_VIDEOS]))
        reconstructions = reconstruct_clips(levels, clips, device)
        mse_parts.append((reconstructions - frames_tensor(clips)).pow(2).flatten(1).mean(dim=1))
        for i in shown[(shown >= start) & (shown < start + EVAL_VIDEOS)] - start:
            originals.append(clips[i].numpy())
            kept.append((reconstructions[i].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy())
    mse = torch.cat(mse_parts)
    rows = []
    for path, value, db in zip(validation["path"], mse.tolist(), psnr(mse.double()).tolist(), strict=True):
        for metric, number in (("mse", value), ("psnr", db)):
            rows.append(
                {
                    "model": "imfn-video",
                    "dataset": attrs["dataset"],
                    "seed": attrs["seed"],
                    "level": level,
                    "ratio": 2 ** (level + 1),
                    "dim": levels[0].cfg.memory_numbers,
                    "video": path,
                    "metric": metric,
                    "value": number,
                }
            )
    table = pd.DataFrame(rows)
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    write_arrays(
        reconstructions_out,
        {"original": np.stack(originals), "reconstruction": np.stack(kept)},
        {"level": level, "videos": list(validation["path"].iloc[shown]), "dataset": attrs["dataset"]},
    )
    log.info(
        "video level %d (%d:1): %d validation videos, MSE %.6f +/- %.6f, PSNR %.2f dB",
        level,
        2 ** (level + 1),
        len(mse),
        mse.mean().item(),
        mse.std().item() if len(mse) > 1 else 0.0,
        table.loc[table["metric"] == "psnr", "value"].mean(),
    )
    return table
