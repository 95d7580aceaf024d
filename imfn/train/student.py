"""Train the online student on its own rollouts (method.md section 4).

Every epoch draws ``trajectories_per_epoch`` teacher trajectories from the train set (a generator
seeded by (seed, T, epoch)). Per minibatch of trajectories the student is rolled out from ``y_0``
with gradients off; a fraction of the timesteps of each trajectory is sampled, and the loss is
the MSE between ``m_t + g(m_t, leaf_t, onehot(t))`` (``m_t`` detached, gradients through g only)
and the teacher's ``y_{t+1}``. Adam.

Training runs in the harness (:mod:`imfn.train.harness`): resumable after every epoch, a non-finite
loss stops the job before anything is written.

``schedule``:
- ``paper``: every epoch uses all T steps.
- ``curriculum``: the fix for the student trailing the teacher at long T. Epochs train on a
  prefix of the sequence that grows linearly from T/4 steps (first epoch) to all T steps
  (reached halfway through training, kept to the end). Early epochs fit the short horizon
  before the student's own compounding errors over long rollouts enter its inputs. Still
  the student's own rollouts, never teacher forcing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from imfn.atomic import atomic_output
from imfn.job import seeded_generator
from imfn.models.student import Student, StudentConfig, student_checkpoint
from imfn.store import read_array, read_attrs
from imfn.train.harness import NonFiniteLossError, Run, resume_path, write_rows

log = logging.getLogger(__name__)

PURPOSE_STUDENT = 8
SCHEDULES = ("paper", "curriculum")


@dataclass(frozen=True)
class StudentTraining:
    """Config ``student.training``; ``schedule`` comes from ``student.schedules``."""

    seed: int
    schedule: str = "paper"
    epochs: int = 1000
    trajectories_per_epoch: int = 100
    batch_size: int = 100  # trajectories per optimizer step
    step_fraction: float = 0.25  # timesteps per trajectory that get a loss
    lr: float = 1e-4
    hidden: int | None = None  # None: 2d, the method's default


def prefix_steps(hp: StudentTraining, T: int, epoch: int) -> int:
    """How many of the T steps epoch ``epoch`` (0-based) trains on."""
    if hp.schedule == "paper":
        return T
    ramp = max(1, hp.epochs // 2)  # all T steps from epoch epochs // 2 on
    return min(T, math.ceil(T * (0.25 + 0.75 * epoch / ramp)))


def load_train_set(path: Path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``targets`` (n, T+1, d), ``leaves`` (n, T, d) and the attrs; non-finite values fail loudly."""
    attrs = read_attrs(path)
    targets = torch.from_numpy(read_array(path, "targets")).float()
    leaves = torch.from_numpy(read_array(path, "leaves")).float()
    n, T1, d = targets.shape
    if leaves.shape != (n, T1 - 1, d):
        raise ValueError(f"{path}: leaves {tuple(leaves.shape)} do not match targets {tuple(targets.shape)}")
    for name, array in (("targets", targets), ("leaves", leaves)):
        bad = (~torch.isfinite(array)).sum().item()
        if bad:
            raise NonFiniteLossError(
                f"trajectory set {path} holds {bad} non-finite values in {name!r}; nothing was written"
            )
    return targets, leaves, attrs


def student_loss(
    student: Student, targets: torch.Tensor, leaves: torch.Tensor, fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """Loss on one minibatch: (B, k+1, d) teacher states and (B, k, d) leaves for a k-step prefix."""
    B, k, _ = leaves.shape
    with torch.no_grad():
        states = student.rollout(targets[:, 0], leaves)  # (B, k+1, d), the student's own rollout
    picks = max(1, round(fraction * k))
    t = torch.rand(B, k, generator=generator).argsort(dim=1)[:, :picks].to(leaves.device)  # (B, picks)
    rows = torch.arange(B, device=leaves.device)[:, None].expand_as(t)
    m = states[rows, t].detach()
    prediction = m + student.delta(m.flatten(0, 1), leaves[rows, t].flatten(0, 1), t.flatten()).view_as(m)
    return F.mse_loss(prediction, targets[rows, t + 1])


LOSS_COLUMNS = ["seed", "dim", "T", "schedule", "epoch", "steps", "loss", "samples", "seconds", "samples_per_second"]


def train_student(hp: StudentTraining, train_set_path: Path, out: Path, loss_out: Path, device: torch.device) -> None:
    """Train a student on the trajectory set ``train_set_path``; write its checkpoint ``out`` and
    per-epoch loss ``loss_out``. A non-finite loss stops the job before anything is written."""
    if hp.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {hp.schedule!r}")
    if not 0.0 < hp.step_fraction <= 1.0:
        raise ValueError(f"step_fraction must be in (0, 1], got {hp.step_fraction}")
    targets, leaves, attrs = load_train_set(train_set_path)
    if attrs.get("which", "train") != "train":
        raise ValueError(f"{train_set_path} is a {attrs['which']!r} trajectory set, not a train set")
    n, T, dim = leaves.shape
    targets, leaves = targets.to(device), leaves.to(device)
    torch.manual_seed(hp.seed * 1000 + T + 700)  # weight init: same seed, same weights
    student = Student(StudentConfig(dim, T, hp.hidden or 2 * dim)).to(device)
    optimizer = torch.optim.Adam(student.parameters(), lr=hp.lr)
    run = Run(
        name=f"student T={T} ({hp.schedule}, seed {hp.seed})",
        resume=resume_path(out),
        settings={**asdict(hp), "epochs": None},
        inputs=[train_set_path],
        state={"model": student, "optimizer": optimizer},
        device=device,
        labels={"seed": hp.seed, "dim": dim, "T": T, "schedule": hp.schedule},
        hint=f"Lower student.training.lr (now {hp.lr}) or check {train_set_path}.",
    )

    def epoch(e: int) -> dict:
        gen = seeded_generator(PURPOSE_STUDENT, hp.seed, T, e)
        draw = torch.randint(n, (hp.trajectories_per_epoch,), generator=gen)
        steps = prefix_steps(hp, T, e)
        total = torch.zeros((), device=device)
        student.train()
        for idx in run.batches(draw.split(hp.batch_size)):
            idx = idx.to(device)
            with run.autocast():
                loss = student_loss(student, targets[idx, : steps + 1], leaves[idx, :steps], hp.step_fraction, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        return {
            "steps": steps,
            "loss": (total / hp.trajectories_per_epoch).item(),
            "samples": hp.trajectories_per_epoch,
        }

    rows = run.train(hp.epochs, epoch)
    student.eval().cpu()
    write_rows(rows, loss_out, LOSS_COLUMNS)
    with atomic_output(out) as tmp:
        torch.save(
            student_checkpoint(
                student,
                training=asdict(hp),
                train_set=str(train_set_path),
                teacher_checkpoints=list(attrs.get("teacher_checkpoints", [])),
            ),
            tmp,
        )
    run.close()
    log.info("wrote %s", out)
