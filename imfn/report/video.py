"""Table 3 and the video reconstruction figure, from results/ alone."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from imfn import registry
from imfn.report.common import save_figure, write_table
from imfn.report.published import PAPER_TABLE3
from imfn.store import open_group

log = logging.getLogger(__name__)


SEQUENCE_REFERENCES = (  # (metric table, its model, the row's name): what stores the same d numbers per window
    ("teacher", None, "vector tree `{variant}`"),
    ("clip_pca", "clip-pca", "clip PCA, {dim} components"),
)


def sequence_source(metrics: pd.DataFrame) -> str | None:
    """The sequence source the video table's clips are of (its ``dataset`` is a registered source), or None for
    footage."""
    datasets = set(metrics["dataset"])
    return next(iter(datasets)) if len(datasets) == 1 and datasets <= set(registry.SOURCES) else None


def sequence_references(results: Path, source: str, seed: int, dim: int, levels: list[int]) -> pd.DataFrame:
    """For video on a sequence source: the source's own models at equal memory over the same window, rows of
    (level, name, metric, value): each teacher variant's tree and clip PCA at d = ``dim``, T = 2^(level+1), seed
    ``seed``, on the source's held-out sequences (whose first frames are the validation clips)."""
    rows = []
    for metric_table, model, name in SEQUENCE_REFERENCES:
        path = results / "metrics" / f"{metric_table}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: Table 3 of {source} shows it beside every level")
        table = pd.read_parquet(path)
        table = table[(table["source"] == source) & (table["seed"] == seed) & (table["dim"] == dim)]
        table = table[table["position"].isna() & table["metric"].isin(["mse", "psnr"])]
        if model is not None:
            table = table[table["model"] == model]
        for level in levels:
            part = table[table["T"] == 2 ** (level + 1)]
            if part.empty:
                raise ValueError(f"{path} holds no {source} rows at seed {seed}, d = {dim}, "
                                 f"T = {2 ** (level + 1)}: the grid of sources.{source} must cover video "
                                 f"level {level}'s window at the video memory")  # fmt: skip
            for row in part.itertuples():
                label = name.format(variant=getattr(row, "variant", ""), dim=dim)
                rows.append({"level": level, "name": label, "metric": row.metric, "value": row.value})
    return pd.DataFrame(rows, columns=["level", "name", "metric", "value"])


