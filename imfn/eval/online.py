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

**Past the end** (metric ``past_end_mse``, k = 2T and 4T): frames keep arriving after T. The same held-out rows,
drawn 4T frames long, are written into the student one after another, frame t at position t mod T (a student
knows T positions and no more), and after k frames its state is read back as T frames and scored against the
last T frames written (at k a multiple of T, they are the ones written at positions 0..T-1). Beside it, the
teacher's root of those T frames alone (merged afresh, not a state carried over): what a memory of the last T
frames would give. A student trained only on sequences of T frames was never asked to forget; these rows say
what its state holds when it must.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from imfn.atomic import atomic_output
from imfn.data.sequences import Sequences, same_frame_shape, same_sequences, trajectory_frames
from imfn.devices import autocast, batch_size
from imfn.eval.metrics import mse_per_frame
from imfn.models.memory import ReadOnlyMemory
from imfn.models.student import Student, load_student
from imfn.models.teacher import Teacher
from imfn.models.tree import merge_up
from imfn.store import read_array, read_attrs

log = logging.getLogger(__name__)

FRAMES_PER_BATCH = 8192
PAST_END = (2, 4)  # past the end: the state is read back after these multiples of T frames
COLUMNS = ["source", "model", "variant", "teacher_variant", "seed", "dim", "T", "frames_written", "metric", "value"]


def prefix_grid(T: int) -> list[int]:
    """The k at which prefix retention is measured: 1..8, then 2^j and 3 * 2^(j-1) up to T, and T."""
    grid = {k for k in range(1, 9)} | {T}
    power = 8
    while power <= T:
        grid |= {power, 3 * power // 2}
        power *= 2
    return sorted(k for k in grid if k <= T)


def _zero_sums(n: int) -> dict[str, torch.Tensor]:
    return {model: torch.zeros(n, dtype=torch.float64) for model in ("student", "teacher")}


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


@torch.no_grad()
def past_end_mse_sums(
    teacher: Teacher, student: Student, m0: torch.Tensor, images: torch.Tensor, T: int
) -> dict[str, torch.Tensor]:
    """(N, d) start states and (N, max(PAST_END) T, pixels) images -> per model, (len(PAST_END),) sums over the N
    sequences of the MSE over the last T frames after k = m T written, for m of :data:`PAST_END`: the student's
    state after all k frames (frame t at position t mod T), and the teacher's root of the last T frames alone."""
    leaves = teacher.encode_leaves(images)
    sums = _zero_sums(len(PAST_END))
    m = m0
    for t in range(leaves.shape[1]):
        m = student.step(m, leaves[:, t], t % T)
        k = t + 1
        if k % T or k // T not in PAST_END:
            continue
        i = PAST_END.index(k // T)
        window = images[:, k - T : k]
        root = merge_up(teacher.sweepers, leaves[:, k - T : k])
        for model, state in (("student", m.float()), ("teacher", root.float())):
            pixels = ReadOnlyMemory(teacher, T, state, T).reconstruct()
            sums[model][i] += mse_per_frame(pixels, window).mean(dim=1).double().sum().cpu()
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
    same_sequences(str(test_set_path), attrs, sequences)
    if (attrs.get("T"), attrs.get("part")) != (T, "test"):
        raise ValueError(f"{test_set_path} holds {attrs.get('part')!r} trajectories of T={attrs.get('T')}; expected "
                         f"held-out ('test') trajectories of T={T}")  # fmt: skip
    teacher = Teacher.load_for(T, teacher_checkpoints, device)
    same_frame_shape("the teacher", teacher.frame_shape, sequences)
    student = load_student(student_path, device).requires_grad_(False)
    if student.config.T != T:
        raise ValueError(f"{student_path} is a student for T={student.config.T}, not T={T}")
    targets = torch.from_numpy(read_array(test_set_path, "targets"))
    leaves = torch.from_numpy(read_array(test_set_path, "leaves"))
    n, dim = len(targets), targets.shape[-1]
    if student.config.dim != dim:
        raise ValueError(f"{student_path} has d={student.config.dim}, the trajectory set d={dim}")
    ks = prefix_grid(T)
    sums, past_end = _zero_sums(len(ks)), _zero_sums(len(PAST_END))
    longest = max(PAST_END) * T
    room = sequences.max_frames("test")
    past = room is None or longest <= room  # the held-out sequences are long enough to go past the end
    if not past:
        log.warning("past the end not measured: %s's held-out sequences hold %d frames, %d asked for", source, room,
                    longest)  # fmt: skip
    step = max(1, batch_size(FRAMES_PER_BATCH, device) // (longest if past else T))
    with torch.no_grad(), autocast():
        for start in range(0, n, step):
            chunk = slice(start, start + step)
            y = targets[chunk].float().to(device)
            # the rows drawn once, 4T frames long when going past the end: their first T are the set's sequences
            longer = trajectory_frames(sequences, {**attrs, "T": longest if past else T}, start, len(y)).to(device)
            images = longer[:, :T]
            states = {"student": student.rollout(y[:, 0], leaves[chunk].float().to(device)).float(), "teacher": y}
            for model, s in states.items():
                sums[model] += prefix_mse_sums(teacher, s, images, ks)
            if past:
                for model, total in past_end_mse_sums(teacher, student, y[:, 0], longer, T).items():
                    past_end[model] += total
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
        rows += [
            {**base, "frames_written": m * T, "metric": "past_end_mse", "value": v}
            for m, v in zip(PAST_END, (past_end[model] / n).tolist(), strict=True)
            if past
        ]
        log.info("online %s %s (%s) seed %d d=%d T=%d: end-of-sequence MSE %.5f; past the end (last T frames): %s",
                 source, model, own, seed, dim, T, prefix[-1],
                 ", ".join(f"{r['value']:.5f} after {r['frames_written']}" for r in rows if r["model"] == model
                           and r["metric"] == "past_end_mse") or "not measured")  # fmt: skip
    with atomic_output(out) as tmp:
        pd.DataFrame(rows, columns=COLUMNS).to_parquet(tmp, index=False)
