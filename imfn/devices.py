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
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Placement:
    """Who decides a job's device, and why: ``cpu``, ``scheduler`` (SLURM chose) or ``claim`` (lock file)."""

    kind: str
    reason: str


def _named_devices(environ: Mapping[str, str]) -> list[str]:
    visible = environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    # SLURM writes "NoDevFiles" (older versions) or leaves it unset when it gave the job no GPU.
    return [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "NoDevFiles"]


def plan_placement(preference: str, n_devices: int, environ: Mapping[str, str] | None = None) -> Placement:
    """The one place that decides how a job gets its device (pure: no CUDA, no locks).

    - ``cpu``, or no CUDA device visible: the CPU (``cuda`` then is an error).
    - inside a SLURM job (``SLURM_JOB_ID``): the scheduler already chose; the job uses what
      ``CUDA_VISIBLE_DEVICES`` names as ``cuda:0`` and never claims another device. A SLURM job
      that was given no GPU runs on the CPU rather than take a GPU another job was given.
    - otherwise (a local multi-GPU box): the job claims a free device with a lock file.
    """
    environ = os.environ if environ is None else environ
    if preference not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"device must be one of auto, cpu, cuda; got {preference!r}")
    if preference == "cpu":
        return Placement("cpu", "config asks for the CPU")
    slurm_job = environ.get("SLURM_JOB_ID")
    named = _named_devices(environ)
    if slurm_job and not named:
        if preference == "cuda":
            raise RuntimeError(f"config asks for device: cuda but SLURM job {slurm_job} was given no GPU")
        return Placement("cpu", f"SLURM job {slurm_job} was given no GPU")
    if n_devices == 0:
        if preference == "cuda":
            raise RuntimeError("config asks for device: cuda but no CUDA device is visible")
        return Placement("cpu", "no CUDA device visible")
    if slurm_job:
        return Placement("scheduler", f"SLURM job {slurm_job} was given CUDA_VISIBLE_DEVICES={','.join(named)}")
    return Placement("claim", f"claimed one of {n_devices} devices with a lock file in {default_lock_dir()}")


def place(preference: str = "auto") -> tuple[torch.device, Placement]:
    """Resolve ``auto`` / ``cpu`` / ``cuda`` to a concrete device, claiming a GPU when the plan says so."""
    n_devices = torch.cuda.device_count() if preference != "cpu" and torch.cuda.is_available() else 0
    plan = plan_placement(preference, n_devices)
    if plan.kind == "cpu":
        device = torch.device("cpu")
    elif plan.kind == "scheduler":
        torch.cuda.set_device(0)
        device = torch.device("cuda:0")
    else:
        index = claim_free_gpu(n_devices)
        torch.cuda.set_device(index)
        device = torch.device(f"cuda:{index}")
    log.info("device: %s (%s)", device, plan.reason)
    return device, plan


def select_device(preference: str = "auto") -> torch.device:
    """The device a job computes on (see :func:`plan_placement` for who decides)."""
    return place(preference)[0]
