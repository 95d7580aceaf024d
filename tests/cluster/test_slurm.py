"""The smoke pipeline on a real one-node SLURM cluster (4 fake GPUs) through workflow/profiles/slurm.

Run by `make test-cluster` (not by `make test`: marked `cluster`, deselected by default). Needs root
and Debian's slurm-wlm + munge (tests/cluster/slurm.sh installs them with apt-get); skips otherwise.
Checks: the profile's local rules (downloads, aggregation, figures, reports) ran on the submitting host and
every other job as a SLURM job; the short GPU jobs of one grid cell shared one allocation (its roundtrips;
a level's bank and sweeper; a student's trajectory sets, training and evaluation) with one GPU; each GPU
job saw the device SLURM gave it; the metrics equal a local run's; a job made to fail is reported and a
rerun finishes the rest. Prints setup time, jobs run, the placement and grouping evidence and the total time.

The cluster's GPUs are fake (/dev/null) and this torch has no CUDA, so the runs say `device: cpu`: a job
SLURM gave a GPU with `device: auto` would fail, as it should (tests/test_devices.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
SLURM_SH = HERE / "slurm.sh"
GPUS = {"0", "1", "2", "3"}
NO_NETWORK = "no network: CPU only"
ON_PURPOSE = "cpu: config asks for the CPU"
# The verbs of the rules marked `localrule` (the demo's video-clips downloads its footage, so it is one too).
LOCAL_VERBS = {
    "fetch-mnist",
    "aggregate",
    "figures",
    "student-figures",
    "ablation-report",
    "compressor-report",
    "paper-param-counts",
    "video-clips",
    "video-report",
    "time-summary",
}


def say(*lines: str) -> None:
    print(*lines, sep="\n", flush=True)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running cluster: yields the environment that finds it (SLURM_CONF) and the setup time."""
    check = subprocess.run(["bash", str(SLURM_SH), "check"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"no SLURM cluster here: {check.stderr.strip() or check.stdout.strip()}")
    state = tmp_path_factory.mktemp("slurm")
    t0 = time.monotonic()
    start = subprocess.run(["bash", str(SLURM_SH), "start", str(state)], capture_output=True, text=True)
    setup_s = time.monotonic() - t0
    try:
        if start.returncode == 3:
            pytest.skip(f"cannot start SLURM here: {start.stderr.strip()}")
        assert start.returncode == 0, f"slurm.sh start failed:\n{start.stdout}\n{start.stderr}"
        say("", f"[cluster] {start.stdout.strip()} (setup {setup_s:.1f} s)")
        yield {"SLURM_CONF": "/etc/slurm/slurm.conf"}, state, setup_s
    finally:
        subprocess.run(["bash", str(SLURM_SH), "stop", str(state)], capture_output=True, text=True)


def run_snakemake(repo: Path, work: Path, env: dict, *args: str, timeout: float = 1500) -> tuple[int, str, float]:
    """Run snakemake (targets first), kill it with SIGKILL on timeout (it ignores SIGTERM while jobs run)."""
    cmd = ["snakemake", *args, "-s", str(repo / "Snakefile"), "-d", str(work)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"{' '.join(cmd)} still running after {timeout} s:\n{out[-4000:]}") from None
    return proc.returncode, out, time.monotonic() - t0


def job_stats(out: str) -> Counter:
    """Rule -> count from the 'Job stats' table Snakemake prints before running."""
    counts = Counter()
    table = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def records(work: Path) -> dict[str, dict]:
    """Each job's provenance record, by its log path."""
    return {str(p.relative_to(work)): json.loads(p.read_text()) for p in sorted(work.glob("logs/**/*.provenance.json"))}


def allocations(state: Path) -> dict[str, str]:
    """SLURM job id -> the GPUs the scheduler gave it ("none"), as its prolog logged them (slurm.sh)."""
    return dict(line.split() for line in (state / "allocations.log").read_text().splitlines() if line.strip())


def check_placement(state: Path, recs: dict[str, dict]) -> list[str]:
    """Every job a SLURM job that saw exactly the GPU SLURM allocated it (or none); network jobs got one."""
    allocated = allocations(state)
    rows = []
    for log, rec in recs.items():
        if rec["verb"] in LOCAL_VERBS:
            assert rec["slurm_job_id"] is None, f"{log}: a local rule ran as SLURM job {rec['slurm_job_id']}"
            rows.append(f"  {rec['verb']:<20} local (on the submitting host)  {log}")
            continue
        assert rec["slurm_job_id"] in allocated, f"{log}: not run as a SLURM job ({rec})"
        seen = rec["cuda_visible_devices"]
        assert allocated[rec["slurm_job_id"]] == (seen or "none"), (log, allocated[rec["slurm_job_id"]], seen)
        if rec["placement"] == NO_NETWORK:
            assert seen is None, f"{log}: non-GPU job was given a GPU ({rec})"
        elif rec["status"] == "ok":
            assert seen in GPUS, f"{log}: GPU job without exactly one SLURM GPU ({rec})"
            assert rec["placement"] == ON_PURPOSE, rec["placement"]  # fake GPUs: device: cpu (module docstring)
        rows.append(
            f"  {rec['verb']:<20} SLURM job {rec['slurm_job_id']:>4}  CUDA_VISIBLE_DEVICES="
            f"{rec['cuda_visible_devices']}  ({rec['status']}, {rec['wall_seconds']:.1f} s)  {log}"
        )
    return rows


def check_groups(recs: dict[str, dict]) -> list[str]:
    """The jobs of one group ran in one SLURM job; rows describing each group."""

    def job_of(pattern: str) -> set[str]:
        ids = {r["slurm_job_id"] for log, r in recs.items() if re.search(pattern, log)}
        assert ids, f"no job record matches {pattern}"
        return ids

    cell = r"logs/mnist/seed0/d16/framewise/"
    groups = {
        "a cell's roundtrips (T = 2, 4)": job_of(cell + r"roundtrip_T\d+\."),
        "level 1's bank and sweeper": job_of(cell + r"(build_bank|train_sweeper)_L1\."),
        "the T = 4 student's trajectory sets": job_of(cell + r"trajectories_T4_\w+\."),
        "the T = 4 students' online evaluations": job_of(cell + r"evaluate_online_\w+_T4\."),
    }
    for what, ids in groups.items():
        assert len(ids) == 1, f"{what} ran in {len(ids)} SLURM jobs {sorted(ids)}, not one"
    members = Counter(r["slurm_job_id"] for r in recs.values() if r["slurm_job_id"])
    return [f"  {what}: SLURM job {job} ({members[job]} jobs)" for what, (job,) in groups.items()]


def test_smoke_pipeline_on_slurm_matches_local_and_recovers_from_a_failure(
    repo, slurm, workdir_with_wheel, env_with_venv
):
    t_start = time.monotonic()
    slurm_env, state, setup_s = slurm
    env = {**env_with_venv, **slurm_env}
    env.pop("SLURM_JOB_ID", None)
    smoke = ["--configfile", str(repo / "config" / "smoke.yaml"), "--config", "device=cpu"]
    profile = [
        "--profile",
        str(repo / "workflow" / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks",
        "5",
    ]

    local = workdir_with_wheel / "local"
    cluster = workdir_with_wheel / "cluster"
    for work in (local, cluster):
        shutil.copytree(workdir_with_wheel / "resources", work / "resources")
        for wheel in (repo / "resources" / "downloads").glob("*.whl"):  # e.g. the video demo's footage
            shutil.copy(wheel, work / "resources" / "downloads" / wheel.name)

    code, out, local_s = run_snakemake(repo, local, env_with_venv, "all", "--cores", "2", *smoke)
    assert code == 0, out[-4000:]
    say(f"[local] smoke run: {sum(job_stats(out).values())} jobs in {local_s:.0f} s")

    # 1. One rule made to fail (IMFN_FAIL_VERB reaches the jobs through sbatch --export=ALL).
    failing = {**env, "IMFN_FAIL_VERB": "evaluate-online"}
    code, out, first_s = run_snakemake(repo, cluster, failing, "all", *profile, *smoke)
    planned = job_stats(out)
    assert code != 0, "a failed job must fail the run"
    # (a failed group job is reported as "Error in group", the failed rule inside it by name)
    assert "SLURM status is: 'FAILED'" in out or "Error in group online_" in out, out[-4000:]
    assert "Error in rule evaluate_online" in out, out[-4000:]
    failed = {log: r for log, r in records(cluster).items() if r["status"] == "failed"}
    assert failed and {r["verb"] for r in failed.values()} == {"evaluate-online"}, failed
    # A group stops at its first failed job, so its other evaluate_online jobs never started: the rerun owes
    # every evaluate_online job that did not finish.
    finished = [r for r in records(cluster).values() if r["verb"] == "evaluate-online" and r["status"] == "ok"]
    unfinished = planned["evaluate_online"] - len(finished)
    first_rows = check_placement(state, records(cluster))
    attempts = re.findall(r"SLURM-job '\d+' failed|Error in group \S+", out)
    say(
        f"[cluster] run 1 with IMFN_FAIL_VERB=evaluate-online: exit {code} after {first_s:.0f} s; "
        f"{len(attempts)} failed SLURM jobs (retried by the profile); {len(failed)} evaluate_online jobs failed, "
        f"{unfinished} of {planned['evaluate_online']} unfinished",
        f"          planned {sum(planned.values())} jobs: {dict(planned)}",
    )

    # 2. The rerun finishes only the rest.
    code, out, rerun_s = run_snakemake(repo, cluster, env, "all", *profile, *smoke)
    assert code == 0, out[-4000:]
    rerun = job_stats(out)
    assert rerun["evaluate_online"] == unfinished and rerun["train_sweeper"] == 0, rerun
    assert set(rerun) <= {"evaluate_online", "aggregate_metrics", "student_figures", "time_summary", "all"}, rerun
    say(f"[cluster] run 2 (rerun): exit 0 after {rerun_s:.0f} s, ran only {dict(rerun)}")

    # 3. Local rules ran here, every other job as a SLURM job; GPU jobs saw the GPU SLURM gave them; groups shared one.
    recs = records(cluster)
    assert all(r["status"] == "ok" for r in recs.values()), [log for log, r in recs.items() if r["status"] != "ok"]
    assert len(recs) == sum(n for rule, n in planned.items() if rule != "all"), (len(recs), planned)
    rows = check_placement(state, recs)
    group_rows = check_groups(recs)
    hashes = {r["config_hash"] for r in recs.values()} | {r["config_hash"] for r in records(local).values()}
    assert len(hashes) == 1 and "unset" not in hashes, hashes
    gpu_jobs = [r for r in recs.values() if r["placement"] != NO_NETWORK]
    local_jobs = [r for r in recs.values() if r["verb"] in LOCAL_VERBS]
    used = sorted(Counter(r["cuda_visible_devices"] for r in gpu_jobs).items())
    say(
        f"[cluster] {len(recs)} jobs: {len(local_jobs)} local rules on the submitting host, the rest in SLURM jobs; "
        f"{len(gpu_jobs)} GPU jobs, each saw the GPU index "
        f"SLURM's prolog logged for it (jobs per device: {used});"
        f" one config hash {hashes.pop()} locally and on the cluster",
        *rows,
    )
    say("[cluster] grouped: the jobs of each group ran in one SLURM job with one GPU", *group_rows)
    assert first_rows  # the first run's jobs were checked before the rerun replaced their failed records

    # 4. The cluster's metrics equal the local run's (timings aside).
    tables = sorted(p.name for p in (local / "results" / "metrics").glob("*.parquet") if p.stem != "time_summary")
    assert tables and tables == sorted(
        p.name for p in (cluster / "results" / "metrics").glob("*.parquet") if p.stem != "time_summary"
    )
    for name in tables:
        pd.testing.assert_frame_equal(
            pd.read_parquet(local / "results" / "metrics" / name),
            pd.read_parquet(cluster / "results" / "metrics" / name),
        )
    say(f"[cluster] metrics equal to the local run's: {', '.join(tables)}")
    say(
        f"[cluster] total {time.monotonic() - t_start:.0f} s (cluster setup {setup_s:.1f} s, local run {local_s:.0f} s,"
        f" cluster runs {first_s:.0f} + {rerun_s:.0f} s) on {os.cpu_count()} CPUs"
    )
