"""Train an online student on its own rollouts (method.md section 4).

Every epoch draws ``trajectories_per_epoch`` teacher trajectories from the train set (a generator
seeded by (seed, T, epoch)). Per minibatch of trajectories the student is rolled out from ``y_0``
with gradients off; a fraction of the timesteps of each trajectory is sampled, and the loss is
the MSE between ``m_t + delta(m_t, leaf_t, t)`` (``m_t`` detached, gradients through delta only)
and the teacher's ``y_{t+1}``. Adam.

Training runs in the harness (:mod:`imfn.train.harness`): resumable after every epoch, a non-finite
loss stops the job before anything is written.

A variant (a named override set, config ``student.variants``; its name is ``variant``) sets:
- ``architecture``: ``mlp`` (the paper's) or ``positional`` (:mod:`imfn.models.student`).
- ``prefix``: ``full``, every epoch uses all T steps; or ``curriculum``, epochs train on a prefix
  of the sequence that grows linearly from T/4 steps (first epoch) to all T steps (reached halfway
  through training, kept to the end). Still the student's own rollouts, never teacher forcing.
- ``lr_schedule``: ``constant``, or ``one-cycle`` (10% warm-up to ``lr``, then cosine decay to zero;
  Adam's beta1 cycles 0.95 -> 0.85 -> 0.95 with it).
- ``writes`` (an architecture with a linear write, ``positional``): ``share``, each frame writes d // T numbers
  through its position's map; or ``all``, each frame writes d numbers, so any frame may rewrite the whole state.
- ``init``: ``random``, or ``regression`` (an architecture with a linear write): before any step, the linear
  write of the update (read C, writes W_t, biases b_t) is the reduced-rank least-squares fit of the teacher's
  increments ``y_{t+1} - y_t`` on the frame codes over the whole training set (:func:`fit_linear_write`);
  training then refines it on the student's own rollouts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from imfn.job import seed_torch, seeded_generator
from imfn.models.student import (
    WRITES,
    PositionalStudent,
    Student,
    StudentConfig,
    build_student,
    save_student,
    student_class,
)
from imfn.store import read_array, read_attrs
from imfn.train.harness import NonFiniteLossError, Run, resume_path, write_rows

log = logging.getLogger(__name__)

PREFIXES = ("full", "curriculum")
LR_SCHEDULES = ("constant", "one-cycle")
INITS = ("random", "regression")


@dataclass(frozen=True)
class StudentTraining:
    """Config ``student.training`` (the budget) with one variant of ``student.variants`` over it."""

    seed: int
    variant: str = "paper"  # the named override set (config student.variants) these settings run under, in outputs
    architecture: str = "mlp"
    prefix: str = "full"
    epochs: int = 1000
    trajectories_per_epoch: int = 100
    batch_size: int = 100  # trajectories per optimizer step
    step_fraction: float = 0.25  # timesteps per trajectory that get a loss
    lr: float = 1e-4
    lr_schedule: str = "constant"
    init: str = "random"
    hidden: int | None = None  # None: 2d, the method's default
    writes: str = "share"  # an architecture with a linear write: a frame writes d // T numbers (share) or all d (all)

    def __post_init__(self):
        linear_write = student_class(self.architecture).has_linear_write  # an unknown name: a clear error
        for name, allowed in (("prefix", PREFIXES), ("lr_schedule", LR_SCHEDULES), ("init", INITS), ("writes", WRITES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"student {name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.writes != "share" and not linear_write:
            raise ValueError(f"writes {self.writes!r} sets what a linear write writes; architecture "
                             f"{self.architecture!r} has none (positional has)")  # fmt: skip
        if self.init == "regression" and not linear_write:
            raise ValueError(f"init 'regression' fits a linear write; architecture {self.architecture!r} has none "
                             "(positional has)")  # fmt: skip
        if not 0.0 < self.step_fraction <= 1.0:
            raise ValueError(f"step_fraction must be in (0, 1], got {self.step_fraction}")


def prefix_steps(hp: StudentTraining, T: int, epoch: int) -> int:
    """How many of the T steps epoch ``epoch`` (0-based) trains on."""
    if hp.prefix == "full":
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


@torch.no_grad()
def fit_linear_write(
    student: PositionalStudent, targets: torch.Tensor, leaves: torch.Tensor, ridge: float = 1e-3
) -> None:
    """Set the positional student's read C, writes W_t and biases b_t to the reduced-rank regression of the
    teacher's increments on the frame codes: minimize sum_t E||inc_t - W_t C x_t - b_t||^2 with C shared
    by every position (x: the scaled codes, inc: the scaled increments, both as the student sees them).

    With K_t = E[inc_t x_t^T] (centered) and S the codes' covariance (ridge-regularized), the fit is the
    top-r SVD of the stacked K_t S^{-1/2}; it is computed through sum_t (K_t S^-1/2)^T (K_t S^-1/2), so no
    (T d) x d matrix is held. That gives the shared read C; then each position's W_t and b_t are the
    ordinary least-squares fit of its increments on its frames' features C x_t (r + 1 regressors).
    (n, T+1, d) targets, (n, T, d) leaves."""
    n, T, d = leaves.shape
    r = student.config.rank
    x = (leaves - student.code_mean) / student.code_scale
    increments = (targets[:, 1:] - targets[:, :-1]) / student.out_scale
    x_mean, inc_mean = x.mean(dim=0), increments.mean(dim=0)  # (T, d) each
    covariance = torch.zeros(d, d, dtype=torch.float64)
    for t in range(T):
        centered = x[:, t] - x_mean[t]
        covariance += (centered.T @ centered).double()
    eigenvalues, vectors = torch.linalg.eigh(covariance / (n * T))
    eigenvalues = eigenvalues.clamp_min(0) + ridge * eigenvalues.max()
    whiten = (vectors * eigenvalues.rsqrt()) @ vectors.T  # S^{-1/2}
    gram = torch.zeros(d, d, dtype=torch.float64)  # sum_t K_t^T K_t, whitened on both sides below
    for t in range(T):
        K = (increments[:, t] - inc_mean[t]).T @ (x[:, t] - x_mean[t]) / n  # (d_out, d_in)
        gram += (K.T @ K).double()
    singular_sq, right = torch.linalg.eigh(whiten @ gram @ whiten)  # ascending
    singular = singular_sq[-r:].flip(0).clamp_min(1e-12).sqrt()
    right = right[:, -r:].flip(1)  # (d, r)
    read = ((singular.sqrt()[:, None] * right.T) @ whiten).float()  # C: (r, d)
    for t in range(T):
        features = torch.cat([x[:, t] @ read.T, torch.ones(n, 1)], dim=1).double()  # (n, r + 1)
        gram_t = features.T @ features
        gram_t += 1e-9 * gram_t.diagonal().max() * torch.eye(r + 1, dtype=gram_t.dtype)
        solution = torch.linalg.solve(gram_t, features.T @ increments[:, t].double()).float()  # (r + 1, d)
        student.write[t].copy_(solution[:r])
        student.bias[t].copy_(solution[r])
    student.read.weight.copy_(read)
    student.read.bias.zero_()


LOSS_COLUMNS = [
    "seed",
    "dim",
    "T",
    "variant",
    "architecture",
    "epoch",
    "steps",
    "loss",
    "lr",
    "samples",
    "seconds",
    "samples_per_second",
]


def train_student(
    hp: StudentTraining,
    train_set_path: Path,
    out: Path,
    loss_out: Path,
    device: torch.device,
) -> None:
    """Train a student on the trajectory set ``train_set_path``; write its checkpoint ``out`` and
    per-epoch loss ``loss_out``. A non-finite loss stops the job before anything is written."""
    targets, leaves, attrs = load_train_set(train_set_path)
    if attrs.get("part", "train") != "train":
        raise ValueError(f"{train_set_path} is a {attrs['part']!r} trajectory set, not a train set")
    n, T, dim = leaves.shape
    seed_torch("student-weights", hp.seed, T)  # weight init: same seed, same weights
    student = build_student(StudentConfig(dim, T, hp.hidden or 2 * dim, hp.architecture, hp.writes))
    if isinstance(student, PositionalStudent):
        student.fit_scales(targets, leaves)
        if hp.init == "regression":
            fit_linear_write(student, targets, leaves)
            log.info("linear write fitted by reduced-rank regression (rank %d)", student.config.rank)
    targets, leaves = targets.to(device), leaves.to(device)
    student = student.to(device)
    optimizer = torch.optim.Adam(student.parameters(), lr=hp.lr)
    steps_per_epoch = math.ceil(hp.trajectories_per_epoch / hp.batch_size)
    if hp.lr_schedule == "one-cycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, hp.lr, total_steps=hp.epochs * steps_per_epoch, pct_start=0.1
        )
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    run = Run(
        name=f"student T={T} ({hp.variant}, seed {hp.seed})",
        resume=resume_path(out),
        settings={**asdict(hp), "epochs": hp.epochs if hp.lr_schedule == "one-cycle" else None},  # the cycle's length
        inputs=[train_set_path],
        state={"model": student, "optimizer": optimizer, "scheduler": scheduler},
        device=device,
        labels={"seed": hp.seed, "dim": dim, "T": T, "variant": hp.variant, "architecture": hp.architecture},
        hint=f"Lower student.training.lr (now {hp.lr}) or check {train_set_path}.",
    )

    def epoch(e: int) -> dict:
        gen = seeded_generator("student-train", hp.seed, T, e)
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
            scheduler.step()
            total += loss.detach() * len(idx)
        return {
            "steps": steps,
            "lr": scheduler.get_last_lr()[0],
            "loss": (total / hp.trajectories_per_epoch).item(),
            "samples": hp.trajectories_per_epoch,
        }

    rows = run.train(hp.epochs, epoch)
    student.eval().cpu()
    write_rows(rows, loss_out, LOSS_COLUMNS)
    save_student(out, student, training=asdict(hp), train_set=str(train_set_path),
                 teacher_checkpoints=list(attrs.get("teacher_checkpoints", [])))  # fmt: skip
    run.close()
    log.info("wrote %s", out)
