"""Principal components: the one PCA behind every linear start and reference (fit, project, reconstruct, one rank
rule).

:func:`fit_pca` fits samples (N, P), uint8 pixels or floats in [0, 1]:

- with at least as many samples as dimensions, from the covariance (P x P), summed in float64 of float32 products
  ``PCA_CHUNK`` samples at a time: every one of the P directions is defined;
- with fewer, from the samples' Gram matrix (N x N, :func:`gram_pca`), which gives the same directions exactly and
  far more cheaply when P is large (a 64-frame clip of 64x64 is 262,144 numbers): the directions are
  ``Xc^T u_i / sqrt(lambda_i)``, formed only when asked for (:meth:`PCA.components`), and only those the samples
  span count (the rank rule, :func:`spanned`).

Its users: the leaf codecs' and sweepers' PCA start (:func:`init_from_pca`), the video levels' linear path,
per-frame PCA and the per-frame autoencoder's start (the frame PCA of a source, :func:`write_frame_pca`, fit once
per seed and read by every reference that needs it), clip PCA (:mod:`imfn.eval.clip_pca`, whose Gram matrix grows
frame by frame, :func:`add_gram`) and the video's per-frame PCA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from imfn.store import read_array, read_attrs, write_arrays

if TYPE_CHECKING:
    from imfn.data.sequences import Sequences

PCA_CHUNK = 4096  # samples per step of the covariance sum: 64x64 frames never sit in memory as float64 all at once
CHUNK_VALUES = 2**23  # sample values centred at once on the Gram path (as float64: 64 MB)
RANK_TOLERANCE = 1e-6  # eigenvalues below this fraction of the largest span no direction (float32 products' rounding)


def pixels(values: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float64 in [0, 1]; floats as they are, in float64."""
    return values.double() / 255.0 if values.dtype == torch.uint8 else values.double()


def mean_image(images: torch.Tensor) -> torch.Tensor:
    """(P,) float64: the mean of ``images`` (N, P), uint8 pixels or floats in [0, 1], ``PCA_CHUNK`` at a time."""
    return sum(pixels(chunk).sum(dim=0) for chunk in images.split(PCA_CHUNK)) / len(images)


