"""The teacher's figures and tables: Figures 2-3, level health, the variant ablation, the sweep of the paper
variant's lost values; from results/metrics alone."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from imfn.report.common import log2_axis, read_metrics, save_figure, seed_summary, write_table
from imfn.report.published import PAPER_TEACHER_MSE

log = logging.getLogger(__name__)


def _lines(
    summary: pd.DataFrame, limit: pd.DataFrame, x: str, curve: str, xlabel: str, curve_label: str, title: str
) -> plt.Figure:
    """Left: the teacher's MSE (a coloured curve per ``curve`` value) on log axes, so that every T shows, beside the
    per-frame autoencoder at the same memory (grey, dashed: the limit, one style for all). Right: the teacher's
    ratio to that limit at each point (1: the limit reached)."""
    fig, (ax, ratio_ax) = plt.subplots(1, 2, figsize=(11.5, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    curves = sorted(summary[curve].unique())
    cmap = plt.get_cmap("viridis", max(len(curves), 2))
    for i, value in enumerate(curves):
        part = summary[summary[curve] == value].sort_values(x)
        ax.errorbar(part[x], part["mean"], yerr=part["std"], marker="o", ms=4, capsize=3, color=cmap(i),
                    label=f"{curve_label}={value}")  # fmt: skip
        reference = limit[limit[curve] == value].sort_values(x)
        ax.plot(reference[x], reference["mean"], ls="--", lw=0.9, marker="x", ms=4, color="0.55", zorder=1,
                label="per-frame autoencoder, same memory (the limit)" if i == 0 else None)  # fmt: skip
        both = part.merge(reference, on=[x, curve], suffixes=("", "_limit"))
        ratio_ax.plot(both[x], both["mean"] / both["mean_limit"], marker="o", ms=4, color=cmap(i))
    xs = sorted(summary[x].unique())
    log2_axis(ax, xs, "roundtrip MSE (mean ± std over seeds)", xlabel, log_y=True)
    log2_axis(ratio_ax, xs, "teacher / per-frame autoencoder", xlabel)
    ratio_ax.axhline(1.0, color="0.55", ls="--", lw=0.9)
    ratio_ax.set_title("ratio to the limit at equal memory")
    n_seeds = int(summary["count"].max())
    ax.set_title(f"{title} ({n_seeds} seed{'s' if n_seeds != 1 else ''})")
    handles, labels = ax.get_legend_handles_labels()  # one legend below both panels: none covers a curve
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 * (1 + (len(labels) - 1) // 5), 1, 1))
    return fig


def teacher_figures(teacher_metrics: Path, autoencoder_metrics: Path, figures_dir: Path) -> list[Path]:
    """Figure 2 (MSE vs d, a curve per T) and Figure 3 (MSE vs T, a curve per d), PNG and PDF, each
    teacher curve beside the per-frame autoencoder at the same memory."""
    summary = seed_summary(read_metrics(teacher_metrics), "mse", ["dim", "T"])
    limit = seed_summary(read_metrics(autoencoder_metrics), "mse", ["dim", "T"])
    outputs = []
    for name, fig_args in {
        "fig2_mse_vs_dim": ("dim", "T", "memory size d", "T", "Fig. 2: teacher MSE vs memory size"),
        "fig3_mse_vs_T": ("T", "dim", "sequence length T", "d", "Fig. 3: teacher MSE vs sequence length"),
    }.items():
        outputs += save_figure(_lines(summary, limit, *fig_args), figures_dir, name)
    return outputs


def health_figure(health: Path, out_dir: Path, name: str = "teacher_health") -> list[Path]:
    """Per level: unexplained variance and effective rank of the merged codes, a curve per d."""
    table = read_metrics(health)
    fig, (ax_fvu, ax_rank) = plt.subplots(1, 2, figsize=(10, 4))
    for (variant, dim), part in table.groupby(["variant", "dim"]):
        stats = part.groupby("level").agg(
            fvu=("unexplained_variance", "mean"),
            fvu_max=("unexplained_variance", "max"),
            rank=("effective_rank", "mean"),
            collapsed=("collapsed", "any"),
        )
        label = f"d={dim}" if table["variant"].nunique() == 1 else f"{variant} d={dim}"
        line = ax_fvu.plot(stats.index, stats["fvu"], marker="o", ms=4, label=label)[0]
        if "tree_unexplained_variance" in part:
            tree = part.groupby("level")["tree_unexplained_variance"].mean()
            ax_fvu.plot(tree.index, tree, ls=":", color=line.get_color(), label=f"{label}, tree up to level")
        ax_rank.plot(stats.index, stats["rank"] / dim, marker="o", ms=4, color=line.get_color(), label=label)
        bad = stats[stats["collapsed"]]
        ax_fvu.scatter(bad.index, bad["fvu_max"], marker="x", s=80, color="red", zorder=5)
    limit = table["max_unexplained_variance"].iloc[0] if "max_unexplained_variance" in table else None
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
    fig.suptitle(f"Teacher level health ({table['seed'].nunique()} seeds; mean over seeds)")
    fig.tight_layout()
    return save_figure(fig, out_dir, name)


REFERENCES = {"autoencoder": "per-frame autoencoder", "pca": "per-frame PCA"}


def reference_summary(teacher: pd.DataFrame, references: dict[str, list[Path]]) -> pd.DataFrame:
    """Mean/std over seeds of MSE per (dim, curve, T): a curve per teacher variant (named by it) and per
    per-frame reference (autoencoder, PCA; each from its roundtrip files, named by :data:`REFERENCES`), on the
    teacher rows' seeds, d and T."""
    rows = [teacher.assign(curve=teacher["variant"])]
    for model, paths in references.items():
        reference = pd.concat([read_metrics(path) for path in paths])
        reference = reference[
            reference["dim"].isin(teacher["dim"].unique())
            & reference["seed"].isin(teacher["seed"].unique())
            & reference["T"].isin(teacher["T"].unique())
        ]
        rows.append(reference.assign(curve=REFERENCES[model]))
    return seed_summary(pd.concat(rows), "mse", ["dim", "curve", "T"])


