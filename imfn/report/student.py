"""Figures 4 and 5: the online students against their teachers, from results/metrics/student.parquet alone.

One row of Figure 4 and one panel of Figure 5 per sequence source with students (config ``student.sources``),
each at that source's student d; the table ``student.md`` has a part per source, with what the students hold
past the end of their sequences (frames keep arriving after T, :mod:`imfn.eval.online`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from imfn.atomic import atomic_output
from imfn.report.common import log2_axis, save_figure, seed_summary

STREAMING = {"autoencoder": "per-frame autoencoder, streaming", "pca": "per-frame PCA, streaming"}
REFERENCE_STYLE = {"teacher": dict(ls="--", color="black")} | {
    STREAMING["autoencoder"]: dict(ls=":", color="dimgray"),
    STREAMING["pca"]: dict(ls="-.", color="silver"),
}


def streaming_rows(reference: pd.DataFrame, name: str, dim: int, Ts: list[int]) -> pd.DataFrame:
    """A per-frame code read as an online memory: frame t's d // T numbers go into slot t when it
    arrives (O(1) work per frame), so after k frames written the first k read back exactly as the code
    reconstructs them. Its prefix retention is the running mean of its per-position MSE on the roundtrip's
    held-out sequences; its end of sequence is the mean over all T positions. ``reference``: one source's rows."""
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
    return pd.DataFrame(rows, columns=["seed", "dim", "T", "frames_written", "metric", "value"]).assign(curve=name)


