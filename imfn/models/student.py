"""The online student (method.md section 4): one residual MLP update per frame, O(1) per step.

``m_{t+1} = m_t + g(concat(m_t, latent(x_t), onehot_T(t)))``: the memory ``m`` lives in the
teacher's root space (d dims), ``latent(x_t)`` is the frozen teacher's leaf code of frame t
(0-based) and the one-hot position has length T. ``g`` is a 4-layer MLP: three hidden ReLU
layers of width ``hidden`` and a linear output of width d.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from imfn.models.layers import mlp


@dataclass(frozen=True)
class StudentConfig:
    dim: int
    T: int
    hidden: int


class Student(nn.Module):
    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = config
        d, h = config.dim, config.hidden
        self.g = mlp([2 * d + config.T, h, h, h, d])

    def delta(self, m: torch.Tensor, code: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``g(m, code, onehot(t))`` for (N, d) memories, (N, d) leaf codes and (N,) integer positions."""
        position = F.one_hot(t.long(), self.config.T).to(m)
        return self.g(torch.cat([m, code, position], dim=-1))

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


def student_checkpoint(student: Student, **extra) -> dict:
    """A student's checkpoint: its config and weights, plus any provenance in ``extra``."""
    return {"kind": "imfn-student", **extra, "config": asdict(student.config), "state_dict": student.state_dict()}


def load_student(path, device: torch.device | str = "cpu") -> Student:
    state = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(state, dict) or state.get("kind") != "imfn-student":
        raise ValueError(f"{path} is not an IMFN student checkpoint")
    student = Student(StudentConfig(**state["config"])).to(device)
    student.load_state_dict(state["state_dict"])
    return student.eval()
