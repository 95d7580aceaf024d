"""The IMFN teacher: a leaf codec (images <-> d-dim codes), one sweeper per tree level, and the tree they make.

A sweeper has a merge ``M: (a, b) -> z`` (two d-dim states to one) and an inverter
``I: z -> (a_hat, b_hat)``. Level 0's sweeper works on codes of the image encoder ``E``;
reconstructions go back to pixels through the decoder ``D`` (method.md section 2).

The architectures (config ``teacher.training.architecture``: ``mlp``, ``pca``, ``framewise``, ``mix``) build these
maps, one module each under :mod:`imfn.models.architectures`, looked up by name in the registry; this module holds
what they share: the configs, the :class:`LeafCodec` and :class:`Sweeper` they subclass (:func:`build_codec`,
:func:`build_sweeper`), the depth decoders, the checkpoints and the :class:`Teacher`.

A :class:`DepthDecoder` refines the leaf decoder for codes that came back through a tree of
a given depth (pixel-space supervision through the frozen stack): the leaf codec's decoder
plus an MLP residual that starts at zero, so untrained it is the codec's decoder.

:class:`Teacher` loads the checkpoints of levels 0..L-1 and runs the tree: :func:`merge_up` merges
leaves to one root, :func:`invert_down` inverts the root back to leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from imfn.data.frame import FrameShape
from imfn.models.checkpoint import load_checkpoint, save_checkpoint
from imfn.models.layers import parameter_count, zero_residual
from imfn.models.tree import depth_for, invert_down, merge_up


@dataclass(frozen=True)
class CodecConfig:
    dim: int
    frame_shape: FrameShape  # the frames it codes: the source's geometry
    hidden: int = 1024
    architecture: str = "mlp"

    def __post_init__(self):
        object.__setattr__(self, "frame_shape", FrameShape.of(self.frame_shape))


class LeafCodec(nn.Module):
    """Image encoder E (pixels -> d) and decoder D (d -> pixels in [0, 1]) for frames of ``config.frame_shape``;
    each architecture's subclass builds ``encoder`` and ``decoder``."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def init_from_data(self, images: torch.Tensor) -> None:
        """Data-dependent initialization from a sample of frames (an architecture that ``starts_from_data``)."""


@dataclass(frozen=True)
class SweeperConfig:
    dim: int
    hidden: int
    architecture: str = "mlp"
    level: int = 0  # where in the tree: how many frames a child holds (2^level)

    @classmethod
    def for_dim(cls, dim: int, hidden: int | None = None, architecture: str = "mlp", level: int = 0) -> SweeperConfig:
        """``hidden=None`` means one hidden layer as wide as the memory, the project default."""
        return cls(dim=dim, hidden=hidden or dim, architecture=architecture, level=level)


