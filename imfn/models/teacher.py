"""The IMFN teacher: a leaf codec (images <-> d-dim codes) and one sweeper per tree level.

A sweeper has a merge ``M: (a, b) -> z`` (two d-dim states to one) and an inverter
``I: z -> (a_hat, b_hat)``. Level 0's sweeper works on codes of the image encoder ``E``;
reconstructions go back to pixels through the decoder ``D`` (method.md section 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

N_PIXELS = 784


def mlp(widths: list[int], out_activation: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    if out_activation is not None:
        layers.append(out_activation)
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class CodecConfig:
    dim: int
    hidden: int = 1024


class LeafCodec(nn.Module):
    """Image encoder E (3-layer ReLU MLP, 784 -> d) and decoder D (d -> 784, sigmoid)."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config
        h = config.hidden
        self.encoder = mlp([N_PIXELS, h, h, config.dim])
        self.decoder = mlp([config.dim, h, h, N_PIXELS], nn.Sigmoid())

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes)


@dataclass(frozen=True)
class SweeperConfig:
    dim: int
    hidden: int

    @classmethod
    def for_dim(cls, dim: int, hidden: int | None = None) -> "SweeperConfig":
        """``hidden=None`` means one hidden layer as wide as the memory, the project default."""
        return cls(dim=dim, hidden=hidden or dim)


class Sweeper(nn.Module):
    """One tree level: merge MLP 2d -> d and inverter MLP d -> 2d, one hidden layer each."""

    def __init__(self, config: SweeperConfig):
        super().__init__()
        self.config = config
        d, h = config.dim, config.hidden
        self.merge_net = mlp([2 * d, h, d])
        self.invert_net = mlp([d, h, 2 * d])

    def merge(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.merge_net(torch.cat([left, right], dim=-1))

    def invert(self, merged: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        left, right = self.invert_net(merged).chunk(2, dim=-1)
        return left, right


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def teacher_parameter_count(dim: int, levels: int, codec_hidden: int = 1024, sweeper_hidden: int | None = None) -> int:
    """Parameters of the whole teacher (codec + ``levels`` sweepers), counted on instantiated modules."""
    codec = parameter_count(LeafCodec(CodecConfig(dim, codec_hidden)))
    sweeper = parameter_count(Sweeper(SweeperConfig.for_dim(dim, sweeper_hidden)))
    return codec + levels * sweeper


def sweeper_checkpoint(level: int, sweeper: Sweeper, codec: LeafCodec | None, **extra) -> dict:
    return {
        "kind": "imfn-sweeper",
        "level": level,
        "sweeper_config": asdict(sweeper.config),
        "sweeper": sweeper.state_dict(),
        "codec_config": asdict(codec.config) if codec is not None else None,
        "codec": codec.state_dict() if codec is not None else None,
        **extra,
    }


def load_sweeper_checkpoint(path, device: torch.device | str = "cpu") -> tuple[Sweeper, LeafCodec | None, dict]:
    state = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(state, dict) or state.get("kind") != "imfn-sweeper":
        raise ValueError(f"{path} is not an IMFN sweeper checkpoint")
    sweeper = Sweeper(SweeperConfig(**state["sweeper_config"])).to(device)
    sweeper.load_state_dict(state["sweeper"])
    codec = None
    if state["codec"] is not None:
        codec = LeafCodec(CodecConfig(**state["codec_config"])).to(device)
        codec.load_state_dict(state["codec"])
    return sweeper.eval(), (codec.eval() if codec is not None else None), state
