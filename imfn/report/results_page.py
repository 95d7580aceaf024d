"""The results page: ``docs/results.md`` written from a finished run's ``results/`` and ``logs/`` alone.

Nothing on the page is typed by hand. It holds:
- a stamp of the run: the commit(s) its jobs ran, the config files and config hash, when its jobs ran, and the
  machine (from the provenance record every job writes beside its log, imfn/provenance.py);
- a headline table (held-out MSE, mean over seeds, at one memory size: the students' when there are any), which
  is also written into README.md between the lines ``<!-- results:begin -->`` and ``<!-- results:end -->``;
- every table under ``results/tables`` and every figure under ``results/figures`` that the run made, each with
  its caption (``workflow/report/<name>.rst``, the same text as ``snakemake --report``); the figures are copied
  beside the page (``docs/figures/``) so that the page shows them where results/ is not, a figure of more than
  ``MAX_FIGURE_BYTES`` in 256 colours (the video reconstructions: 2.7 MB as drawn, 0.7 MB so), since the page
  and its figures are committed.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from imfn.atomic import atomic_output
from imfn.report.common import read_metrics

log = logging.getLogger(__name__)

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
CAPTIONS = Path(__file__).resolve().parents[2] / "workflow" / "report"
MAX_FIGURE_BYTES = 1_000_000


@dataclass(frozen=True)
class Section:
    title: str
    tables: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()


TEACHER_SECTION = Section(
    "Teacher: roundtrip MSE against memory size and sequence length (Figures 2-3)",
    (),
    ("fig2_mse_vs_dim", "fig3_mse_vs_T", "teacher_health"),
)
SOURCE_FIGURES = ("mse_vs_T", "per_position", "strip")  # a source report's figures: <source>_<name>
# After the teacher's and the sources' own reports, in the order a reader wants them; a section whose files the run
# did not make is left out.
SECTIONS = (
    Section("Sequence compressors (Tables 1-2, Figure 6)", ("table1_compressors", "table2_params"), ("fig6_sequence",)),
    Section("Students (Figures 4-5)", ("student",), ("fig4_prefix_retention", "fig5_end_of_sequence")),
    Section("Video hierarchy (Table 3)", ("table3_video",), ("fig_video_reconstructions",)),
    Section("Teacher ablation (`snakemake ablation`)", ("teacher_ablation",), ("teacher_ablation_mse_vs_T",)),
    Section("The paper's lost values (`snakemake paper_sweep`)", ("paper_sweep",), ("paper_sweep_mse_vs_T",)),
    Section("Where the time went", (), ("time_summary",)),
)


def reported_sources(results: Path) -> list[str]:
    """The sequence sources with a report of their own in this run (rule source_report's table), in the teacher
    table's order."""
    teacher = Path(results) / "metrics" / "teacher.parquet"
    if not teacher.exists():
        return []
    table = pd.read_parquet(teacher)
    names = dict.fromkeys(table["source"]) if "source" in table else {}
    return [name for name in names if (Path(results) / "tables" / f"{name}.md").exists()]


def sections(sources: list[str]) -> list[Section]:
    """Every section of the page: the teacher's, one per source with a report of its own, then :data:`SECTIONS`."""
    own = [
        Section(f"Sequences that share content (`{name}`): the tree beside every reference at equal memory", (name,),
                tuple(f"{name}_{figure}" for figure in SOURCE_FIGURES))
        for name in sources
    ]  # fmt: skip
    return [TEACHER_SECTION, *own, *SECTIONS]


def caption(name: str, sources: list[str] = ()) -> str:
    """The figure's or table's caption for `snakemake --report`, as one Markdown paragraph: reST's ``code`` as
    Markdown's `code`, and a config value the report would fill in (``{{ snakemake.config["video"]["dataset"] }}``)
    named by its key (`video.dataset`). A file of a source's own report (``sources``) shares one caption per file
    with every source's, ``{source}`` filled in."""
    source = next((s for s in sources if name == s or name.startswith(f"{s}_")), None)
    path = CAPTIONS / (f"source{name[len(source) :]}.rst" if source is not None else f"{name}.rst")
    if not path.exists():
        return ""
    text = " ".join(path.read_text().split())
    if source is not None:
        text = re.sub(r"\{\{\s*snakemake\.wildcards\.source\s*\}\}", source, text)
    text = re.sub(
        r"\{\{\s*snakemake\.config((?:\[\"[^\"]+\"\])+)\s*\}\}",
        lambda m: "config " + ".".join(re.findall(r'"([^"]+)"', m.group(1))),
        text,
    )
    return text.replace("``", "`")


def table_text(path: Path) -> tuple[str, bool]:
    """A table's Markdown under the page's sections (its headings two levels down), and whether it has a
    heading of its own (then it is its own caption)."""
    text = path.read_text().strip()
    has_heading = text.startswith("#")
    return re.sub(r"^(#+) ", r"\1## ", text, flags=re.M), has_heading


# --- the stamp ---------------------------------------------------------------------------------------


def read_provenance(logs: Path) -> list[dict]:
    """Every job record the run left beside its logs (the last attempt of each job)."""
    records = []
    for path in sorted(Path(logs).rglob("*.provenance.json")):
        try:
            records.append(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not a provenance record: {exc}") from exc
    return records


def stamp(records: list[dict], time_summary: Path | None) -> tuple[list[str], str]:
    """What run the page describes (commit, config, dates, machine, job counts and time), as the page's lines
    and as one short sentence for the README."""
    if not records:
        raise FileNotFoundError(
            "no provenance records (*.provenance.json) under the logs directory: run the "
            "pipeline first (make run), then make results-page"
        )
    commits = Counter(re.sub(r"^([0-9a-f]{12})[0-9a-f]+", r"\1", r.get("git", "unknown")) for r in records)
    hashes = Counter(r.get("config_hash", "unset") for r in records)
    files = Counter(" + ".join(r.get("config_files") or []) or "unknown" for r in records)
    hosts = Counter(r.get("host", "?") for r in records)
    started = min(r["started"] for r in records if r.get("started"))
    finished = max((r["finished"] for r in records if r.get("finished")), default=None)
    failed = sum(r.get("status") != "ok" for r in records)
    machine = next((r["machine"] for r in records if r.get("machine")), {})
    gpus = sorted({r["gpu"] for r in records if r.get("gpu")})
    devices = sorted({r.get("device", "cpu").split(":")[0] for r in records})
    span = (
        (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds() / 60 if finished else None
    )

    def listed(counter: Counter) -> str:
        if len(counter) == 1:
            return f"`{next(iter(counter))}`"
        return ", ".join(f"`{k}` ({n} jobs)" for k, n in counter.most_common())

    lines = [
        f"- **Commit**: {listed(commits)}"
        + (" (more than one: the results mix code versions)" if len(commits) > 1 else ""),
        f"- **Config**: {listed(files)}, effective config hash {listed(hashes)}",
        f"- **When**: jobs ran from {started} to {finished} (UTC)"
        + (f": {span:.1f} min from the first job's start to the last one's end" if span is not None else ""),
        f"- **Machine**: {listed(hosts)}; {machine.get('cpus', '?')} CPUs ({machine.get('cpu', '?')}), "
        f"{machine.get('memory_gb', '?')} GB memory; jobs on {', '.join(devices)}"
        + (f"; GPU {', '.join(gpus)}" if gpus else ""),
        f"- **Jobs**: {len(records)} with a provenance record" + (f", {failed} of them not ok" if failed else ""),
    ]
    if time_summary is not None and time_summary.exists():
        times = pd.read_parquet(time_summary)
        total = times["s"].sum() / 60
        lines.append(f"- **Job time**: {total:.1f} min in all ({len(times)} benchmarked jobs; several run at once)")
    short = (
        f"the run of commit {listed(commits)} with {listed(files)} on {machine.get('cpus', '?')} CPUs"
        + (f", GPU {', '.join(gpus)}" if gpus else "")
        + (f", whose jobs ran for {span:.1f} min" if span is not None else "")
    )
    return lines, short


# --- the headline table ------------------------------------------------------------------------------


def _overall_mse(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of one metric table that hold a sequence's overall MSE (not one position's)."""
    table = table[table["metric"] == "mse"]
    if "position" in table:
        table = table[table["position"].isna()]
    return table


def _label(row: pd.Series, name: str) -> str:
    variant = row.get("variant")
    return f"{name} (`{variant}`)" if isinstance(variant, str) and variant else name


def headline(metrics: Path) -> tuple[str, pd.DataFrame] | None:
    """Held-out MSE (mean over seeds) at one memory size: the teacher, its students, the per-frame references
    at equal memory and the compressors, one column per sequence length the students (or compressors) use."""
    teacher_path = metrics / "teacher.parquet"
    if not teacher_path.exists():
        return None
    tables = {
        name: read_metrics(metrics / f"{name}.parquet")
        for name in ("teacher", "student", "autoencoder", "pca", "compressors")
        if (metrics / f"{name}.parquet").exists()
    }
    student = tables.get("student")
    compressors = tables.get("compressors")
    teacher = _overall_mse(tables["teacher"])
    if teacher.empty:  # the run did not run the paper's source
        return None
    if student is not None and len(student):
        dim = int(student["dim"].iloc[0])
        Ts = sorted(student["T"].unique())
    elif compressors is not None and len(compressors):
        dim = int(compressors["dim"].iloc[0])
        Ts = sorted(compressors["T"].unique())
    else:
        dim, Ts = int(teacher["dim"].max()), sorted(teacher["T"].unique())
    if compressors is not None:
        Ts = sorted(set(Ts) | set(compressors.loc[compressors["dim"] == dim, "T"]))

    rows: list[tuple[str, dict]] = []

    def add(table: pd.DataFrame, label_of) -> None:
        table = table[(table["dim"] == dim) & table["T"].isin(Ts)]
        keys = [c for c in ("model", "variant") if c in table]
        for _, part in table.groupby(keys, dropna=False, sort=False):
            means = part.groupby("T")["value"].mean()
            seeds = part["seed"].nunique()
            rows.append((f"{label_of(part.iloc[0])}, {seeds} seed{'s' if seeds > 1 else ''}", means.to_dict()))

    add(teacher, lambda r: _label(r, "IMFN teacher"))
    if student is not None:
        end = student[(student["model"] == "student") & (student["metric"] == "mse")]
        written = "frames_written" if "frames_written" in end else "k"
        add(end[end[written] == end["T"]], lambda r: _label(r, "student"))
    if "autoencoder" in tables:
        add(_overall_mse(tables["autoencoder"]), lambda r: "per-frame autoencoder, k = d // T numbers per frame")
    if "pca" in tables:
        add(_overall_mse(tables["pca"]), lambda r: "per-frame PCA, k = d // T")
    if compressors is not None:
        add(
            _overall_mse(compressors),
            lambda r: {"transformer": "Transformer compressor", "mamba": "Mamba compressor"}.get(
                r["model"], r["model"]
            ),
        )
    table = pd.DataFrame({label: {T: values.get(T, math.nan) for T in Ts} for label, values in rows}).T
    table.columns = [f"T = {T}" for T in Ts]
    title = f"Held-out MSE per pixel at memory size d = {dim} (mean over seeds; lower is better)"
    return title, table


def source_headline(metrics: Path, source: str) -> tuple[str, pd.DataFrame] | None:
    """Held-out MSE (mean over seeds) of ``source`` at its smallest memory size: each teacher variant and every
    reference at equal memory (the rows of its report's table, :mod:`imfn.report.source`)."""
    from imfn.report.common import seed_summary
    from imfn.report.source import REFERENCES, _order, curves

    paths = [metrics / f"{name}.parquet" for name in ("teacher", "autoencoder", "pca", "clip_pca", "compressors")]
    tables = [pd.read_parquet(path) for path in paths if path.exists()]
    tables = [table for table in tables if "source" in table]  # a table from before sources: the paper's alone
    rows = curves(pd.concat(tables, ignore_index=True), source) if tables else pd.DataFrame()
    if rows.empty:
        return None
    summary = seed_summary(rows, "mse", ["dim", "curve", "T"])
    dim = int(summary["dim"].min())
    summary = summary[summary["dim"] == dim]
    table = summary.pivot_table(index="curve", columns="T", values="mean")
    seeds = summary.groupby("curve")["count"].max()
    table = table.loc[_order(table.index)]
    table.index = [f"{REFERENCES.get(c, c)}, {seeds[c]} seed{'s' if seeds[c] > 1 else ''}" for c in table.index]
    table.columns = [f"T = {T}" for T in table.columns]
    return f"`{source}`: held-out MSE per pixel at d = {dim}, every reference at equal memory", table


def video_headline(results: Path) -> tuple[str, pd.DataFrame] | None:
    """Held-out MSE per level of the video hierarchy on the sequence source (mean over validation clips) and of
    every reference storing as many numbers over the same window (Table 3's rows, :mod:`imfn.report.video`)."""
    from imfn.report.video import sequence_references, sequence_source

    path = results / "metrics" / "video.parquet"
    if not path.exists():
        return None
    mse = pd.read_parquet(path).query("metric == 'mse'")
    source = sequence_source(mse)
    if source is None:
        return None  # footage: no reference but per-frame PCA (Table 3 on the results page)
    imfn = mse[mse["model"] == "imfn-video"]
    levels = sorted(int(level) for level in imfn["level"].unique())
    dim = int(imfn["dim"].iloc[0])
    rows = {
        "IMFN video levels": imfn.groupby("level")["value"].mean(),
        "per-frame PCA, same memory": mse[mse["model"] == "pca"].groupby("level")["value"].mean(),
    }
    references = sequence_references(results, source, int(imfn["seed"].iloc[0]), dim, levels).query("metric == 'mse'")
    for name, part in references.groupby("name", sort=False):
        rows[name] = part.set_index("level")["value"]
    table = pd.DataFrame(rows).T[levels]
    table.columns = [f"L{level} ({2 ** (level + 1)} frames)" for level in levels]
    title = (f"`{source}`, the video hierarchy (Table 3): held-out MSE per pixel of each level at d = {dim} "
             "numbers per window, beside every reference storing as many over the same window")  # fmt: skip
    return title, table


def markdown_table(table: pd.DataFrame) -> str:
    head = "| model | " + " | ".join(table.columns) + " |"
    rule = "|---|" + "---|" * len(table.columns)
    body = [
        "| " + label + " | " + " | ".join("" if math.isnan(v) else f"{v:.5f}" for v in row) + " |"
        for label, row in zip(table.index, table.to_numpy(), strict=True)
    ]
    return "\n".join([head, rule, *body])


# --- the page ----------------------------------------------------------------------------------------


def results_page(results: Path, logs: Path, out: Path, readme: Path | None = None) -> str:
    """Write ``out`` (and the README block) from ``results`` and ``logs``; return the page's text."""
    results, logs, out = Path(results), Path(logs), Path(out)
    if not (results / "metrics").is_dir():
        raise FileNotFoundError(f"{results / 'metrics'} does not exist: run the pipeline first (make run)")
    lines_stamp, short = stamp(read_provenance(logs), results / "metrics" / "time_summary.parquet")
    head = headline(results / "metrics")
    figure_dir = out.parent / "figures"
    page = [
        "# Results",
        "",
        "Written by `make results-page` (`imfn results-page`) from one finished run's `results/` and `logs/`; "
        "do not edit by hand. The run:",
        "",
        *lines_stamp,
        "",
    ]
    sources = reported_sources(results)
    heads = [head, *(source_headline(results / "metrics", s) for s in sources), video_headline(results)]
    heads = [h for h in heads if h is not None]
    for title, table in heads:
        page += [f"## {title}", "", markdown_table(table), ""]
    figures = []
    for section in sections(sources):
        tables = [t for t in section.tables if (results / "tables" / f"{t}.md").exists()]
        shown = [f for f in section.figures if (results / "figures" / f"{f}.png").exists()]
        if not tables and not shown:
            continue
        page += [f"## {section.title}", ""]
        for name in tables:
            table, has_heading = table_text(results / "tables" / f"{name}.md")
            text = "" if has_heading else caption(name, sources)
            page += ([text, ""] if text else []) + [table, ""]
        for name in shown:
            figures.append(name)
            page += [f"![{name}](figures/{name}.png)", ""]
            text = caption(name, sources)
            page += [text, ""] if text else []
    text = "\n".join(page).rstrip() + "\n"
    figure_dir.mkdir(parents=True, exist_ok=True)
    for old in figure_dir.glob("*.png"):
        if old.stem not in figures:
            old.unlink()
    for name in figures:
        copy_figure(results / "figures" / f"{name}.png", figure_dir / f"{name}.png")
    with atomic_output(out) as tmp:
        tmp.write_text(text)
    log.info("wrote %s (%d figures in %s)", out, len(figures), figure_dir)
    if readme is not None:
        block = [f"_From {short}; every table and figure: [docs/results.md](docs/results.md)._"]
        for title, table in heads:
            block += ["", f"{title[0].upper()}{title[1:]}:", "", markdown_table(table)]
        fill_readme(readme, "\n".join(block))
    return text


def copy_figure(source: Path, target: Path) -> None:
    """The figure as it is, or in 256 colours when it is larger than ``MAX_FIGURE_BYTES``."""
    if source.stat().st_size <= MAX_FIGURE_BYTES:
        shutil.copyfile(source, target)
        return
    from PIL import Image

    with Image.open(source) as image, atomic_output(target) as tmp:
        image.convert("RGB").quantize(256).save(tmp, format="PNG", optimize=True)


def fill_readme(readme: Path, block: str) -> None:
    """Replace what stands between the README's two marker lines with ``block``."""
    text = Path(readme).read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {BEGIN} ... {END} block for the headline table")
    new = pattern.sub(lambda _: f"{BEGIN}\n{block}\n{END}", text)
    with atomic_output(Path(readme)) as tmp:
        tmp.write_text(new)
