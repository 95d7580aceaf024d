"""GPU claiming: with 4 (fake) devices and 8 concurrent jobs, never two jobs on one device."""

import itertools
import multiprocessing as mp
import time

import pytest
import torch

from imfn.devices import claim_free_gpu, select_device

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
