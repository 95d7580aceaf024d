"""GPU claiming: with 4 (fake) devices and 8 concurrent jobs, never two jobs on one device."""

import fcntl
import itertools
import json
import multiprocessing as mp
import os
import stat
import subprocess
import sys
import time

import pytest
import torch

from imfn.devices import (
    autocast,
    batch_size,
    claim_free_gpu,
    configure_precision,
    default_lock_wait,
    place,
    plan_placement,
)

HOLD = 0.4


def _claimer(lock_dir, queue):
    index = claim_free_gpu(4, lock_dir, timeout=30, poll=0.01)
    start = time.monotonic()
    time.sleep(HOLD)  # "train" on it; the lock is released when this process exits
    queue.put((index, start, time.monotonic()))


def test_eight_claimers_never_share_one_of_four_devices(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_claimer, args=(tmp_path, queue)) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    claims = [queue.get(timeout=5) for _ in workers]
    by_device: dict[int, list] = {}
    for index, start, end in claims:
        assert 0 <= index < 4
        by_device.setdefault(index, []).append((start, end))
    for intervals in by_device.values():
        intervals.sort()
        for (_, end), (next_start, _) in itertools.pairwise(intervals):
            assert next_start >= end, "two jobs held the same device at once"
    assert len(by_device) == 4  # all four devices were used


