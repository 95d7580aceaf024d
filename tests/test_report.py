"""`snakemake --report`: one HTML file holding every figure and table, each with its caption.

The full check runs inside the smoke end-to-end test (tests/test_workflow.py), on its results, so
no extra pipeline run is needed; the tests here are the cheap ones.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

REPORT_DIR = Path(__file__).resolve().parents[1] / "workflow" / "report"


def build_report(repo: Path, work: Path, env: dict, *args: str) -> Path:
    """Build results/report.html in ``work`` (``args``: targets first, then e.g. --configfile ...)."""
    out = work / "results" / "report.html"
    cmd = ["snakemake", *args, "--report", str(out), "-s", str(repo / "Snakefile"), "-d", str(work)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return out


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
        name = Path(path).stem
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
