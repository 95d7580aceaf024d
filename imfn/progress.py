"""Progress of a long loop as whole log lines, not a redrawn bar.

Snakemake runs several jobs at once into one terminal, where a bar redrawn with ``\\r`` by one job overwrites
another's. :func:`progress` instead logs one whole line at most every ``EVERY`` seconds, prefixed by the job's
name (its log file's path below ``logs/``, :func:`imfn.job.job_name`), so it also lands in the job's log:

    mnist/seed0/d256/framewise/train_sweeper_L3: level 3 (seed 0, d=256) epoch 2/3 [#######.....] 58% 154/266
    batches, 12.1 batches/s, 9 s left

(one line). A loop shorter than ``EVERY`` logs nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from imfn.job import job_name

log = logging.getLogger(__name__)

EVERY = 15.0  # seconds between two progress lines of one loop
WIDTH = 12  # characters of the bar

T = TypeVar("T")


def duration(seconds: float) -> str:
    """``9 s``, ``4.5 min``, ``3.1 h``: a time left, as coarse as it is uncertain."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def progress_line(what: str, done: int, total: int | None, elapsed: float, unit: str = "batches") -> str:
    """One progress line (without the job's name): ``what [###.....] 58% 154/266 batches, 12.1 batches/s,
    9 s left``, or with an unknown ``total`` ``what 154 batches, 12.1 batches/s``."""
    rate = done / elapsed if elapsed > 0 else 0.0
    if not total:
        return f"{what} {done} {unit}, {rate:.3g} {unit}/s"
    filled = min(WIDTH, WIDTH * done // total)
    bar = "#" * filled + "." * (WIDTH - filled)
    left = f", {duration((total - done) / rate)} left" if rate > 0 and done < total else ""
    return f"{what} [{bar}] {100 * done // total}% {done}/{total} {unit}, {rate:.3g} {unit}/s{left}"


def progress(
    items: Iterable[T], what: str, total: int | None = None, unit: str = "batches", every: float | None = None
) -> Iterator[T]:
    """Yield ``items``, logging :func:`progress_line` once ``every`` (default ``EVERY``) seconds have passed since
    the loop began or since the last line. ``total`` defaults to ``len(items)`` where it has one."""
    every = EVERY if every is None else every
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    job = job_name()
    prefix = f"{job}: " if job else ""
    start = last = time.monotonic()
    for done, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last >= every:
            last = now
            log.info("%s%s", prefix, progress_line(what, done, total, now - start, unit))
