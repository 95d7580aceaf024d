"""A training run's per-epoch metrics as TensorBoard scalars, written as the epochs end.

The events of one :class:`imfn.train.harness.Run` go to ``<job's curves dir>/<run's name as a slug>/``, the
job's curves dir being its log file's path without the suffix (:func:`imfn.job.curves_dir`): for
``logs/mnist/seed0/d256/framewise/train_sweeper_L3.log`` the sweeper's curves land in
``logs/mnist/seed0/d256/framewise/train_sweeper_L3/level_3_seed_0_d=256/`` and its depth decoder's beside them,
so ``tensorboard --logdir logs`` lists every run of every job by its path. A job without a log writes none.

Each epoch adds one point per float in its loss row (loss, the epoch's other means, lr, seconds,
samples_per_second) at step = the row's ``epoch``, and flushes. A rerun (a resumed job, or one started again
from scratch) opens its event file with TensorBoard's ``purge_step`` at the first epoch it trains, so
TensorBoard hides the points an earlier attempt wrote for that epoch and later ones: each epoch shows once, with
the value of the loss Parquet.

The curves are a log, not an output: Snakemake does not know them, and a curve that cannot be written (full
disk, tensorboard missing) costs a warning, never the job. ``torch.utils.tensorboard`` is imported on the first
point, so jobs that train nothing do not pay for it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imfn.job import curves_dir

log = logging.getLogger(__name__)


def run_folder(name: str) -> str:
    """A run's name as a folder name: ``level 3 (seed 0, d=256)`` -> ``level_3_seed_0_d=256``."""
    return re.sub(r"[^A-Za-z0-9=.+-]+", "_", name).strip("_") or "run"


class Curves:
    """The TensorBoard event file of one training run, opened at its first point (none without a job log)."""

    def __init__(self, name: str) -> None:
        base = curves_dir()
        self.folder: Path | None = base / run_folder(name) if base is not None else None
        self._writer: Any = None

    def add(self, step: int, row: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> None:
        """One point per float of ``row`` (its keys but ``skip``) at ``step``, flushed to disk."""
        if self.folder is None:
            return
        try:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step: TensorBoard hides what earlier attempts wrote at this step and after it
                self._writer = SummaryWriter(str(self.folder), purge_step=step)
            for key, value in row.items():
                if key not in skip and isinstance(value, float):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()
        except (ImportError, OSError) as exc:
            log.warning("training curves off: cannot write %s (%s); the job's outputs are unaffected", self.folder, exc)
            self.close()
            self.folder = None

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except OSError as exc:
                log.warning("training curves: closing %s failed (%s)", self.folder, exc)
