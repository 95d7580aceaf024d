"""Online evaluation of the student against its teacher (method.md section 4, Fig. 4 and 5).

On a held-out trajectory set (its frames drawn again from its source, :mod:`imfn.data.sequences`), the
student is rolled out from ``y_0`` over the stored leaf codes.
After k frames written its state is read back through the frozen teacher (inversion stack of depth
log2 T, then the decoder for that depth) and the MSE is averaged over the first k frames
(prefix retention). The teacher's own ``y_k`` (the stored targets) is scored the same way.
Every k costs a full read-back of the state, so k runs over :func:`prefix_grid` (every k up to 8,
then two per octave: 12, 16, 24, 32, ..., always T), not all T of them. Rows are tidy:
(model, variant, teacher_variant, seed, dim, T, frames_written, metric, value): ``variant`` is the model's
own named override set (the student's of config ``student.variants``, the teacher's of ``teacher.variants``),
``teacher_variant`` the teacher the student was distilled from (on the teacher's rows: itself), and
``frames_written`` the k, with metric ``prefix_mse`` for every k of the grid and ``mse`` for the end of the
sequence (k = T).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from imfn.atomic import atomic_output
from imfn.data.sequences import Sequences, trajectory_frames
from imfn.devices import autocast, batch_size
from imfn.eval.metrics import mse_per_frame
from imfn.models.memory import ReadOnlyMemory
from imfn.models.student import load_student
from imfn.models.teacher import Teacher
from imfn.store import read_array, read_attrs

log = logging.getLogger(__name__)

FRAMES_PER_BATCH = 8192
COLUMNS = ["source", "model", "variant", "teacher_variant", "seed", "dim", "T", "frames_written", "metric", "value"]


def prefix_grid(T: int) -> list[int]:
    """The k at which prefix retention is measured: 1..8, then 2^j and 3 * 2^(j-1) up to T, and T."""
    grid = {k for k in range(1, 9)} | {T}
    power = 8
    while power <= T:
        grid |= {power, 3 * power // 2}
        power *= 2
    return sorted(k for k in grid if k <= T)


@torch.no_grad()
def prefix_mse_sums(teacher: Teacher, states: torch.Tensor, images: torch.Tensor, ks: list[int]) -> torch.Tensor:
    """(N, T+1, d) states and (N, T, pixels) images -> (len(ks),) sums over the N sequences of the MSE over
    the first k frames decoded from state k, for each k of ``ks``."""
    T = images.shape[1]
    sums = torch.zeros(len(ks), dtype=torch.float64)
    for i, k in enumerate(ks):
        pixels = ReadOnlyMemory(teacher, T, states[:, k], k).reconstruct()
        sums[i] = mse_per_frame(pixels, images[:, :k]).mean(dim=1).double().sum().cpu()
    return sums


def evaluate_online(
    teacher_checkpoints: Sequence[Path],
    student_path: Path,
    test_set_path: Path,
    sequences: Sequences,
    T: int,
    out: Path,
    device: torch.device,
    variant: str,
    teacher_variant: str,
) -> None:
    """Prefix retention and end-of-sequence MSE of a student (of the student variant ``variant``) and its
    teacher (of the teacher variant ``teacher_variant``)."""
    seed, source = sequences.seed, sequences.source
    attrs = read_attrs(test_set_path)
    if (attrs.get("T"), attrs.get("seed"), attrs.get("source"), attrs.get("part")) != (T, seed, source, "test"):
        raise ValueError(
            f"{test_set_path} holds {attrs.get('part')!r} trajectories of {attrs.get('source')} seed "
            f"{attrs.get('seed')}, T={attrs.get('T')}; expected held-out ('test') trajectories of {source} seed "
            f"{seed}, T={T}"
        )
    teacher = Teacher.load_for(T, teacher_checkpoints, device)
    teacher.check_frame(sequences.frame, source)
    student = load_student(student_path, device).requires_grad_(False)
    if student.config.T != T:
        raise ValueError(f"{student_path} is a student for T={student.config.T}, not T={T}")
    targets = torch.from_numpy(read_array(test_set_path, "targets"))
    leaves = torch.from_numpy(read_array(test_set_path, "leaves"))
    n, dim = len(targets), targets.shape[-1]
    if student.config.dim != dim:
        raise ValueError(f"{student_path} has d={student.config.dim}, the trajectory set d={dim}")
    ks = prefix_grid(T)
    sums = {"student": torch.zeros(len(ks), dtype=torch.float64), "teacher": torch.zeros(len(ks), dtype=torch.float64)}
    step = max(1, batch_size(FRAMES_PER_BATCH, device) // T)
    with torch.no_grad(), autocast():
        for start in range(0, n, step):
            chunk = slice(start, start + step)
            images = trajectory_frames(sequences, attrs, start, len(targets[chunk])).to(device)
            y = targets[chunk].float().to(device)
            states = {"student": student.rollout(y[:, 0], leaves[chunk].float().to(device)).float(), "teacher": y}
            for model, s in states.items():
                sums[model] += prefix_mse_sums(teacher, s, images, ks)
    rows = []
    for model, total in sums.items():
        own = variant if model == "student" else teacher_variant
        base = {"source": source, "model": model, "variant": own, "teacher_variant": teacher_variant, "seed": seed}
        base |= {"dim": dim, "T": T}
        prefix = (total / n).tolist()
        rows += [
            {**base, "frames_written": k, "metric": "prefix_mse", "value": v} for k, v in zip(ks, prefix, strict=True)
        ]
        rows.append({**base, "frames_written": T, "metric": "mse", "value": prefix[-1]})
        log.info("online %s %s (%s) seed %d d=%d T=%d: end-of-sequence MSE %.5f", source, model, own, seed, dim, T,
                 prefix[-1])  # fmt: skip
    with atomic_output(out) as tmp:
        pd.DataFrame(rows, columns=COLUMNS).to_parquet(tmp, index=False)
