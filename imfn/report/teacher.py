"""The teacher's figures and tables: Figures 2-3, level health, the variant ablation; from results/metrics alone."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from imfn.report.common import save_figure, seed_summary, write_table
from imfn.report.paper import PAPER_TEACHER_MSE

log = logging.getLogger(__name__)


def _lines(summary: pd.DataFrame, x: str, curve: str, xlabel: str, curve_label: str, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    curves = sorted(summary[curve].unique())
    cmap = plt.get_cmap("viridis", max(len(curves), 2))
    for i, value in enumerate(curves):
        part = summary[summary[curve] == value].sort_values(x)
        ax.errorbar(
            part[x],
            part["mean"],
            yerr=part["std"],
            marker="o",
            ms=4,
            capsize=3,
            color=cmap(i),
            label=f"{curve_label}={value}",
        )
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
        outputs += save_figure(_lines(summary, *fig_args), figures_dir, name)
    return outputs


def health_figure(health: Path, out_dir: Path, name: str = "teacher_health") -> list[Path]:
    """Per level: unexplained variance and effective rank of the merged codes, a curve per d."""
    frame = pd.read_parquet(health)
    fig, (ax_fvu, ax_rank) = plt.subplots(1, 2, figsize=(10, 4))
    for (variant, dim), part in frame.groupby(["variant", "dim"]):
        stats = part.groupby("level").agg(
            fvu=("unexplained_variance", "mean"),
            fvu_max=("unexplained_variance", "max"),
            rank=("effective_rank", "mean"),
            collapsed=("collapsed", "any"),
        )
        label = f"d={dim}" if frame["variant"].nunique() == 1 else f"{variant} d={dim}"
        line = ax_fvu.plot(stats.index, stats["fvu"], marker="o", ms=4, label=label)[0]
        if "tree_unexplained_variance" in part:
            tree = part.groupby("level")["tree_unexplained_variance"].mean()
            ax_fvu.plot(tree.index, tree, ls=":", color=line.get_color(), label=f"{label}, tree up to level")
        ax_rank.plot(stats.index, stats["rank"] / dim, marker="o", ms=4, color=line.get_color(), label=label)
        bad = stats[stats["collapsed"]]
        ax_fvu.scatter(bad.index, bad["fvu_max"], marker="x", s=80, color="red", zorder=5)
    limit = frame["max_unexplained_variance"].iloc[0] if "max_unexplained_variance" in frame else None
    if limit is not None:
        ax_fvu.axhline(limit, color="red", ls="--", lw=1, label="collapse threshold")
    ax_fvu.set_yscale("log")
    ax_fvu.set_xlabel("level")
    ax_fvu.set_ylabel("unexplained variance")
    ax_fvu.set_title("level (solid) and tree up to it (dotted); x = collapsed")
    ax_rank.set_xlabel("level")
    ax_rank.set_ylabel("effective rank / d")
    ax_rank.set_title("effective rank of merged codes")
    for ax in (ax_fvu, ax_rank):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Teacher level health ({frame['seed'].nunique()} seeds; mean over seeds)")
    fig.tight_layout()
    return save_figure(fig, out_dir, name)


def ablation_summary(ablation: Path, pca: Path) -> tuple[pd.DataFrame, int]:
    """Mean/std over seeds of MSE per (variant, T) at the ablation's d, with per-frame PCA as a variant."""
    teacher = pd.read_parquet(ablation)
    dim = int(teacher["dim"].max())
    reference = pd.read_parquet(pca)
    reference = reference[
        (reference["dim"] == dim)
        & reference["seed"].isin(teacher["seed"].unique())
        & reference["T"].isin(teacher["T"].unique())
    ]
    rows = pd.concat([teacher[teacher["dim"] == dim], reference.assign(variant="per-frame PCA")])
    return seed_summary(rows, "mse", ["variant", "T"]), dim


def ablation_report(ablation: Path, ablation_health: Path, pca: Path, table_out: Path, figure_dir: Path) -> None:
    summary, dim = ablation_summary(ablation, pca)
    health = pd.read_parquet(ablation_health)
    Ts = sorted(summary["T"].unique())
    order = list(dict.fromkeys(pd.read_parquet(ablation)["variant"])) + ["per-frame PCA"]
    n_seeds = int(summary["count"].max())
    lines = [
        f"# Teacher ablation: roundtrip MSE at d = {dim} (mean ± std over {n_seeds} seeds)",
        "",
        "| variant | " + " | ".join(f"T={T}" for T in Ts) + " | collapsed levels |",
        "|---|" + "---|" * (len(Ts) + 1),
    ]
    for variant in order:
        part = summary[summary["variant"] == variant].set_index("T")
        cells = [f"{part.loc[T, 'mean']:.5f} ± {part.loc[T, 'std']:.5f}" if T in part.index else "" for T in Ts]
        if variant == "per-frame PCA":
            collapsed = "n/a"
        else:
            mine = health[health["variant"] == variant]
            bad = mine[mine["collapsed"]]
            collapsed = ", ".join(f"L{r.level} (seed {r.seed})" for r in bad.itertuples()) or "none"
            tree = mine[mine["tree_collapsed"]].groupby("seed")["level"].min()
            if len(tree):
                collapsed += "; tree from " + ", ".join(f"L{level} (seed {seed})" for seed, level in tree.items())
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {collapsed} |")
    paper = [f"{PAPER_TEACHER_MSE[T]:.5f}" if T in PAPER_TEACHER_MSE and dim == 1024 else "" for T in Ts]
    lines.append("| paper (reported, full budget) | " + " | ".join(paper) + " | |")
    lines += [
        "",
        "Collapsed levels: a level whose own roundtrip explains less than 10% of its input's variance;",
        "'tree from Lk': the tree up to level k explains less than 10% of the leaves' variance",
        "(the product over levels of the share each keeps).",
        "",
        "Per-frame PCA keeps k = d // T components per frame (the same d numbers as the root), fit on",
        "the seed's training split and evaluated on the same held-out sequences. The paper reports",
        "only T = 128 at d = 1024 numerically (Table 1); its Figures 2-3 values were lost.",
    ]
    write_table(lines, table_out)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for variant in order:
        part = summary[summary["variant"] == variant].sort_values("T")
        style = dict(color="black", ls="--") if variant == "per-frame PCA" else {}
        ax.errorbar(part["T"], part["mean"], yerr=part["std"], marker="o", ms=4, capsize=3, label=variant, **style)
    if dim == 1024:
        for T, value in PAPER_TEACHER_MSE.items():
            ax.scatter([T], [value], marker="*", s=150, color="red", zorder=5, label="paper (Table 1)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(Ts)
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("roundtrip MSE (mean ± std over seeds)")
    ax.set_title(f"Teacher variants vs per-frame PCA at equal memory (d={dim})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, figure_dir, "teacher_ablation_mse_vs_T")
