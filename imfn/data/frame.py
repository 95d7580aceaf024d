"""Frame geometry: the height and width of a source's frames, recorded in every checkpoint that reads pixels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FrameShape:
    """The height and width of a frame in pixels."""

    height: int
    width: int

    def __post_init__(self):
        if not (isinstance(self.height, int) and isinstance(self.width, int)) or min(self.height, self.width) < 1:
            raise ValueError(f"a frame needs a positive integer height and width, got {self.height}x{self.width}")

    @classmethod
    def of(cls, value: FrameShape | Mapping | Sequence[int]) -> FrameShape:
        """A frame shape from itself, from what a checkpoint's config holds (``{"height": h, "width": w}``) or from
        ``(height, width)``: the one way every model config reads its frame."""
        if isinstance(value, FrameShape):
            return value
        if isinstance(value, Mapping):
            return cls(int(value["height"]), int(value["width"]))
        height, width = value
        return cls(int(height), int(width))

    @property
    def pixels(self) -> int:
        """Pixels per frame: the length of a flattened frame."""
        return self.height * self.width

    def as_list(self) -> list[int]:
        """``[height, width]``, as store attributes record it."""
        return [self.height, self.width]

    def check_patches(self, patch: int) -> None:
        """Stop unless the frame cuts into whole ``patch`` x ``patch`` patches (the video levels' tokens)."""
        if self.height % patch or self.width % patch:
            raise ValueError(f"frames of {self.height}x{self.width} do not cut into {patch}x{patch} patches "
                             f"(config video.frame_size must be a multiple of video.model.patch)")  # fmt: skip


MNIST_FRAME = FrameShape(28, 28)  # one MNIST digit
