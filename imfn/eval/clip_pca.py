"""Clip PCA and the mean frame: linear references at equal memory for sequences whose frames share content.

Clip PCA keeps the top d principal components of the whole T-frame clip (T * pixels numbers): the best linear code
of a sequence in d numbers, where per-frame PCA gives each frame k = d // T of them on its own. It is fit on
``fit_clips`` training clips (part ``train``, sequences 0 .. fit_clips - 1, at that T) and evaluated on the held-out
clips (part ``test``, 0 .. sequences - 1) at every d of the grid. The mean frame (the average training frame, the
mean of the source's frame PCA, :func:`imfn.models.pca.write_frame_pca`, put at every position) is the code of zero
numbers.

How it is fit: a clip of 64 frames of 64x64 has 262,144 dimensions and the fit clips are a few thousand, so the
principal components are found through the Gram matrix of the M centred fit clips, ``G = Xc Xc^T`` (M x M): with ``G
= U diag(lambda) U^T`` the components are ``Xc^T u_i / sqrt(lambda_i)``. This is exact (a randomized SVD is
approximate, and the Gram matrix is cheap here: M^2 * T * pixels multiply-adds), and it never forms the covariance
(D x D). The top d components, ``C_d = Xc^T U_d diag(1 / sqrt(lambda_d))`` (D x d float32: 268 MB at T = 64 and
d = 256, 1 GB at d = 1024), are formed once per d when a clip is first projected (one pass over the fit clips),
and a clip's projection is ``C_d C_d^T (y - mean) + mean``. ``G`` is float32 products summed in float64 over
chunks of columns (float32 alone halves the time; the kept eigenvalues are far above its rounding,
``RANK_TOLERANCE``) and solved in float64; ``C_d`` and the projections are float32 products. The fit clips stay
uint8 (M x D bytes) and are centred a chunk at a time. Directions whose eigenvalue is below ``RANK_TOLERANCE`` of the
largest are not components: fewer fit clips than d span fewer than d directions (at most M - 1), and d is then
capped, with a warning in the log.

Every T from one draw: a sequence's first frames are the same whatever T is asked for, so the fit clips at T are the
first T frames of those at the longest T, and a column's centring does not depend on the other columns. ``G`` at T
is then the Gram matrix at the previous T plus the products of the frames in between (:func:`fit_clip_pcas`): the
Gram matrices of every T cost what the longest one costs alone.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from imfn.atomic import atomic_output
from imfn.data.sequences import Sequences
from imfn.eval.metrics import score_held_out
from imfn.eval.roundtrip import metric_rows, to_frame
from imfn.models.pca import load_frame_pca

log = logging.getLogger(__name__)

CHUNK_VALUES = 2**23  # fit-clip values centred at once (as float64: 64 MB)
RANK_TOLERANCE = 1e-6  # eigenvalues of G below this fraction of the largest span no direction (float32 rounding)


def _pixels(values: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float64 in [0, 1]; floats as they are, in float64."""
    return values.double() / 255.0 if values.dtype == torch.uint8 else values.double()


