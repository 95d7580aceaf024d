"""Which device a job computes on, and how it computes there.

Snakemake's ``--resources gpu=N`` bounds how many GPU jobs run at once but not *which* GPU
each gets. So on a multi-GPU box every job claims one free device exclusively with a lock
file (``flock``; the kernel releases it when the process dies, even by SIGKILL). Under
SLURM the scheduler has already chosen: ``CUDA_VISIBLE_DEVICES`` names it and the job uses
it as ``cuda:0`` without claiming anything. A job that should have a GPU (SLURM gave it one, or
``device: cuda``) but whose torch cannot use CUDA fails at once and says why: it never spends a GPU
allocation on the CPU.

On CUDA, ``mixed_precision`` (config, on by default) runs the networks' forward passes under bf16
autocast (:func:`autocast`) and lets float32 matrix products use TF32; evaluation reads larger
batches (:func:`batch_size`). On the CPU neither changes anything, so CPU numbers do not depend on it.

The lock directory (``IMFN_GPU_LOCK_DIR``, default ``$TMPDIR/imfn-gpu-locks``) is shared by every user
of a box: it is created world-writable with the sticky bit, like /tmp, and each lock file readable
and writable by all. ``IMFN_GPU_LOCK_WAIT`` (seconds, default 86400) is how long a job waits for a
free GPU before it fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_held_locks: list[int] = []  # file descriptors kept open for the life of the process


DEFAULT_LOCK_WAIT = 86400.0  # seconds: a day, longer than any one job of the paper grid holds a GPU
EVAL_BATCH_SCALE = 8  # evaluation batches are this many times larger on CUDA than on the CPU


def default_lock_dir() -> Path:
    return Path(os.environ.get("IMFN_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "imfn-gpu-locks"))


def default_lock_wait() -> float:
    value = os.environ.get("IMFN_GPU_LOCK_WAIT", "")
    try:
        return float(value) if value else DEFAULT_LOCK_WAIT
    except ValueError:
        raise ValueError(f"IMFN_GPU_LOCK_WAIT must be a number of seconds, got {value!r}") from None


def shared_lock_dir(lock_dir: Path) -> Path:
    """Create ``lock_dir`` so that every user of the box can lock in it (mode 1777, whatever the umask)."""
    if not lock_dir.is_dir():
        lock_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):  # another user created it first
            os.chmod(lock_dir, 0o1777)
    return lock_dir


def _open_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(PermissionError):  # another user's file: already shared when they created it
        os.fchmod(fd, 0o666)
    return fd


def _physical_ids(n_devices: int) -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else []
    return ids[:n_devices] if len(ids) >= n_devices else [str(i) for i in range(n_devices)]


def claim_free_gpu(
    n_devices: int, lock_dir: str | os.PathLike | None = None, timeout: float | None = None, poll: float = 0.1
) -> int:
    """Block until one of ``n_devices`` GPUs is free, lock it for this process, return its index.
    ``timeout`` defaults to ``IMFN_GPU_LOCK_WAIT``."""
    if n_devices < 1:
        raise ValueError("claim_free_gpu needs at least one device")
    lock_dir = shared_lock_dir(Path(lock_dir) if lock_dir is not None else default_lock_dir())
    timeout = default_lock_wait() if timeout is None else timeout
    ids = _physical_ids(n_devices)
    deadline = time.monotonic() + timeout
    while True:
        for index, physical in enumerate(ids):
            fd = _open_lock(lock_dir / f"gpu{physical}.lock")
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
            raise TimeoutError(
                f"no free GPU among {n_devices} after {timeout:.0f} s (locks in {lock_dir}; "
                "IMFN_GPU_LOCK_WAIT sets how long a job waits)"
            )
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


def plan_placement(
    preference: str, n_devices: int, environ: Mapping[str, str] | None = None, cuda_problem: str = ""
) -> Placement:
    """The one place that decides how a job gets its device (pure: no CUDA, no locks).

    - ``cpu``: the CPU.
    - inside a SLURM job (``SLURM_JOB_ID``): the scheduler already chose; the job uses what
      ``CUDA_VISIBLE_DEVICES`` names as ``cuda:0`` and never claims another device. A SLURM job
      that was given no GPU runs on the CPU rather than take a GPU another job was given; one that
      was given a GPU its torch cannot use fails (``cuda_problem`` says why torch sees no CUDA).
    - no CUDA device visible: the CPU (``cuda`` then is an error).
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
        why = f": {cuda_problem}" if cuda_problem else ""
        if slurm_job:
            raise RuntimeError(
                f"SLURM job {slurm_job} was given GPU CUDA_VISIBLE_DEVICES={','.join(named)} but torch cannot use "
                f"CUDA{why}. Refusing to spend a GPU allocation on the CPU: run `imfn doctor` on a GPU node, "
                "or set device: cpu (and give the rules no GPU) to run on CPUs on purpose"
            )
        if preference == "cuda":
            raise RuntimeError(f"config asks for device: cuda but no CUDA device is visible{why}; see `imfn doctor`")
        return Placement("cpu", "no CUDA device visible")
    if slurm_job:
        return Placement("scheduler", f"SLURM job {slurm_job} was given CUDA_VISIBLE_DEVICES={','.join(named)}")
    return Placement("claim", f"claimed one of {n_devices} devices with a lock file in {default_lock_dir()}")


