"""Where the pipeline's time went: Snakemake's per-job benchmark files as one table and one figure.

Each rule with a ``benchmark:`` writes one TSV per job (one row per repeat: ``s``, ``max_rss`` in
MB, ``cpu_time``, ...). The Snakefile passes each rule's benchmark pattern (``rule=pattern``, e.g.
``train_sweeper=benchmarks/mnist/seed{seed}/d{dim}/{variant}/train_sweeper_L{level}.tsv``); a file
matching a pattern belongs to that rule and the pattern names its wildcards. A bare rule name
matches files whose name starts with it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from imfn.atomic import atomic_output

log = logging.getLogger(__name__)

MEASURES = ["s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out", "mean_load", "cpu_time"]


def _pattern_regex(pattern: str) -> re.Pattern:
    """``a/seed{seed}/b_L{level}.tsv`` -> a regex matching the end of a path, one group per wildcard."""
    parts, pos = [], 0
    for match in re.finditer(r"\{(\w+)(?:,[^{}]*(?:\{[^{}]*\}[^{}]*)*)?\}", pattern):
        parts.append(re.escape(pattern[pos : match.start()]))
        name = match.group(1)
        parts.append(f"(?P={name})" if f"(?P<{name}>" in "".join(parts) else f"(?P<{name}>[^/]+?)")
        pos = match.end()
    parts.append(re.escape(pattern[pos:]))
    return re.compile(r"(?:^|/)" + "".join(parts) + "$")


def _matchers(rules: Iterable[str]) -> list[tuple[str, re.Pattern]]:
    """Rule patterns first (longest, i.e. most specific, first), then bare rule names (longest first)."""
    patterns, names = [], []
    for entry in rules:
        name, _, pattern = entry.partition("=")
        if pattern:
            patterns.append((len(pattern), name, _pattern_regex(pattern)))
        else:
            names.append((len(name), name, re.compile(rf"(?:^|/){re.escape(name)}(?:_(?P<rest>[^/]*))?\.tsv$")))
    return [(name, regex) for _, name, regex in sorted(patterns, reverse=True) + sorted(names, reverse=True)]


def _rule_of(path: str, matchers: list[tuple[str, re.Pattern]]) -> tuple[str | None, str]:
    for name, regex in matchers:
        match = regex.search(path)
        if match:
            values = {k: v for k, v in match.groupdict().items() if v is not None}
            return name, ",".join(f"{k}={v}" for k, v in values.items())
    return None, ""


def read_benchmarks(root: str | os.PathLike, rules: Iterable[str] = ()) -> pd.DataFrame:
    """One row per job (repeats averaged): ``rule``, ``job``, ``wildcards`` and Snakemake's measures."""
    root = Path(root)
    matchers = _matchers(rules)
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        table = pd.read_csv(tsv, sep="\t", na_values=["NA", "-"])
        if table.empty:
            continue
        rel = tsv.relative_to(root).with_suffix("")
        rule, wildcards = _rule_of(tsv.as_posix(), matchers)
        if rule is None:  # no known rule: name it by the file, its folders as wildcards
            rule, wildcards = rel.name, "/".join(rel.parent.parts)
        measures = {m: pd.to_numeric(table[m], errors="coerce").mean() for m in MEASURES if m in table}
        rows.append({"rule": rule, "job": rel.as_posix(), "wildcards": wildcards, "repeats": len(table), **measures})
    columns = ["rule", "job", "wildcards", "repeats", *MEASURES]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({m: "float64" for m in MEASURES}).sort_values(["rule", "job"], ignore_index=True)


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    """Jobs, total and longest wall time, peak memory per rule, largest total first."""
    summary = jobs.groupby("rule").agg(
        jobs=("job", "size"), total_s=("s", "sum"), max_s=("s", "max"), max_rss_mb=("max_rss", "max")
    )
    summary["share"] = summary["total_s"] / summary["total_s"].sum()
    return summary.sort_values("total_s", ascending=False)


def time_figure(jobs: pd.DataFrame, out: str | os.PathLike) -> None:
    """Bars of total job time per rule (with job counts and shares) beside each rule's peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = per_rule(jobs).iloc[::-1]  # largest at the top of a barh
    height = 1.2 + 0.45 * max(len(summary), 1)
    fig, (ax_time, ax_mem) = plt.subplots(
        1, 2, figsize=(11, height), sharey=True, gridspec_kw={"width_ratios": [2, 1]}, layout="constrained"
    )
    labels = list(summary.index)
    ax_time.barh(labels, summary["total_s"], color="tab:blue")
    for y, row in enumerate(summary.itertuples()):
        ax_time.annotate(
            f" {row.total_s:.0f} s, {row.jobs} job{'s' if row.jobs != 1 else ''}, {row.share:.0%}",
            (row.total_s, y),
            va="center",
            fontsize=8,
        )
    ax_time.set_xlabel("total wall time of the rule's jobs (s)")
    ax_time.set_xlim(0, max(summary["total_s"].max(), 1e-9) * 1.45)
    ax_mem.barh(labels, summary["max_rss_mb"].fillna(0), color="tab:gray")
    ax_mem.set_xlabel("peak resident memory of one job (MB)")
    total = jobs["s"].sum()
    fig.suptitle(f"Where the time went: {len(jobs)} benchmarked jobs, {total / 60:.1f} min of job wall time")
    out = Path(out)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=120, format=out.suffix.lstrip("."))
    plt.close(fig)


def time_summary(
    benchmarks: str | os.PathLike, rules: Iterable[str], out: str | os.PathLike, figure: str | os.PathLike
) -> pd.DataFrame:
    """Write the per-job table (Parquet) and the figure; log the per-rule totals."""
    jobs = read_benchmarks(benchmarks, rules)
    if jobs.empty:
        raise FileNotFoundError(f"no benchmark files under {benchmarks}")
    with atomic_output(out) as tmp:
        jobs.to_parquet(tmp, index=False)
    time_figure(jobs, figure)
    log.info("time per rule:\n%s", per_rule(jobs).to_string(float_format=lambda v: f"{v:.2f}"))
    return jobs