def test_claim_times_out_with_a_clear_error_when_all_devices_are_held(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert claim_free_gpu(1, tmp_path) == 0
    ctx = mp.get_context("spawn")
    # another process: flock is per open file, so a second process is blocked
    with ctx.Pool(1) as pool, pytest.raises(TimeoutError, match="no free GPU"):
        pool.apply(claim_free_gpu, (1, str(tmp_path), 0.3, 0.05))


def test_device_selection_on_a_cpu_machine():
    assert place("cpu")[0] == torch.device("cpu")
    if not torch.cuda.is_available():
        assert place("auto")[0] == torch.device("cpu")
        with pytest.raises(RuntimeError, match="no CUDA device"):
            place("cuda")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        place("tpu")


# One code path, both cases: plan_placement decides, place() acts on it. Four GPUs are faked by patching
# torch.cuda, so these run on a CPU machine too.


@pytest.fixture
def four_fake_gpus(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    return chosen


def test_under_slurm_the_job_uses_the_gpu_slurm_gave_it_and_claims_nothing(tmp_path, monkeypatch, four_fake_gpus):
    monkeypatch.setenv("IMFN_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    device, placement = place("auto")
    assert device == torch.device("cuda:0") and four_fake_gpus == [0]  # cuda:0 is the one GPU SLURM made visible
    assert placement.kind == "scheduler" and "CUDA_VISIBLE_DEVICES=2" in placement.reason
    assert list(tmp_path.iterdir()) == []  # no lock file: the scheduler already chose


def test_on_a_local_multi_gpu_box_the_job_claims_a_free_gpu(tmp_path, monkeypatch, four_fake_gpus):
    monkeypatch.setenv("IMFN_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for held in range(2):  # two devices already held by other jobs
        fd = os.open(tmp_path / f"gpu{held}.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
    # flock is per open file description: this process's own held locks block it like another job's would
    device, placement = place("auto")
    assert placement.kind == "claim" and device == torch.device("cuda:2") and four_fake_gpus == [2]


@pytest.mark.parametrize(
    "preference, n_devices, environ, kind",
    [
        ("cpu", 4, {"SLURM_JOB_ID": "1", "CUDA_VISIBLE_DEVICES": "0"}, "cpu"),
        ("auto", 0, {}, "cpu"),
        ("cpu", 0, {"SLURM_JOB_ID": "1", "CUDA_VISIBLE_DEVICES": "3"}, "cpu"),  # fake GPUs, the CPU on purpose
        ("auto", 4, {"SLURM_JOB_ID": "1"}, "cpu"),  # a SLURM job given no GPU never takes one
        ("auto", 4, {"SLURM_JOB_ID": "1", "CUDA_VISIBLE_DEVICES": "NoDevFiles"}, "cpu"),
        ("auto", 1, {"SLURM_JOB_ID": "1", "CUDA_VISIBLE_DEVICES": "1"}, "scheduler"),
        ("cuda", 4, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, "claim"),
    ],
)
def test_plan_placement(preference, n_devices, environ, kind):
    assert plan_placement(preference, n_devices, environ).kind == kind


def test_cuda_without_a_gpu_is_an_error_naming_why():
    with pytest.raises(RuntimeError, match="SLURM job 7 was given no GPU"):
        plan_placement("cuda", 4, {"SLURM_JOB_ID": "7"})
    with pytest.raises(RuntimeError, match="no CUDA device is visible"):
        plan_placement("cuda", 0, {})


def test_a_slurm_job_given_a_gpu_without_cuda_fails_saying_why():
    for preference in ("auto", "cuda"):
        with pytest.raises(
            RuntimeError, match="SLURM job 9 was given GPU CUDA_VISIBLE_DEVICES=1 but torch cannot use CUDA"
        ):
            plan_placement(preference, 0, {"SLURM_JOB_ID": "9", "CUDA_VISIBLE_DEVICES": "1"}, "a CPU-only build")


def test_a_fake_cuda_less_slurm_job_fails_at_once_and_records_why(tmp_path):
    """A real `imfn` network job in a SLURM job that was given a GPU its CPU-only torch cannot use."""
    if torch.cuda.is_available():
        pytest.skip("this machine's torch can use CUDA")
    log = tmp_path / "job.log"
    env = {**os.environ, "SLURM_JOB_ID": "31", "CUDA_VISIBLE_DEVICES": "0"}
    missing = tmp_path / "empty"  # files the verb would read (they exist: the device is checked before they are read)
    missing.touch()
    cmd = [
        sys.executable,
        "-m",
        "imfn.cli",
        "evaluate-compressor",
        "--checkpoint",
        missing,
        "--source",
        "mnist",
        "--mnist",
        missing,
        "--split",
        missing,
        "--seed",
        "0",
        "--sequences",
        "1",
        "--out",
        tmp_path / "out.parquet",
        "--log",
        log,
    ]
    done = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "SLURM job 31 was given GPU CUDA_VISIBLE_DEVICES=0 but torch cannot use CUDA" in done.stderr
    assert "CPU-only build" in done.stderr  # why: this torch has no CUDA
    record = json.loads(log.with_suffix(".provenance.json").read_text())
    assert record["status"] == "failed" and record["slurm_job_id"] == "31"
    assert not (tmp_path / "out.parquet").exists()


def test_mixed_precision_changes_nothing_on_the_cpu():
    assert configure_precision(torch.device("cpu"), True) == "float32"
    x = torch.randn(8, 8)
    with autocast():
        y = x @ x
    assert y.dtype == torch.float32
    assert batch_size(100, torch.device("cpu")) == 100 and batch_size(100, torch.device("cuda")) == 800


def test_the_lock_directory_is_shared_by_every_user_whatever_the_umask(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    lock_dir = tmp_path / "locks"
    old = os.umask(0o077)
    try:
        assert claim_free_gpu(1, lock_dir, timeout=1) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(lock_dir.stat().st_mode) == 0o1777
    assert stat.S_IMODE((lock_dir / "gpu0.lock").stat().st_mode) == 0o666


def test_the_lock_wait_is_configurable(monkeypatch):
    monkeypatch.delenv("IMFN_GPU_LOCK_WAIT", raising=False)
    assert default_lock_wait() == 86400
    monkeypatch.setenv("IMFN_GPU_LOCK_WAIT", "90")
    assert default_lock_wait() == 90
    monkeypatch.setenv("IMFN_GPU_LOCK_WAIT", "an hour")
    with pytest.raises(ValueError, match="IMFN_GPU_LOCK_WAIT"):
        default_lock_wait()


def test_doctor_reports_torch_cuda_and_mamba():
    done = subprocess.run([sys.executable, "-m", "imfn.cli", "doctor"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch " in done.stdout and torch.__version__ in done.stdout
    assert "CUDA usable by torch" in done.stdout and "Mamba implementation" in done.stdout
