"""Teacher trajectory sets for the student (method.md section 4), as Zarr.

n sequences of T images are drawn from one part ("train" or "test") of a seed's split; the
frozen teacher encodes every frame to a leaf code and the Merkle path gives the zero-padded
roots ``y_0 .. y_T`` (for a teacher whose levels map each frame on its own, one tree per sequence
gives them, :func:`imfn.models.merkle.separable_trajectory`). The store holds ``targets``
(n, T+1, d) float32, ``leaves`` (n, T, d) float32 and ``frame_index`` (n, T) int64 (rows of the
MNIST store).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from imfn.data.mnist import split_indices
from imfn.devices import batch_size
from imfn.job import seeded_generator
from imfn.models.merkle import frames_separate, merkle_trajectory, separable_trajectory
from imfn.models.teacher import Teacher, depth_for
from imfn.store import read_array, write_arrays

log = logging.getLogger(__name__)

PARTS = ("train", "test")
FRAMES_PER_BATCH = 8192


def frame_picks(split: Path, which: str, seed: int, T: int, n: int) -> np.ndarray:
    """(n, T) MNIST indices drawn (with replacement) from the ``which`` part of the seed's split."""
    if which not in PARTS:
        raise ValueError(f"which must be one of {PARTS}, got {which!r}")
    pool = torch.from_numpy(split_indices(split, which))
    if len(pool) == 0:
        raise ValueError(f"split {split} has no {which!r} images")
    generator = seeded_generator("trajectory-frames", seed, T, which)
    return pool[torch.randint(len(pool), (n, T), generator=generator)].numpy().astype(np.int64)


@torch.no_grad()
def write_trajectory_set(
    teacher_checkpoints: Sequence[Path],
    mnist: Path,
    split: Path,
    which: str,
    seed: int,
    T: int,
    n: int,
    out: Path,
    device: torch.device | str = "cpu",
) -> None:
    checkpoints = list(teacher_checkpoints)[: depth_for(T)]
    teacher = Teacher.load_for(T, checkpoints, device)
    index = frame_picks(split, which, seed, T, n)
    images = read_array(mnist, "images")
    zero_leaf = teacher.zero_leaf()
    trajectory = separable_trajectory if frames_separate(teacher.sweepers, T) else merkle_trajectory
    targets, leaves = [], []
    for chunk in np.array_split(index, max(1, -(-n * T // batch_size(FRAMES_PER_BATCH, torch.device(device))))):
        batch = torch.from_numpy(images[chunk]).to(device).float() / 255.0
        codes = teacher.encode_leaves(batch)
        targets.append(trajectory(teacher.sweepers, codes, zero_leaf).states.float().cpu())
        leaves.append(codes.float().cpu())
    targets_array, leaves_array = torch.cat(targets).numpy(), torch.cat(leaves).numpy()
    if not (np.isfinite(targets_array).all() and np.isfinite(leaves_array).all()):
        raise ValueError(f"teacher {checkpoints[0]} gave non-finite codes or roots; nothing was written to {out}")
    attrs = {
        "seed": seed,
        "T": T,
        "n": n,
        "dim": int(leaves_array.shape[-1]),
        "which": which,
        "split": str(split),
        "mnist": str(mnist),
        "teacher_checkpoints": [str(path) for path in checkpoints],
    }
    write_arrays(out, {"targets": targets_array, "leaves": leaves_array, "frame_index": index}, attrs)
    log.info("trajectory set %s: %d %s sequences of T=%d, d=%d", out, n, which, T, attrs["dim"])