def column_mean(samples: torch.Tensor) -> torch.Tensor:
    """(P,) float64: the mean of ``samples`` (N, P), ``CHUNK_VALUES`` values at a time (the Gram path's samples are
    wide: never all as float64 at once)."""
    step = max(1, CHUNK_VALUES // len(samples))
    return torch.cat([pixels(samples[:, at : at + step]).mean(dim=0) for at in range(0, samples.shape[1], step)])


def spanned(eigenvalues: torch.Tensor) -> int:
    """The rank rule: how many of ``eigenvalues`` (decreasing) exceed ``RANK_TOLERANCE`` of the largest."""
    return int((eigenvalues > eigenvalues[0] * RANK_TOLERANCE).sum()) if len(eigenvalues) and eigenvalues[0] > 0 else 0


def _centred_chunks(samples: torch.Tensor, mean: torch.Tensor):
    """(columns, (N, columns) float64 centred values) over ``samples`` (N, P), ``CHUNK_VALUES`` values at a time."""
    step = max(1, CHUNK_VALUES // len(samples))
    for start in range(0, samples.shape[1], step):
        columns = slice(start, start + step)
        yield columns, pixels(samples[:, columns]) - mean[columns]


@dataclass(frozen=True)
class PCA:
    """Principal components of samples (N, P): their mean, the variance along each direction times (N - 1)
    (``eigenvalues``, decreasing) and the directions, either explicit (the covariance path: ``basis``, (P, P)) or
    formed from the samples on first use (the Gram path: ``samples`` and the Gram matrix's ``eigenvectors``)."""

    mean: torch.Tensor  # (P,) float64
    eigenvalues: torch.Tensor  # (rank,) float64
    basis: torch.Tensor | None = None  # (P, rank) float32, the covariance path
    samples: torch.Tensor | None = None  # (N, P) the Gram path's samples, uint8 pixels or floats in [0, 1]
    eigenvectors: torch.Tensor | None = None  # (N, rank) float64, the Gram path's
    _formed: dict[int, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    @property
    def rank(self) -> int:
        """How many directions there are: the most components this fit can keep."""
        return len(self.eigenvalues)

    def components(self, k: int) -> torch.Tensor:
        """(P, k) float32: the top ``k`` principal directions (orthonormal columns), by decreasing variance."""
        if not 0 <= k <= self.rank:
            raise ValueError(f"a PCA of rank {self.rank} cannot keep {k} components")
        if self.basis is not None:
            return self.basis[:, :k]
        if k not in self._formed:
            self._formed.clear()  # one k at a time: at T = 64 and d = 1024 a clip's are 1 GB
            weights = (self.eigenvectors[:, :k] / self.eigenvalues[:k].sqrt()).float()  # (N, k)
            formed = torch.empty(len(self.mean), k, dtype=torch.float32)
            for columns, centred in _centred_chunks(self.samples, self.mean):
                formed[columns] = centred.float().T @ weights
            self._formed[k] = formed
        return self._formed[k]

    def reconstruct(self, values: torch.Tensor, k: int) -> torch.Tensor:
        """Values in [0, 1] -> their projection onto the top ``k`` components, clipped to [0, 1], in the same shape:
        (..., P) samples (frames, for a PCA of frames), or (N, ...) whose rows hold P numbers each (clips of T
        frames, for a PCA of clips)."""
        shape, P = values.shape, len(self.mean)
        values = values.reshape(-1, P) if shape[-1] == P else values.flatten(1)
        if values.shape[1] != P:
            raise ValueError(f"values of {values.shape[1]} numbers; this PCA was fit on {P}")
        components = self.components(k)
        codes = (values.double() - self.mean).float() @ components  # (N, k)
        out = (codes @ components.T).double() + self.mean
        return out.float().clamp(0.0, 1.0).reshape(shape)


def add_gram(gram: torch.Tensor, samples: torch.Tensor, mean: torch.Tensor) -> None:
    """``gram`` += the centred products of ``samples``' columns (N, P'): float32 products (half the time of
    float64), summed over chunks in float64."""
    for _, centred in _centred_chunks(samples, mean):
        chunk = centred.float()
        gram += (chunk @ chunk.T).double()


def gram_pca(samples: torch.Tensor, mean: torch.Tensor, gram: torch.Tensor) -> PCA:
    """The PCA of ``samples`` (N, P) with ``mean`` from their centred Gram matrix ``gram`` (N x N): the directions
    the samples span (:func:`spanned`), formed on first use."""
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    order = torch.argsort(eigenvalues, descending=True)
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    rank = spanned(eigenvalues)
    return PCA(mean, eigenvalues[:rank].contiguous(), samples=samples, eigenvectors=eigenvectors[:, :rank].contiguous())


def fit_pca(samples: torch.Tensor) -> PCA:
    """The principal components of ``samples`` (N, P), uint8 pixels or floats in [0, 1] (see the module's text)."""
    if len(samples) < 2:
        raise ValueError(f"PCA needs at least 2 samples, got {len(samples)}")
    if len(samples) < samples.shape[1]:
        mean = column_mean(samples)
        gram = torch.zeros(len(samples), len(samples), dtype=torch.float64)
        add_gram(gram, samples, mean)
        return gram_pca(samples, mean, gram)
    mean = mean_image(samples)
    covariance = torch.zeros(samples.shape[1], samples.shape[1], dtype=torch.float64)
    for chunk in samples.split(PCA_CHUNK):
        centred = (pixels(chunk) - mean).float()  # float32 products (half the time), summed in float64
        covariance += (centred.T @ centred).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance / (len(samples) - 1))
    order = torch.argsort(eigenvalues, descending=True)
    return PCA(mean, eigenvalues[order] * (len(samples) - 1), basis=eigenvectors[:, order].float())


def write_frame_pca(sequences: Sequences, out: Path) -> None:
    """Fit per-frame PCA on the source's training frames (:func:`imfn.data.sequences.training_frames`) and write
    its mean (pixels,) and every principal direction (pixels, r) to the Zarr store ``out``."""
    from imfn.data.sequences import training_frames

    frames = training_frames(sequences)
    pca = fit_pca(frames)
    attrs = {"source": sequences.source, "seed": sequences.seed, "frames": len(frames),
             "frame_shape": sequences.frame_shape.as_list()}  # fmt: skip
    write_arrays(out, {"mean": pca.mean.float().numpy(), "basis": pca.components(pca.rank).numpy()}, attrs)


def load_frame_pca(path: Path, sequences: Sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (pixels,) and principal directions (pixels, r) that :func:`write_frame_pca` wrote for the source
    and seed of ``sequences``; a store of another source or seed is an error naming both."""
    from imfn.data.sequences import same_sequences

    same_sequences(str(path), read_attrs(path), sequences)
    mean, basis = read_array(path, "mean"), read_array(path, "basis")
    frame_pixels = sequences.frame_shape.pixels
    if mean.shape != (frame_pixels,) or basis.ndim != 2 or basis.shape[0] != frame_pixels:
        raise ValueError(f"{path}: mean {mean.shape} and basis {basis.shape} do not fit {frame_pixels}-pixel frames")
    return torch.from_numpy(np.ascontiguousarray(mean)), torch.from_numpy(np.ascontiguousarray(basis))


def pca_roundtrip(frames: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the top ``k`` components of every frame, map back, clip to [0, 1]."""
    components = basis[:, :k]
    return ((frames - mean) @ components @ components.T + mean).clamp(0.0, 1.0)


@torch.no_grad()
def init_from_pca(encode: nn.Linear, decode: nn.Linear, samples: torch.Tensor) -> None:
    """Set ``encode`` to project onto the top principal components of ``samples`` (:func:`fit_pca`)
    and ``decode`` to map back (orthonormal, so decode(encode(x)) is the best rank-k reconstruction).

    When asked for more components than ``samples`` span, the extra codes are zero."""
    pca = fit_pca(samples)
    k = min(encode.out_features, pca.rank)
    kept = torch.zeros(samples.shape[1], encode.out_features, dtype=torch.float32)
    kept[:, :k] = pca.components(k)
    mean = pca.mean.float()
    encode.weight.copy_(kept.T)
    encode.bias.copy_(-(kept.T @ mean))
    decode.weight.copy_(kept)
    decode.bias.copy_(mean)
