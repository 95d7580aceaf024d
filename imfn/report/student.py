"""Figures 4 and 5: the online student against its teacher, from results/metrics/student.parquet alone."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from imfn.report.common import save_figure, seed_summary


def student_figures(student_metrics: Path, figures_dir: Path) -> list[Path]:
    """Figure 4 (prefix retention: MSE over the first k frames after k updates, a panel per T) and
    Figure 5 (end-of-sequence MSE vs T), student per schedule against its teacher."""
    frame = pd.read_parquet(student_metrics)
    # the teacher's rows repeat once per student schedule: they are the same numbers
    teacher = frame[frame["model"] == "teacher"].drop_duplicates(["seed", "dim", "T", "k", "metric"])
    frame = pd.concat(
        [
            teacher.assign(curve="teacher"),
            frame[frame["model"] == "student"].assign(curve=lambda f: "student (" + f["schedule"] + ")"),
        ]
    )
    Ts = sorted(frame["T"].unique())
    n_seeds = frame["seed"].nunique()
    curves = list(dict.fromkeys(frame["curve"]))
    color = {curve: "black" if curve == "teacher" else f"C{i}" for i, curve in enumerate(curves)}
    fig4, axes = plt.subplots(1, len(Ts), figsize=(4.2 * len(Ts), 3.8), squeeze=False)
    for ax, T in zip(axes[0], Ts, strict=True):
        part = frame[(frame["T"] == T) & (frame["metric"] == "prefix_mse")]
        for curve, rows in part.groupby("curve", sort=False):
            stats = rows.groupby("k")["value"].agg(["mean", "std"]).fillna(0.0)
            ax.plot(stats.index, stats["mean"], label=curve, ls="--" if curve == "teacher" else "-", color=color[curve])
            ax.fill_between(
                stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2, color=color[curve]
            )
        ax.set_title(f"T={T}")
        ax.set_xlabel("updates k")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("MSE over the first k frames")
    axes[0][0].legend(fontsize=8)
    fig4.suptitle(f"Fig. 4: prefix retention, student vs teacher (d={frame['dim'].iloc[0]}, {n_seeds} seeds)")
    fig4.tight_layout()
    end = seed_summary(frame[frame["metric"] == "mse"].assign(position=None), "mse", ["curve", "T"])
    fig5, ax = plt.subplots(figsize=(6.4, 4.4))
    for curve, rows in end.groupby("curve", sort=False):
        rows = rows.sort_values("T")
        ax.errorbar(
            rows["T"],
            rows["mean"],
            yerr=rows["std"],
            marker="o",
            ms=4,
            capsize=3,
            label=curve,
            ls="--" if curve == "teacher" else "-",
            color=color[curve],
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(Ts)
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("end-of-sequence MSE (mean ± std over seeds)")
    ax.set_title("Fig. 5: student vs teacher at the end of the sequence")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig4, figures_dir, "fig4_prefix_retention") + save_figure(
        fig5, figures_dir, "fig5_end_of_sequence"
    )
