"""`snakemake --report`: one HTML file holding every figure and table, each with its caption; and
`imfn compare-metrics`, the check that two runs' metric tables agree.

The full report check runs inside the smoke end-to-end test (tests/test_workflow.py), on its results, so
no extra pipeline run is needed; the tests here are the cheap ones.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from imfn.data.source import source
from imfn.registry import SOURCES
from imfn.report.compare import compare_metrics

REPORT_DIR = Path(__file__).resolve().parents[1] / "workflow" / "report"


def build_report(repo: Path, work: Path, env: dict, *args: str) -> Path:
    """Build results/report.html in ``work`` (``args``: targets first, then e.g. --configfile ...)."""
    out = work / "results" / "report.html"
    cmd = ["snakemake", *args, "--report", str(out), "-s", str(repo / "Snakefile"), "-d", str(work)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return out


def caption_name(stem: str) -> str:
    """The caption a file of this stem has: a source's report shares one per file (``moving_mnist_strip`` ->
    ``source_strip``)."""
    reported = [name for name in SOURCES if source(name).frames_share_content]
    owner = next((s for s in reported if stem == s or stem.startswith(f"{s}_")), None)
    return stem if owner is None else "source" + stem[len(owner) :]


def caption_start(name: str) -> str:
    """The first words of a figure's or table's caption, as they appear in the rendered report."""
    text = (REPORT_DIR / f"{name}.rst").read_text()
    if text.startswith("**"):  # a bold lead is one HTML element: compare only inside it
        text = text[2:].split("**", 1)[0]
    return re.split(r"[`{±\n]", text, maxsplit=1)[0][:30]


def assert_report_lists_every_figure_and_table(report: Path, work: Path) -> list[str]:
    """Every PNG under results/figures and Markdown table under results/tables is in the report with its caption."""
    html = report.read_text()
    made = sorted(
        p.relative_to(work).as_posix()
        for p in [*(work / "results/figures").glob("*.png"), *(work / "results/tables").glob("*.md")]
    )
    assert made, "no figures or tables to report"
    missing = [path for path in made if f'"{path}"' not in html]
    assert not missing, f"made but not in the report: {missing}"
    for path in made:
        name = caption_name(Path(path).stem)
        assert (REPORT_DIR / f"{name}.rst").exists(), f"{path} has no caption workflow/report/{name}.rst"
        assert caption_start(name) in html, f"the caption of {path} is not in the report"
    return made


def test_every_caption_a_rule_names_exists():
    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    named = {
        m for smk in rules.glob("*.smk") for m in re.findall(r'caption="\.\./report/([\w.-]+\.rst)"', smk.read_text())
    }
    assert named and not [name for name in named if not (REPORT_DIR / name).exists()]
    assert (REPORT_DIR / "workflow.rst").exists()


def test_profiles_name_real_snakemake_options(repo, tmp_path, env_with_venv):
    """A dry run through each profile: Snakemake rejects unknown keys (the SLURM one needs no cluster for this)."""
    for profile in ("default", "slurm"):
        settings = yaml.safe_load((repo / "workflow" / "profiles" / profile / "config.yaml").read_text())
        assert settings["rerun-incomplete"] is True
        cmd = ["snakemake", "all", "-n", "--profile", str(repo / "workflow" / "profiles" / profile)]
        cmd += ["-s", str(repo / "Snakefile"), "-d", str(tmp_path / profile)]
        cmd += ["--configfile", str(repo / "config" / "smoke.yaml")]
        result = subprocess.run(cmd, env=env_with_venv, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "time_summary" in result.stdout
    slurm = yaml.safe_load((repo / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert slurm["executor"] == "slurm" and slurm["slurm-status-command"] == "squeue"  # no accounting needed
    # group-components applies by the group's name as the rule writes it: a key that no rule's group has merges nothing
    groups = set(re.findall(r'^GROUP_\w+ = "([^"]+)"', (repo / "workflow" / "rules" / "paths.smk").read_text(), re.M))
    assert groups and set(slurm["group-components"]) <= groups, (sorted(slurm["group-components"]), sorted(groups))


def _online_rows(names: dict[str, str], architecture: str, scale: dict[int, float]) -> pd.DataFrame:
    """A small student metric table; ``names`` maps the concepts to a run's column names, ``scale`` moves the
    values of some seeds."""
    rows = [
        {"model": "student", names["variant"]: variant, "architecture": architecture if variant == "paper" else "slot",
         "seed": seed, "T": 4, names["frames_written"]: k, "value": (k + seed) / 10 * scale.get(seed, 1.0)}
        for variant in ("paper", "slot") for seed in (0, 1) for k in (1, 2, 3, 4)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _runs(folder: Path, moved: dict[int, float]) -> tuple[Path, Path]:
    """A run of the old names and one of the new names, both with a student table and the same teacher table."""
    before, after = folder / "before", folder / "after"
    teacher = pd.DataFrame({"model": ["imfn-teacher"] * 2, "T": [2, 4], "value": [0.01, 0.02]})
    for run in (before, after):
        (run / "metrics").mkdir(parents=True)
        teacher.to_parquet(run / "metrics" / "teacher.parquet")
    _online_rows({"variant": "recipe", "frames_written": "k"}, "paper", {}).to_parquet(
        before / "metrics" / "student.parquet"
    )
    _online_rows({"variant": "variant", "frames_written": "frames_written"}, "mlp", moved).to_parquet(
        after / "metrics" / "student.parquet"
    )
    return before, after


RENAMES = {
    "renamed_columns": ["recipe=variant", "k=frames_written"],
    "renamed_values": ["architecture:paper=mlp"],
}


def test_compare_metrics_maps_old_names_and_finds_the_tables_identical(tmp_path, capsys):
    before, after = _runs(tmp_path, moved={})
    verdicts = compare_metrics(before, after, **RENAMES)
    assert verdicts == [("student", "identical (16 rows)"), ("teacher", "identical (2 rows)")]
    with pytest.raises(ValueError, match=r"results differ in \['student'\]"):  # without the renames
        compare_metrics(before, after, renamed_values=RENAMES["renamed_values"])
    assert "columns differ: ['frames_written', 'k', 'recipe', 'variant']" in capsys.readouterr().out


def test_compare_metrics_reports_how_far_the_numbers_moved_before_it_fails(tmp_path, capsys, env_with_venv):
    before, after = _runs(tmp_path, moved={1: 1.1})  # seed 1's values 10% up
    with pytest.raises(ValueError, match=r"results differ in \['student'\]"):
        compare_metrics(before, after, **RENAMES)
    out = capsys.readouterr().out
    assert "teacher                  identical (2 rows)" in out
    assert "rows matched on ['model', 'variant', 'architecture', 'seed', 'T', 'frames_written']: 16 " in out
    assert "(0 only before, 0 only after)" in out
    assert "value: 8 of 16 values moved; relative change median 0.1, max 0.1" in out
    largest = [line.strip() for line in out.splitlines() if line.strip().startswith("model=student")]
    assert len(largest) == 3 and all("seed=1" in line and "(relative change 0.1)" in line for line in largest)

    # the command prints the same report, then exits non-zero
    cmd = [
        "imfn",
        "compare-metrics",
        "--before",
        str(before),
        "--after",
        str(after),
        "--renamed-column",
        "recipe=variant",
        "--renamed-column",
        "k=frames_written",
        "--renamed-value",
        "architecture:paper=mlp",
    ]
    result = subprocess.run(cmd, env=env_with_venv, capture_output=True, text=True)
    assert result.returncode == 1 and "value: 8 of 16 values moved" in result.stdout
    assert "results differ in ['student']" in result.stderr


def test_compare_metrics_maps_a_value_to_null_and_rejects_a_malformed_rename(tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    for run, variant in ((before, "per-frame"), (after, None)):
        (run / "metrics").mkdir(parents=True)
        pd.DataFrame({"model": ["pca"], "variant": [variant], "value": [0.5]}).astype({"variant": "str"}).to_parquet(
            run / "metrics" / "pca.parquet"
        )
    assert compare_metrics(before, after, renamed_values=["variant:per-frame="]) == [("pca", "identical (1 rows)")]
    assert compare_metrics(before, after, renamed_values=["pca:variant:per-frame="])[0][1].startswith("identical")
    with pytest.raises(ValueError, match="results differ"):  # scoped to another table: not applied here
        compare_metrics(before, after, renamed_values=["teacher:variant:per-frame="])
    with pytest.raises(ValueError, match=r"not of the form \[table:\]column:old=new"):
        compare_metrics(before, after, renamed_values=["per-frame="])
    with pytest.raises(ValueError, match=r"not of the form \[table:\]old=new"):
        compare_metrics(before, after, renamed_columns=["variant"])
    with pytest.raises(ValueError, match="two columns of one name"):  # model=variant: the table has a variant
        compare_metrics(before, after, renamed_columns=["model=variant"])


def test_compare_metrics_only_compares_one_source_of_a_run_that_has_several(tmp_path, capsys):
    before, after = tmp_path / "before", tmp_path / "after"
    for run in (before, after):
        (run / "metrics").mkdir(parents=True)
    one = pd.DataFrame({"model": ["imfn-teacher"] * 2, "T": [2, 4], "value": [0.01, 0.02]})
    one.to_parquet(before / "metrics" / "teacher.parquet")
    moving = one.assign(source="moving_mnist", value=[0.3, 0.4])
    pd.concat([one.assign(source="mnist"), moving]).to_parquet(after / "metrics" / "teacher.parquet")
    with pytest.raises(ValueError, match="results differ"):  # a source column, and rows of two sources
        compare_metrics(before, after)
    assert compare_metrics(before, after, only=["source=mnist"]) == [("teacher", "identical (2 rows)")]
    moving.assign(value=[0.01, 0.03]).to_parquet(after / "metrics" / "teacher.parquet")
    with pytest.raises(ValueError, match="results differ"):  # no mnist row after: nothing matches
        compare_metrics(before, after, only=["source=mnist"])
    assert "2 rows before, 0 after" in capsys.readouterr().out
    with pytest.raises(ValueError, match="not of the form column=value"):
        compare_metrics(before, after, only=["source"])
