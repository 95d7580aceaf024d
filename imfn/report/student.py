"""Figures 4 and 5: the online student against its teacher, from results/metrics/student.parquet alone."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from imfn.atomic import atomic_output
from imfn.report.common import read_metrics, save_figure, seed_summary

STREAMING = {"autoencoder": "per-frame autoencoder, streaming", "pca": "per-frame PCA, streaming"}
REFERENCE_STYLE = {"teacher": dict(ls="--", color="black")} | {
    STREAMING["autoencoder"]: dict(ls=":", color="dimgray"),
    STREAMING["pca"]: dict(ls="-.", color="silver"),
}


def streaming_rows(reference: pd.DataFrame, name: str, dim: int, Ts: list[int]) -> pd.DataFrame:
    """A per-frame code read as an online memory: frame t's d // T numbers go into slot t when it
    arrives (O(1) work per frame), so after k frames written the first k read back exactly as the code
    reconstructs them. Its prefix retention is the running mean of its per-position MSE on the roundtrip's
    held-out sequences; its end of sequence is the mean over all T positions."""
    part = reference[(reference["dim"] == dim) & reference["T"].isin(Ts) & (reference["metric"] == "mse")]
    positions = part[part["position"].notna()].sort_values("position")
    rows = []
    for (seed, T), group in positions.groupby(["seed", "T"]):
        running = group["value"].expanding().mean().to_numpy()
        rows += [
            {"seed": seed, "dim": dim, "T": T, "frames_written": k, "metric": "prefix_mse", "value": v}
            for k, v in enumerate(running, start=1)
        ]
        rows.append({"seed": seed, "dim": dim, "T": T, "frames_written": T, "metric": "mse", "value": running[-1]})
    return pd.DataFrame(rows).assign(curve=name)


def student_table(frame: pd.DataFrame) -> str:
    """Markdown: per student variant and T, the end-of-sequence MSE of student and teacher (mean ± std over
    seeds), the mean over seeds of their ratio, the largest ratio of the seed-mean prefix curves over the
    frames written measured, and the streaming per-frame references' end of sequence. ``frame``: the figures'
    rows."""
    end = frame[frame["metric"] == "mse"]
    prefix = frame[frame["metric"] == "prefix_mse"].groupby(["curve", "T", "frames_written"])["value"].mean()
    teacher_end = end[end["curve"] == "teacher"].set_index(["seed", "T"])["value"]
    lines = [
        "| variant | T | student | teacher | student / teacher | worst prefix ratio (frames written) | "
        + " | ".join(f"{name} (end)" for name in STREAMING.values())
        + " |",
        "|---" * (6 + len(STREAMING)) + "|",
    ]
    for curve in dict.fromkeys(c for c in end["curve"] if c.startswith("student")):
        for T, rows in end[end["curve"] == curve].groupby("T"):
            values = rows.set_index("seed")["value"]
            teacher = teacher_end.xs(T, level="T").loc[values.index]
            ratio = (values / teacher).mean()
            prefix_ratio = prefix.loc[curve, T] / prefix.loc["teacher", T]
            streaming = [end[(end["curve"] == name) & (end["T"] == T)]["value"].mean() for name in STREAMING.values()]
            lines.append(
                f"| {curve[len('student (') : -1]} | {T} | {values.mean():.5f} ± {values.std(ddof=0):.5f} "
                f"| {teacher.mean():.5f} ± {teacher.std(ddof=0):.5f} | {ratio:.3f} "
                f"| {prefix_ratio.max():.3f} ({prefix_ratio.idxmax()}) | "
                + " | ".join(f"{v:.5f}" for v in streaming)
                + " |"
            )
    return "\n".join(lines) + "\n"


def student_figures(
    student_metrics: Path, references: dict[str, Path], figures_dir: Path, tables_dir: Path
) -> list[Path]:
    """Figure 4 (prefix retention: MSE over the first k frames after k updates, a panel per T) and
    Figure 5 (end-of-sequence MSE vs T), a student per variant against its teacher and the per-frame
    references (``references``: model name -> metric Parquet) read as streaming memories; and the table
    ``tables_dir/student.md`` (:func:`student_table`)."""
    frame = read_metrics(student_metrics)
    # the teacher's rows repeat once per student variant: they are the same numbers
    teacher = frame[frame["model"] == "teacher"].drop_duplicates(
        ["variant", "seed", "dim", "T", "frames_written", "metric"]
    )
    Ts = sorted(frame["T"].unique())
    dim = int(frame["dim"].iloc[0])
    frame = pd.concat(
        [
            teacher.assign(curve="teacher"),
            frame[frame["model"] == "student"].assign(curve=lambda f: "student (" + f["variant"] + ")"),
            *(streaming_rows(read_metrics(path), STREAMING[model], dim, Ts) for model, path in references.items()),
        ]
    )
    n_seeds = frame["seed"].nunique()
    curves = list(dict.fromkeys(frame["curve"]))
    students = [curve for curve in curves if curve.startswith("student")]
    style = REFERENCE_STYLE | {curve: dict(ls="-", color=f"C{i}") for i, curve in enumerate(students)}
    fig4, axes = plt.subplots(1, len(Ts), figsize=(4.2 * len(Ts), 3.8), squeeze=False)
    for ax, T in zip(axes[0], Ts, strict=True):
        part = frame[(frame["T"] == T) & (frame["metric"] == "prefix_mse")]
        for curve, rows in part.groupby("curve", sort=False):
            stats = rows.groupby("frames_written")["value"].agg(["mean", "std"]).fillna(0.0)
            ax.plot(stats.index, stats["mean"], label=curve, **style[curve])
            ax.fill_between(
                stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2,
                color=style[curve]["color"],
            )  # fmt: skip
        ax.set_title(f"T={T}")
        ax.set_xlabel("frames written k")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("MSE over the first k frames")
    axes[0][0].legend(fontsize=8)
    fig4.suptitle(f"Fig. 4: prefix retention, student vs teacher and per-frame references (d={dim}, {n_seeds} seeds)")
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
            **style[curve],
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(Ts)
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("end-of-sequence MSE (mean ± std over seeds)")
    ax.set_title(f"Fig. 5: end of the sequence, student vs teacher and per-frame references (d={dim})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    table = tables_dir / "student.md"
    tables_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(table) as tmp:
        tmp.write_text(student_table(frame))
    return (
        save_figure(fig4, figures_dir, "fig4_prefix_retention")
        + save_figure(fig5, figures_dir, "fig5_end_of_sequence")
        + [table]
    )
