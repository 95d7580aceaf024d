"""One sequence source's results beside every reference at equal memory: a table per d, MSE against T (Figure 3's
shape, with the references), and MSE per position; from results/metrics alone.

The references store as many numbers per clip as the memory d: the per-frame autoencoder and per-frame PCA keep
k = d // T numbers per frame, clip PCA the d principal components of the whole T-frame clip (the best linear code of
the sequence), the mean frame none. The compressors (Transformer, Mamba) are trained at one (d, T). Where frames
share content (a source whose ``frames_share_content``), the per-frame autoencoder is not the limit of a memory: a
memory that keeps each digit once and its motion needs the same numbers at every T.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from imfn.data.source import source as sequence_source
from imfn.report.common import log2_axis, save_figure, seed_summary, write_table

log = logging.getLogger(__name__)

# model column -> what the report calls it, in the order it lists them; the teacher rows are named by variant
REFERENCES = {
    "autoencoder": "per-frame autoencoder, k = d // T",
    "pca": "per-frame PCA, k = d // T",
    "clip-pca": "clip PCA, d components",
    "mean-frame": "mean frame",
    "transformer": "Transformer compressor",
    "mamba": "Mamba compressor",
}
STYLE = {
    "autoencoder": dict(ls="--", marker="x"),
    "pca": dict(ls=":", marker="+"),
    "clip-pca": dict(ls="-.", marker="s", mfc="none"),
    "mean-frame": dict(ls="-", lw=0.8, marker=""),
    "transformer": dict(ls="", marker="^", ms=8),
    "mamba": dict(ls="", marker="v", ms=8),
}
RATIO_TO = ("autoencoder", "clip-pca")  # the teacher's ratios in the table


def curves(metrics: pd.DataFrame, source: str) -> pd.DataFrame:
    """The rows of ``source`` with a ``curve`` column: ``IMFN <variant>`` for the teacher, the model otherwise."""
    rows = metrics[metrics["source"] == source]
    teacher = rows["model"] == "imfn-teacher"
    curve = rows["model"].where(~teacher, "IMFN " + rows["variant"].astype(str))
    return rows.assign(curve=curve)


def _order(names) -> list[str]:
    teachers = sorted(name for name in names if name.startswith("IMFN "))
    return teachers + [name for name in REFERENCES if name in set(names)]


def _label(curve: str) -> str:
    return REFERENCES.get(curve, curve)


def _fmt(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.5f}"


def source_table(summary: pd.DataFrame, source: str) -> list[str]:
    """Per d: every curve's mean MSE over seeds against T, then each teacher's ratio to the per-frame autoencoder and
    to clip PCA, and its growth from T = 8 (or its smallest T) to its largest."""
    lines = [f"# `{source}`: the tree beside every reference at equal memory", ""]
    lines.append(
        "Held-out roundtrip MSE per pixel, mean over seeds (their count in brackets). The per-frame codes keep "
        "k = d // T numbers per frame; clip PCA keeps the d principal components of the whole clip; the "
        "compressors are trained at one (d, T)."
    )
    if sequence_source(source).frames_share_content:
        lines.append(
            "On this source frames share content, so the per-frame autoencoder is **not** the limit at "
            "equal memory: it is what a memory gets by ignoring time."
        )
    for dim, part in summary.groupby("dim"):
        Ts = sorted(part["T"].unique())
        lines += [
            "",
            f"## d = {dim}",
            "",
            "| model | " + " | ".join(f"T = {T}" for T in Ts) + " |",
            "|---|" + "---|" * len(Ts),
        ]
        table = part.pivot_table(index="curve", columns="T", values="mean")
        counts = part.groupby("curve")["count"].max()
        for curve in _order(table.index):
            cells = " | ".join(_fmt(table.loc[curve].get(T)) for T in Ts)
            lines.append(f"| {_label(curve)} ({counts[curve]}) | {cells} |")
        for curve in _order(table.index):
            if not curve.startswith("IMFN "):
                continue
            for reference in RATIO_TO:
                if reference in table.index:
                    ratio = table.loc[curve] / table.loc[reference]
                    cells = " | ".join("" if pd.isna(ratio.get(T)) else f"{ratio.get(T):.2f}" for T in Ts)
                    lines.append(f"| {curve} / {_label(reference)} | {cells} |")
            mine = table.loc[curve].dropna()
            if len(mine) > 1:
                first = 8 if 8 in mine.index else mine.index.min()
                last = mine.index.max()
                lines.append(
                    f"| {curve}: growth T = {first} -> {last} | {mine[last] / mine[first]:.2f}x |"
                    + " |" * (len(Ts) - 1)
                )
    return lines


def _colours(names) -> dict:
    """One colour per curve, the same in every figure of the report: the teachers first, then the references."""
    teachers = [c for c in _order(names) if c.startswith("IMFN ")]
    return {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(teachers + list(REFERENCES))}


def mse_vs_T(summary: pd.DataFrame, source: str) -> plt.Figure:
    """One panel per d: MSE against T for every curve (the teacher solid, the references styled by kind)."""
    dims = sorted(summary["dim"].unique())
    fig, axes = plt.subplots(1, len(dims), figsize=(6.2 * len(dims), 4.4), squeeze=False)
    colours = _colours(summary["curve"].unique())
    for ax, dim in zip(axes[0], dims, strict=True):
        part = summary[summary["dim"] == dim]
        for curve in _order(part["curve"].unique()):
            line = part[part["curve"] == curve].sort_values("T")
            style = STYLE.get(curve, dict(ls="-", marker="o", lw=2))
            style = {"ms": 4, **style}
            ax.errorbar(
                line["T"], line["mean"], yerr=line["std"], capsize=2, color=colours[curve], label=_label(curve), **style
            )
        log2_axis(ax, sorted(part["T"].unique()), "held-out MSE (mean ± std over seeds)", log_y=True)
        ax.set_title(f"d = {dim}")
        ax.legend(fontsize=7)
    fig.suptitle(f"{source}: MSE against sequence length at equal memory")
    fig.tight_layout()
    return fig


def per_position(rows: pd.DataFrame, source: str) -> plt.Figure | None:
    """MSE at each frame position, per curve, for every (d, T) of the largest T <= 32 and the largest T."""
    positioned = rows[(rows["metric"] == "mse") & rows["position"].notna()]
    Ts = sorted(positioned["T"].unique())
    if not Ts:
        return None
    shown = sorted({max([T for T in Ts if T <= 32] or Ts[:1]), Ts[-1]})
    dims = sorted(positioned["dim"].unique())
    fig, axes = plt.subplots(len(dims), len(shown), figsize=(6 * len(shown), 3.4 * len(dims) + 0.8), squeeze=False)
    colours, drawn = _colours(positioned["curve"].unique()), {}
    for r, dim in enumerate(dims):
        for c, T in enumerate(shown):
            ax = axes[r, c]
            part = positioned[(positioned["dim"] == dim) & (positioned["T"] == T)]
            mean = part.groupby(["curve", "position"])["value"].mean().reset_index()
            for curve in _order(mean["curve"].unique()):
                line = mean[mean["curve"] == curve]
                style = STYLE.get(curve, dict(ls="-", lw=2))
                # a line for every curve: the compressors' style is markers alone, too sparse for 64 positions
                ls = style.get("ls") or ":"
                (drawn[curve],) = ax.plot(line["position"], line["value"], color=colours[curve], ls=ls,
                                          lw=style.get("lw", 1.2))  # fmt: skip
            ax.set_yscale("log")
            ax.set_xlabel("frame position")
            ax.set_ylabel("MSE (mean over seeds)")
            ax.set_title(f"d = {dim}, T = {T}")
            ax.grid(True, alpha=0.3)
    names = _order(drawn)  # one legend below the panels, of the curves drawn: none covers a curve
    fig.legend([drawn[n] for n in names], [_label(n) for n in names], loc="lower center", ncol=min(len(names), 4),
               fontsize=8, frameon=False)  # fmt: skip
    fig.suptitle(f"{source}: MSE per frame position")
    fig.tight_layout(rect=(0, 0.12 if len(names) > 4 else 0.07, 1, 1))
    return fig


def source_report(metrics: list[Path], source: str, table_out: Path, figure_dir: Path) -> list[Path]:
    """The table and figures of ``source`` from metric tables (rows of every source; this one's are used)."""
    rows = curves(pd.concat([pd.read_parquet(path) for path in metrics], ignore_index=True), source)
    if rows.empty:
        raise ValueError(f"the metric tables {[str(p) for p in metrics]} hold no rows of source {source!r}")
    summary = seed_summary(rows, "mse", ["dim", "curve", "T"])
    write_table(source_table(summary, source), table_out)
    outputs = [table_out, *save_figure(mse_vs_T(summary, source), figure_dir, f"{source}_mse_vs_T")]
    figure = per_position(rows, source)
    if figure is not None:
        outputs += save_figure(figure, figure_dir, f"{source}_per_position")
    return outputs


STRIP_FRAMES = (1, 8, 16, 24, 32)  # 1-based positions shown, as the strip (capped at T)


def strip_figure(
    sequences,
    T: int,
    teachers: list[Path],
    autoencoder: Path | None,
    pca: Path,
    fit_clips: int,
    compressors: list[Path],
    out_dir: Path,
) -> list[Path]:
    """The first held-out sequence of length T, frames ``STRIP_FRAMES``, above each model's reconstruction: every
    teacher cell in ``teachers`` (a folder results/<source>/seed<s>/d<d>/<variant> with its sweepers), the
    per-frame autoencoder and per-frame PCA (the frame PCA ``pca``) at k = d // T, clip PCA at d components (fit
    as the evaluation fits it, on ``fit_clips`` training clips), and the compressors trained at this T."""
    import torch

    from imfn.models.compressors import load_compressor
    from imfn.models.frame_autoencoder import load_frame_autoencoder
    from imfn.models.pca import fit_pca, load_frame_pca, pca_roundtrip
    from imfn.models.teacher import Teacher
    from imfn.models.tree import depth_for

    frames = sequences.draw_float("test", 0, 1, T)  # (1, T, pixels): held-out sequence 0, which every model saw
    rows, dim = [("original", frames)], None
    with torch.no_grad():
        for cell in teachers:
            paths = [cell / f"sweeper_L{level}.pt" for level in range(depth_for(T))]
            teacher = Teacher.load_for(T, paths)
            dim = teacher.codec.config.dim
            rows.append((f"IMFN {cell.name}", teacher.roundtrip(frames)))
        if dim is None:
            raise ValueError("the strip needs at least one teacher cell")
        k = dim // T
        if autoencoder is not None:
            rows.append((f"per-frame autoencoder (k={k})", load_frame_autoencoder(autoencoder)(frames)))
        mean, basis = load_frame_pca(pca, sequences)
        rows.append((f"per-frame PCA (k={k})", pca_roundtrip(frames, mean, basis, k)))
        clips = torch.from_numpy(sequences.draw("train", 0, fit_clips, T)).flatten(1)
        clip_pca = fit_pca(clips)
        kept = min(dim, clip_pca.rank)
        rows.append((f"clip PCA ({kept})", clip_pca.reconstruct(frames, kept)))
        for path in compressors:
            model = load_compressor(path)
            rows.append((f"{REFERENCES[model.architecture]}", model(frames)))
    positions = sorted({min(p, T) - 1 for p in STRIP_FRAMES})  # a shorter clip: its last frame stands for the rest
    height, width = sequences.frame_shape.height, sequences.frame_shape.width
    fig, axes = plt.subplots(
        len(rows), len(positions), figsize=(1.1 * len(positions) + 2.4, 1.1 * len(rows)), squeeze=False
    )
    for r, (label, sequence) in enumerate(rows):
        mse = ((sequence - frames) ** 2).mean().item()
        for c, t in enumerate(positions):
            ax = axes[r, c]
            ax.imshow(sequence[0, t].reshape(height, width).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {t + 1}", fontsize=8)
        text = label if r == 0 else f"{label}\nMSE {mse:.4f}"
        axes[r, 0].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{sequences.source}: held-out sequence 0 of T = {T} (seed {sequences.seed}, d = {dim})", fontsize=9)
    return save_figure(fig, out_dir, f"{sequences.source}_strip")
