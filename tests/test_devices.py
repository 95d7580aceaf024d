"""GPU claiming: with 4 (fake) devices and 8 concurrent jobs, never two jobs on one device."""

import fcntl
import itertools
import multiprocessing as mp
import os
import time

import pytest
import torch

from imfn.devices import claim_free_gpu, place, plan_placement, select_device

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
    assert select_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert select_device("auto") == torch.device("cpu")
        with pytest.raises(RuntimeError, match="no CUDA device"):
            select_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        select_device("tpu")


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
        ("auto", 0, {"SLURM_JOB_ID": "1", "CUDA_VISIBLE_DEVICES": "3"}, "cpu"),  # SLURM's fake GPUs, no CUDA
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
