"""Per-frame PCA at equal memory: the reference every learned memory stands beside (MNIST and video).

A sequence of T frames with memory d keeps k = d // T principal components per frame
(fit on the seed's training split), so it stores the same d numbers as the tree's root.
Reconstructions are clipped to the pixel range [0, 1], as the teacher's decoder output is.
It is evaluated on exactly the teacher's held-out sequences with the same metric code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from imfn.atomic import atomic_output
from imfn.data.mnist import load_split_images
from imfn.eval.metrics import mse_per_frame, psnr, ssim_per_frame
from imfn.eval.roundtrip import metric_rows, test_sequences, to_frame
from imfn.store import read_attrs

log = logging.getLogger(__name__)


def fit_pca(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (P,) and principal directions (P, P), columns by decreasing variance."""
    x = images.double()
    mean = x.mean(dim=0)
    centered = x - mean
    eigenvalues, eigenvectors = torch.linalg.eigh(centered.T @ centered / (len(x) - 1))
    order = torch.argsort(eigenvalues, descending=True)
    return mean.float(), eigenvectors[:, order].float()


def pca_roundtrip(frames: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the top ``k`` components of every frame, map back, clip to [0, 1]."""
    components = basis[:, :k]
    return ((frames - mean) @ components @ components.T + mean).clamp(0.0, 1.0)


def evaluate_pca(
    mnist: Path, split: Path, seed: int, dims: Sequence[int], Ts: Sequence[int], sequences: int, out: Path
) -> None:
    data = load_split_images(mnist, split)
    mean, basis = fit_pca(torch.from_numpy(data.images)[torch.from_numpy(data.train)].float() / 255.0)
    rows = []
    for T in Ts:
        frames = test_sequences(data, seed, T, sequences)
        for dim in dims:
            k = min(dim // T, basis.shape[1])
            reconstruction = pca_roundtrip(frames, mean, basis, k)
            mse, ssim = mse_per_frame(reconstruction, frames), ssim_per_frame(reconstruction, frames)
            rows += metric_rows("pca", None, seed, dim, T, mse, ssim)
            log.info("per-frame PCA seed %d d=%d T=%d (k=%d): MSE %.5f", seed, dim, T, k, mse.mean().item())
    frame = to_frame(rows)
    with atomic_output(out) as tmp:
        frame.to_parquet(tmp, index=False)


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
    frames = frames_tensor(train).flatten(0, 1).flatten(1)  # (training frames, 3 * H * W)
    picks = torch.randperm(len(frames), generator=seeded_generator("video-pca-sample", attrs["seed"]))
    sample = frames[picks[:VIDEO_PCA_FRAMES]].double()
    mean = sample.mean(dim=0)
    _, singular, components = torch.linalg.svd(sample - mean, full_matrices=False)
    rank = int((singular > singular[0] * 1e-6).sum())
    frame = pd.read_parquet(split).sort_values("path")
    validation = frame[frame["split"] == "validation"]
    if max_videos is not None:
        validation = validation.iloc[:max_videos]
    clips = frames_tensor(torch.from_numpy(read_clips(bank, validation["bank_index"].to_numpy(dtype="int64"))))
    pixels = clips.flatten(2).double()  # (videos, frames, 3 * H * W)
    rows = []
    for level in range(levels):
        ratio = 2 ** (level + 1)
        k = min(dim // ratio, rank)
        basis = components[:k].T
        reconstruction = ((pixels - mean) @ basis @ basis.T + mean).clamp(0.0, 1.0)
        mse = (reconstruction - pixels).pow(2).flatten(1).mean(dim=1)
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
    table = pd.DataFrame(rows)
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    return table
