"""The IMFN teacher: a leaf codec (images <-> d-dim codes), one sweeper per tree level, and the tree they make.

A sweeper has a merge ``M: (a, b) -> z`` (two d-dim states to one) and an inverter
``I: z -> (a_hat, b_hat)``. Level 0's sweeper works on codes of the image encoder ``E``;
reconstructions go back to pixels through the decoder ``D`` (method.md section 2).

Three architectures build these maps:
- ``mlp``: plain MLPs (encoder 3 ReLU layers, decoder ending in a sigmoid; merge and
  inverter one hidden layer each), randomly initialized, exactly as the paper describes.
- ``pca``: every map is linear, set in closed form from principal components of the
  level's own bank (:func:`init_from_pca`, :func:`init_pair_from_pca`): the best linear
  merge and its inverse. What is nonlinear lives in the depth decoders below.
- ``framewise``: the ``pca`` tree made nonlinear where it matters. The frames of a sequence are
  independent, so the best merge keeps the most of each frame's share on its own: a level cuts each
  child into blocks (one per frame while a frame still has two or more numbers) and maps every block
  to half its size with one shared map, a linear PCA projection plus a residual MLP that starts at
  zero (:class:`ResidualMap`); the inverter maps each half-block back the same way. A level is
  trained in pixel space through the frozen stack below it, together with its depth decoder
  (:mod:`imfn.train.depth_decoder`), so every level learns the best code of half the size for what
  the frame looks like, not for the code below it.

- ``mix``: the tree for frames that share content. A merge sees both children whole: a linear map of the
  pair (2d -> d) started at the joint PCA of adjacent children in the level's bank, so what two neighbouring
  windows share is kept once, plus a residual MLP that starts at zero; the inverter maps back the same way
  (d -> 2d). Trained on the bank's pairs (latent MSE), then the decoder for its depth in pixels.

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

from imfn.data.frame import DEFAULT_FRAME, FrameShape
from imfn.models.layers import mlp, parameter_count, zero_residual
from imfn.models.pca import init_from_pca
from imfn.models.tree import depth_for, invert_down, merge_up

# The frame of a checkpoint written before frames were recorded (and the paper's): an MNIST digit.
ARCHITECTURES = ("mlp", "pca", "framewise", "mix")  # config teacher.training.architecture
LINEAR_CODEC = ("pca", "framewise", "mix")  # architectures whose leaf codec is per-frame PCA


@torch.no_grad()
def init_pair_from_pca(merge: nn.Linear, invert: nn.Linear, codes: torch.Tensor) -> None:
    """Set a merge (2d -> d) to keep the top d/2 principal components of each child and the
    inverter (d -> 2d) to map them back.

    ``codes``: both children of a sample of the level's pairs. When the two children are independent (the
    ``mnist`` source's frames) the covariance of the pair is block-diagonal with two equal blocks, and the
    best linear merge keeps the top half of each child's components. Fitting one child's PCA estimates that
    exactly, without the noise of estimating cross-covariances that are zero; on a source whose adjacent
    windows share content it ignores what they share.
    """
    d = codes.shape[1]
    half_encode, half_decode = nn.Linear(d, d // 2).double(), nn.Linear(d // 2, d).double()
    init_from_pca(half_encode, half_decode, codes)
    merge.weight.zero_()
    invert.weight.zero_()
    for side in (slice(0, d // 2), slice(d // 2, d)):
        children = slice(0, d) if side.start == 0 else slice(d, 2 * d)
        merge.weight[side, children] = half_encode.weight
        merge.bias[side] = half_encode.bias
        invert.weight[children, side] = half_decode.weight
        invert.bias[children] = half_decode.bias


def _frame(frame) -> tuple[int, int]:
    """(height, width) as a tuple of two positive ints (a checkpoint may hold a list)."""
    height, width = (int(side) for side in frame)
    if height < 1 or width < 1:
        raise ValueError(f"a frame needs a positive height and width, got {tuple(frame)}")
    return height, width


@dataclass(frozen=True)
class CodecConfig:
    dim: int
    hidden: int = 1024
    architecture: str = "mlp"
    frame: tuple[int, int] = DEFAULT_FRAME  # (height, width) of the frames it codes: the source's geometry

    def __post_init__(self):
        object.__setattr__(self, "frame", _frame(self.frame))

    @property
    def pixels(self) -> int:
        return self.frame[0] * self.frame[1]


class LeafCodec(nn.Module):
    """Image encoder E (pixels -> d) and decoder D (d -> pixels in [0, 1]), for frames of ``config.frame``."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config
        h, d, p = config.hidden, config.dim, config.pixels
        if config.architecture == "mlp":
            self.encoder = mlp([p, h, h, d])
            self.decoder = mlp([d, h, h, p], nn.Sigmoid())
        elif config.architecture in LINEAR_CODEC:
            self.encoder = nn.Linear(p, d)
            self.decoder = nn.Linear(d, p)
        else:
            raise ValueError(f"unknown teacher architecture {config.architecture!r}; expected one of {ARCHITECTURES}")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        pixels = self.decoder(codes)
        return pixels if self.config.architecture == "mlp" else pixels.clamp(0.0, 1.0)

    def init_from_data(self, images: torch.Tensor) -> None:
        """Data-dependent initialization from a sample of images (the linear codecs of :data:`LINEAR_CODEC`)."""
        if self.config.architecture in LINEAR_CODEC:
            init_from_pca(self.encoder, self.decoder, images)


