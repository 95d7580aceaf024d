"""Teacher trajectory sets for the student (method.md section 4), as Zarr.

Sequences ``0 .. n-1`` of one part ("train" or "test") of a source (:mod:`imfn.data.sequences`) at T frames;
the frozen teacher encodes every frame to a leaf code and the Merkle path gives the zero-padded roots
``y_0 .. y_T`` (for a teacher whose levels map each frame on its own, one tree per sequence gives them,
:func:`imfn.models.merkle.separable_trajectory`). The store holds ``targets`` (n, T+1, d) float32 and ``leaves``
(n, T, d) float32; its attrs name the sequences (source, seed, part, start, count, T), so
:func:`trajectory_frames` draws their frames again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from imfn.data.sequences import PARTS, Sequences, same_frame_shape
from imfn.devices import batch_size
from imfn.models.merkle import frames_separate, merkle_trajectory, separable_trajectory
from imfn.models.teacher import Teacher
from imfn.models.tree import depth_for
from imfn.store import write_arrays

log = logging.getLogger(__name__)

FRAMES_PER_BATCH = 8192


@torch.no_grad()
def write_trajectory_set(
    teacher_checkpoints: Sequence[Path],
    sequences: Sequences,
    part: str,
    T: int,
    n: int,
    out: Path,
    device: torch.device | str = "cpu",
) -> None:
    """Trajectories of sequences ``0 .. n-1`` of ``part`` of ``sequences`` at ``T`` frames."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    checkpoints = list(teacher_checkpoints)[: depth_for(T)]
    teacher = Teacher.load_for(T, checkpoints, device)
    same_frame_shape("the teacher", teacher.frame_shape, sequences)
    zero_leaf = teacher.zero_leaf()
    trajectory = separable_trajectory if frames_separate(teacher.sweepers, T) else merkle_trajectory
    targets, leaves = [], []
    step = max(1, batch_size(FRAMES_PER_BATCH, torch.device(device)) // T)
    for start in range(0, n, step):
        batch = sequences.draw_float(part, start, min(step, n - start), T).to(device)
        codes = teacher.encode_leaves(batch)
        targets.append(trajectory(teacher.sweepers, codes, zero_leaf).states.float().cpu())
        leaves.append(codes.float().cpu())
    targets_array, leaves_array = torch.cat(targets).numpy(), torch.cat(leaves).numpy()
    if not (np.isfinite(targets_array).all() and np.isfinite(leaves_array).all()):
        raise ValueError(f"teacher {checkpoints[0]} gave non-finite codes or roots; nothing was written to {out}")
    attrs = {
        "source": sequences.source,
        "seed": sequences.seed,
        "part": part,
        "start": 0,
        "count": n,
        "T": T,
        "dim": int(leaves_array.shape[-1]),
        "frame_shape": sequences.frame_shape.as_list(),
        "teacher_checkpoints": [str(path) for path in checkpoints],
    }
    write_arrays(out, {"targets": targets_array, "leaves": leaves_array}, attrs)
    log.info("trajectory set %s: %d %s %s sequences of T=%d, d=%d", out, n, sequences.source, part, T, attrs["dim"])
