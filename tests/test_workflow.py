"""The Snakemake workflow: config validation, the DAG of the paper grid, and a real smoke run."""

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_report import assert_report_lists_every_figure_and_table, build_report
from video_fixture import CORRUPT, EMPTY, TRUNCATED, write_ucf_fixture

from imfn.data.video import read_clips


def snakemake(repo, workdir, *args, env, check=True):
    """Run snakemake; ``args`` start with any targets, since --configfile takes every word after it."""
    cmd = ["snakemake", *args, "-s", str(repo / "Snakefile"), "-d", str(workdir)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def planned_jobs(repo, workdir, env, *args) -> Counter:
    """Rule -> job count from a dry run's summary table."""
    out = snakemake(repo, workdir, *args, "-n", "--quiet", "rules", env=env).stdout
    counts = Counter()
    for line in out.splitlines():
        match = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def test_default_config_plans_the_full_paper_grid(repo, tmp_path, env_with_venv):
    write_ucf_fixture(tmp_path / "resources" / "UCF-101")  # video.root holds videos: the video branch is planned
    jobs = planned_jobs(repo, tmp_path, env_with_venv)
    # mnist, 5 seeds x 5 dims: 9 sweepers each, banks for levels 1..8, roundtrip at 8 values of T; moving_mnist
    # at the same seeds and dims, 3 teacher variants (mix, framewise, paper): 6 levels (T up to 64), banks for
    # levels 1..5, roundtrip at 6 values of T
    assert jobs["train_sweeper"] == 25 * 9 + 3 * 25 * 6
    assert jobs["build_bank"] == 25 * 8 + 3 * 25 * 5
    assert jobs["roundtrip"] == 25 * 8 + 3 * 25 * 6
    assert jobs["source_report"] == 1  # moving_mnist's table and figures
    assert jobs["split"] == jobs["clip_pca"] == 5  # the digits' split is shared; clip PCA is moving_mnist's
    assert jobs["image_bank"] == jobs["pca_roundtrip"] == 2 * 5
    assert jobs["fetch_mnist"] == jobs["figures"] == 1
    assert jobs["aggregate_metrics"] == 7  # teacher, teacher_health, autoencoder, pca, clip_pca, student, compressors
    # the per-frame autoencoder per source, seed and k = d // T: k in {1, 2, 4, ..., 512} on both sources
    # (d // T = 0 is PCA's mean image)
    assert jobs["frame_autoencoder"] == 2 * 5 * 10
    # students with a train and a test trajectory set per (source, seed, T): mnist's at d = 1024, 5 seeds x 5 T x 3
    # student variants; moving_mnist's (of its mix teacher) at d = 256, 5 seeds x 4 T x 3 student variants
    assert jobs["train_student"] == jobs["evaluate_online"] == 5 * 5 * 3 + 5 * 4 * 3
    assert jobs["trajectories"] == 5 * 5 * 2 + 5 * 4 * 2
    # compressors: Transformer and Mamba for the paper's 4 seeds, Tables 1-2 and Figure 6 once
    assert jobs["train_compressor"] == jobs["evaluate_compressor"] == 2 * 4
    assert jobs["paper_param_counts"] == jobs["compressor_report"] == 1
    # the video hierarchy: one clip bank and split, one training and one evaluation job per level L0..L3
    assert jobs["train_video_level"] == jobs["evaluate_video_level"] == 4
    assert jobs["video_clips"] == jobs["video_split"] == jobs["video_metrics"] == jobs["video_report"] == 1
    assert jobs["video_pca"] == 1


def test_quicks_video_branch_runs_on_moving_mnist_beside_its_tree_and_the_demo_config_on_footage(
    repo, tmp_path, env_with_venv
):
    quick = ["--configfile", str(repo / "config" / "quick.yaml")]
    jobs = planned_jobs(repo, tmp_path, env_with_venv, "video", *quick)
    assert jobs["train_video_level"] == jobs["evaluate_video_level"] == 4 and jobs["video_clips"] == 1
    assert jobs["train_sweeper"] > 0  # Table 3 reads the moving_mnist tree's metric table, built first
    jobs = planned_jobs(repo, tmp_path, env_with_venv, "video", *quick, str(repo / "config" / "video-demo.yaml"))
    assert jobs["train_video_level"] == jobs["evaluate_video_level"] == 4 and jobs["video_clips"] == 1
    assert "train_sweeper" not in jobs  # the footage's Table 3 has no sequence references


def test_paper_command_without_ucf101_plans_the_mnist_grid_and_says_video_is_left_out(repo, tmp_path, env_with_venv):
    result = snakemake(repo, tmp_path, "-n", "--quiet", "rules", env=env_with_venv)
    note = "video.root: resources/UCF-101 is not a directory, so the video branch (Table 3) is left out"
    assert note in result.stderr.splitlines()[0]  # said before the DAG is built
    assert "train_sweeper" in result.stdout and "video" not in result.stdout
    # asking for the video branch alone fails before any job, with the same message
    result = snakemake(repo, tmp_path, "video", "-n", env=env_with_venv, check=False)
    assert result.returncode != 0 and note in result.stdout + result.stderr
    assert "point video.root at it" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ({"sources": {"moving_mnist": {"levles": 3}}}, "sources.moving_mnist: Additional properties are not allowed"),
        ({"student": {"train": ["slot", "lstm"]}}, "student.train names student variants ['lstm']"),
    ],
)  # fmt: skip
def test_a_bad_config_fails_before_any_job_naming_the_key(repo, tmp_path, env_with_venv, override, message):
    """Every check lives in the experiment object (tests/test_experiment.py); here: Snakemake stops on it first."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    result = snakemake(repo, tmp_path, "-n", "--configfile", str(bad), env=env_with_venv, check=False)
    assert result.returncode != 0
    first_lines = "\n".join((result.stdout + result.stderr).splitlines()[:6])
    assert "ConfigError" in first_lines and message in first_lines and "Building DAG" not in first_lines


def test_targets_a_narrower_grid_cannot_plan_fail_naming_the_key_and_a_canonical_file_plans_its_T(
    repo, tmp_path, env_with_venv
):
    import numpy as np

    bad = tmp_path / "narrow.yaml"
    bad.write_text(yaml.safe_dump({"dims": [1024], "student": {"sources": {"moving_mnist": {"dim": 1024}}}}))
    snakemake(repo, tmp_path, "-n", "--quiet", "rules", "--configfile", str(bad), env=env_with_venv)
    for target, message in (("ablation", "config ablation.dims [256, 1024]"), ("paper_sweep", "d = 256")):
        result = snakemake(repo, tmp_path, target, "-n", "--configfile", str(bad), env=env_with_venv, check=False)
        assert result.returncode != 0 and message in result.stdout + result.stderr
    np.save(tmp_path / "right.npy", np.zeros((20, 500, 64, 64), dtype=np.uint8))
    right = {"T": [2, 4], "canonical_test": str(tmp_path / "right.npy")}  # T <= 16 with it: planned
    bad.write_text(yaml.safe_dump({"sources": {"moving_mnist": right}}))
    jobs = planned_jobs(repo, tmp_path, env_with_venv, "--configfile", str(bad))
    assert jobs["roundtrip"] == 25 * 8 + 3 * 25 * 2  # 3 moving_mnist variants


def test_smoke_run_then_no_work_then_only_the_touched_level_downstream(repo, workdir_with_wheel, env_with_venv):
    work = workdir_with_wheel
    # the video branch reads a tiny UCF-shaped fixture (bad files included) instead of the demo footage
    video = {"dataset": "ucf101", "root": str(write_ucf_fixture(work / "UCF-101")), "validation_fraction": 0.25}
    (work / "video.yaml").write_text(yaml.safe_dump({"video": video}))
    smoke = ["--configfile", str(repo / "config" / "smoke.yaml"), str(work / "video.yaml")]
    cell = work / "results/mnist/seed0/d16/framewise"
    snakemake(repo, work, "all", "ablation", "paper_sweep", "--cores", "2", *smoke, env=env_with_venv)

    metrics = pd.read_parquet(work / "results/metrics/teacher.parquet")
    overall = metrics[metrics["position"].isna()]
    assert sorted(overall["T"].unique()) == [2, 4] and set(overall["metric"]) == {"mse", "psnr", "ssim"}
    variants = set(zip(overall["source"], overall["variant"], strict=True))  # one table, a source column
    expected = {("mnist", "framewise"), ("moving_mnist", "mix"), ("moving_mnist", "paper")}
    assert variants == expected and overall["value"].notna().all()
    assert (work / "results/moving_mnist/seed0/d16/paper/roundtrip_T4.parquet").exists()
    limit = pd.read_parquet(work / "results/metrics/autoencoder.parquet")  # k = 16 // T numbers per frame
    assert set(limit["model"]) == {"autoencoder"} and sorted(set(limit["T"])) == [2, 4] and limit["value"].notna().all()
    assert set(limit["source"]) == {"mnist", "moving_mnist"}
    clip = pd.read_parquet(work / "results/metrics/clip_pca.parquet")
    assert set(clip["source"]) == {"moving_mnist"} and set(clip["model"]) == {"clip-pca", "mean-frame"}
    health = pd.read_parquet(work / "results/metrics/teacher_health.parquet")
    assert sorted(health["level"]) == [0, 0, 0, 1, 1, 1]  # moving_mnist's trees at d = 16, 1 epoch: collapsed
    health = health[health["source"] == "mnist"]
    assert not health["collapsed"].any()
    level1 = health[health["level"] == 1].iloc[0]
    level0 = health[health["level"] == 0].iloc[0]
    assert level1["reconstruction_vs_below"] == pytest.approx(level1["reconstruction"] / level0["reconstruction"])
    student = pd.read_parquet(work / "results/metrics/student.parquet")
    end = student[student["metric"] == "mse"]
    students = ("paper", "curriculum", "slot")
    # one table, a source column: mnist's three students of its framewise teacher, moving_mnist's dense one of mix
    assert set(zip(end["source"], end["model"], end["variant"], end["teacher_variant"], strict=True)) == {
        ("mnist", "student", v, "framewise") for v in students
    } | {("mnist", "teacher", "framewise", "framewise"), ("moving_mnist", "student", "dense", "mix"),
         ("moving_mnist", "teacher", "mix", "mix")}  # fmt: skip
    assert (student[student["metric"] == "prefix_mse"].groupby(["model", "variant"])["frames_written"].max() == 4).all()
    past = student[student["metric"] == "past_end_mse"]  # the last 4 frames after 8 and 16 frames written
    assert all(set(k) == {8, 16} for _, k in past.groupby(["source", "model", "variant"])["frames_written"])
    assert len(past) == 2 * 2 * 4 and past["value"].notna().all()
    table = (work / "results/tables/student.md").read_text()
    assert all(f"| {variant} | 4 |" in table for variant in (*students, "dense"))
    assert "**moving_mnist**: teacher `mix`, d = 16, 1 seed" in table
    assert "| student after 2T | teacher after 2T |" in table
    losses = {v: pd.read_parquet(cell / f"student_{v}_T4_loss.parquet") for v in students}
    assert all(set(loss["variant"]) == {v} for v, loss in losses.items())  # each loss curve says whose it is
    assert set(losses["slot"]["architecture"]) == {"positional"} and set(losses["paper"]["architecture"]) == {"mlp"}
    table = (work / "results/tables/moving_mnist.md").read_text()
    names = ("IMFN mix", "IMFN paper", "per-frame autoencoder", "per-frame PCA", "clip PCA", "mean frame")
    assert all(f"| {name}" in table for name in names) and "| IMFN mix / clip PCA, d components |" in table
    for name in (
        "moving_mnist_mse_vs_T",
        "moving_mnist_per_position",
        "moving_mnist_strip",
        "fig2_mse_vs_dim",
        "fig3_mse_vs_T",
        "teacher_health",
        "teacher_ablation_mse_vs_T",
        "paper_sweep_mse_vs_T",
        "fig4_prefix_retention",
        "fig5_end_of_sequence",
    ):
        assert (work / f"results/figures/{name}.png").stat().st_size > 10_000
    compressors = pd.read_parquet(work / "results/metrics/compressors.parquet")
    assert set(compressors["model"]) == {"transformer", "mamba"} and set(compressors["T"]) == {4}
    assert compressors["value"].notna().all()
    table1 = (work / "results/tables/table1_compressors.md").read_text()
    names = ("IMFN teacher", "Transformer", "Mamba", "per-frame autoencoder (the limit)", "per-frame PCA")
    assert all(f"| {name} |" in table1 for name in names)
    assert "182,431,504" in (work / "results/tables/table2_params.md").read_text()
    assert (work / "results/figures/fig6_sequence.png").stat().st_size > 10_000
    manifest = pd.read_parquet(work / "results/video/ucf101/manifest.parquet")
    assert set(manifest.loc[manifest["status"] == "skipped", "path"]) == {EMPTY, CORRUPT, TRUNCATED}
    video_metrics = pd.read_parquet(work / "results/metrics/video.parquet")
    assert sorted(video_metrics["level"].unique()) == [0, 1, 2, 3] and video_metrics["value"].notna().all()
    assert video_metrics.groupby("level")["video"].nunique().eq(2).all()  # 2 of the 8 decoded videos
    table3 = (work / "results/tables/table3_video.md").read_text()
    assert "| L3 | IMFN | 16:1 | 2 |" in table3 and "| L3 | per-frame PCA, same memory (" in table3
    assert (work / "results/figures/fig_video_reconstructions.png").stat().st_size > 10_000
    table = (work / "results/tables/teacher_ablation.md").read_text()
    rows = ("| paper |", "| pca-pixel |", "| framewise |", "| per-frame autoencoder |", "| per-frame PCA |")
    assert all(row in table for row in rows) and "Ratio to the per-frame autoencoder at d = 16" in table
    sweep = (work / "results/tables/paper_sweep.md").read_text()
    assert "d = 16, seed 0" in sweep and all(f"| {v} |" in sweep for v in ("paper", "paper-noise-0", "per-frame PCA"))
    sweep_health = pd.read_parquet(work / "results/metrics/paper_sweep_health.parquet")
    assert set(sweep_health["variant"]) == {"paper", "paper-noise-0"} and sorted(set(sweep_health["level"])) == [0, 1]
    logs = work / "logs/mnist/seed0/d16"
    assert "depth 2 decoder (seed 0) epoch 1/1" in (logs / "pca-pixel/train_sweeper_L1.log").read_text()
    assert "depth 2 level and decoder (seed 0) epoch 1/1" in (logs / "framewise/train_sweeper_L1.log").read_text()
    assert list(work.rglob("*.tmp-*")) == [] and list(work.rglob(".*resume.pt")) == []

    # one HTML report holds every figure and table with its caption; each job left its provenance
    targets = ["all", "ablation", "paper_sweep"]
    assert_report_lists_every_figure_and_table(build_report(repo, work, env_with_venv, *targets, *smoke), work)
    assert (work / "results/metrics/time_summary.parquet").exists()
    record = json.loads((work / "logs/mnist/seed0/d16/framewise/train_sweeper_L1.provenance.json").read_text())
    assert record["status"] == "ok" and record["config_hash"] != "unset" and record["device"] == "cpu"
    assert [Path(f).name for f in record["config_files"]] == ["config.yaml", "smoke.yaml", "video.yaml"]
    # the results page of this run: stamped with its commit and config files, its headline table filled in
    page = work / "docs" / "results.md"
    subprocess.run(
        ["imfn", "results-page", "--results", str(work / "results"), "--logs", str(work / "logs"), "--out", str(page)],
        env=env_with_venv,
        check=True,
    )
    text = page.read_text()
    assert f"`{record['git'][:12]}" in text and "smoke.yaml" in text and "| IMFN teacher (`framewise`)" in text
    assert "| student (`slot`)" in text and (work / "docs/figures/fig3_mse_vs_T.png").exists()

    assert planned_jobs(repo, work, env_with_venv, *targets, *smoke) == Counter()  # a rerun does no work

    (cell / "sweeper_L1.pt").unlink()
    # level 1 and what depends on it: the T=4 roundtrip, the T=4 students through their trajectory sets,
    # and Figure 6 (it shows the teacher at the compressors' T=4)
    assert planned_jobs(repo, work, env_with_venv, *smoke) == Counter(
        {
            "train_sweeper": 1,
            "roundtrip": 1,
            "trajectories": 2,
            "train_student": 3,  # the smoke config's three student variants
            "evaluate_online": 3,
            "aggregate_metrics": 3,
            "figures": 1,
            "student_figures": 1,
            "compressor_report": 1,
            "source_report": 1,  # moving_mnist's report reads the teacher table, which holds both sources
            "time_summary": 1,
            "all": 1,
        }
    )
    before = (cell / "roundtrip_T2.parquet").stat().st_mtime_ns
    snakemake(repo, work, "--cores", "2", *smoke, env=env_with_venv)
    assert (cell / "roundtrip_T2.parquet").stat().st_mtime_ns == before
    assert (cell / "sweeper_L1.pt").exists()
    # same seed, same numbers: the retrained level and students reproduce the first run's metrics exactly
    pd.testing.assert_frame_equal(metrics, pd.read_parquet(work / "results/metrics/teacher.parquet"))
    pd.testing.assert_frame_equal(student, pd.read_parquet(work / "results/metrics/student.parquet"))

    # the video hierarchy on moving_mnist: the source's sequences as grayscale clips, at d = 1 x 16 = the source's
    # d, Table 3 beside that source's trees and clip PCA over the same windows (its teacher tables are in place)
    video = {"dataset": "moving_mnist", "levels": 2, "clip_frames": 4, "clips": 20, "frame_size": 64,
             "model": {"patch": 16, "memory_tokens": 1, "architecture": "mix"},
             "training": {"epochs": [1, 1], "videos": [8, 8],
                                                                     "pairs_per_video": [1, 1]}}  # fmt: skip
    (work / "video.yaml").write_text(yaml.safe_dump({"video": video}))
    snakemake(repo, work, "video", "--cores", "2", *smoke, env=env_with_venv)
    assert read_clips(work / "results/video/moving_mnist/clips.zarr").shape == (20, 4, 64, 64, 1)
    table3 = (work / "results/tables/table3_video.md").read_text()
    assert "| L1 | IMFN | 4:1 | 4 |" in table3 and "| L1 | vector tree `mix` (moving_mnist, T = 4) | 4:1 |" in table3
    assert "| L0 | clip PCA, 16 components (moving_mnist, T = 2) |" in table3 and "vector tree `paper`" in table3
    (work / "video.yaml").write_text(yaml.safe_dump({"video": {**video, "model": {"memory_tokens": 2}}}))
    result = snakemake(repo, work, "video", "-n", *smoke, env=env_with_venv, check=False)
    assert result.returncode != 0 and "memory_tokens x width = 32" in result.stdout + result.stderr


def test_figures_rebuild_from_results_alone(repo, tmp_path, env_with_venv):
    rows = [
        {
            "model": "imfn-teacher",
            "variant": "pca-pixel",
            "seed": s,
            "dim": d,
            "T": T,
            "position": None,
            "metric": "mse",
            "value": 0.01 * T / d + 0.001 * s,
        }
        for s in (0, 1)
        for d in (64, 256)
        for T in (2, 4, 8)
    ]
    (tmp_path / "metrics").mkdir()
    frame = pd.DataFrame(rows)
    frame["position"] = frame["position"].astype("Int64")
    frame.to_parquet(tmp_path / "metrics" / "teacher.parquet")
    health = pd.DataFrame(
        [
            {
                "variant": "pca-pixel",
                "seed": s,
                "dim": d,
                "level": level,
                "unexplained_variance": 0.1,
                "effective_rank": 10.0,
                "collapsed": level == 2,
                "max_unexplained_variance": 0.9,
            }
            for s in (0, 1)
            for d in (64, 256)
            for level in range(3)
        ]
    )
    health.to_parquet(tmp_path / "metrics" / "teacher_health.parquet")
    frame.assign(model="autoencoder", variant=None, value=frame["value"] / 2).to_parquet(
        tmp_path / "metrics" / "autoencoder.parquet"
    )
    subprocess.run(["imfn", "figures", "--results", str(tmp_path)], env=env_with_venv, check=True)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "fig2_mse_vs_dim.pdf",
        "fig2_mse_vs_dim.png",
        "fig3_mse_vs_T.pdf",
        "fig3_mse_vs_T.png",
        "teacher_health.pdf",
        "teacher_health.png",
    ]