class Sweeper(nn.Module):
    """One tree level: merge 2d -> d and inverter d -> 2d; each architecture's subclass builds ``merge_net`` and
    ``invert_net`` (and merges otherwise where it must)."""

    def __init__(self, config: SweeperConfig):
        super().__init__()
        self.config = config

    @property
    def frames_separate(self) -> bool:
        """Whether this level maps each frame of its children on its own (then a tree of such levels has a root
        that is one block per frame, in sequence order: :func:`imfn.models.merkle.separable_trajectory`)."""
        return False

    def merge(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.merge_net(torch.cat([left, right], dim=-1))

    def invert(self, merged: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        left, right = self.invert_net(merged).chunk(2, dim=-1)
        return left, right

    def init_from_data(self, pairs: torch.Tensor) -> None:
        """Data-dependent initialization from a sample of the level's bank: (n, 2, d) pairs of adjacent children."""


def build_codec(config: CodecConfig) -> LeafCodec:
    """The leaf codec of ``config.architecture`` (:data:`imfn.registry.TEACHER_ARCHITECTURES`)."""
    from imfn.models.architectures import architecture

    return architecture(config.architecture).codec(config)


def build_sweeper(config: SweeperConfig) -> Sweeper:
    """The sweeper of ``config.architecture`` (:data:`imfn.registry.TEACHER_ARCHITECTURES`)."""
    from imfn.models.architectures import architecture

    return architecture(config.architecture).sweeper(config)


@dataclass(frozen=True)
class DepthDecoderConfig:
    dim: int
    hidden: int
    depth: int  # number of tree levels the codes went through (T = 2**depth)
    frame_shape: FrameShape  # the frames it decodes

    def __post_init__(self):
        object.__setattr__(self, "frame_shape", FrameShape.of(self.frame_shape))


class DepthDecoder(nn.Module):
    """Pixels from leaf codes that were read back through ``depth`` levels: the codec's decoder
    plus a zero-initialized residual MLP trained on exactly such codes."""

    def __init__(self, config: DepthDecoderConfig):
        super().__init__()
        self.config = config
        self.residual = zero_residual([config.dim, config.hidden, config.hidden, config.frame_shape.pixels])

    def forward(self, codec: LeafCodec, codes: torch.Tensor) -> torch.Tensor:
        return (codec.decoder(codes) + self.residual(codes)).clamp(0.0, 1.0)


def teacher_parameter_count(
    dim: int,
    levels: int,
    frame_shape: FrameShape,
    codec_hidden: int = 1024,
    sweeper_hidden: int | None = None,
    architecture: str = "mlp",
    decoder_hidden: int | None = None,
) -> int:
    """Parameters of the whole teacher (codec, ``levels`` sweepers and, with ``decoder_hidden``, one
    depth decoder per level), counted on instantiated modules."""
    codec = parameter_count(build_codec(CodecConfig(dim, frame_shape, codec_hidden, architecture)))
    sweepers = sum(  # a framewise level's maps shrink with the level; the other architectures' do not
        parameter_count(build_sweeper(SweeperConfig.for_dim(dim, sweeper_hidden, architecture, level)))
        for level in range(levels)
    )
    decoder = parameter_count(DepthDecoder(DepthDecoderConfig(dim, decoder_hidden, 1, frame_shape))) \
        if decoder_hidden else 0  # fmt: skip
    return codec + sweepers + levels * decoder


LEVEL_MODULES = ("sweeper", "codec", "depth_decoder")  # what a level's checkpoint holds (codec: level 0 only)


def save_level(
    path: Path, level: int, sweeper: Sweeper, codec: LeafCodec | None, depth_decoder: DepthDecoder | None = None,
    **extra,
) -> None:  # fmt: skip
    """One level's checkpoint: its sweeper, the leaf codec (level 0) and its depth decoder, if any."""
    modules = dict(zip(LEVEL_MODULES, (sweeper, codec, depth_decoder), strict=True))
    config = {name: asdict(m.config) if m is not None else None for name, m in modules.items()}
    state = {name: m.state_dict() if m is not None else None for name, m in modules.items()}
    save_checkpoint(path, "imfn-sweeper", config, state, level=level, **extra)


@dataclass
class LevelCheckpoint:
    sweeper: Sweeper
    codec: LeafCodec | None
    depth_decoder: DepthDecoder | None
    saved: dict


def load_level(path, device: torch.device | str = "cpu") -> LevelCheckpoint:
    saved = load_checkpoint(path, "imfn-sweeper", device)
    builders = {
        "sweeper": lambda c: build_sweeper(SweeperConfig(**c)),
        "codec": lambda c: build_codec(CodecConfig(**c)),
        "depth_decoder": lambda c: DepthDecoder(DepthDecoderConfig(**c)),
    }
    modules = {}
    for name, build in builders.items():
        if saved["config"][name] is None:
            modules[name] = None
            continue
        module = build(saved["config"][name]).to(device)
        module.load_state_dict(saved["state"][name])
        modules[name] = module.eval()
    return LevelCheckpoint(modules["sweeper"], modules["codec"], modules["depth_decoder"], saved)


class Teacher(torch.nn.Module):
    """Leaf codec, the sweepers of levels 0..L-1 and any depth decoders, loaded from checkpoints."""

    def __init__(
        self, codec: LeafCodec, sweepers: Sequence[Sweeper], depth_decoders: dict[int, DepthDecoder] | None = None
    ):
        super().__init__()
        self.codec = codec
        self.sweepers = torch.nn.ModuleList(sweepers)
        self.depth_decoders = torch.nn.ModuleDict({str(k): v for k, v in (depth_decoders or {}).items()})

    @classmethod
    def load(cls, checkpoints: Sequence[Path], device: torch.device | str = "cpu") -> Teacher:
        """``checkpoints`` in level order, starting with level 0 (which holds the codec)."""
        loaded = [load_level(path, device) for path in checkpoints]
        for expected, (path, level) in enumerate(zip(checkpoints, loaded, strict=True)):
            if level.saved["level"] != expected:
                raise ValueError(f"{path} holds level {level.saved['level']}, expected level {expected}")
        if not loaded or loaded[0].codec is None:
            raise ValueError(f"{checkpoints[0] if checkpoints else 'no checkpoint'} holds no leaf codec")
        decoders = {level + 1: c.depth_decoder for level, c in enumerate(loaded) if c.depth_decoder is not None}
        return cls(loaded[0].codec, [c.sweeper for c in loaded], decoders).eval()

    @classmethod
    def load_for(cls, T: int, checkpoints: Sequence[Path], device: torch.device | str = "cpu") -> Teacher:
        """The levels a sequence of length T goes through: the first log2(T) of ``checkpoints``."""
        depth = depth_for(T)
        if len(checkpoints) < depth:
            raise ValueError(f"T={T} needs {depth} teacher levels, got {len(checkpoints)}")
        return cls.load(list(checkpoints)[:depth], device).requires_grad_(False)

    @torch.no_grad()
    def zero_leaf(self) -> torch.Tensor:
        """(d,) code of an all-zero image: the leaf every frame not yet seen is padded with."""
        device = next(self.codec.parameters()).device
        return self.codec.encode(torch.zeros(1, self.frame_shape.pixels, device=device))[0]

    @property
    def frame_shape(self) -> FrameShape:
        """The frames this teacher codes."""
        return self.codec.config.frame_shape

    def encode_leaves(self, images: torch.Tensor) -> torch.Tensor:
        """(N, T, pixels) images -> (N, T, d) leaf codes."""
        N, T, P = images.shape
        return self.codec.encode(images.reshape(N * T, P)).reshape(N, T, -1)

    def read_back(self, images: torch.Tensor) -> torch.Tensor:
        """(N, T, pixels) images -> (N, T, d) leaf codes as the tree gives them back from its root."""
        T = images.shape[1]
        return invert_down(self.sweepers, merge_up(self.sweepers, self.encode_leaves(images)), T)

    def decode(self, codes: torch.Tensor, depth: int) -> torch.Tensor:
        """(..., d) leaf codes read back through ``depth`` levels -> pixels, with that depth's decoder if any."""
        decoder = self.depth_decoders[str(depth)] if str(depth) in self.depth_decoders else None  # noqa: SIM401
        return decoder(self.codec, codes) if decoder is not None else self.codec.decode(codes)

    @torch.no_grad()
    def roundtrip(self, images: torch.Tensor) -> torch.Tensor:
        """(N, T, pixels) images in [0, 1] -> their reconstruction through the tree's root."""
        N, T, P = images.shape
        codes = self.read_back(images)
        return self.decode(codes.reshape(N * T, -1), depth_for(T)).reshape(N, T, P)