def _collapsed(health: pd.DataFrame, variant: str, dim: int) -> str:
    mine = health[(health["variant"] == variant) & (health["dim"] == dim)]
    bad = mine[mine["collapsed"]]
    text = ", ".join(f"L{r.level} (seed {r.seed})" for r in bad.itertuples()) or "none"
    tree = mine[mine["tree_collapsed"]].groupby("seed")["level"].min()
    if len(tree):
        text += "; tree from " + ", ".join(f"L{level} (seed {seed})" for seed, level in tree.items())
    return text


def ablation_report(
    ablation: Path, ablation_health: Path, references: dict[str, Path], table_out: Path, figure_dir: Path
) -> None:
    """Per d: every variant's roundtrip MSE beside the per-frame references and the paper, then each
    variant's ratio to the per-frame autoencoder (the limit at equal memory)."""
    summary = reference_summary(read_metrics(ablation), {m: [path] for m, path in references.items()})
    health = read_metrics(ablation_health)
    Ts = sorted(summary["T"].unique())
    dims = sorted(summary["dim"].unique(), reverse=True)
    variants = list(dict.fromkeys(read_metrics(ablation)["variant"]))
    order = variants + [REFERENCES[m] for m in references]
    n_seeds = int(summary["count"].max())
    header = "| " + " | ".join(f"T={T}" for T in Ts) + " |"
    lines = [f"# Teacher ablation: roundtrip MSE (mean ± std over {n_seeds} seeds)", ""]
    for dim in dims:
        table = summary[summary["dim"] == dim]
        lines += [f"## d = {dim}", "", "| variant " + header + " collapsed levels |", "|---|" + "---|" * (len(Ts) + 1)]
        for variant in order:
            part = table[table["curve"] == variant].set_index("T")
            cells = [f"{part.loc[T, 'mean']:.5f} ± {part.loc[T, 'std']:.5f}" if T in part.index else "" for T in Ts]
            collapsed = _collapsed(health, variant, dim) if variant in variants else "n/a"
            lines.append(f"| {variant} | " + " | ".join(cells) + f" | {collapsed} |")
        paper = [f"{PAPER_TEACHER_MSE[T]:.5f}" if T in PAPER_TEACHER_MSE and dim == 1024 else "" for T in Ts]
        lines.append("| paper (reported, full budget) | " + " | ".join(paper) + " | |")
        limit = table[table["curve"] == REFERENCES["autoencoder"]].set_index("T")["mean"]
        if not limit.empty:
            ratio = f"Ratio to the per-frame autoencoder at d = {dim} (1.00 = the limit; <= 1.10 = within 10%):"
            lines += ["", ratio, ""]
            lines += ["| variant " + header, "|---|" + "---|" * len(Ts)]
            for variant in [*variants, *(REFERENCES[m] for m in references if m != "autoencoder")]:
                part = table[table["curve"] == variant].set_index("T")["mean"]
                cells = [f"{part[T] / limit[T]:.2f}" if T in part.index and T in limit.index else "" for T in Ts]
                lines.append(f"| {variant} | " + " | ".join(cells) + " |")
            if dim == 1024:
                cells = [
                    f"{PAPER_TEACHER_MSE[T] / limit[T]:.2f}" if T in PAPER_TEACHER_MSE and T in limit.index else ""
                    for T in Ts
                ]
                lines.append("| paper (reported) | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "Collapsed levels: a level whose own roundtrip explains less than 10% of its input's variance;",
        "'tree from Lk': the tree up to level k explains less than 10% of the leaves' variance",
        "(the product over levels of the share each keeps).",
        "",
        "The per-frame references keep k = d // T numbers of every frame (the same d numbers as the root): the",
        "autoencoder (per-frame PCA plus residual MLPs, config reference.autoencoder) and PCA, both fit on the",
        "seed's training split and evaluated on the same held-out sequences. The frames are independent digits,",
        "so a tree can beat the autoencoder only by giving hard frames more of the memory (method.md 3c). The",
        "paper reports only T = 128 at d = 1024 numerically (Table 1); its Figures 2-3 values were lost.",
    ]
    write_table(lines, table_out)
    fig, axes = plt.subplots(1, len(dims), figsize=(6.4 * len(dims), 4.4), squeeze=False)
    for ax, dim in zip(axes[0], dims, strict=True):
        table = summary[summary["dim"] == dim]
        for variant in order:
            part = table[table["curve"] == variant].sort_values("T")
            style = {"per-frame PCA": dict(color="gray", ls=":"), "per-frame autoencoder": dict(color="black", ls="--")}
            ax.errorbar(
                part["T"], part["mean"], yerr=part["std"], marker="o", ms=4, capsize=3, label=variant,
                **style.get(variant, {}),
            )  # fmt: skip
        if dim == 1024:
            for T, value in PAPER_TEACHER_MSE.items():
                ax.scatter([T], [value], marker="*", s=150, color="red", zorder=5, label="paper (Table 1)")
        log2_axis(ax, Ts, "roundtrip MSE (mean ± std over seeds)", log_y=True)
        ax.set_title(f"Teacher variants vs the per-frame references (d={dim})")
        ax.legend(fontsize=8)
    save_figure(fig, figure_dir, "teacher_ablation_mse_vs_T")


