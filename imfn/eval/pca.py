"""Per-frame PCA at equal memory: the reference every learned memory stands beside.

A sequence of T frames with memory d keeps k = d // T principal components per frame
(fit on the seed's training split), so it stores the same d numbers as the tree's root.
Reconstructions are clipped to the pixel range [0, 1], as the teacher's decoder output is.
It is evaluated on exactly the teacher's held-out sequences with the same metric code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from imfn.atomic import atomic_output
from imfn.data.mnist import load_split_images
from imfn.eval.metrics import mse_per_frame, ssim_per_frame
from imfn.eval.roundtrip import metric_rows, test_sequences, to_frame

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
            rows += metric_rows("pca", "per-frame", seed, dim, T, mse, ssim)
            log.info("per-frame PCA seed %d d=%d T=%d (k=%d): MSE %.5f", seed, dim, T, k, mse.mean().item())
    frame = to_frame(rows)
    with atomic_output(out) as tmp:
        frame.to_parquet(tmp, index=False)
