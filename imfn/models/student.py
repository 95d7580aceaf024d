"""The online students (method.md section 4): one residual update per frame, O(1) per step.

``m_{t+1} = m_t + delta(m_t, latent(x_t), t)``: the memory ``m`` lives in the teacher's root space
(d dims), ``latent(x_t)`` is the frozen teacher's leaf code of frame t (0-based). Two architectures, looked up by
name in :data:`imfn.registry.STUDENT_ARCHITECTURES` (a student variant's ``architecture``):

- ``mlp`` (the paper's): ``delta = g(concat(m_t, latent, onehot_T(t)))``, g a 4-layer MLP (three hidden ReLU
  layers of width ``hidden``, a linear output of width d), as the paper describes it.
- ``positional``: the position selects where the frame is written. A shared read maps the frame code to
  ``r = d // T`` numbers, ``u = C latent + f(m_t, latent)`` (f a zero-started MLP of two hidden layers
  of width ``hidden``); position t writes them into memory through its own d x r map, plus its own
  bias: ``delta = W_t u + b_t``. Seen as one layer, the position opens one group of r units of a
  d-wide hidden layer (``onehot(t) kron u``) and a d x d map writes it. Per step that costs
  O(d hidden + d r), independent of T; the W_t and b_t hold T (d r + d) = d^2 + T d numbers, which
  grow with T no faster than the paper's one-hot input (T x hidden). Inputs and outputs are scaled
  by fixed statistics of the training set (:meth:`PositionalStudent.fit_scales`).
  With ``writes="share"`` a frame writes its share of the memory, r = d // T numbers; with ``writes="all"`` it
  writes r = d numbers instead: position t maps it through a full d x d map
  of its own, so the frame may change the whole state (what a tree whose merges mix both children, ``mix``,
  asks of a student). A step then costs O(d hidden + d^2), still independent of T; the maps hold T d^2 numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from imfn import registry
from imfn.models.checkpoint import load_checkpoint, save_checkpoint
from imfn.models.layers import mlp, zero_residual

# config student.variants.<name>.writes (``positional`` architecture): a frame writes d // T numbers, its share of
# the memory (the T positions fill it once), or all d numbers, so that any frame may rewrite the whole state
WRITES = ("share", "all")


@dataclass(frozen=True)
class StudentConfig:
    dim: int
    T: int
    hidden: int
    architecture: str = "mlp"
    writes: str = "share"  # ``positional``: what a frame writes, see :data:`WRITES`

    def __post_init__(self):
        if self.writes not in WRITES:
            raise ValueError(f"a student's frame writes one of {WRITES}, got {self.writes!r}")

    @property
    def rank(self) -> int:
        """``positional``: numbers a frame writes into memory: d // T (at least 1), or all d."""
        return self.dim if self.writes == "all" else max(1, self.dim // self.T)


class Student(nn.Module):
    """What both architectures share: the step, the rollout and the checkpoint. ``has_linear_write``: the
    architecture writes a frame through a linear map of its code per position (``W_t C``), which
    ``init: regression`` fits (:func:`imfn.train.student.fit_linear_write`) and ``writes`` sizes."""

    config: StudentConfig
    has_linear_write = False

    def delta(self, m: torch.Tensor, code: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The update for (N, d) memories, (N, d) leaf codes and (N,) integer positions."""
        raise NotImplementedError

    def step(self, m: torch.Tensor, code: torch.Tensor, t: int) -> torch.Tensor:
        """One update: (N, d) memory and the (N, d) leaf code of frame ``t`` (0-based) -> (N, d)."""
        if not 0 <= t < self.config.T:
            raise IndexError(f"position {t} outside a student of T = {self.config.T}")
        positions = torch.full((m.shape[0],), t, dtype=torch.long, device=m.device)
        return m + self.delta(m, code, positions)

    def rollout(self, m0: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """(N, d) start state and (N, k, d) leaf codes (k <= T) -> (N, k+1, d) states, ``m0`` first."""
        states = [m0]
        for t in range(codes.shape[1]):
            states.append(self.step(states[-1], codes[:, t], t))
        return torch.stack(states, dim=1)


class MlpStudent(Student):
    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = config
        d, h = config.dim, config.hidden
        self.g = mlp([2 * d + config.T, h, h, h, d])

    def delta(self, m: torch.Tensor, code: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        position = F.one_hot(t.long(), self.config.T).to(m)
        return self.g(torch.cat([m, code, position], dim=-1))


class PositionalStudent(Student):
    has_linear_write = True

    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = config
        d, h, r, T = config.dim, config.hidden, config.rank, config.T
        self.read = nn.Linear(d, r)  # C: the linear read of the frame code
        self.residual = zero_residual([2 * d, h, h, r])  # f(m, code), switched off at the start
        self.write = nn.Parameter(torch.randn(T, r, d) / r**0.5)  # W_t, stored transposed
        self.bias = nn.Parameter(torch.zeros(T, d))  # b_t
        self.register_buffer("code_mean", torch.zeros(d))
        self.register_buffer("code_scale", torch.ones(()))
        self.register_buffer("out_scale", torch.ones(d))

    @torch.no_grad()
    def fit_scales(self, targets: torch.Tensor, leaves: torch.Tensor) -> None:
        """Fixed scales from a training set: (n, T+1, d) teacher states, (n, T, d) leaf codes.

        Codes are centered and divided by one overall RMS (not per dimension: a leaf code's weak
        directions would otherwise be as loud as its strong ones); the update is in units of each
        memory dimension's RMS change over a whole sequence."""
        self.code_mean.copy_(leaves.mean(dim=(0, 1)))
        self.code_scale.copy_((leaves - self.code_mean).square().mean().sqrt().clamp_min(1e-8))
        self.out_scale.copy_((targets[:, -1] - targets[:, 0]).square().mean(dim=0).sqrt().clamp_min(1e-8))

    def features(self, m: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """(N, d) memories and leaf codes -> (N, r): what a frame writes."""
        x = (code - self.code_mean) / self.code_scale
        return self.read(x) + self.residual(torch.cat([m / self.out_scale, x], dim=-1))

    def delta(self, m: torch.Tensor, code: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        u = self.features(m, code)
        t = t.long()
        if bool((t == t[0]).all()):  # one position (a rollout step): its map alone, O(d r)
            written = u @ self.write[t[0]] + self.bias[t[0]]
        else:  # mixed positions (a training minibatch): the rows grouped by position, each group through its map
            order = t.argsort()
            groups = u[order].split(torch.bincount(t, minlength=self.config.T).tolist())
            written = torch.cat([rows @ self.write[p] for p, rows in enumerate(groups)])[order.argsort()]
            written = written + self.bias[t]
        return written * self.out_scale


def student_class(architecture: str) -> type[Student]:
    """The student architecture ``architecture`` (:data:`imfn.registry.STUDENT_ARCHITECTURES`)."""
    return registry.lookup(registry.STUDENT_ARCHITECTURES, architecture)


def build_student(config: StudentConfig) -> Student:
    return student_class(config.architecture)(config)


def save_student(path, student: Student, **extra) -> None:
    """A student's checkpoint: its config and weights, plus any provenance in ``extra``."""
    save_checkpoint(path, "imfn-student", asdict(student.config), student.state_dict(), **extra)


def load_student(path, device: torch.device | str = "cpu") -> Student:
    saved = load_checkpoint(path, "imfn-student", device)
    student = build_student(StudentConfig(**saved["config"])).to(device)
    student.load_state_dict(saved["state"])
    return student.eval()
