"""Which device a job computes on.

Snakemake's ``--resources gpu=N`` bounds how many GPU jobs run at once but not *which* GPU
each gets. So on a multi-GPU box every job claims one free device exclusively with a lock
file (``flock``; the kernel releases it when the process dies, even by SIGKILL). Under
SLURM the scheduler has already chosen: ``CUDA_VISIBLE_DEVICES`` names it and the job uses
it as ``cuda:0`` without claiming anything.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_held_locks: list[int] = []  # file descriptors kept open for the life of the process


def default_lock_dir() -> Path:
    return Path(os.environ.get("IMFN_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "imfn-gpu-locks"))


def _physical_ids(n_devices: int) -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else []
    return ids[:n_devices] if len(ids) >= n_devices else [str(i) for i in range(n_devices)]


def claim_free_gpu(
    n_devices: int, lock_dir: str | os.PathLike | None = None, timeout: float = 3600.0, poll: float = 0.1
) -> int:
    """Block until one of ``n_devices`` GPUs is free, lock it for this process, return its index."""
    if n_devices < 1:
        raise ValueError("claim_free_gpu needs at least one device")
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    ids = _physical_ids(n_devices)
    deadline = time.monotonic() + timeout
    while True:
        for index, physical in enumerate(ids):
            fd = os.open(lock_dir / f"gpu{physical}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _held_locks.append(fd)
            return index
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {n_devices} after {timeout:.0f} s (locks in {lock_dir})")
        time.sleep(poll)


def select_device(preference: str = "auto") -> torch.device:
    """Resolve ``auto`` / ``cpu`` / ``cuda`` to a concrete device, claiming a GPU when needed."""
    if preference not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"device must be one of auto, cpu, cuda; got {preference!r}")
    if preference == "cpu":
        return torch.device("cpu")
    n_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_devices == 0:
        if preference == "cuda":
            raise RuntimeError("config asks for device: cuda but no CUDA device is visible")
        log.info("device: cpu (no CUDA device visible)")
        return torch.device("cpu")
    if os.environ.get("SLURM_JOB_ID") and os.environ.get("CUDA_VISIBLE_DEVICES"):
        log.info("device: cuda:0, chosen by SLURM (CUDA_VISIBLE_DEVICES=%s)", os.environ["CUDA_VISIBLE_DEVICES"])
        return torch.device("cuda:0")
    index = claim_free_gpu(n_devices)
    torch.cuda.set_device(index)
    log.info("device: cuda:%d, claimed with a lock file in %s", index, default_lock_dir())
    return torch.device(f"cuda:{index}")
