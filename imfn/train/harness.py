"""The one training harness every trained thing uses (sweeper, depth decoder, student, compressor, video level).

A :class:`Run` owns what every training loop needs and nothing model-specific:
- a resumable checkpoint at the end of an epoch (model, optimizer, scheduler, torch's global RNG and the loss
  rows so far) once ``SAVE_EVERY`` seconds have passed since the last one, so that saving stays a small part of
  training, guarded by a fingerprint of the settings and the input files: a rerun of a killed job continues from
  its last checkpoint and, because each epoch draws its randomness from a generator seeded by the epoch, ends
  with the same weights as an uninterrupted run; a checkpoint from other settings or other inputs is ignored;
- a non-finite loss stops the job with :class:`NonFiniteLossError` before any output is written;
- one loss row per epoch (the run's labels, the epoch, what the epoch function returned, seconds and samples/s),
  logged, added to the job's TensorBoard curves as the epoch ends (:mod:`imfn.train.curves`; a job with a log
  file only) and at the end written to Parquet whole or not at all;
- progress lines over each epoch's batches (:mod:`imfn.progress`);
- the device, and :meth:`Run.autocast`, the precision the job's settings chose for it (devices.py).

The model-specific part is one function per epoch: ``epoch(e) -> {"loss": ..., other means..., "samples": n}``.
Outputs are written by the caller with :func:`imfn.atomic.atomic_output`; :meth:`Run.close` then removes the
resume checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from imfn.atomic import atomic_output
from imfn.devices import autocast
from imfn.progress import progress
from imfn.train.curves import Curves

log = logging.getLogger(__name__)

SAVE_EVERY = 60.0  # seconds of training between two resume checkpoints (at most a minute of work is lost)


class NonFiniteLossError(RuntimeError):
    """A training loss (or the data it is computed from) became NaN or infinite."""


def input_stamp(path: Path) -> dict:
    """What identifies one input file or Zarr store: its resolved path and its modification time."""
    path = Path(path)
    meta = path / "zarr.json" if path.is_dir() else path
    return {"path": str(path.resolve()), "mtime": meta.stat().st_mtime_ns if meta.exists() else 0}


def fingerprint(settings: Mapping[str, Any], inputs: Sequence[Path] = ()) -> str:
    """A short hash of the settings (JSON-able) and of the input files' stamps."""
    payload = json.dumps(
        {"settings": settings, "inputs": [input_stamp(p) for p in inputs]}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def resume_path(out: Path, stage: str = "resume") -> Path:
    """The hidden resumable checkpoint beside an output: ``dir/.name.resume.pt``."""
    return out.with_name(f".{out.stem}.{stage}.pt")


EpochFn = Callable[[int], Mapping[str, float]]


@dataclass
class Run:
    """One training run of ``epochs`` epochs, resumable at ``resume``.

    ``state`` maps names to the objects whose ``state_dict`` the resume checkpoint holds (model, optimizer,
    scheduler). ``labels`` start every loss row (seed, dim, level, ...). ``hint`` is added to the error of a
    non-finite loss (what to try)."""

    name: str
    resume: Path
    settings: Mapping[str, Any]
    inputs: Sequence[Path]
    state: Mapping[str, Any]
    device: torch.device
    labels: Mapping[str, Any] = field(default_factory=dict)
    hint: str = ""
    rows: list[dict] = field(default_factory=list, init=False)
    _epoch: int = field(default=0, init=False)
    _epochs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint(self.settings, self.inputs)

    def _restore(self) -> int:
        """Load the resume checkpoint if it is this run's; return the number of epochs already done."""
        if not self.resume.exists():
            return 0
        saved = torch.load(self.resume, map_location=self.device, weights_only=False)
        if saved.get("fingerprint") != self.fingerprint:
            log.warning("ignoring %s: it was trained from other settings or other inputs", self.resume)
            return 0
        for key, obj in self.state.items():
            obj.load_state_dict(saved[key])
        torch.set_rng_state(saved["rng"])
        self.rows = saved["rows"]
        log.info("resuming %s from %s after epoch %d", self.name, self.resume, saved["epoch"])
        return saved["epoch"]

    def _save(self, epochs_done: int) -> None:
        with atomic_output(self.resume) as tmp:
            torch.save(
                {
                    "fingerprint": self.fingerprint,
                    "epoch": epochs_done,
                    "rows": self.rows,
                    "rng": torch.get_rng_state(),
                    **{key: obj.state_dict() for key, obj in self.state.items()},
                },
                tmp,
            )

    def train(self, epochs: int, epoch: EpochFn) -> list[dict]:
        """Run ``epoch(e)`` for the epochs not done yet; return every epoch's loss row."""
        self._epochs = epochs
        curves = Curves(self.name)
        try:
            self._train(epochs, epoch, curves)
        finally:
            curves.close()
        return self.rows

    def _train(self, epochs: int, epoch: EpochFn, curves: Curves) -> None:
        last_save = time.monotonic()
        for e in range(self._restore(), epochs):
            self._epoch = e
            t0 = time.perf_counter()
            metrics = dict(epoch(e))
            seconds = time.perf_counter() - t0
            bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
            if bad:
                raise NonFiniteLossError(
                    f"{self.name}: {', '.join(f'{k} became {v}' for k, v in bad.items())} in epoch {e + 1}; "
                    f"nothing was written. {self.hint}".rstrip()
                )
            row = {**self.labels, "epoch": e + 1, **metrics, "seconds": seconds}
            if "samples" in metrics:
                row["samples_per_second"] = metrics["samples"] / seconds
            self.rows.append(row)
            curves.add(e + 1, row, skip=frozenset(self.labels))
            shown = ", ".join(f"{k} {v:.6g}" for k, v in metrics.items() if isinstance(v, float))
            log.info("%s epoch %d/%d: %s in %.1f s", self.name, e + 1, epochs, shown, seconds)
            kill = kill_point() == e + 1
            if kill or time.monotonic() - last_save >= SAVE_EVERY:
                self._save(e + 1)
                last_save = time.monotonic()
            if kill:
                os.kill(os.getpid(), signal.SIGKILL)

    def batches(self, items: Iterable, total: int | None = None) -> Iterator:
        """One epoch's batches, with a progress line now and then (:func:`imfn.progress.progress`)."""
        return progress(items, f"{self.name} epoch {self._epoch + 1}/{self._epochs}", total)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The precision the forward pass runs in: bf16 autocast on CUDA with mixed precision on
        (:func:`imfn.devices.autocast`), float32 otherwise."""
        return autocast()

    def close(self) -> None:
        """The outputs are written: the resume checkpoint has done its job."""
        self.resume.unlink(missing_ok=True)


def write_rows(rows: list[dict], out: Path, columns: Sequence[str] | None = None) -> None:
    """Loss rows as Parquet, whole or not at all."""
    table = pd.DataFrame(rows, columns=list(columns) if columns else None)
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)


def kill_point() -> int | None:
    """``IMFN_KILL_AFTER_EPOCH=k``: the tests' way to stop a job by SIGKILL right after epoch k, its resume
    checkpoint written."""
    value = os.environ.get("IMFN_KILL_AFTER_EPOCH")
    return int(value) if value else None
