"""A memory you can use: one interface, two implementations (method.md sections 4 and 7).

``write(frame)`` appends a frame, ``state`` is the memory (one d-vector per sequence),
``reconstruct()`` reads every frame written so far back through the frozen teacher, and
``recall(t)`` rebuilds frame t by inverting only the log2(T) nodes on the root-to-leaf path to
it. :class:`TreeMemory` keeps the teacher's tree and updates it by Merkle paths (O(log T) merges
per frame); :class:`StudentMemory` is the distilled student (one network step per frame). Both
read back the same way, since the student is trained to reproduce the tree's root. :class:`ReadOnlyMemory`
reads back a state computed elsewhere (a stored trajectory's y_t, a rollout's m_t).
"""

from __future__ import annotations

import torch

from imfn.models.merkle import MerkleTree, count_sweepers
from imfn.models.student import Student
from imfn.models.teacher import Teacher
from imfn.models.tree import depth_for, invert_down, invert_path


class Memory:
    """Reading back from a root-like state through the frozen teacher; subclasses define writing."""

    def __init__(self, teacher: Teacher, T: int):
        self.teacher = teacher
        self.T = T
        self.depth = depth_for(T)
        self.sweepers = count_sweepers(teacher.sweepers)
        self.t = 0  # frames written so far
        self.zero_leaf = teacher.zero_leaf()

    @property
    def state(self) -> torch.Tensor:
        raise NotImplementedError

    def write_code(self, code: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def merges(self) -> int:
        return sum(s.merges for s in self.sweepers)

    @property
    def inverts(self) -> int:
        return sum(s.inverts for s in self.sweepers)

    def _check_room(self) -> None:
        if self.t >= self.T:
            raise IndexError(f"memory holds at most T = {self.T} frames")

    @torch.no_grad()
    def write(self, frame: torch.Tensor) -> torch.Tensor:
        """Append one (N, pixels) image in [0, 1]; returns the new state."""
        return self.write_code(self.teacher.codec.encode(frame))

    @torch.no_grad()
    def reconstruct(self) -> torch.Tensor:
        """(N, t, pixels): every frame written so far, read back by inverting the whole tree."""
        codes = invert_down(self.sweepers, self.state, self.T)[:, : self.t]
        N, t, d = codes.shape
        return self.teacher.decode(codes.reshape(N * t, d), self.depth).reshape(N, t, -1)

    @torch.no_grad()
    def recall(self, t: int) -> torch.Tensor:
        """(N, pixels): frame t (0-based) rebuilt from the state through log2(T) inversions only."""
        if not 0 <= t < self.t:
            raise IndexError(f"frame {t} not written yet ({self.t} frames in memory)")
        state = self.state
        positions = torch.full((state.shape[0],), t, dtype=torch.long, device=state.device)
        return self.teacher.decode(invert_path(self.sweepers, state, positions, self.T)[-1], self.depth)


class TreeMemory(Memory):
    """The teacher's tree over T = 2^L frames, updated by Merkle paths: after t writes ``state`` is
    ``y_t``, the root over the t frames and T - t zero images."""

    def __init__(self, teacher: Teacher, T: int, batch_size: int):
        super().__init__(teacher, T)
        with torch.no_grad():
            self.tree = MerkleTree(self.sweepers, self.zero_leaf, batch_size, T)

    @property
    def state(self) -> torch.Tensor:
        return self.tree.root

    @torch.no_grad()
    def write_code(self, code: torch.Tensor) -> torch.Tensor:
        """Append one (N, d) leaf code; returns the new state."""
        self._check_room()
        root = self.tree.set_leaf(self.t, code)
        self.t += 1
        return root


class StudentMemory(Memory):
    """The distilled student: ``m_{t+1} = m_t + g(m_t, code, onehot(t))``, one step per frame,
    starting from ``y_0`` (the all-zero tree's root, which the student was trained from)."""

    def __init__(self, teacher: Teacher, student: Student, batch_size: int):
        super().__init__(teacher, student.config.T)
        self.student = student
        with torch.no_grad():
            y0 = MerkleTree(teacher.sweepers, self.zero_leaf, 1, self.T).root
        self._state = y0.expand(batch_size, -1).clone()

    @property
    def state(self) -> torch.Tensor:
        return self._state

    @torch.no_grad()
    def write_code(self, code: torch.Tensor) -> torch.Tensor:
        """Append one (N, d) leaf code; returns the new state."""
        self._check_room()
        self._state = self.student.step(self._state, code, self.t)
        self.t += 1
        return self._state


class ReadOnlyMemory(Memory):
    """A state computed elsewhere (a stored trajectory's ``y_t``, a student rollout's ``m_t``), holding its
    first ``t`` frames: read back only."""

    def __init__(self, teacher: Teacher, T: int, state: torch.Tensor, t: int):
        super().__init__(teacher, T)
        if not 0 <= t <= T:
            raise ValueError(f"a state of a T = {T} memory holds 0..{T} frames, not {t}")
        self._state = state
        self.t = t

    @property
    def state(self) -> torch.Tensor:
        return self._state

    def write_code(self, code: torch.Tensor) -> torch.Tensor:
        raise TypeError("a ReadOnlyMemory is read back only; write through TreeMemory or StudentMemory")
