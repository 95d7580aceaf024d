"""Principal components of frames: the linear code behind per-frame PCA, the per-frame autoencoder's start and the
references at equal memory.

A source's frame PCA is fit once per seed (:func:`write_frame_pca`, results/<source>/seed<s>/frame_pca.zarr) and
read by every reference that needs it (:func:`load_frame_pca`): per-frame PCA, the per-frame autoencoders of
every k, the mean frame and the source's strip figure. On 64x64 frames the fit (a 4096 x 4096 covariance over
54,000 frames and its eigendecomposition) is the larger part of a per-frame autoencoder's job on 2 cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from imfn.store import read_array, read_attrs, write_arrays

if TYPE_CHECKING:
    from imfn.data.sequences import Sequences

PCA_CHUNK = 4096  # frames per step of the covariance sum: 64x64 frames never sit in memory as float64 all at once
RANK_TOLERANCE = 1e-10  # Gram eigenvalues below this fraction of the largest span no direction


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float64 in [0, 1]; float images as they are, in float64."""
    return images.double() / 255.0 if images.dtype == torch.uint8 else images.double()


def mean_image(images: torch.Tensor) -> torch.Tensor:
    """(P,) float64: the mean of ``images`` (N, P), uint8 pixels or floats in [0, 1], ``PCA_CHUNK`` at a time."""
    return sum(_pixels(chunk).sum(dim=0) for chunk in images.split(PCA_CHUNK)) / len(images)


def fit_pca(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (P,) and principal directions (P, r), columns by decreasing variance, of ``images`` (N, P): uint8
    pixels or floats in [0, 1]; r = P, or the directions N < P images span. With more images than pixels the
    covariance (P x P) is summed in float64 (of float32 products), ``PCA_CHUNK`` images at a time; with fewer, the
    same directions come exactly and more cheaply from the images' Gram matrix (N x N)."""
    if len(images) < 2:
        raise ValueError(f"PCA needs at least 2 images, got {len(images)}")
    mean = mean_image(images)
    if len(images) < images.shape[1]:
        centered = _pixels(images) - mean
        eigenvalues, eigenvectors = torch.linalg.eigh(centered @ centered.T)
        order = torch.argsort(eigenvalues, descending=True)
        eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
        spanned = eigenvalues > eigenvalues[0] * RANK_TOLERANCE if eigenvalues[0] > 0 else eigenvalues > 0
        basis = centered.T @ eigenvectors[:, spanned] / eigenvalues[spanned].sqrt()
        return mean.float(), basis.float()
    covariance = torch.zeros(images.shape[1], images.shape[1], dtype=torch.float64)
    for chunk in images.split(PCA_CHUNK):
        centered = (_pixels(chunk) - mean).float()  # float32 products (half the time), summed in float64
        covariance += (centered.T @ centered).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance / (len(images) - 1))
    order = torch.argsort(eigenvalues, descending=True)
    return mean.float(), eigenvectors[:, order].float()


def pca_roundtrip(frames: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the top ``k`` components of every frame, map back, clip to [0, 1]."""
    components = basis[:, :k]
    return ((frames - mean) @ components @ components.T + mean).clamp(0.0, 1.0)


def write_frame_pca(sequences: Sequences, out: Path) -> None:
    """Fit per-frame PCA on the source's training frames (:func:`imfn.data.sequences.training_frames`) and write
    its mean (pixels,) and every principal direction (pixels, r) to the Zarr store ``out``."""
    from imfn.data.sequences import training_frames

    frames = training_frames(sequences)
    mean, basis = fit_pca(frames)
    attrs = {"source": sequences.source, "seed": sequences.seed, "frames": len(frames),
             "frame": sequences.frame.as_list()}  # fmt: skip
    write_arrays(out, {"mean": mean.numpy(), "basis": basis.numpy()}, attrs)


def load_frame_pca(path: Path, sequences: Sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (pixels,) and principal directions (pixels, r) that :func:`write_frame_pca` wrote for the source
    and seed of ``sequences``; a store of another source or seed is an error naming both."""
    attrs = read_attrs(path)
    if (attrs.get("source"), attrs.get("seed")) != (sequences.source, sequences.seed):
        raise ValueError(f"{path} holds the frame PCA of {attrs.get('source')} seed {attrs.get('seed')}, not of "
                         f"{sequences.source} seed {sequences.seed}")  # fmt: skip
    mean, basis = read_array(path, "mean"), read_array(path, "basis")
    if mean.shape != (sequences.frame.pixels,) or basis.ndim != 2 or basis.shape[0] != sequences.frame.pixels:
        raise ValueError(f"{path}: mean {mean.shape} and basis {basis.shape} do not fit "
                         f"{sequences.frame.pixels}-pixel frames")  # fmt: skip
    return torch.from_numpy(np.ascontiguousarray(mean)), torch.from_numpy(np.ascontiguousarray(basis))


@torch.no_grad()
def init_from_pca(encode: nn.Linear, decode: nn.Linear, samples: torch.Tensor) -> None:
    """Set ``encode`` to project onto the top principal components of ``samples`` (:func:`fit_pca`)
    and ``decode`` to map back (orthonormal, so decode(encode(x)) is the best rank-k reconstruction).

    When asked for more components than ``samples`` span, the extra codes are zero."""
    mean, basis = fit_pca(samples)
    k = min(encode.out_features, basis.shape[1])
    kept = torch.zeros(samples.shape[1], encode.out_features, dtype=basis.dtype)
    kept[:, :k] = basis[:, :k]
    encode.weight.copy_(kept.T)
    encode.bias.copy_(-(kept.T @ mean))
    decode.weight.copy_(kept)
    decode.bias.copy_(mean)