def table3(metrics: pd.DataFrame, references: pd.DataFrame | None = None) -> str:
    """Table 3 in Markdown: per level mean +/- std over validation videos of the level and of per-frame PCA
    at the same memory, the paper's numbers beside; with ``references`` (:func:`sequence_references`), the
    sequence source's models at the same memory and window below each level."""
    if "model" not in metrics:
        metrics = metrics.assign(model="imfn-video")
    stats = metrics.groupby(["level", "model", "metric"])["value"].agg(["mean", "std", "count"]).fillna({"std": 0.0})
    dataset = ", ".join(sorted(metrics["dataset"].unique()))
    lines = [
        f"Table 3: video reconstruction per level, validation videos of `{dataset}`"
        " (mean +/- std over videos); paper: UCF-101.",
        "",
        "| level | model | ratio | videos | MSE | PSNR (dB) | paper MSE | paper PSNR (dB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in sorted(metrics["level"].unique()):
        for model, name in (("imfn-video", "IMFN"), ("pca", "per-frame PCA, same memory")):
            if (level, model, "mse") not in stats.index:
                continue
            mse, db = stats.loc[(level, model, "mse")], stats.loc[(level, model, "psnr")]
            paper = PAPER_TABLE3.get(int(level)) if model == "imfn-video" else None
            if model == "pca" and "components" in metrics:
                k = metrics.loc[(metrics["level"] == level) & (metrics["model"] == "pca"), "components"].iloc[0]
                name = f"per-frame PCA, same memory ({int(k)} components)"
            paper_cells = (
                [f"{paper[0]:.6f} +/- {paper[1]:.6f}", f"{paper[2]:.2f} +/- {paper[3]:.2f}"] if paper else ["-", "-"]
            )
            cells = [
                f"L{level}",
                name,
                f"{2 ** (level + 1)}:1",
                str(int(mse["count"])),
                f"{mse['mean']:.6f} +/- {mse['std']:.6f}",
                f"{db['mean']:.2f} +/- {db['std']:.2f}",
                *paper_cells,
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if references is None:
            continue
        for name, rows in references[references["level"] == level].groupby("name", sort=False):
            values = rows.set_index("metric")["value"]
            cells = [f"L{level}", f"{name} ({dataset}, T = {2 ** (level + 1)})", f"{2 ** (level + 1)}:1",
                     "-", f"{values['mse']:.6f}", f"{values['psnr']:.2f}", "-", "-"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per-frame PCA stores as many numbers per clip as the level's memory (memory_tokens x width for every",
        "2^(l+1) frames): k = that // 2^(l+1) components per frame, fit on frames of the training clips, and",
        "at most as many as those frames span (the number in brackets; fewer numbers than the memory holds).",
    ]
    if references is not None:
        lines += [
            "",
            f"The rows named `{dataset}` store the same numbers per window of 2^(l+1) frames: the vector "
            "tree of each teacher variant and clip PCA, from that source's metric tables (its held-out sequences, "
            "whose first 2^(l+1) frames are the first window of a validation clip; no std over videos recorded).",
        ]
    return "\n".join(lines) + "\n"


def reconstruction_figure(reconstructions: list[Path], out_dir: Path, frames: int = 8) -> list[Path]:
    """Original frames of the shown validation clips and their L0..Lk reconstructions, PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [open_group(p) for p in reconstructions]
    originals = groups[0]["original"][...]
    videos = groups[0].attrs["videos"]
    rows = [("original", originals)] + [(f"L{g.attrs['level']}", g["reconstruction"][...]) for g in groups]
    n_videos, n_frames = originals.shape[:2]
    shown = min(frames, n_frames)
    fig = plt.figure(figsize=(1.1 * shown, 1.15 * n_videos * len(rows) + 0.4), layout="constrained")
    for v, subfig in enumerate(np.atleast_1d(fig.subfigures(n_videos, 1))):
        axes = subfig.subplots(len(rows), shown, squeeze=False)
        subfig.suptitle(f"validation clip {videos[v]}", fontsize=8)
        for r, (label, data) in enumerate(rows):
            for t in range(shown):
                ax = axes[r, t]
                frame = data[v, t]
                if frame.shape[-1] == 1:  # grayscale (a sequence source's)
                    ax.imshow(frame[..., 0], cmap="gray", vmin=0, vmax=255)
                else:
                    ax.imshow(frame)
                ax.set_xticks([])
                ax.set_yticks([])
                if t == 0:
                    ax.set_ylabel(label, fontsize=8)
                if r == 0:
                    ax.set_title(f"frame {t + 1}", fontsize=7)
    fig.suptitle(f"Originals and their reconstructions through levels L0..L{len(groups) - 1}", fontsize=9)
    return save_figure(fig, out_dir, "fig_video_reconstructions")


def video_report(results: Path) -> None:
    """Table 3 and the reconstruction figure from results/metrics/video.parquet and the saved reconstructions."""
    metrics_path = results / "metrics" / "video.parquet"
    if not metrics_path.exists():
        raise FileNotFoundError(f"{metrics_path} not found: run the pipeline first")
    metrics = pd.read_parquet(metrics_path)
    datasets = metrics["dataset"].unique()
    if len(datasets) != 1:
        raise ValueError(f"{metrics_path} mixes datasets {sorted(datasets)}")
    levels = sorted(int(level) for level in metrics["level"].unique())
    references, source = None, sequence_source(metrics)
    if source is not None:
        imfn = metrics[metrics["model"] == "imfn-video"]
        references = sequence_references(results, source, int(imfn["seed"].iloc[0]), int(imfn["dim"].iloc[0]), levels)
    table_out = results / "tables" / "table3_video.md"
    write_table(table3(metrics, references).splitlines(), table_out)
    paths = [results / "video" / datasets[0] / f"reconstructions_L{level}.zarr" for level in levels]
    reconstruction_figure(paths, results / "figures")
