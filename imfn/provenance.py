"""What ran, where, on which code and config: one record per pipeline job.

Every ``imfn <verb>`` job logs a ``provenance:`` line when it starts and when it ends, and
when it has a ``--log`` file it also writes the record as JSON beside it
(``logs/.../train_sweeper_L0.log`` -> ``logs/.../train_sweeper_L0.provenance.json``, replaced
on each run, so it describes the last attempt). The record holds:

- ``imfn``: the package version and ``git``, the commit of the checkout imfn was imported from
  (``+dirty`` when tracked files differ from it; ``unknown`` outside a git checkout);
- ``config_hash``: ``IMFN_CONFIG_HASH``, which the Snakefile sets to a hash of the effective
  config (so it is the same in local and cluster jobs; ``unset`` when run by hand), and
  ``config_files``: ``IMFN_CONFIG_FILES``, the config files it was made from, in order;
- ``machine``: the CPUs (count and model) and memory of the host;
- ``device`` and ``placement``: what the job computed on and who chose it (devices.py); ``precision``
  (float32, or bf16 autocast with TF32 on CUDA); ``torch``, ``cuda`` (the CUDA torch was built for) and
  ``gpu`` (the GPU model);
- ``notes``: what a step chose at run time that bears on its numbers (e.g. ``mamba``: the Mamba
  implementation in use);
- ``slurm_job_id``, ``cuda_visible_devices``, ``host``: where it ran;
- ``wall_seconds``, ``started``, ``finished``, ``status`` (``ok`` / ``failed``).

``IMFN_FAIL_VERB=<verb>`` makes jobs of that verb fail on purpose after the record starts: the
cluster test uses it to check that a failed job is reported and a rerun finishes the rest.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import imfn

log = logging.getLogger(__name__)

CONFIG_HASH_VAR = "IMFN_CONFIG_HASH"
CONFIG_FILES_VAR = "IMFN_CONFIG_FILES"
FAIL_VAR = "IMFN_FAIL_VERB"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit(root: str | os.PathLike | None = None) -> str:
    """The commit of the checkout holding ``root`` (default: the one imfn is imported from), or ``unknown``.

    Only a checkout whose top level is ``root`` counts, so an installed copy of imfn inside some
    unrelated repository does not report that repository's commit.
    """
    root = Path(root) if root is not None else Path(imfn.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return "unknown"
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return "unknown"
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if dirty else "")


def machine() -> dict:
    """The host's CPUs (count and model) and memory, as far as the platform tells."""
    info = {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "memory_gb": None}
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        info["cpu"] = names[0] if names else info["cpu"]
    if meminfo.exists():
        total = next(
            (line.split()[1] for line in meminfo.read_text().splitlines() if line.startswith("MemTotal")), None
        )
        info["memory_gb"] = round(int(total) / 2**20, 1) if total else None
    return info


@dataclass
class JobRecord:
    verb: str
    imfn: str
    git: str
    config_hash: str
    config_files: list[str]
    argv: list[str]
    host: str
    machine: dict
    pid: int
    slurm_job_id: str | None
    cuda_visible_devices: str | None
    started: str
    device: str = "cpu"
    placement: str = "not chosen (the job ended before)"
    precision: str | None = None
    torch: str | None = None
    cuda: str | None = None
    gpu: str | None = None
    notes: dict = field(default_factory=dict)
    threads: int | None = None
    finished: str | None = None
    wall_seconds: float | None = None
    status: str = "running"
    _t0: float = field(default=0.0, repr=False)
    _sidecar: Path | None = field(default=None, repr=False)

    def public(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


_current: JobRecord | None = None


def sidecar_path(log_file: str | os.PathLike) -> Path:
    return Path(log_file).with_suffix(".provenance.json")


def start(verb: str, log_file: str | os.PathLike | None = None, threads: int | None = None) -> JobRecord:
    """Open this process's job record and log its first line."""
    global _current
    _current = JobRecord(
        verb=verb,
        imfn=imfn.__version__,
        git=git_commit(),
        config_hash=os.environ.get(CONFIG_HASH_VAR, "unset"),
        config_files=os.environ.get(CONFIG_FILES_VAR, "").split(os.pathsep) if os.environ.get(CONFIG_FILES_VAR) else [],
        argv=sys.argv[1:],
        host=socket.gethostname(),
        machine=machine(),
        pid=os.getpid(),
        slurm_job_id=os.environ.get("SLURM_JOB_ID"),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        threads=threads,
        _t0=time.monotonic(),
        _sidecar=sidecar_path(log_file) if log_file is not None else None,
    )
    where = f"SLURM job {_current.slurm_job_id}" if _current.slurm_job_id else f"pid {_current.pid}"
    log.info(
        "provenance: imfn %s (git %s), config %s, %s on %s, CUDA_VISIBLE_DEVICES=%s",
        _current.imfn,
        _current.git,
        _current.config_hash,
        where,
        _current.host,
        _current.cuda_visible_devices,
    )
    if os.environ.get(FAIL_VAR) == verb:
        raise RuntimeError(f"failing on purpose: {FAIL_VAR}={verb}")
    return _current


def record_device(device: object, placement: str, precision: str | None = None, runtime: dict | None = None) -> None:
    """What the job computes on, who chose it, in which precision; ``runtime``: torch, cuda, gpu."""
    if _current is not None:
        _current.device, _current.placement, _current.precision = str(device), placement, precision
        for key, value in (runtime or {}).items():
            setattr(_current, key, value)


def note(key: str, value: str) -> None:
    """Record a run-time choice that bears on the job's numbers (no-op outside a job)."""
    if _current is not None:
        _current.notes[key] = value


def finish(ok: bool) -> dict | None:
    """Close the job record (if a job started one): log it and write the JSON beside the log."""
    global _current
    record, _current = _current, None
    if record is None:
        return None
    record.wall_seconds = round(time.monotonic() - record._t0, 3)
    record.finished = datetime.now(UTC).isoformat(timespec="seconds")
    record.status = "ok" if ok else "failed"
    public = record.public()
    log.info("provenance: %s", json.dumps(public, sort_keys=True))
    if record._sidecar is not None:
        record._sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp = record._sidecar.with_name(f".{record._sidecar.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(public, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, record._sidecar)
    return public
