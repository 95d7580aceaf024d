"""Frame geometry: the height and width of a source's frames, recorded in every checkpoint that reads pixels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameShape:
    """The height and width of a frame in pixels."""

    height: int
    width: int

    @property
    def pixels(self) -> int:
        """Pixels per frame: the length of a flattened frame."""
        return self.height * self.width

    def as_list(self) -> list[int]:
        """``[height, width]``, as checkpoints and attributes record it."""
        return [self.height, self.width]


MNIST_FRAME = FrameShape(28, 28)  # one MNIST digit
# (height, width) of a model config that names no frame: a checkpoint written before frames were recorded, all MNIST
DEFAULT_FRAME = (MNIST_FRAME.height, MNIST_FRAME.width)
