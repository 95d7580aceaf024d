"""Are two runs' results the same to the last digit? The check a refactoring must pass.

Every metric table under ``<before>/metrics`` is compared with the same table under ``<after>/metrics`` (a
renamed table is matched with ``old=new``): the same columns, the same rows in any order, and every value
equal exactly (NaN equal to NaN). Timing tables (``time_summary``) differ by nature and are left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SKIPPED = {"time_summary"}


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[sorted(frame.columns)]
    return frame.sort_values(list(frame.columns), na_position="first", kind="stable").reset_index(drop=True)


def difference(before: pd.DataFrame, after: pd.DataFrame) -> str | None:
    """None when the tables hold the same rows with exactly the same values; otherwise what differs."""
    if set(before.columns) != set(after.columns):
        return f"columns differ: {sorted(set(before.columns) ^ set(after.columns))}"
    if len(before) != len(after):
        return f"{len(before)} rows before, {len(after)} after"
    a, b = _sorted(before), _sorted(after)
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(dtype=float, na_value=np.nan), y.to_numpy(dtype=float, na_value=np.nan)
            same = (xv == yv) | (np.isnan(xv) & np.isnan(yv))
            if not same.all():
                return f"column {column!r}: {(~same).sum()} values differ, by up to {np.nanmax(np.abs(xv - yv)):.3g}"
        elif not x.astype(str).equals(y.astype(str)):
            return f"column {column!r} differs"
    return None


def compare_metrics(before: Path, after: Path, renamed: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(table, verdict) for every metric table of ``before``; raises ValueError if any is not identical."""
    names = dict(pair.split("=", 1) for pair in renamed)
    tables = sorted(p for p in (before / "metrics").glob("*.parquet") if p.stem not in SKIPPED)
    if not tables:
        raise FileNotFoundError(f"no metric tables under {before / 'metrics'}")
    verdicts = []
    for path in tables:
        other = after / "metrics" / f"{names.get(path.stem, path.stem)}.parquet"
        if not other.exists():
            verdicts.append((path.stem, f"missing: {other}"))
            continue
        problem = difference(pd.read_parquet(path), pd.read_parquet(other))
        rows = len(pd.read_parquet(path))
        verdicts.append((path.stem, problem or f"identical ({rows} rows)"))
    for name, verdict in verdicts:
        log.info("%-24s %s", name, verdict)
        print(f"{name:24s} {verdict}")
    bad = [name for name, verdict in verdicts if not verdict.startswith("identical")]
    if bad:
        raise ValueError(f"results differ in {bad}")
    return verdicts
