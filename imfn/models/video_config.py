"""What the video hierarchy's levels are built from, without torch: their config and the architectures that say
how (config ``video.model``), read by the model (:mod:`imfn.models.video`) and by the config checks before any job.

The architectures, looked up by name in :data:`imfn.registry.VIDEO_ARCHITECTURES`:

- ``perceiver``: the paper's Perceiver stacks alone (method.md section 6).
- ``mix``: the levels built the way the vector tree's ``mix`` levels are. A linear path set from the PCA of the
  level's own inputs (two frames' pixels at level 0, two children's tokens above), the attention stacks a
  residual on it that starts at zero: untrained, a level is that PCA. Its maps are (2 x numbers of a child) x
  (memory numbers), for small frames and memories (:data:`LINEAR_PATH_WEIGHTS`). And each level above 0 with a
  frame decoder of its own (level 0's, trained on memories read back through the level): the vector tree's depth
  decoders.
"""

from __future__ import annotations

from dataclasses import dataclass

from imfn import registry
from imfn.data.frame import FrameShape

LINEAR_PATH_WEIGHTS = 50_000_000  # the most weights one linear map of a linear path may hold


@dataclass(frozen=True)
class VideoArchitecture:
    name: str
    linear_path: bool  # each level a linear map started at the PCA of its inputs, the stacks a residual on it
    frame_decoder_per_level: bool  # each level above 0 reads back through a frame decoder of its own


PERCEIVER = VideoArchitecture("perceiver", linear_path=False, frame_decoder_per_level=False)
MIX = VideoArchitecture("mix", linear_path=True, frame_decoder_per_level=True)


def video_architecture(name: str) -> VideoArchitecture:
    return registry.lookup(registry.VIDEO_ARCHITECTURES, name)


@dataclass(frozen=True)
class VideoModelConfig:
    frame_size: int = 64
    patch: int = 8
    channels: int = 3  # 3: RGB footage; training takes it from the clip bank (1: a sequence source's grayscale)
    width: int = 256  # token width (lost; default 256)
    heads: int = 8
    memory_tokens: int = 96
    cross_layers: int = 1
    self_layers: int = 4
    mlp_ratio: int = 4
    architecture: str = "perceiver"  # how the levels are built: :data:`imfn.registry.VIDEO_ARCHITECTURES`

    def __post_init__(self):
        FrameShape(self.frame_size, self.frame_size).check_patches(self.patch)
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")
        video_architecture(self.architecture)  # an unknown name: a clear error

    @property
    def linear_path(self) -> bool:
        return video_architecture(self.architecture).linear_path

    @property
    def frame_decoder_per_level(self) -> bool:
        return video_architecture(self.architecture).frame_decoder_per_level

    @property
    def memory_numbers(self) -> int:
        """Numbers one memory holds: ``memory_tokens`` x ``width``."""
        return self.memory_tokens * self.width

    @property
    def frame_numbers(self) -> int:
        return self.channels * self.frame_size**2

    @property
    def grid(self) -> int:
        return self.frame_size // self.patch

    @property
    def patches(self) -> int:
        return self.grid**2

    @property
    def patch_dim(self) -> int:
        return self.patch * self.patch * self.channels

    def check_linear_path(self) -> None:
        """Stop when the linear path's level-0 maps (2 frames' numbers x memory numbers) would be too large."""
        weights = 2 * self.frame_numbers * self.memory_numbers
        if self.linear_path and weights > LINEAR_PATH_WEIGHTS:
            raise ValueError(
                f"config video.model.architecture {self.architecture}: level 0's linear maps would hold {weights:,} "
                f"weights each (2 frames x {self.channels} x {self.frame_size}^2 pixels x {self.memory_numbers} "
                f"memory numbers), more than {LINEAR_PATH_WEIGHTS:,}; its linear path is meant for small frames and "
                "memories, such as 64x64 grayscale frames at 4 x 64 tokens (2.1M)")
