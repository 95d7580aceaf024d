"""The compressor comparison (method.md section 5): Table 1, Table 2 and Figure 6.

- Table 1: the IMFN teacher vs the Transformer and Mamba compressors vs the per-frame references
  (autoencoder and PCA, k = d // T numbers per frame) at one (T, d), MSE / PSNR / SSIM as mean ± std
  over seeds, from the metric Parquet files only.
- Table 2: parameter counts of the paper-size models, counted on instantiated modules
  (``param_counts``, written once to Parquet) next to the counts the paper reports.
- Figure 6: one held-out sequence, originals on top and a row per model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from imfn.atomic import atomic_output
from imfn.report.common import read_metrics, write_table
from imfn.report.published import PAPER_PARAMS, PAPER_TABLE1

log = logging.getLogger(__name__)

DISPLAY = {
    "imfn-teacher": "IMFN teacher",
    "transformer": "Transformer",
    "mamba": "Mamba",
    "autoencoder": "per-frame autoencoder (the limit)",
    "pca": "per-frame PCA",
}
FIGURE6_FRAMES = 16


def param_counts(out: Path) -> None:
    """Instantiate the paper-size models (d = 1024, T = 128, 9 teacher levels) and count parameters."""
    from imfn.data.source import paper_source, source
    from imfn.models.compressors import (
        MambaCompressor,
        MambaConfig,
        TransformerCompressor,
        TransformerConfig,
    )
    from imfn.models.layers import parameter_count
    from imfn.models.teacher import teacher_parameter_count

    frame_shape = source(paper_source()).frame_shape
    rows = [
        {
            "model": "imfn-teacher",
            "setup": "paper variant (mlp architecture), d=1024, 9 levels",
            "params": teacher_parameter_count(1024, 9, frame_shape, 1024, None, "mlp"),
        }
    ]
    for name, build in (
        ("transformer", lambda: TransformerCompressor(TransformerConfig(1024, 128, frame_shape))),
        ("mamba", lambda: MambaCompressor(MambaConfig(1024, 128, frame_shape), use_kernels=False)),
    ):
        with torch.device("meta"):  # shapes only: no memory, no initialization
            model = build()
        rows.append({"model": name, "setup": "paper size, d=1024, T=128", "params": parameter_count(model)})
    table = pd.DataFrame(rows)
    table["paper_params"] = table["model"].map(PAPER_PARAMS)
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    for row in rows:
        log.info("%s (%s): %s parameters", row["model"], row["setup"], f"{row['params']:,}")


def _summary(table: pd.DataFrame, T: int, dim: int) -> pd.DataFrame:
    """Mean and std over seeds of the sequence-level metrics, one row per (model, its setup): the setup is
    ``setup`` where a row has one (a compressor's size), else ``variant`` (the teacher's), else empty."""
    rows = table[(table["T"] == T) & (table["dim"] == dim) & table["position"].isna()]
    setup = rows["setup"] if "setup" in rows else pd.Series(pd.NA, index=rows.index)
    rows = rows.assign(setup=setup.fillna(rows["variant"]).fillna(""))
    return rows.groupby(["model", "setup", "metric"])["value"].agg(["mean", "std", "count"]).reset_index()


def table1(metrics: Sequence[Path], teacher_variant: str, T: int, dim: int, out: Path) -> pd.DataFrame:
    """Table 1 as Markdown from the teacher, compressor and per-frame reference metric Parquet files."""
    measured = pd.concat([read_metrics(p) for p in metrics], ignore_index=True)
    measured = measured[(measured["model"] != "imfn-teacher") | (measured["variant"] == teacher_variant)]
    summary = _summary(measured, T, dim)
    if summary.empty:
        raise ValueError(f"no metrics at T={T}, d={dim} in {', '.join(map(str, metrics))}")
    lines = [
        f"# Table 1: compressing T = {T} frames into d = {dim} numbers (held-out sequences, mean ± std over seeds)",
        "",
        "| model | setup | seeds | MSE | PSNR | SSIM | paper MSE | paper PSNR | paper SSIM |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    table = []
    for model in DISPLAY:
        part = summary[summary["model"] == model]
        if part.empty:
            continue
        cells = {}
        for metric, digits in (("mse", 6), ("psnr", 2), ("ssim", 4)):
            row = part[part["metric"] == metric].iloc[0]
            std = 0.0 if pd.isna(row["std"]) else row["std"]
            spread = f" ± {std:.{digits}f}" if row["count"] > 1 else ""  # one seed: no spread to show
            cells[metric] = f"{row['mean']:.{digits}f}{spread}"
            table.append({"model": model, "metric": metric, "mean": row["mean"], "std": std})
        setup = part["setup"].iloc[0]
        if model == "imfn-teacher":
            setup = f"variant {setup}"
        elif model in ("autoencoder", "pca"):
            setup = f"k = {dim // T} numbers per frame"
        paper = PAPER_TABLE1.get(model, ("—", "—", "—"))
        seeds = int(part["count"].max())
        lines.append(
            f"| {DISPLAY[model]} | {setup} | {seeds} | {cells['mse']} | {cells['psnr']} | {cells['ssim']} | "
            + " | ".join(paper)
            + " |"
        )
    lines += [
        "",
        "Paper values: the paper's Table 1 (T = 128, d = 1024, paper-size models trained 200 epochs on a GPU).",
        "Rows of this run come from results/metrics/{teacher,compressors,autoencoder,pca}.parquet; a smaller setup",
        "than the paper's (the quick config) is named in the setup column. The frames are independent digits, so",
        "a memory of d numbers can beat the best per-frame code of k = d // T numbers (the per-frame autoencoder)",
        "only by giving hard frames more numbers than easy ones (method.md section 3c).",
    ]
    write_table(lines, out)
    return pd.DataFrame(table)


def table2(param_counts_path: Path, out: Path) -> None:
    """Table 2 as Markdown: instantiated parameter counts next to the paper's."""
    table = pd.read_parquet(param_counts_path)
    lines = [
        "# Table 2: parameters of the paper-size models",
        "",
        "| model | setup | parameters (counted here) | paper | difference |",
        "|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        diff = row.params - row.paper_params
        lines.append(f"| {DISPLAY[row.model]} | {row.setup} | {row.params:,} | {row.paper_params:,} | {diff:+,} |")
    lines += [
        "",
        "Counted on instantiated modules (`imfn paper-param-counts`); the paper reports the teacher as 61.43M.",
    ]
    write_table(lines, out)


def figure6(
    teacher_sweepers: Sequence[Path],
    compressors: Sequence[Path],
    mnist: Path,
    split: Path,
    seed: int,
    T: int,
    out_dir: Path,
) -> list[Path]:
    """One held-out sequence (the first of the seed's evaluation set at T): originals on top, then the
    teacher, each compressor and per-frame PCA, at FIGURE6_FRAMES evenly spaced positions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from imfn.data.sequences import open_sequences
    from imfn.data.source import paper_source
    from imfn.models.compressors import load_compressor
    from imfn.models.pca import fit_pca
    from imfn.models.teacher import Teacher
    from imfn.report.common import save_figure

    sequences = open_sequences(paper_source(), mnist, split, seed)
    data = sequences.digits
    frames = sequences.draw_float("test", 0, 1, T)  # (1, T, pixels), the first held-out sequence every model saw
    rows = [("original", frames)]
    with torch.no_grad():
        teacher = Teacher.load_for(T, teacher_sweepers, torch.device("cpu"))
        rows.append((DISPLAY["imfn-teacher"], teacher.roundtrip(frames)))
        for path in compressors:
            model = load_compressor(path, "cpu")
            rows.append((DISPLAY[model.architecture], model(frames)))
    dim = teacher.codec.config.dim
    pca = fit_pca(torch.from_numpy(data.images)[torch.from_numpy(data.train)].float() / 255.0)
    rows.append((f"{DISPLAY['pca']} (k={dim // T})", pca.reconstruct(frames, dim // T)))

    positions = torch.linspace(0, T - 1, min(FIGURE6_FRAMES, T)).round().long().tolist()
    fig, axes = plt.subplots(len(rows), len(positions), figsize=(0.8 * len(positions) + 1.6, 0.85 * len(rows)))
    for r, (label, sequence) in enumerate(rows):
        for c, t in enumerate(positions):
            ax = axes[r, c]
            image = sequence[0, t].reshape(sequences.frame_shape.height, sequences.frame_shape.width).clamp(0, 1)
            ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={t}", fontsize=7)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"One held-out sequence of T = {T} (seed {seed}, d = {dim}): {len(positions)} evenly spaced frames")
    return save_figure(fig, out_dir, "fig6_sequence")