class ResidualMap(nn.Module):
    """``linear(x) + mlp(x)``, the MLP's output layer starting at zero: untrained, the linear map alone."""

    def __init__(self, fan_in: int, fan_out: int, hidden: int):
        super().__init__()
        self.linear = nn.Linear(fan_in, fan_out)
        self.residual = zero_residual([fan_in, hidden, hidden, fan_out])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.residual(x)


@dataclass(frozen=True)
class SweeperConfig:
    dim: int
    hidden: int
    architecture: str = "mlp"
    level: int = 0  # where in the tree: how many frames a child holds (``framewise`` only)

    @classmethod
    def for_dim(cls, dim: int, hidden: int | None = None, architecture: str = "mlp", level: int = 0) -> SweeperConfig:
        """``hidden=None`` means one hidden layer as wide as the memory, the project default."""
        return cls(dim=dim, hidden=hidden or dim, architecture=architecture, level=level)

    @property
    def blocks(self) -> int:
        """``framewise``: blocks per child, one per frame (2^level of them) while a frame keeps two or more
        numbers; past that, blocks of two numbers that span several frames."""
        return min(2**self.level, max(self.dim // 2, 1))


class Sweeper(nn.Module):
    """One tree level: merge 2d -> d and inverter d -> 2d."""

    def __init__(self, config: SweeperConfig):
        super().__init__()
        self.config = config
        d, h = config.dim, config.hidden
        if config.architecture == "mlp":
            self.merge_net = mlp([2 * d, h, d])
            self.invert_net = mlp([d, h, 2 * d])
        elif config.architecture == "pca":
            self.merge_net = nn.Linear(2 * d, d)
            self.invert_net = nn.Linear(d, 2 * d)
        elif config.architecture == "mix":
            self.merge_net = ResidualMap(2 * d, d, h)
            self.invert_net = ResidualMap(d, 2 * d, h)
        elif config.architecture == "framewise":
            size = d // config.blocks
            if size < 2 or size % 2 or size * config.blocks != d:
                raise ValueError(f"framewise: d={d} does not split into {config.blocks} blocks of an even size")
            self.merge_net = ResidualMap(size, size // 2, h)
            self.invert_net = ResidualMap(size // 2, size, h)
        else:
            raise ValueError(f"unknown teacher architecture {config.architecture!r}; expected one of {ARCHITECTURES}")

    def _blockwise(self, net: nn.Module, x: torch.Tensor, size: int) -> torch.Tensor:
        return net(x.unflatten(-1, (-1, size))).flatten(-2)

    def merge(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        both = torch.cat([left, right], dim=-1)
        if self.config.architecture == "framewise":  # each block (in sequence order) to half its size
            return self._blockwise(self.merge_net, both, self.config.dim // self.config.blocks)
        return self.merge_net(both)

    def invert(self, merged: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.architecture == "framewise":
            both = self._blockwise(self.invert_net, merged, self.config.dim // self.config.blocks // 2)
        else:
            both = self.invert_net(merged)
        left, right = both.chunk(2, dim=-1)
        return left, right

    def init_from_data(self, pairs: torch.Tensor) -> None:
        """Data-dependent initialization from a sample of the level's bank: (n, 2, d) pairs of adjacent children
        (``pca``, ``framewise``, ``mix``)."""
        if self.config.architecture == "pca":
            init_pair_from_pca(self.merge_net, self.invert_net, pairs.flatten(0, 1))
        elif self.config.architecture == "framewise":  # the best linear map of a block to half its size, and back
            blocks = pairs.reshape(-1, self.config.dim // self.config.blocks)
            init_from_pca(self.merge_net.linear, self.invert_net.linear, blocks)
        elif self.config.architecture == "mix":  # the best linear map of the pair to d numbers: joint PCA
            init_from_pca(self.merge_net.linear, self.invert_net.linear, pairs.flatten(1))


@dataclass(frozen=True)
class DepthDecoderConfig:
    dim: int
    hidden: int
    depth: int  # number of tree levels the codes went through (T = 2**depth)
    frame: tuple[int, int] = DEFAULT_FRAME  # (height, width) of the frames it decodes

    def __post_init__(self):
        object.__setattr__(self, "frame", _frame(self.frame))


class DepthDecoder(nn.Module):
    """Pixels from leaf codes that were read back through ``depth`` levels: the codec's decoder
    plus a zero-initialized residual MLP trained on exactly such codes."""

    def __init__(self, config: DepthDecoderConfig):
        super().__init__()
        self.config = config
        self.residual = zero_residual([config.dim, config.hidden, config.hidden, config.frame[0] * config.frame[1]])

    def forward(self, codec: LeafCodec, codes: torch.Tensor) -> torch.Tensor:
        return (codec.decoder(codes) + self.residual(codes)).clamp(0.0, 1.0)


def teacher_parameter_count(
    dim: int,
    levels: int,
    codec_hidden: int = 1024,
    sweeper_hidden: int | None = None,
    architecture: str = "mlp",
    decoder_hidden: int | None = None,
) -> int:
    """Parameters of the whole teacher (codec, ``levels`` sweepers and, with ``decoder_hidden``, one
    depth decoder per level), counted on instantiated modules."""
    codec = parameter_count(LeafCodec(CodecConfig(dim, codec_hidden, architecture)))
    sweepers = sum(  # a framewise level's maps shrink with the level; the other architectures' do not
        parameter_count(Sweeper(SweeperConfig.for_dim(dim, sweeper_hidden, architecture, level)))
        for level in range(levels)
    )
    decoder = parameter_count(DepthDecoder(DepthDecoderConfig(dim, decoder_hidden, 1))) if decoder_hidden else 0
    return codec + sweepers + levels * decoder


def _state(module: nn.Module | None) -> tuple[dict | None, dict | None]:
    return (asdict(module.config), module.state_dict()) if module is not None else (None, None)


def sweeper_checkpoint(
    level: int, sweeper: Sweeper, codec: LeafCodec | None, depth_decoder: DepthDecoder | None = None, **extra
) -> dict:
    """One level's checkpoint: its sweeper, the leaf codec (level 0) and its depth decoder, if any."""
    state = {"kind": "imfn-sweeper", "level": level, **extra}
    for name, module in (("sweeper", sweeper), ("codec", codec), ("depth_decoder", depth_decoder)):
        state[f"{name}_config"], state[name] = _state(module)
    return state


@dataclass
class LevelCheckpoint:
    sweeper: Sweeper
    codec: LeafCodec | None
    depth_decoder: DepthDecoder | None
    state: dict


def load_sweeper_checkpoint(path, device: torch.device | str = "cpu") -> LevelCheckpoint:
    state = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(state, dict) or state.get("kind") != "imfn-sweeper":
        raise ValueError(f"{path} is not an IMFN sweeper checkpoint")
    modules = {}
    for name, cls, config_cls in (
        ("sweeper", Sweeper, SweeperConfig),
        ("codec", LeafCodec, CodecConfig),
        ("depth_decoder", DepthDecoder, DepthDecoderConfig),
    ):
        if state.get(name) is None:
            modules[name] = None
            continue
        module = cls(config_cls(**state[f"{name}_config"])).to(device)
        module.load_state_dict(state[name])
        modules[name] = module.eval()
    return LevelCheckpoint(modules["sweeper"], modules["codec"], modules["depth_decoder"], state)


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
        loaded = [load_sweeper_checkpoint(path, device) for path in checkpoints]
        for expected, (path, level) in enumerate(zip(checkpoints, loaded, strict=True)):
            if level.state["level"] != expected:
                raise ValueError(f"{path} holds level {level.state['level']}, expected level {expected}")
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
        return self.codec.encode(torch.zeros(1, self.codec.config.pixels, device=device))[0]

    @property
    def frame(self) -> tuple[int, int]:
        """(height, width) of the frames this teacher codes."""
        return self.codec.config.frame

    def check_frame(self, frame: FrameShape, source: str) -> None:
        """Stop, naming both, when ``source``'s frames (``frame``) are not the ones this teacher codes."""
        if self.frame != (frame.height, frame.width):
            raise ValueError(f"the teacher codes {self.frame[0]}x{self.frame[1]} frames, {source}'s are "
                             f"{frame.height}x{frame.width}")  # fmt: skip

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