def paper_sweep_report(
    sweep: Path, sweep_health: Path, references: dict[str, list[Path]], table_out: Path, figure_dir: Path
) -> None:
    """The paper variant with its lost values changed (one teacher variant each, one seed and d): roundtrip MSE
    per T beside the per-frame references (``references``: their roundtrip files for that seed), and how much of
    its input's variance each level loses."""
    summary = reference_summary(read_metrics(sweep), references)
    health = read_metrics(sweep_health)
    (dim,) = summary["dim"].unique()
    seeds = sorted(health["seed"].unique())
    Ts = sorted(summary["T"].unique())
    levels = sorted(health["level"].unique())
    variants = list(dict.fromkeys(read_metrics(sweep)["variant"]))
    lines = [
        f"# The paper variant's lost values: roundtrip MSE (d = {dim}, seed {', '.join(map(str, seeds))})",
        "",
        "Each row is the `paper` variant with the lost values that row's variant changes (config `teacher.variants`).",
        "",
        "| variant | " + " | ".join(f"T={T}" for T in Ts) + " | collapsed levels |",
        "|---|" + "---|" * (len(Ts) + 1),
    ]
    for variant in variants + [REFERENCES[m] for m in references]:
        part = summary[summary["curve"] == variant].set_index("T")["mean"]
        cells = [f"{part[T]:.5f}" if T in part.index else "" for T in Ts]
        collapsed = _collapsed(health, variant, dim) if variant in variants else "n/a"
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {collapsed} |")
    lines += [
        "",
        "Unexplained variance of each level's own roundtrip (its input's variance it loses; 1 = all of it):",
        "",
        "| variant | " + " | ".join(f"L{level}" for level in levels) + " |",
        "|---|" + "---|" * len(levels),
    ]
    for variant in variants:
        part = health[health["variant"] == variant].groupby("level")["unexplained_variance"].mean()
        cells = [f"{part[level]:.3f}" if level in part.index else "" for level in levels]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The budget (epochs per level, bank size) is the config's `teacher.training` and `teacher.bank_size`: the",
        "paper's (50 epochs per level, the full bank) in config/config.yaml. Predicting the mean image gives about",
        "0.067 (method.md 3b).",
    ]
    write_table(lines, table_out)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for variant in variants + [REFERENCES[m] for m in references]:
        part = summary[summary["curve"] == variant].sort_values("T")
        style = {"per-frame PCA": dict(color="gray", ls=":"), "per-frame autoencoder": dict(color="black", ls="--")}
        ax.plot(part["T"], part["mean"], marker="o", ms=4, label=variant, **style.get(variant, {}))
    log2_axis(ax, Ts, "roundtrip MSE", log_y=True)
    ax.set_title(f"The paper variant's lost values (d={dim})")
    ax.legend(fontsize=8)
    save_figure(fig, figure_dir, "paper_sweep_mse_vs_T")
