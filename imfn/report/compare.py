"""Are two runs' results the same to the last digit? The check a refactoring must pass.

Every metric table under ``<before>/metrics`` is compared with the same table under ``<after>/metrics`` (a
renamed table is matched with ``old=new``): the same columns, the same rows in any order, and every value
equal exactly (NaN equal to NaN). Timing tables (``time_summary``) differ by nature and are left out.

Across a rename, the *before* tables are first brought to the new names: columns (``old=new``) and values
(``column:old=new``, the column by its new name; an empty new value is null), each in every table or, with a
``table:`` in front, in that table only (``teacher_health:recipe=architecture``). Beside the verdict, a table
that differs gets a report of how far its numbers moved: its rows are matched on their label columns (every
column the two tables share that is not a float column), and for each float column it prints how many values
moved, the median and the largest relative change of those that moved, and the rows that moved most.

``only`` (``column=value``) compares a part of each run: in every table that has the column (before or after),
only its rows whose value is ``value``, and without the column. So ``source=mnist`` compares a run that had one
source, and no ``source`` column, with the ``mnist`` rows of a run that has several.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SKIPPED = {"time_summary"}
NULL = "<NA>"  # how a null label reads when rows are matched
TOP_ROWS = 3


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    table = table[sorted(table.columns)]
    return table.sort_values(list(table.columns), na_position="first", kind="stable").reset_index(drop=True)


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
        elif not _labels(x).equals(_labels(y)):
            return f"column {column!r} differs"
    return None


def _pairs(items: Sequence[str], what: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old:
            raise ValueError(f"{what} {item!r} is not of the form {example}")
        pairs.append((old, new))
    return pairs


Scoped = dict[str, dict]  # table ("" for every table) -> what is renamed in it


def parse_renamed_columns(items: Sequence[str]) -> Scoped:
    """``[table:]old=new`` each -> {table: {old: new}}."""
    columns: Scoped = {}
    for table_old, new in _pairs(items, "renamed column", "[table:]old=new"):
        table, _, old = table_old.rpartition(":")
        if not old or not new:
            raise ValueError(f"renamed column {table_old}={new} is not of the form [table:]old=new")
        columns.setdefault(table, {})[old] = new
    return columns


def parse_renamed_values(items: Sequence[str]) -> Scoped:
    """``[table:]column:old=new`` each -> {table: {column: {old: new}}}; an empty new value is null."""
    values: Scoped = {}
    for item in items:
        where, sep, new = item.partition("=")
        parts = where.split(":")
        if not sep or len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"renamed value {item!r} is not of the form [table:]column:old=new")
        table, column, old = parts if len(parts) == 3 else ("", *parts)
        values.setdefault(table, {}).setdefault(column, {})[old] = new or None
    return values


def renamed(table: pd.DataFrame, columns: dict[str, str], values: dict[str, dict[str, str | None]]) -> pd.DataFrame:
    """A *before* table under the new names: its columns renamed, then the named values of a column replaced
    (compared as text, so ``architecture:paper=mlp`` and ``level:3=4`` both work)."""
    clash = [f"{old}={new}" for old, new in columns.items() if old in table and new in table and old != new]
    if clash:
        raise ValueError(f"renaming columns {clash} would give a table two columns of one name: scope it to a table")
    table = table.rename(columns=columns)
    for column, mapping in values.items():
        if column in table:
            text = table[column].astype(object).map(lambda v: NULL if pd.isna(v) else str(v))
            hit = text.isin(list(mapping))
            replaced = table[column].astype(object).copy()
            replaced[hit] = text[hit].map(mapping)
            table[column] = replaced
    return table


def _labels(column: pd.Series) -> pd.Series:
    """A label column as text, null as ``<NA>`` whatever its dtype (None, NaN, pd.NA)."""
    return column.astype(object).map(lambda v: NULL if pd.isna(v) else str(v)).reset_index(drop=True)


def _is_float(column: pd.Series) -> bool:
    return pd.api.types.is_float_dtype(column)


def movement(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """How far the numbers moved between two versions of one table: rows matched on the label columns (the
    shared columns that are not floats), then per shared float column the count of values that moved, the
    median and max relative change among them (|after - before| / |before|), and the rows that moved most."""
    shared = [c for c in after.columns if c in before.columns]
    floats = [c for c in shared if _is_float(before[c]) and _is_float(after[c])]
    labels = [c for c in shared if c not in floats]
    if not floats:
        return ["no float column in both tables: nothing to measure"]
    if not labels:
        return ["no label column in both tables: rows cannot be matched"]
    keyed = []
    for table in (before, after):
        table = table[labels + floats].drop_duplicates()  # a row repeated whole is one row
        key = pd.DataFrame({c: _labels(table[c]) for c in labels})
        repeated = int(key.duplicated().sum())
        if repeated:
            return [f"{repeated} rows share their labels {labels} with another row: rows cannot be matched"]
        keyed.append(pd.concat([key, table[floats].reset_index(drop=True)], axis=1))
    merged = keyed[0].merge(keyed[1], on=labels, how="outer", suffixes=(" before", " after"), indicator=True)
    matched = merged[merged["_merge"] == "both"]
    only = {side: int((merged["_merge"] == f"{side}_only").sum()) for side in ("left", "right")}
    lines = [f"rows matched on {labels}: {len(matched)} ({only['left']} only before, {only['right']} only after)"]
    for column in floats:
        x = matched[f"{column} before"].to_numpy(dtype=float)
        y = matched[f"{column} after"].to_numpy(dtype=float)
        moved = ~((x == y) | (np.isnan(x) & np.isnan(y)))
        if not moved.any():
            lines.append(f"{column}: none of {len(x)} values moved")
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.abs(y - x) / np.abs(x)
        relative[moved & (np.isnan(x) | np.isnan(y))] = np.inf  # a value that appeared or vanished
        changes = relative[moved]
        lines.append(
            f"{column}: {int(moved.sum())} of {len(x)} values moved; relative change median "
            f"{np.median(changes):.3g}, max {np.max(changes):.3g}"
        )
        top = np.argsort(-np.where(moved, relative, -1.0), kind="stable")[: min(TOP_ROWS, int(moved.sum()))]
        for i in top:
            row = matched.iloc[i]
            where = ", ".join(f"{c}={row[c]}" for c in labels)
            lines.append(f"  {where}: {x[i]:.6g} -> {y[i]:.6g} (relative change {relative[i]:.3g})")
    return lines


def only_rows(table: pd.DataFrame, only: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """``frame``'s rows whose ``column`` reads ``value`` (as text), for each (column, value) of ``only`` that it has,
    without those columns; a table without the column whole."""
    for column, value in only:
        if column in table:
            table = table[_labels(table[column]).to_numpy() == value].drop(columns=column).reset_index(drop=True)
    return table


def compare_metrics(
    before: Path,
    after: Path,
    renamed_tables: Sequence[str] = (),
    renamed_columns: Sequence[str] = (),
    renamed_values: Sequence[str] = (),
    only: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """(table, verdict) for every metric table of ``before``, each printed, with how far the numbers moved
    for a table that differs; then raises ValueError if any is not identical. ``renamed_tables``: ``old=new``
    table names; ``renamed_columns``: ``[table:]old=new`` column names and ``renamed_values``:
    ``[table:]column:old=new``, both applied to the *before* tables (the table by its before name); ``only``:
    ``column=value``, the rows of both runs compared (:func:`only_rows`)."""
    tables = dict(_pairs(renamed_tables, "renamed table", "old=new"))
    kept = _pairs(only, "only", "column=value")
    columns, values = parse_renamed_columns(renamed_columns), parse_renamed_values(renamed_values)
    paths = sorted(p for p in (before / "metrics").glob("*.parquet") if p.stem not in SKIPPED)
    if not paths:
        raise FileNotFoundError(f"no metric tables under {before / 'metrics'}")
    verdicts = []
    for path in paths:
        other = after / "metrics" / f"{tables.get(path.stem, path.stem)}.parquet"
        if not other.exists():
            verdict, details = f"missing: {other}", []
        else:
            mine = {**columns.get("", {}), **columns.get(path.stem, {})}
            mine_values = {**values.get("", {}), **values.get(path.stem, {})}
            old = only_rows(renamed(pd.read_parquet(path), mine, mine_values), kept)
            new = only_rows(pd.read_parquet(other), kept)
            problem = difference(old, new)
            verdict = problem or f"identical ({len(old)} rows)"
            details = movement(old, new) if problem else []
        verdicts.append((path.stem, verdict))
        log.info("%-24s %s", path.stem, verdict)
        print(f"{path.stem:24s} {verdict}")
        for line in details:
            print(f"{'':24s}   {line}")
    bad = [name for name, verdict in verdicts if not verdict.startswith("identical")]
    if bad:
        raise ValueError(f"results differ in {bad}")
    return verdicts