def _centred_chunks(clips: torch.Tensor, mean: torch.Tensor):
    """(columns, (M, columns) float64 centred values) over ``clips`` (M, D), ``CHUNK_VALUES`` values at a time."""
    step = max(1, CHUNK_VALUES // len(clips))
    for start in range(0, clips.shape[1], step):
        columns = slice(start, start + step)
        yield columns, _pixels(clips[:, columns]) - mean[columns]


@dataclass(frozen=True)
class ClipPCA:
    """Principal components of clips (M, D): the fit clips, their mean and ``G``'s eigenvectors, and the top d
    components once a projection onto them was asked for."""

    clips: torch.Tensor  # (M, D) fit clips, uint8 pixels or floats in [0, 1]
    mean: torch.Tensor  # (D,) float64
    eigenvalues: torch.Tensor  # (rank,) float64, decreasing: the variance along each component times (M - 1)
    eigenvectors: torch.Tensor  # (M, rank) float64, G's
    _components: dict[int, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    @property
    def rank(self) -> int:
        """How many directions the fit clips span: the most components this fit can keep."""
        return len(self.eigenvalues)

    def components(self, d: int) -> torch.Tensor:
        """(D, d) float32: the top ``d`` principal directions (orthonormal columns), formed on first use."""
        if not 0 <= d <= self.rank:
            raise ValueError(f"clip PCA of rank {self.rank} cannot keep {d} components")
        if d not in self._components:
            self._components.clear()  # one d at a time: at T = 64 and d = 1024 they are 1 GB
            weights = (self.eigenvectors[:, :d] / self.eigenvalues[:d].sqrt()).float()  # (M, d)
            components = torch.empty(len(self.mean), d, dtype=torch.float32)
            for columns, fit in _centred_chunks(self.clips, self.mean):
                components[columns] = fit.float().T @ weights
            self._components[d] = components
        return self._components[d]

    def reconstruct(self, clips: torch.Tensor, d: int) -> torch.Tensor:
        """Clips in [0, 1], (N, D) or (N, T, pixels) -> their projection onto the top ``d`` components
        (d <= rank), clipped to [0, 1], in the same shape."""
        shape, clips = clips.shape, clips.flatten(1)
        if clips.shape[1] != len(self.mean):
            raise ValueError(f"clips of {clips.shape[1]} values; this clip PCA was fit on clips of {len(self.mean)}")
        components = self.components(d)
        codes = (clips.double() - self.mean).float() @ components  # (N, d)
        out = (codes @ components.T).double() + self.mean
        return out.float().clamp(0.0, 1.0).reshape(shape)


def _add_gram(gram: torch.Tensor, clips: torch.Tensor, mean: torch.Tensor) -> None:
    """``gram`` += the centred products of ``clips``' columns (M, D'): float32 products (half the time of float64),
    summed over chunks in float64."""
    for _, centred in _centred_chunks(clips, mean):
        chunk = centred.float()
        gram += (chunk @ chunk.T).double()


def _solve(clips: torch.Tensor, mean: torch.Tensor, gram: torch.Tensor) -> ClipPCA:
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    order = torch.argsort(eigenvalues, descending=True)
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    rank = int((eigenvalues > eigenvalues[0] * RANK_TOLERANCE).sum()) if eigenvalues[0] > 0 else 0
    return ClipPCA(clips, mean, eigenvalues[:rank].contiguous(), eigenvectors[:, :rank].contiguous())


def fit_clip_pcas(clips: torch.Tensor, Ts: Sequence[int]) -> Iterator[tuple[int, ClipPCA]]:
    """(T, the clip PCA of the first T frames of ``clips``) for every T of ``Ts``, in increasing T: ``clips``
    (M, T_max, pixels) uint8 pixels or floats in [0, 1], T_max >= max(Ts). One Gram matrix grows frame by frame."""
    if len(clips) < 2:
        raise ValueError(f"clip PCA needs at least 2 fit clips, got {len(clips)}")
    M, frames, pixels = clips.shape
    if max(Ts) > frames:
        raise ValueError(f"clip PCA at T={max(Ts)} from fit clips of {frames} frames")
    clips = clips.reshape(M, frames * pixels)[:, : max(Ts) * pixels]
    step = max(1, CHUNK_VALUES // M)
    mean = torch.cat([_pixels(clips[:, at : at + step]).mean(dim=0) for at in range(0, clips.shape[1], step)])
    gram, done = torch.zeros(M, M, dtype=torch.float64), 0
    for T in sorted(set(Ts)):
        _add_gram(gram, clips[:, done * pixels : T * pixels], mean[done * pixels : T * pixels])
        done = T
        yield T, _solve(clips[:, : T * pixels], mean[: T * pixels], gram.clone())


def fit_clip_pca(clips: torch.Tensor) -> ClipPCA:
    """Principal components of ``clips`` (M, D): uint8 pixels or floats in [0, 1], through their Gram matrix."""
    ((_, pca),) = fit_clip_pcas(clips.reshape(len(clips), 1, -1), [1])
    return pca


def evaluate_clip_pca(
    sequences: Sequences, pca: Path, dims: Sequence[int], Ts: Sequence[int], count: int, fit_clips: int, out: Path
) -> None:
    """Rows of model ``clip-pca`` (d components of the whole clip) and ``mean-frame`` (no variant; the mean of the
    frame PCA ``pca``) at every (d, T), on held-out sequences ``0 .. count - 1``; clip PCA fit on training
    sequences ``0 .. fit_clips - 1``."""
    source, seed, pixels = sequences.source, sequences.seed, sequences.frame.pixels
    mean_frame, _ = load_frame_pca(pca, sequences)
    rows = []
    clips = torch.from_numpy(sequences.draw("train", 0, fit_clips, max(Ts)))
    log.info("clip PCA %s seed %d: fitting %d clips of up to %d values", source, seed, fit_clips, max(Ts) * pixels)
    for T, pca in fit_clip_pcas(clips, Ts):
        mean_mse, mean_ssim = score_held_out(sequences, T, count, lambda frames: mean_frame.expand(frames.shape))
        log.info("mean frame %s seed %d T=%d: MSE %.5f", source, seed, T, mean_mse.mean())
        for dim in dims:
            d = min(dim, pca.rank)
            if d < dim:
                log.warning(
                    "clip PCA T=%d: %d fit clips span %d directions, fewer than d=%d; keeping %d components "
                    "(raise reference.clip_pca.fit_clips for all d)", T, fit_clips, pca.rank, dim, d,
                )  # fmt: skip
            mse, ssim = score_held_out(sequences, T, count, functools.partial(pca.reconstruct, d=d))
            rows += metric_rows(source, "clip-pca", None, seed, dim, T, mse, ssim)
            log.info("clip PCA %s seed %d d=%d T=%d (%d components): MSE %.5f", source, seed, dim, T, d, mse.mean())
            rows += metric_rows(source, "mean-frame", None, seed, dim, T, mean_mse, mean_ssim)
    with atomic_output(out) as tmp:
        to_frame(rows).to_parquet(tmp, index=False)
