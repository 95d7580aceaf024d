"""Zarr (v3) stores of named arrays, chunked along the sample axis, written atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from imfn.atomic import atomic_output

CHUNK_ROWS = 4096


def write_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> None:
    """Write a Zarr group holding ``arrays`` and ``attrs``; it appears whole or not at all."""
    with atomic_output(path) as tmp:
        group = zarr.open_group(store=str(tmp), mode="w", zarr_format=3)
        group.attrs.update(dict(attrs))
        for name, data in arrays.items():
            data = np.ascontiguousarray(data)
            chunks = (min(max(len(data), 1), CHUNK_ROWS),) + data.shape[1:]
            array = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks)
            array[...] = data


def open_group(path: str | os.PathLike) -> zarr.Group:
    if not Path(path).exists():
        raise FileNotFoundError(f"Zarr store not found: {path}")
    return zarr.open_group(store=str(path), mode="r")


def read_array(path: str | os.PathLike, name: str) -> np.ndarray:
    return open_group(path)[name][...]


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    return dict(open_group(path).attrs)