def cuda_problem() -> str:
    """Why torch cannot use CUDA here, in words ("" when it can)."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build (docs/gpu.md)"
    if not torch.cuda.is_available():
        return (
            f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but finds no usable GPU "
            "(no device visible, or an NVIDIA driver older than that CUDA needs; compare `nvidia-smi`)"
        )
    return ""


def mamba_kernels_problem() -> str:
    """Why ``mamba_ssm``'s CUDA kernels cannot be used here, in words ("" when they can)."""
    if not torch.cuda.is_available():
        return "no CUDA"
    try:
        import mamba_ssm.modules.mamba_simple  # noqa: F401
    except Exception as exc:  # ImportError, or a broken CUDA extension failing at import
        return f"`import mamba_ssm` failed: {type(exc).__name__}: {exc}"
    return ""


def place(preference: str = "auto") -> tuple[torch.device, Placement]:
    """Resolve ``auto`` / ``cpu`` / ``cuda`` to a concrete device, claiming a GPU when the plan says so."""
    n_devices = torch.cuda.device_count() if preference != "cpu" and torch.cuda.is_available() else 0
    problem = cuda_problem() if preference != "cpu" and n_devices == 0 else ""
    plan = plan_placement(preference, n_devices, cuda_problem=problem)
    if plan.kind == "cpu" and problem and shutil.which("nvidia-smi"):
        log.warning("this machine has an NVIDIA driver but the job runs on the CPU: %s (see `imfn doctor`)", problem)
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


_mixed_precision = False  # set per job by configure_precision


def configure_precision(device: torch.device, mixed_precision: bool) -> str:
    """Switch on bf16 autocast and TF32 for this job when it computes on CUDA and the config asks for it;
    return the precision in words (for the log and provenance)."""
    global _mixed_precision
    _mixed_precision = bool(mixed_precision) and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = _mixed_precision
        torch.backends.cudnn.allow_tf32 = _mixed_precision
    return "bf16 autocast, TF32 matmuls" if _mixed_precision else "float32"


def autocast() -> contextlib.AbstractContextManager:
    """The precision networks' forward passes run in: bf16 autocast on CUDA when mixed precision is on,
    else plain float32 (on the CPU always)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if _mixed_precision else contextlib.nullcontext()


def batch_size(cpu_size: int, device: torch.device) -> int:
    """An evaluation batch: ``cpu_size`` on the CPU (CPU numbers never depend on the GPU settings),
    ``EVAL_BATCH_SCALE`` times more on CUDA."""
    return cpu_size * EVAL_BATCH_SCALE if device.type == "cuda" else cpu_size


def describe_runtime(device: torch.device) -> dict:
    """torch, its CUDA, and the GPU model this job computes on (for provenance)."""
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": None}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
