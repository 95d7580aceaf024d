"""What every table and figure shares: summaries over seeds, and files written whole or not at all."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from imfn.atomic import atomic_output
from imfn.data.source import paper_source

log = logging.getLogger(__name__)


def read_metrics(path: Path, source: str | None = None) -> pd.DataFrame:
    """A metric table's rows of one sequence source (unset: the paper's, whose results Figures 2-6 and Tables 1-2
    show; a table written before sources were a column: all rows)."""
    table = pd.read_parquet(path)
    source = source or paper_source()
    return table[table["source"] == source].reset_index(drop=True) if "source" in table else table


def seed_summary(frame: pd.DataFrame, metric: str, by: list[str]) -> pd.DataFrame:
    """Mean and std over seeds of a sequence-level metric (rows with a null position)."""
    rows = frame[(frame["metric"] == metric) & frame["position"].isna()]
    return rows.groupby(by)["value"].agg(["mean", "std", "count"]).reset_index().fillna({"std": 0.0})


def log2_axis(ax: plt.Axes, ticks, ylabel: str, xlabel: str = "sequence length T", log_y: bool = False) -> None:
    """An axis over powers of two (T or d): log2 x with those ticks written out, a log y if asked, labels, grid."""
    ax.set_xscale("log", base=2)
    if log_y:
        ax.set_yscale("log")
    ax.set_xticks(ticks)
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def save_figure(fig: plt.Figure, folder: Path, name: str) -> list[Path]:
    """``folder/name.png`` and ``.pdf``, each whole or not at all; the figure is closed."""
    paths = [folder / f"{name}.{suffix}" for suffix in ("png", "pdf")]
    for out in paths:
        with atomic_output(out) as tmp:
            fig.savefig(tmp, format=out.suffix.lstrip("."), dpi=150, bbox_inches="tight")
        log.info("wrote %s", out)
    plt.close(fig)
    return paths


def write_table(lines: list[str], out: Path) -> None:
    """A Markdown table (or any text) from its lines, whole or not at all."""
    with atomic_output(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    log.info("wrote %s", out)
