"""The video hierarchy (method.md section 6): Perceiver-style levels over token sets (the paper's token sweepers).

- Level 0 (``FramePairLevel``): two frames -> ``memory_tokens`` tokens of width ``width``. Each frame is cut
  into a (frame_size/patch)^2 grid of patches (64 for 64x64 frames and 8x8 patches), the two frames'
  patches embedded to 128 tokens with a learned position each, and learned latent queries
  cross-attend to them, then self-attend (a Perceiver stack). Its inverter runs the same kind
  of stack from the memory tokens to one query per patch of both frames and a linear head
  (sigmoid) back to pixels, then unpatchifies.
- Level l >= 1 (``TokenLevel``): two token latents (2 x memory_tokens tokens) -> one, and back, in
  token space, with the same stacks.

Every level has ``merge`` and ``invert``; ``encode`` / ``decode`` compose levels over 2^(k+1) frames.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VideoModelConfig:
    frame_size: int = 64
    patch: int = 8
    channels: int = 3  # 3: RGB footage; training takes it from the clip bank (1: moving_mnist's grayscale)
    width: int = 256  # token width (lost; default 256)
    heads: int = 8
    memory_tokens: int = 96
    cross_layers: int = 1
    self_layers: int = 4
    mlp_ratio: int = 4

    def __post_init__(self):
        if self.frame_size % self.patch:
            raise ValueError(f"frame_size {self.frame_size} is not a multiple of patch {self.patch}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")

    @property
    def grid(self) -> int:
        return self.frame_size // self.patch

    @property
    def patches(self) -> int:
        return self.grid**2

    @property
    def patch_dim(self) -> int:
        return self.patch * self.patch * self.channels


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, w))


class Block(nn.Module):
    """Pre-norm attention (to itself, or to a context) plus an MLP, both residual."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, cross: bool):
        super().__init__()
        self.cross = cross
        self.norm_x = nn.LayerNorm(width)
        self.norm_context = nn.LayerNorm(width) if cross else None
        self.attention = Attention(width, heads)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm_x(x)
        x = x + self.attention(h, self.norm_context(context) if self.cross else h)
        return x + self.mlp(self.norm_mlp(x))


class PerceiverStack(nn.Module):
    """``in_tokens`` tokens -> ``out_tokens`` tokens: learned queries cross-attend to the (position-tagged)
    inputs, then self-attend."""

    def __init__(self, cfg: VideoModelConfig, in_tokens: int, out_tokens: int):
        super().__init__()
        w = cfg.width
        self.input_position = nn.Parameter(torch.randn(in_tokens, w) * 0.02)
        self.queries = nn.Parameter(torch.randn(out_tokens, w) * 0.02)
        self.cross = nn.ModuleList(Block(w, cfg.heads, cfg.mlp_ratio, cross=True) for _ in range(cfg.cross_layers))
        self.self_ = nn.ModuleList(Block(w, cfg.heads, cfg.mlp_ratio, cross=False) for _ in range(cfg.self_layers))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        context = inputs + self.input_position
        x = self.queries.expand(len(inputs), -1, -1)
        for block in self.cross:
            x = block(x, context)
        for block in self.self_:
            x = block(x)
        return x


