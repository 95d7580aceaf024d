"""Per-frame PCA at equal memory: the reference every learned memory stands beside (sequences and video).

A sequence of T frames with memory d keeps k = d // T principal components per frame (the source's frame PCA, fit on
frames of its training sequences: :func:`imfn.models.pca.write_frame_pca`), so it stores the same d numbers as the
tree's root.
Reconstructions are clipped to the pixel range [0, 1], as the teacher's decoder output is.
It is evaluated on exactly the teacher's held-out sequences (part ``test``, indices 0 .. sequences - 1) with the
same metric code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from imfn.atomic import atomic_output
from imfn.data.sequences import Sequences
from imfn.eval.metrics import psnr, score_held_out
from imfn.eval.roundtrip import metric_rows, to_table
from imfn.models.pca import fit_pca, load_frame_pca, pca_roundtrip, spanned
from imfn.store import read_attrs

log = logging.getLogger(__name__)


def evaluate_pca(
    sequences: Sequences, pca: Path, dims: Sequence[int], Ts: Sequence[int], count: int, out: Path
) -> None:
    """Per-frame PCA (the frame PCA ``pca``) at every (d, T): rows of model ``pca`` on held-out sequences
    ``0 .. count - 1``."""
    mean, basis = load_frame_pca(pca, sequences)
    source, seed = sequences.source, sequences.seed
    rows = []
    for T in Ts:
        for dim in dims:
            k = min(dim // T, basis.shape[1])
            mse, ssim = score_held_out(sequences, T, count, lambda frames, k=k: pca_roundtrip(frames, mean, basis, k))
            rows += metric_rows(source, "pca", None, seed, dim, T, mse, ssim)
            log.info("per-frame PCA %s seed %d d=%d T=%d (k=%d): MSE %.5f", source, seed, dim, T, k, mse.mean())
    with atomic_output(out) as tmp:
        to_table(rows).to_parquet(tmp, index=False)


VIDEO_PCA_FRAMES = 8192  # training frames the video PCA is fit on (at most)


def evaluate_video_pca(
    bank: Path, split: Path, dim: int, levels: int, out: Path, max_videos: int | None = None
) -> pd.DataFrame:
    """Per-frame PCA beside the video hierarchy (Table 3): level l's memory holds ``dim`` numbers
    for 2^(l+1) frames, so each frame keeps k = dim // 2^(l+1) principal components
    (fit on up to 8,192 frames of the training clips; at most as many as those frames span, recorded as
    ``components``), and every validation clip's MSE is taken over all its frames and pixels, as the
    levels' own evaluation does."""
    from imfn.data.video import frames_tensor, read_clips, split_bank_indices
    from imfn.job import seeded_generator

    attrs = read_attrs(bank)
    train = torch.from_numpy(read_clips(bank, split_bank_indices(split, "train")))
    frames = frames_tensor(train).flatten(0, 1).flatten(1)  # (training frames, C * H * W)
    picks = torch.randperm(len(frames), generator=seeded_generator("video-pca-sample", attrs["seed"]))
    fit = fit_pca(frames[picks[:VIDEO_PCA_FRAMES]])
    rank = spanned(fit.eigenvalues)
    table = pd.read_parquet(split).sort_values("path")
    validation = table[table["split"] == "validation"]
    if max_videos is not None:
        validation = validation.iloc[:max_videos]
    clips = frames_tensor(torch.from_numpy(read_clips(bank, validation["bank_index"].to_numpy(dtype="int64"))))
    pixels = clips.flatten(2)  # (videos, frames, C * H * W)
    rows = []
    for level in range(levels):
        ratio = 2 ** (level + 1)
        k = min(dim // ratio, rank)
        reconstruction = fit.reconstruct(pixels.flatten(0, 1), k).view_as(pixels)
        mse = (reconstruction - pixels).double().pow(2).flatten(1).mean(dim=1)
        for path, value in zip(validation["path"], mse.tolist(), strict=True):
            for metric, number in (("mse", value), ("psnr", psnr(torch.tensor(value)).item())):
                rows.append(
                    {
                        "model": "pca",
                        "dataset": attrs["dataset"],
                        "seed": attrs["seed"],
                        "level": level,
                        "ratio": ratio,
                        "components": k,
                        "video": path,
                        "metric": metric,
                        "value": number,
                    }
                )
        log.info(
            "video per-frame PCA L%d (%d:1, k=%d of rank %d per frame): MSE %.6f over %d videos",
            level, ratio, k, rank, mse.mean().item(), len(mse),
        )  # fmt: skip
    result = pd.DataFrame(rows)
    with atomic_output(out) as tmp:
        result.to_parquet(tmp, index=False)
    return result
