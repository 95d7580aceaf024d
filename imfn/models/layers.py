"""Building blocks every model uses: plain MLPs, a residual branch that starts switched off, parameter counts."""

from __future__ import annotations

import itertools

from torch import nn


def mlp(widths: list[int], out_activation: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    if out_activation is not None:
        layers.append(out_activation)
    return nn.Sequential(*layers)


def zero_residual(widths: list[int]) -> nn.Sequential:
    """An MLP whose output layer starts at zero: a residual branch that begins switched off."""
    net = mlp(widths)
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


def zero_linear(fan_in: int, fan_out: int) -> nn.Linear:
    """A linear map that starts at zero: the output of a residual branch that begins switched off."""
    layer = nn.Linear(fan_in, fan_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class ResidualMap(nn.Module):
    """``linear(x) + mlp(x)``, the MLP's output layer starting at zero: untrained, the linear map alone."""

    def __init__(self, fan_in: int, fan_out: int, hidden: int):
        super().__init__()
        self.linear = nn.Linear(fan_in, fan_out)
        self.residual = zero_residual([fan_in, hidden, hidden, fan_out])

    def forward(self, x):
        return self.linear(x) + self.residual(x)