def patchify(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H/p)(W/p), p*p*C)."""
    b, c, h, w = frames.shape
    x = frames.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, channels: int) -> torch.Tensor:
    """(B, G*G, p*p*C) -> (B, C, G*p, G*p)."""
    b, n, _ = patches.shape
    g = math.isqrt(n)
    x = patches.reshape(b, g, g, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, g * patch, g * patch)


class FramePairLevel(nn.Module):
    """Level 0: a pair of frames (B, 2, C, H, W) in [0, 1] <-> memory tokens (B, M, w)."""

    level = 0

    def __init__(self, cfg: VideoModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.patch_dim, cfg.width)
        self.merger = PerceiverStack(cfg, 2 * cfg.patches, cfg.memory_tokens)
        self.inverter = PerceiverStack(cfg, cfg.memory_tokens, 2 * cfg.patches)
        self.head_norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.patch_dim)

    def merge(self, frames: torch.Tensor) -> torch.Tensor:
        b = frames.shape[0]
        patches = patchify(frames.flatten(0, 1), self.cfg.patch).reshape(b, 2 * self.cfg.patches, -1)
        return self.merger(self.embed(patches))

    def invert(self, memory: torch.Tensor) -> torch.Tensor:
        b, cfg = memory.shape[0], self.cfg
        patches = torch.sigmoid(self.head(self.head_norm(self.inverter(memory))))
        frames = unpatchify(patches.reshape(2 * b, cfg.patches, -1), cfg.patch, cfg.channels)
        return frames.reshape(b, 2, cfg.channels, cfg.frame_size, cfg.frame_size)


class TokenLevel(nn.Module):
    """Level l >= 1: two token latents (B, M, w) each <-> one (B, M, w)."""

    def __init__(self, cfg: VideoModelConfig, level: int):
        super().__init__()
        self.cfg = cfg
        self.level = level
        self.merger = PerceiverStack(cfg, 2 * cfg.memory_tokens, cfg.memory_tokens)
        self.inverter = PerceiverStack(cfg, cfg.memory_tokens, 2 * cfg.memory_tokens)

    def merge(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.merger(torch.cat([left, right], dim=1))

    def invert(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        left, right = self.inverter(memory).chunk(2, dim=1)
        return left, right


def make_level(cfg: VideoModelConfig, level: int) -> FramePairLevel | TokenLevel:
    return FramePairLevel(cfg) if level == 0 else TokenLevel(cfg, level)


def encode(levels: list[nn.Module], frames: torch.Tensor) -> torch.Tensor:
    """(B, 2^K, C, H, W) frames -> (B, M, w) memory of level K-1, K = len(levels)."""
    b, t = frames.shape[:2]
    if t != 2 ** len(levels):
        raise ValueError(f"{len(levels)} levels encode {2 ** len(levels)} frames, got {t}")
    z = levels[0].merge(frames.reshape(b * t // 2, 2, *frames.shape[2:]))
    for level in levels[1:]:
        pairs = z.reshape(len(z) // 2, 2, *z.shape[1:])
        z = level.merge(pairs[:, 0], pairs[:, 1])
    return z


def decode(levels: list[nn.Module], memory: torch.Tensor) -> torch.Tensor:
    """(B, M, w) memory of level K-1 -> (B, 2^K, C, H, W) frames."""
    b = memory.shape[0]
    z = memory
    for level in reversed(levels[1:]):
        left, right = level.invert(z)
        z = torch.stack([left, right], dim=1).flatten(0, 1)
    frames = levels[0].invert(z)
    return frames.reshape(b, -1, *frames.shape[2:])


def decode_path(levels: list[nn.Module], memory: torch.Tensor, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one random root-to-leaf branch per sample: at each level above 0 keep the left
    (bit 0) or right (bit 1) child; level 0 gives two frames. ``bits`` is (B, K-1), top level first.
    Returns the frames (B, 2, C, H, W) and the index of the first of them in the 2^K frames."""
    z = memory
    offset = torch.zeros(len(memory), dtype=torch.long, device=memory.device)
    for i, level in enumerate(reversed(levels[1:])):
        left, right = level.invert(z)
        bit = bits[:, i].to(memory.device)
        z = torch.where(bit.bool()[:, None, None], right, left)
        offset = offset + bit.long() * 2 ** (len(levels) - 1 - i)
    return levels[0].invert(z), offset


def checkpoint(level: nn.Module, cfg: VideoModelConfig, **meta) -> dict:
    return {"level": level.level, "config": asdict(cfg), "state_dict": level.state_dict(), **meta}


def load_level(path: str | Path, device: torch.device | str = "cpu") -> FramePairLevel | TokenLevel:
    """A trained level from its checkpoint, frozen, in eval mode."""
    state = torch.load(path, map_location=device, weights_only=False)
    level = make_level(VideoModelConfig(**state["config"]), state["level"])
    level.load_state_dict(state["state_dict"])
    level.to(device).eval().requires_grad_(False)
    return level


def load_levels(paths: list[Path], device: torch.device | str = "cpu") -> list[nn.Module]:
    levels = [load_level(p, device) for p in paths]
    for expected, level in enumerate(levels):
        if level.level != expected:
            raise ValueError(f"checkpoint {paths[expected]} holds level {level.level}, expected level {expected}")
    configs = {asdict(s.cfg).__repr__() for s in levels}
    if len(configs) > 1:
        raise ValueError(f"video levels {[str(p) for p in paths]} were built with different model configs")
    return levels
