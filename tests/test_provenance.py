"""Provenance: each job's record (version, commit, config hash, device, wall time) and the time summary."""

import json
import os
import re
import subprocess

import pandas as pd
import pytest

from imfn import provenance
from imfn.cli import main
from imfn.report.time_summary import read_benchmarks, time_summary


def test_git_commit_of_a_checkout_and_unknown_outside_one(repo, tmp_path):
    commit = provenance.git_commit(repo)
    if (repo / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit)
    assert provenance.git_commit(tmp_path) == "unknown"  # e.g. an installed copy, or a tarball
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert provenance.git_commit(tmp_path) == "unknown"  # a checkout without a commit yet


def _write_table(path):
    pd.DataFrame({"model": ["a"], "value": [1.0]}).to_parquet(path)


def test_a_job_records_version_commit_config_hash_device_and_wall_time(tmp_path, monkeypatch):
    monkeypatch.setenv("IMFN_CONFIG_HASH", "abc123def456")
    monkeypatch.setenv("IMFN_CONFIG_FILES", os.pathsep.join(["config/config.yaml", "config/quick.yaml"]))
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    part = tmp_path / "part.parquet"
    _write_table(part)
    log = tmp_path / "logs" / "aggregate.log"
    assert main(["aggregate", "--out", str(tmp_path / "all.parquet"), "--log", str(log), str(part)]) == 0
    record = json.loads((tmp_path / "logs" / "aggregate.provenance.json").read_text())
    assert record["verb"] == "aggregate" and record["status"] == "ok"
    assert record["imfn"] == "0.1.0" and record["git"] and record["config_hash"] == "abc123def456"
    assert record["slurm_job_id"] == "77" and record["cuda_visible_devices"] == "3"
    assert record["device"] == "cpu" and record["wall_seconds"] >= 0
    assert record["config_files"] == ["config/config.yaml", "config/quick.yaml"]
    assert record["machine"]["cpus"] == os.cpu_count() and record["machine"]["cpu"]
    text = log.read_text()
    assert "provenance: imfn 0.1.0" in text and "config abc123def456, SLURM job 77" in text
    assert '"wall_seconds"' in text  # the closing record is in the log too


def test_a_network_job_records_its_device_and_who_chose_it(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    from imfn.cli import _start_job, build_parser

    for name in ("x.pt", "m", "s"):  # the files a verb reads must exist when it parses its flags
        (tmp_path / name).touch()
    monkeypatch.chdir(tmp_path)
    argv = ["roundtrip", "--sweepers", "x.pt", "--source", "mnist", "--mnist", "m", "--split", "s", "--seed", "0"]
    argv += ["--dim", "4"]
    argv += ["--T", "2", "--sequences", "5", "--variant", "v", "--out", "o", "--device", "cpu"]
    args = build_parser(argv).parse_args(argv + ["--log", str(tmp_path / "r.log")])
    _start_job(args)
    record = provenance.finish(ok=True)
    assert record["device"] == "cpu" and record["placement"] == "cpu: config asks for the CPU"
    assert record["threads"] == 1


def test_a_job_made_to_fail_says_so_and_records_the_failure(tmp_path, monkeypatch):
    monkeypatch.setenv(provenance.FAIL_VAR, "aggregate")
    part = tmp_path / "part.parquet"
    _write_table(part)
    log = tmp_path / "aggregate.log"
    assert main(["aggregate", "--out", str(tmp_path / "all.parquet"), "--log", str(log), str(part)]) == 1
    assert "failing on purpose" in log.read_text() and not (tmp_path / "all.parquet").exists()
    assert json.loads((tmp_path / "aggregate.provenance.json").read_text())["status"] == "failed"


BENCHMARK = (
    "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    "{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{s}\n"
)


def _benchmark(path, s, rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCHMARK.format(s=s, rss=rss))


def test_time_summary_names_each_job_by_rule_and_wildcards(tmp_path):
    bench = tmp_path / "benchmarks"
    _benchmark(bench / "mnist/seed0/d16/paper/train_sweeper_L0.tsv", 10.0, 500)
    _benchmark(bench / "mnist/seed0/d16/paper/train_sweeper_L1.tsv", 6.0, 400)
    _benchmark(bench / "mnist/seed0/d16/paper/train_student_paper_T4.tsv", 3.0, 300)
    _benchmark(bench / "mnist/seed0/pca_roundtrip.tsv", 1.0, 200)
    (bench / "mnist/seed0/empty.tsv").write_text("s\th:m:s\n")  # an interrupted benchmark: skipped
    _benchmark(bench / "video/demo/train_video_L2.tsv", 2.0, 100)
    cell = "benchmarks/mnist/seed{seed}/d{dim}/{variant}"
    rules = [
        f"train_sweeper={cell}/train_sweeper_L{{level}}.tsv",
        f"train_student={cell}/train_student_{{student_variant}}_T{{T}}.tsv",
        "train_video_level=benchmarks/video/demo/train_video_L{level,\\d+}.tsv",  # a constraint is allowed
        "pca_roundtrip",  # a bare name matches files named after it
    ]
    jobs = read_benchmarks(bench, rules)
    assert list(jobs["rule"]) == [
        "pca_roundtrip",
        "train_student",
        "train_sweeper",
        "train_sweeper",
        "train_video_level",
    ]
    assert list(jobs["wildcards"]) == [
        "",
        "seed=0,dim=16,variant=paper,student_variant=paper,T=4",
        "seed=0,dim=16,variant=paper,level=0",
        "seed=0,dim=16,variant=paper,level=1",
        "level=2",
    ]
    assert read_benchmarks(bench)["rule"].tolist()[0] == "pca_roundtrip"  # no rules known: named by the file
    assert jobs["s"].sum() == pytest.approx(22.0) and jobs["max_rss"].max() == 500

    out, figure = tmp_path / "time.parquet", tmp_path / "time.png"
    time_summary(bench, rules, out, figure)
    pd.testing.assert_frame_equal(pd.read_parquet(out), jobs)
    assert figure.stat().st_size > 10_000
    with pytest.raises(FileNotFoundError, match="no benchmark files"):
        time_summary(tmp_path / "nothing", rules, out, figure)


def _rule_blocks(repo):
    """(file, rule name, rule text) for every rule in workflow/rules/*.smk."""
    for smk in sorted((repo / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.MULTILINE)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            yield smk.name, name, body


def test_every_training_and_evaluation_rule_is_benchmarked_under_its_own_name(repo):
    network = 0
    for smk, name, body in _rule_blocks(repo):
        if "{params.device}" not in body:  # runs a network (DEVICE: --device, --mixed-precision)
            continue
        network += 1
        assert re.search(r"^\s+gpu=1,", body, re.MULTILINE), f"{smk}: rule {name} runs a network but asks no gpu=1"
        match = re.search(r"^    benchmark:\n\s+(.+)$", body, re.MULTILINE)
        assert match, f"{smk}: rule {name} runs a network but has no benchmark: directive"
    assert network >= 6
