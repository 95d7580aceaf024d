"""Tidy metric tables: per-job Parquet files concatenated into one table per model family."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from imfn.atomic import atomic_output

log = logging.getLogger(__name__)


Transform = Callable[[pd.DataFrame], pd.DataFrame]


def aggregate(parts: Sequence[Path], out: Path, transform: Transform | None = None) -> None:
    """Concatenate per-cell metric Parquet files into one table (optionally transformed)."""
    table = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    if transform is not None:
        table = transform(table)
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    log.info("aggregated %d files, %d rows into %s", len(parts), len(table), out)
