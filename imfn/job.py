"""What every pipeline job does first: logging, thread count, deterministic torch; its seeded random streams.

The log file a job was set up with also names the job: :func:`job_name` (the prefix of its progress lines,
imfn/progress.py) and :func:`curves_dir` (where its training curves go, imfn/train/curves.py) both derive from it.

torch is imported only by the steps that compute with it, so data and table steps start fast.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path

_log_file: Path | None = None  # the log file of the job this process runs (setup_logging), None without one


def setup_logging(log_file: str | os.PathLike | None = None) -> None:
    """Log to stderr and, when given, append to ``log_file`` (the rule's log); remember it as the job's log."""
    global _log_file
    _log_file = Path(log_file) if log_file is not None else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )


def job_name() -> str | None:
    """The job's name: its log file's path below ``logs/`` without the suffix
    (``logs/mnist/seed0/d256/framewise/train_sweeper_L3.log`` -> ``mnist/seed0/d256/framewise/train_sweeper_L3``),
    or, for a log outside a ``logs`` folder, the file's stem; None for a job set up without a log file."""
    if _log_file is None:
        return None
    parts = _log_file.with_suffix("").parts[:-1]
    below = parts[len(parts) - parts[::-1].index("logs") :] if "logs" in parts else ()
    return "/".join([*below, _log_file.stem])


def curves_dir() -> Path | None:
    """The folder of the job's training curves, beside its log file and named like it without the suffix
    (``logs/.../train_sweeper_L3.log`` -> ``logs/.../train_sweeper_L3/``; ``tensorboard --logdir logs`` lists
    every job of a run); None for a job set up without a log file."""
    if _log_file is None:
        return None
    return _log_file.with_suffix("") if _log_file.suffix else _log_file.with_name(_log_file.name + ".curves")


def setup_torch(threads: int) -> None:
    """Pin torch to ``threads`` threads and make its CPU math deterministic."""
    import torch

    torch.set_num_threads(max(1, threads))
    # What torch.use_deterministic_algorithms(True, warn_only=True) does for eager code. The public call also
    # sets torch.compile's (inductor's) flag, and importing inductor costs 1.5 s of CPU in every job; the
    # pipeline does not compile.
    torch._C._set_deterministic_algorithms(True, warn_only=True)


def stream_seed(purpose: str, *keys: int | str) -> int:
    """The seed of the random stream for ``purpose`` (a name such as ``"sweeper-train"``) and its keys
    (seed, level, epoch, ...): the first 8 bytes of the sha256 of the JSON list ``[purpose, *keys]``, masked to
    63 bits. JSON keeps the encoding unambiguous (``("a", 1, 23)`` and ``("a", 12, 3)`` differ), and streams
    of different purposes never share a seed by construction, whatever their keys."""
    if not isinstance(purpose, str) or not purpose:
        raise ValueError(f"a random stream's purpose must be a non-empty name, got {purpose!r}")
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise TypeError(f"stream {purpose!r}: keys must be integers or strings, got {key!r} ({type(key).__name__})")
    text = json.dumps([purpose, *keys], separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") & (2**63 - 1)


def seeded_generator(purpose: str, *keys: int | str):
    """A CPU torch generator for the stream of ``purpose`` and ``keys`` (:func:`stream_seed`)."""
    import torch

    return torch.Generator().manual_seed(stream_seed(purpose, *keys))


def seed_torch(purpose: str, *keys: int | str) -> None:
    """Seed torch's global generator (weight init, dropout) with the stream of ``purpose`` and ``keys``."""
    import torch

    torch.manual_seed(stream_seed(purpose, *keys))


def numpy_generator(purpose: str, *keys: int | str):
    """A numpy generator for the stream of ``purpose`` and ``keys`` (:func:`stream_seed`)."""
    import numpy as np

    return np.random.default_rng(stream_seed(purpose, *keys))
