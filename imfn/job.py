"""What every pipeline job does first: logging, thread count, deterministic torch.

torch is imported only by the steps that compute with it, so data and table steps start fast.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def setup_logging(log_file: str | os.PathLike | None = None) -> None:
    """Log to stderr and, when given, append to ``log_file`` (the rule's log)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )


def setup_torch(threads: int) -> None:
    """Pin torch to ``threads`` threads and make its CPU math deterministic."""
    import torch

    torch.set_num_threads(max(1, threads))
    # What torch.use_deterministic_algorithms(True, warn_only=True) does for eager code. The public call also
    # sets torch.compile's (inductor's) flag, and importing inductor costs 1.5 s of CPU in every job; the
    # pipeline does not compile.
    torch._C._set_deterministic_algorithms(True, warn_only=True)


def seeded_generator(*keys: int):
    """A CPU torch generator whose seed is a stable function of integer keys (purpose, seed, level, ...)."""
    import torch

    value = 0x9E3779B97F4A7C15
    for key in keys:
        value = (value * 1_000_003 + int(key) + 1) % (2**63 - 1)
    return torch.Generator().manual_seed(value)
