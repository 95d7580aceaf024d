"""Clip PCA and the mean frame: linear references at equal memory for sequences whose frames share content.

Clip PCA keeps the top d principal components of the whole T-frame clip (T * pixels numbers): the best linear code
of a sequence in d numbers, where per-frame PCA gives each frame k = d // T of them on its own. It is fit on
``fit_clips`` training clips (part ``train``, sequences 0 .. fit_clips - 1, at that T) and evaluated on the held-out
clips (part ``test``, 0 .. sequences - 1) at every d of the grid. The mean frame (the average training frame, the
mean of the source's frame PCA, :func:`imfn.models.pca.write_frame_pca`, put at every position) is the code of zero
numbers.

How it is fit: a clip of 64 frames of 64x64 has 262,144 dimensions and the fit clips are a few thousand, so the
principal components come from the Gram matrix of the M centred fit clips (M x M), the PCA's Gram path
(:mod:`imfn.models.pca`): exact, and it never forms the covariance (D x D); the top d components (D x d float32:
268 MB at T = 64 and d = 256, 1 GB at d = 1024) are formed once per d when a clip is first projected. Fewer fit
clips than d span fewer than d directions (at most M - 1), and d is then capped, with a warning in the log.

Every T from one draw: a sequence's first frames are the same whatever T is asked for, so the fit clips at T are the
first T frames of those at the longest T, and a column's centring does not depend on the other columns. The Gram
matrix at T is then the one at the previous T plus the products of the frames in between (:func:`fit_clip_pcas`):
the Gram matrices of every T cost what the longest one costs alone.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from imfn.atomic import atomic_output
from imfn.data.sequences import Sequences
from imfn.eval.metrics import score_held_out
from imfn.eval.roundtrip import metric_rows, to_table
from imfn.models.pca import PCA, add_gram, column_mean, gram_pca, load_frame_pca

log = logging.getLogger(__name__)


def fit_clip_pcas(clips: torch.Tensor, Ts: Sequence[int]) -> Iterator[tuple[int, PCA]]:
    """(T, the clip PCA of the first T frames of ``clips``) for every T of ``Ts``, in increasing T: ``clips``
    (M, T_max, pixels) uint8 pixels or floats in [0, 1], T_max >= max(Ts). One Gram matrix grows frame by frame."""
    if len(clips) < 2:
        raise ValueError(f"clip PCA needs at least 2 fit clips, got {len(clips)}")
    M, frames, frame_pixels = clips.shape
    if max(Ts) > frames:
        raise ValueError(f"clip PCA at T={max(Ts)} from fit clips of {frames} frames")
    clips = clips.reshape(M, frames * frame_pixels)[:, : max(Ts) * frame_pixels]
    mean = column_mean(clips)
    gram, done = torch.zeros(M, M, dtype=torch.float64), 0
    for T in sorted(set(Ts)):
        add_gram(gram, clips[:, done * frame_pixels : T * frame_pixels], mean[done * frame_pixels : T * frame_pixels])
        done = T
        yield T, gram_pca(clips[:, : T * frame_pixels], mean[: T * frame_pixels], gram.clone())


def evaluate_clip_pca(
    sequences: Sequences, pca: Path, dims: Sequence[int], Ts: Sequence[int], count: int, fit_clips: int, out: Path
) -> None:
    """Rows of model ``clip-pca`` (d components of the whole clip) and ``mean-frame`` (no variant; the mean of the
    frame PCA ``pca``) at every (d, T), on held-out sequences ``0 .. count - 1``; clip PCA fit on training
    sequences ``0 .. fit_clips - 1``."""
    source, seed, frame_pixels = sequences.source, sequences.seed, sequences.frame_shape.pixels
    mean_frame, _ = load_frame_pca(pca, sequences)
    rows = []
    clips = torch.from_numpy(sequences.draw("train", 0, fit_clips, max(Ts)))
    log.info("clip PCA %s seed %d: fitting %d clips of up to %d values", source, seed, fit_clips,
             max(Ts) * frame_pixels)  # fmt: skip
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
            mse, ssim = score_held_out(sequences, T, count, functools.partial(pca.reconstruct, k=d))
            rows += metric_rows(source, "clip-pca", None, seed, dim, T, mse, ssim)
            log.info("clip PCA %s seed %d d=%d T=%d (%d components): MSE %.5f", source, seed, dim, T, d, mse.mean())
            rows += metric_rows(source, "mean-frame", None, seed, dim, T, mean_mse, mean_ssim)
    with atomic_output(out) as tmp:
        to_table(rows).to_parquet(tmp, index=False)
