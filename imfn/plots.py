"""Paper figures, made only from the aggregated metric Parquet files under results/."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from imfn.atomic import atomic_output  # noqa: E402

log = logging.getLogger(__name__)


def seed_summary(frame: pd.DataFrame, metric: str, by: list[str]) -> pd.DataFrame:
    """Mean and std over seeds of a sequence-level metric (rows with a null position)."""
    rows = frame[(frame["metric"] == metric) & frame["position"].isna()]
    return rows.groupby(by)["value"].agg(["mean", "std", "count"]).reset_index().fillna({"std": 0.0})


def _save(fig: plt.Figure, out: Path) -> None:
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip("."), dpi=150, bbox_inches="tight")
    plt.close(fig)
    log.info("wrote %s", out)


def _lines(summary: pd.DataFrame, x: str, curve: str, xlabel: str, curve_label: str, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    curves = sorted(summary[curve].unique())
    cmap = plt.get_cmap("viridis", max(len(curves), 2))
    for i, value in enumerate(curves):
        part = summary[summary[curve] == value].sort_values(x)
        ax.errorbar(part[x], part["mean"], yerr=part["std"], marker="o", ms=4, capsize=3,
                    color=cmap(i), label=f"{curve_label}={value}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(summary[x].unique()))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("roundtrip MSE (mean ± std over seeds)")
    n_seeds = int(summary["count"].max())
    ax.set_title(f"{title} ({n_seeds} seed{'s' if n_seeds != 1 else ''})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(curves) > 5 else 1)
    return fig


def teacher_figures(teacher_metrics: Path, figures_dir: Path) -> list[Path]:
    """Figure 2 (MSE vs d, a curve per T) and Figure 3 (MSE vs T, a curve per d), PNG and PDF."""
    summary = seed_summary(pd.read_parquet(teacher_metrics), "mse", ["dim", "T"])
    outputs = []
    for name, fig_args in {
        "fig2_mse_vs_dim": ("dim", "T", "memory size d", "T", "Fig. 2: teacher MSE vs memory size"),
        "fig3_mse_vs_T": ("T", "dim", "sequence length T", "d", "Fig. 3: teacher MSE vs sequence length"),
    }.items():
        for suffix in ("png", "pdf"):
            out = figures_dir / f"{name}.{suffix}"
            _save(_lines(summary, *fig_args), out)
            outputs.append(out)
    return outputs
