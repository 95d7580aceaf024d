"""Level health: is what a level produces still a useful code, or has it collapsed?

A level can fail silently (method.md 3b: level 4 of the ``paper`` variant collapsed and every
level above trained to near-zero loss on a degenerate bank). Each level therefore measures
the codes it merges, on a fixed sample of pairs from its own bank:
- ``unexplained_variance``: its reconstruction error over the variance of what it
  reconstructs (1.0 = no better than predicting the mean);
- per-dimension spread of the merged codes, mean |z|, fraction of dead dimensions
  (spread under 1% of the mean spread), and the effective rank of their covariance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthLimits:
    """When a level counts as collapsed (config ``teacher.health``), and what a collapse does."""

    max_unexplained_variance: float = 0.9  # its roundtrip error is near (or above) the variance of its input
    max_dead_fraction: float = 0.5  # or this share of its code dimensions carry no signal
    on_collapse: str = "warn"  # warn loudly, or fail the job

    def __post_init__(self):
        if self.on_collapse not in {"warn", "fail"}:
            raise ValueError(f"on_collapse must be 'warn' or 'fail', got {self.on_collapse!r}")


class LevelCollapseError(RuntimeError):
    """A level's codes collapsed and the config says to stop."""


def effective_rank(codes: torch.Tensor) -> float:
    """exp(entropy) of the normalized covariance spectrum: 1 for a line, d for isotropic codes."""
    centered = codes - codes.mean(dim=0)
    spectrum = torch.linalg.svdvals(centered.double()).pow(2)
    p = spectrum / spectrum.sum().clamp_min(1e-30)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def code_health(merged: torch.Tensor, reconstruction_mse: float, target_variance: float) -> dict:
    """Health numbers of one level from its merged codes (n, d) and its reconstruction error."""
    spread = merged.std(dim=0)
    return {
        "unexplained_variance": reconstruction_mse / max(target_variance, 1e-30),
        "reconstruction": reconstruction_mse,
        "target_variance": target_variance,
        "code_std_min": float(spread.min()),
        "code_std_median": float(spread.median()),
        "mean_abs_code": float(merged.abs().mean()),
        "dead_fraction": float((spread < 0.01 * spread.mean()).float().mean()),
        "effective_rank": effective_rank(merged),
        "dim": merged.shape[1],
    }


def collapse_reasons(health: dict, limits: HealthLimits) -> list[str]:
    reasons = []
    if health["unexplained_variance"] > limits.max_unexplained_variance:
        reasons.append(
            f"unexplained variance {health['unexplained_variance']:.3f} > "
            f"{limits.max_unexplained_variance} (1.0 = predicting the mean)"
        )
    if health["dead_fraction"] > limits.max_dead_fraction:
        reasons.append(f"{health['dead_fraction']:.0%} of code dimensions are dead (> {limits.max_dead_fraction:.0%})")
    return reasons


def with_level_ratios(frame):
    """Add, per (source, variant, seed, d), each level's error relative to the level below it, and the health
    of the tree up to that level.

    A ratio far above 1 is how a collapse shows in the loss curve (method.md 3b: 0.039 at level 4
    against 0.0025 at level 3). A level can also look fine on its own bank while the tree it tops
    is useless: each level keeps only part of what reaches it, so the share of the leaves' variance
    the tree still explains is the product over levels of (1 - unexplained variance). The tree up
    to a level has collapsed (``tree_collapsed``) when that share falls under 1 - the threshold.
    """
    keys = [key for key in ("source", "variant", "seed", "dim") if key in frame]  # source: absent in old tables
    frame = frame.sort_values([*keys, "level"]).reset_index(drop=True)
    groups = frame.groupby(keys)
    below = groups[["reconstruction", "unexplained_variance"]].shift(1)
    frame["reconstruction_vs_below"] = frame["reconstruction"] / below["reconstruction"]
    frame["unexplained_variance_vs_below"] = frame["unexplained_variance"] / below["unexplained_variance"]
    explained = (1.0 - frame["unexplained_variance"].clip(0.0, 1.0)).groupby([frame[key] for key in keys]).cumprod()
    frame["tree_unexplained_variance"] = 1.0 - explained
    frame["tree_collapsed"] = frame["tree_unexplained_variance"] > frame["max_unexplained_variance"]
    return frame
