"""The video hierarchy (method.md section 6): Perceiver-style levels over token sets (the paper's token sweepers).

- Level 0 (``FramePairLevel``): two frames -> ``memory_tokens`` tokens of width ``width``. Each frame is cut
  into a (frame_size/patch)^2 grid of patches (64 for 64x64 frames and 8x8 patches), the two frames'
  patches embedded to 128 tokens with a learned position each, and learned latent queries
  cross-attend to them, then self-attend (a Perceiver stack). Its inverter (``FrameDecoder``) runs the same
  kind of stack from the memory tokens to one query per patch of both frames and a linear head
  (sigmoid) back to pixels, then unpatchifies.
- Level l >= 1 (``TokenLevel``): two token latents (2 x memory_tokens tokens) -> one, and back, in
  token space, with the same stacks.
- The architecture (config ``video.model.architecture``, :mod:`imfn.models.video_config`): ``perceiver``, the
  paper's stacks alone; ``mix``, the levels built the way the vector tree's ``mix`` levels are: a linear path
  started at the PCA of the level's inputs with the stacks a residual on it, and a frame decoder per level.

Every level has ``merge(left, right)`` and ``invert(memory) -> (left, right)``, the tree's interface
(:mod:`imfn.models.tree`); ``encode`` / ``decode`` are the tree's ``merge_up`` / ``invert_down`` over 2^(k+1) frames.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from imfn.models.checkpoint import load_checkpoint, save_checkpoint
from imfn.models.layers import zero_linear
from imfn.models.pca import init_from_pca
from imfn.models.tree import invert_down, invert_path, merge_up
from imfn.models.video_config import VideoModelConfig


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


class FrameDecoder(nn.Module):
    """Memory tokens (B, M, w) -> the two frames they hold, each (B, C, H, W): a Perceiver stack from the memory to
    one query per patch of both frames and a linear head back to pixels. Without the linear path the head ends in
    a sigmoid; with it, the head is a residual (starting at zero) on the linear path's frames, clamped to [0, 1]."""

    def __init__(self, cfg: VideoModelConfig):
        super().__init__()
        self.cfg = cfg
        self.inverter = PerceiverStack(cfg, cfg.memory_tokens, 2 * cfg.patches)
        self.head_norm = nn.LayerNorm(cfg.width)
        self.head = zero_linear(cfg.width, cfg.patch_dim) if cfg.linear_path else nn.Linear(cfg.width, cfg.patch_dim)
        if cfg.linear_path:
            self.linear_invert = nn.Linear(cfg.memory_numbers, 2 * cfg.frame_numbers)

    def invert(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        memory, lead = fold(memory, 2)
        b, cfg = memory.shape[0], self.cfg
        patches = self.head(self.head_norm(self.inverter(memory)))
        if not cfg.linear_path:
            patches = torch.sigmoid(patches)
        frames = unpatchify(patches.reshape(2 * b, cfg.patches, -1), cfg.patch, cfg.channels)
        frames = frames.reshape(b, 2, cfg.channels, cfg.frame_size, cfg.frame_size)
        if cfg.linear_path:
            frames = (self.linear_invert(memory.flatten(1)).view_as(frames) + frames).clamp(0.0, 1.0)
        frames = frames.unflatten(0, lead)
        return frames[..., 0, :, :, :], frames[..., 1, :, :, :]


class FramePairLevel(nn.Module):
    """Level 0: two frames (B, C, H, W) each, in [0, 1] <-> memory tokens (B, M, w)."""

    level = 0

    def __init__(self, cfg: VideoModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.patch_dim, cfg.width)
        self.merger = PerceiverStack(cfg, 2 * cfg.patches, cfg.memory_tokens)
        self.decoder = FrameDecoder(cfg)
        if cfg.linear_path:
            self.linear_merge = nn.Linear(2 * cfg.frame_numbers, cfg.memory_numbers)
            self.merge_out = zero_linear(cfg.width, cfg.width)

    def merge(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        frames, lead = fold(torch.stack([left, right], dim=-4), 4)
        b, cfg = frames.shape[0], self.cfg
        patches = patchify(frames.flatten(0, 1), cfg.patch).reshape(b, 2 * cfg.patches, -1)
        tokens = self.merger(self.embed(patches))
        if cfg.linear_path:
            tokens = self.linear_merge(frames.flatten(1)).view_as(tokens) + self.merge_out(tokens)
        return tokens.unflatten(0, lead)

    def invert(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder.invert(memory)

    @torch.no_grad()
    def init_from_data(self, pairs: torch.Tensor) -> None:
        """The linear path from a sample of the level's inputs, (n, 2, C, H, W) frame pairs: their joint PCA."""
        init_from_pca(self.linear_merge, self.decoder.linear_invert, pairs.flatten(1))


class TokenLevel(nn.Module):
    """Level l >= 1: two token latents (B, M, w) each <-> one (B, M, w). With a frame decoder per level it holds a
    :class:`FrameDecoder` of its own, started from level 0's and trained on memories read back through it."""

    def __init__(self, cfg: VideoModelConfig, level: int):
        super().__init__()
        self.cfg = cfg
        self.level = level
        self.merger = PerceiverStack(cfg, 2 * cfg.memory_tokens, cfg.memory_tokens)
        self.inverter = PerceiverStack(cfg, cfg.memory_tokens, 2 * cfg.memory_tokens)
        if cfg.linear_path:
            self.linear_merge = nn.Linear(2 * cfg.memory_numbers, cfg.memory_numbers)
            self.linear_invert = nn.Linear(cfg.memory_numbers, 2 * cfg.memory_numbers)
            self.merge_out = zero_linear(cfg.width, cfg.width)
            self.invert_out = zero_linear(cfg.width, cfg.width)
        self.decoder = FrameDecoder(cfg) if cfg.frame_decoder_per_level else None

    def merge(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        both, lead = fold(torch.cat([left, right], dim=-2), 2)
        tokens = self.merger(both)
        if self.cfg.linear_path:
            tokens = self.linear_merge(both.flatten(1)).view_as(tokens) + self.merge_out(tokens)
        return tokens.unflatten(0, lead)

    def invert(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        memory, lead = fold(memory, 2)
        tokens = self.inverter(memory)
        if self.cfg.linear_path:
            tokens = self.linear_invert(memory.flatten(1)).view_as(tokens) + self.invert_out(tokens)
        left, right = tokens.unflatten(0, lead).chunk(2, dim=-2)
        return left, right

    @torch.no_grad()
    def init_from_data(self, pairs: torch.Tensor) -> None:
        """The linear path from a sample of the level's inputs, (n, 2, M, w) pairs of children: their joint PCA."""
        init_from_pca(self.linear_merge, self.linear_invert, pairs.flatten(1))


def fold(x: torch.Tensor, dims: int) -> tuple[torch.Tensor, torch.Size]:
    """``x`` (..., *last ``dims``) -> (B, *last ``dims``) and the leading shape it had: the stacks take one batch
    dimension, the tree hands a level two (sequences, nodes)."""
    lead = x.shape[:-dims]
    return x.reshape(-1, *x.shape[-dims:]), lead


def make_level(cfg: VideoModelConfig, level: int) -> FramePairLevel | TokenLevel:
    return FramePairLevel(cfg) if level == 0 else TokenLevel(cfg, level)


def frame_decoder(levels: list[nn.Module]) -> FrameDecoder:
    """The frame decoder a memory of the top level is read back through: the top level's own
    (an architecture with a frame decoder per level), else level 0's."""
    own = levels[-1].decoder if len(levels) > 1 else None
    return own if own is not None else levels[0].decoder


def readout(levels: list[nn.Module]) -> list[nn.Module]:
    """The levels a memory of the top level is read back through: level 0 inverts with :func:`frame_decoder`."""
    return [frame_decoder(levels), *levels[1:]]


def encode(levels: list[nn.Module], frames: torch.Tensor) -> torch.Tensor:
    """(B, 2^K, C, H, W) frames -> (B, M, w) memory of level K-1, K = len(levels)."""
    if frames.shape[1] != 2 ** len(levels):
        raise ValueError(f"{len(levels)} levels encode {2 ** len(levels)} frames, got {frames.shape[1]}")
    return merge_up(levels, frames)


def decode(levels: list[nn.Module], memory: torch.Tensor) -> torch.Tensor:
    """(B, M, w) memory of level K-1 -> (B, 2^K, C, H, W) frames."""
    return invert_down(readout(levels), memory, 2 ** len(levels))


def decode_path(levels: list[nn.Module], memory: torch.Tensor, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode one random root-to-leaf branch per sample: at each level above 0 keep the left
    (bit 0) or right (bit 1) child; level 0 gives two frames. ``bits`` is (B, K-1), top level first.
    Returns the frames (B, 2, C, H, W) and the index of the first of them in the 2^K frames."""
    above = len(levels) - 1
    pair = (bits.long() * 2 ** torch.arange(above - 1, -1, -1)).sum(dim=1).to(memory.device)
    node = invert_path(levels[1:], memory, pair, 2**above)[-1] if above else memory
    return torch.stack(levels[0].invert(node), dim=1), 2 * pair


def save_level(path: str | Path, level: nn.Module, cfg: VideoModelConfig, **meta) -> None:
    save_checkpoint(path, "imfn-video-level", asdict(cfg), level.state_dict(), level=level.level, **meta)


def load_level(path: str | Path, device: torch.device | str = "cpu") -> FramePairLevel | TokenLevel:
    """A trained level from its checkpoint, frozen, in eval mode."""
    saved = load_checkpoint(path, "imfn-video-level", device)
    level = make_level(VideoModelConfig(**saved["config"]), saved["level"])
    level.load_state_dict(saved["state"])
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
