"""Outputs appear whole or not at all: write under a temporary name, rename on success."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_output(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces ``final``, on error it is deleted.

    Works for single files and for directories (Zarr stores). The temporary name lives in
    the same directory so the final ``os.replace`` is a rename on one filesystem.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to {tmp} for {final}")
        _remove(final)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
