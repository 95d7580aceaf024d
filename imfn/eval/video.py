"""Video evaluation (method.md section 6) and its outputs: Table 3 and the reconstruction figure.

Per level k: every validation clip is cut into aligned windows of 2^(k+1) frames, each window is
encoded through levels 0..k to one memory and decoded back, and the clip's MSE is taken over all
its frames and pixels (the same frames at every level, so levels compare fairly). PSNR is per video,
10 log10(1 / MSE). The table and the figure are made from results/ alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from imfn.atomic import atomic_output
from imfn.data.video import read_clips
from imfn.metrics import psnr
from imfn.models.video import decode, encode, load_levels
from imfn.store import open_group, read_attrs, write_arrays
from imfn.train.video import frames_tensor

log = logging.getLogger(__name__)

PAPER_TABLE3 = {  # level: (MSE mean, std, PSNR mean, std), the paper's UCF-101 numbers
    0: (0.000796, 0.000551, 31.95, 2.96),
    1: (0.000810, 0.000556, 31.87, 2.96),
    2: (0.001204, 0.000888, 30.25, 3.11),
    3: (0.002163, 0.001839, 27.96, 3.46),
}
EVAL_BATCH = 32  # windows per forward pass
EVAL_VIDEOS = 64  # validation clips read and reconstructed at a time


@torch.no_grad()
def reconstruct_clips(levels: list[torch.nn.Module], clips: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 clips (V, F, H, W, 3) -> float reconstructions (V, F, 3, H, W) through ``levels``."""
    span = 2 ** len(levels)
    v, f = clips.shape[:2]
    if f % span:
        raise ValueError(f"clips of {f} frames do not split into windows of {span} frames")
    windows = clips.reshape(v * f // span, span, *clips.shape[2:])
    out = []
    for batch in windows.split(EVAL_BATCH):
        frames = frames_tensor(batch).to(device)
        out.append(decode(levels, encode(levels, frames)).clamp(0, 1).cpu())
    return torch.cat(out).reshape(v, f, *out[0].shape[2:])


def evaluate_video_level(
    level_paths: list[Path],
    bank: Path,
    split: Path,
    out: Path,
    reconstructions_out: Path,
    device: torch.device,
    max_videos: int | None = None,
    show: int = 2,
) -> pd.DataFrame:
    """Per-video MSE and PSNR of the validation clips through levels 0..k (tidy Parquet), and
    the first ``show`` validation clips with their reconstructions (uint8 Zarr) for the figure."""
    levels = load_levels(level_paths, device)
    level = len(levels) - 1
    attrs = read_attrs(bank)
    frame = pd.read_parquet(split).sort_values("path")
    validation = frame[frame["split"] == "validation"]
    if max_videos is not None:
        validation = validation.iloc[:max_videos]
    indices = validation["bank_index"].to_numpy(dtype=np.int64)
    # clips spread over the validation set (in path order: for the demo, different films) for the figure
    shown = np.unique(np.linspace(0, len(indices) - 1, min(show, len(indices))).round().astype(int))
    mse_parts, originals, kept = [], [], []
    for start in tqdm(range(0, len(indices), EVAL_VIDEOS), desc=f"video L{level} evaluation", mininterval=10):
        clips = torch.from_numpy(read_clips(bank, indices[start : start + EVAL_VIDEOS]))
        reconstructions = reconstruct_clips(levels, clips, device)
        mse_parts.append((reconstructions - frames_tensor(clips)).pow(2).flatten(1).mean(dim=1))
        for i in shown[(shown >= start) & (shown < start + EVAL_VIDEOS)] - start:
            originals.append(clips[i].numpy())
            kept.append((reconstructions[i].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy())
    mse = torch.cat(mse_parts)
    rows = []
    for path, value, db in zip(validation["path"], mse.tolist(), psnr(mse.double()).tolist(), strict=True):
        for metric, number in (("mse", value), ("psnr", db)):
            rows.append(
                {
                    "model": "imfn-video",
                    "dataset": attrs["dataset"],
                    "seed": attrs["seed"],
                    "level": level,
                    "ratio": 2 ** (level + 1),
                    "video": path,
                    "metric": metric,
                    "value": number,
                }
            )
    table = pd.DataFrame(rows)
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    write_arrays(
        reconstructions_out,
        {"original": np.stack(originals), "reconstruction": np.stack(kept)},
        {"level": level, "videos": list(validation["path"].iloc[shown]), "dataset": attrs["dataset"]},
    )
    log.info(
        "video level %d (%d:1): %d validation videos, MSE %.6f +/- %.6f, PSNR %.2f dB",
        level,
        2 ** (level + 1),
        len(mse),
        mse.mean().item(),
        mse.std().item() if len(mse) > 1 else 0.0,
        table.loc[table["metric"] == "psnr", "value"].mean(),
    )
    return table


def table3(metrics: pd.DataFrame) -> str:
    """Table 3 in Markdown: per level mean +/- std over validation videos, the paper's numbers beside."""
    stats = metrics.groupby(["level", "metric"])["value"].agg(["mean", "std", "count"]).fillna({"std": 0.0})
    dataset = ", ".join(sorted(metrics["dataset"].unique()))
    lines = [
        f"Table 3: video reconstruction per level, validation videos of `{dataset}`"
        " (mean +/- std over videos); paper: UCF-101.",
        "",
        "| level | ratio | videos | MSE | PSNR (dB) | paper MSE | paper PSNR (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for level in sorted(metrics["level"].unique()):
        mse, db = stats.loc[(level, "mse")], stats.loc[(level, "psnr")]
        paper = PAPER_TABLE3.get(int(level))
        paper_cells = (
            [f"{paper[0]:.6f} +/- {paper[1]:.6f}", f"{paper[2]:.2f} +/- {paper[3]:.2f}"] if paper else ["-", "-"]
        )
        cells = [
            f"L{level}",
            f"{2 ** (level + 1)}:1",
            str(int(mse["count"])),
            f"{mse['mean']:.6f} +/- {mse['std']:.6f}",
            f"{db['mean']:.2f} +/- {db['std']:.2f}",
            *paper_cells,
        ]
        lines.append("| " + " | ".join(cells) + " |")
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
                ax.imshow(data[v, t])
                ax.set_xticks([])
                ax.set_yticks([])
                if t == 0:
                    ax.set_ylabel(label, fontsize=8)
                if r == 0:
                    ax.set_title(f"frame {t + 1}", fontsize=7)
    fig.suptitle(f"Originals and their reconstructions through levels L0..L{len(groups) - 1}", fontsize=9)
    outputs = []
    for suffix in ("png", "pdf"):
        path = out_dir / f"fig_video_reconstructions.{suffix}"
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=suffix, dpi=150, bbox_inches="tight")
        outputs.append(path)
        log.info("wrote %s", path)
    plt.close(fig)
    return outputs


def video_report(results: Path) -> None:
    """Table 3 and the reconstruction figure from results/metrics/video.parquet and the saved reconstructions."""
    metrics_path = results / "metrics" / "video.parquet"
    if not metrics_path.exists():
        raise FileNotFoundError(f"{metrics_path} not found: run the pipeline first")
    metrics = pd.read_parquet(metrics_path)
    datasets = metrics["dataset"].unique()
    if len(datasets) != 1:
        raise ValueError(f"{metrics_path} mixes datasets {sorted(datasets)}")
    table_out = results / "tables" / "table3_video.md"
    with atomic_output(table_out) as tmp:
        tmp.write_text(table3(metrics))
    log.info("wrote %s", table_out)
    levels = sorted(metrics["level"].unique())
    paths = [results / "video" / datasets[0] / f"reconstructions_L{level}.zarr" for level in levels]
    reconstruction_figure(paths, results / "figures")