def source_curves(students: pd.DataFrame, references: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One source's curves: its teacher, a student per variant, and the streaming per-frame references at the
    students' d and T on the students' seeds. ``students``: the source's rows of student.parquet;
    ``references``: model name -> the source's rows of its metric table."""
    # the teacher's rows repeat once per student variant: they are the same numbers
    teacher = students[students["model"] == "teacher"].drop_duplicates(
        ["variant", "seed", "dim", "T", "frames_written", "metric"]
    )
    Ts, dim, seeds = sorted(students["T"].unique()), int(students["dim"].iloc[0]), set(students["seed"])
    streaming = [streaming_rows(table, STREAMING[model], dim, Ts) for model, table in references.items()]
    return pd.concat(
        [
            teacher.assign(curve="teacher"),
            students[students["model"] == "student"].assign(curve=lambda f: "student (" + f["variant"] + ")"),
            *(rows[rows["seed"].isin(seeds)] for rows in streaming),
        ]
    )


def student_table(table: pd.DataFrame) -> str:
    """Markdown for one source: per student variant and T, the end-of-sequence MSE of student and teacher
    (mean ± std over seeds), the mean over seeds of their ratio, the largest ratio of the seed-mean prefix
    curves over the frames written measured, and the streaming per-frame references' end of sequence; then,
    where measured, what student and teacher hold of the last T frames after 2T and 4T. ``table``: the
    figures' rows of the source (:func:`source_curves`)."""
    end = table[table["metric"] == "mse"]
    prefix = table[table["metric"] == "prefix_mse"].groupby(["curve", "T", "frames_written"])["value"].mean()
    teacher_end = end[end["curve"] == "teacher"].set_index(["seed", "T"])["value"]
    students = list(dict.fromkeys(c for c in end["curve"] if c.startswith("student")))
    lines = [
        "| variant | T | student | teacher | student / teacher | worst prefix ratio (frames written) | "
        + " | ".join(f"{name} (end)" for name in STREAMING.values())
        + " |",
        "|---" * (6 + len(STREAMING)) + "|",
    ]
    for curve in students:
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
    past = table[table["metric"] == "past_end_mse"]
    if len(past):
        mean = past.groupby(["curve", "T", "frames_written"])["value"].mean()
        multiples = sorted({int(k // T) for T, k in zip(past["T"], past["frames_written"], strict=True)})
        lines += [
            "",
            "Past the end: MSE over the last T frames after m T frames written (frame t at position t mod T), and "
            "the teacher's root of those T frames alone.",
            "",
            "| variant | T | " + " | ".join(f"student after {m}T | teacher after {m}T" for m in multiples) + " |",
            "|---" * (2 + 2 * len(multiples)) + "|",
        ]
        for curve in students:
            for T in sorted(past[past["curve"] == curve]["T"].unique()):
                cells = [f"{mean.get((c, T, m * T), float('nan')):.5f}" for m in multiples for c in (curve, "teacher")]
                lines.append(f"| {curve[len('student (') : -1]} | {T} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def student_figures(
    student_metrics: Path, references: dict[str, Path], figures_dir: Path, tables_dir: Path
) -> list[Path]:
    """Figure 4 (prefix retention: MSE over the first k frames after k updates, a row per source, a panel per T)
    and Figure 5 (end-of-sequence MSE vs T, a panel per source), a student per variant against its teacher and
    the per-frame references (``references``: model name -> metric Parquet) read as streaming memories; and the
    table ``tables_dir/student.md`` (:func:`student_table`, a part per source)."""
    everything = pd.read_parquet(student_metrics)
    reference_tables = {model: pd.read_parquet(path) for model, path in references.items()}
    sources = list(dict.fromkeys(everything["source"]))
    curves = {
        source: source_curves(
            everything[everything["source"] == source],
            {model: table[table["source"] == source] for model, table in reference_tables.items()},
        )
        for source in sources
    }
    columns = max(curves[source]["T"].nunique() for source in sources)
    fig4, axes4 = plt.subplots(len(sources), columns, figsize=(4.2 * columns, 3.8 * len(sources)), squeeze=False)
    fig5, axes5 = plt.subplots(1, len(sources), figsize=(6.4 * len(sources), 4.4), squeeze=False)
    students = list(dict.fromkeys(c for table in curves.values() for c in table["curve"] if c.startswith("student")))
    style = REFERENCE_STYLE | {curve: dict(ls="-", color=f"C{i}") for i, curve in enumerate(students)}
    parts = []
    for row, source in enumerate(sources):
        source_rows = curves[source]
        Ts, dim = sorted(source_rows["T"].unique()), int(source_rows["dim"].iloc[0])
        n_seeds = source_rows["seed"].nunique()
        teacher = source_rows[source_rows["curve"] == "teacher"]["variant"].iloc[0]
        seeds = f"{n_seeds} seed{'s' if n_seeds > 1 else ''}"
        for ax, T in zip(axes4[row], Ts, strict=False):
            part = source_rows[(source_rows["T"] == T) & (source_rows["metric"] == "prefix_mse")]
            for curve, rows in part.groupby("curve", sort=False):
                stats = rows.groupby("frames_written")["value"].agg(["mean", "std"]).fillna(0.0)
                ax.plot(stats.index, stats["mean"], label=curve, **style[curve])
                ax.fill_between(
                    stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2,
                    color=style[curve]["color"],
                )  # fmt: skip
            ax.set_title(f"{source}, T={T} (d={dim})")
            ax.set_xlabel("frames written k")
            ax.grid(True, alpha=0.3)
        for ax in axes4[row][len(Ts) :]:
            ax.set_visible(False)
        axes4[row][0].set_ylabel("MSE over the first k frames")
        axes4[row][0].legend(fontsize=8)
        end = seed_summary(source_rows[source_rows["metric"] == "mse"].assign(position=None), "mse", ["curve", "T"])
        ax = axes5[0][row]
        for curve, rows in end.groupby("curve", sort=False):
            rows = rows.sort_values("T")
            ax.errorbar(rows["T"], rows["mean"], yerr=rows["std"], marker="o", ms=4, capsize=3, label=curve,
                        **style[curve])  # fmt: skip
        log2_axis(ax, Ts, "end-of-sequence MSE (mean ± std over seeds)")
        ax.set_title(f"{source} (d={dim}, teacher {teacher}, {seeds})")
        ax.legend(fontsize=8)
        parts.append(f"**{source}**: teacher `{teacher}`, d = {dim}, {seeds}\n\n{student_table(source_rows)}")
    fig4.suptitle("Fig. 4: prefix retention, student vs teacher and per-frame references at equal memory")
    fig4.tight_layout()
    fig5.suptitle("Fig. 5: end of the sequence, student vs teacher and per-frame references at equal memory")
    fig5.tight_layout()
    table = tables_dir / "student.md"
    tables_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(table) as tmp:
        tmp.write_text("\n".join(parts))
    return (
        save_figure(fig4, figures_dir, "fig4_prefix_retention")
        + save_figure(fig5, figures_dir, "fig5_end_of_sequence")
        + [table]
    )
