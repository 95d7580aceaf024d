"""Checkpoints: every trained thing saved under the same keys, loaded by one function that names what it expected.

A checkpoint is ``torch.save`` of ``{"kind", "format", "config", "state", **extra}``: ``kind`` says what it is
(:data:`KINDS`), ``format`` the layout version (:data:`FORMAT`), ``config`` what its modules are built from (their
config dataclasses as dicts), ``state`` their weights (``state_dict``), and ``extra`` the provenance (training
settings, the files it was trained on). A file of another kind, of an older layout, or no checkpoint at all is a
``ValueError`` naming the file, the kind expected and the step that writes it; Snakemake reruns that step by
itself when its settings changed (the params trigger), and ``snakemake --forcerun <rule>`` otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from imfn.atomic import atomic_output

FORMAT = 2  # the layout above; format 1 (none recorded) kept weights under model-specific keys
# kind -> the step that writes it (the rule, and its `imfn` verb)
KINDS = {
    "imfn-sweeper": "rule train_sweeper (imfn train-sweeper)",
    "imfn-student": "rule train_student (imfn train-student)",
    "imfn-compressor": "rule train_compressor (imfn train-compressor)",
    "imfn-frame-autoencoder": "rule frame_autoencoder (imfn frame-autoencoder)",
    "imfn-video-level": "rule train_video_level (imfn train-video)",
}


def save_checkpoint(path: Path, kind: str, config: Any, state: Any, **extra: Any) -> None:
    """Write a checkpoint of ``kind`` to ``path``, whole or not at all."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; the kinds are {sorted(KINDS)}")
    with atomic_output(Path(path)) as tmp:
        torch.save({"kind": kind, "format": FORMAT, "config": config, "state": state, **extra}, tmp)


def load_checkpoint(path: Path, kind: str, device: torch.device | str = "cpu") -> dict:
    """The checkpoint at ``path``, which must be of ``kind`` and of the current :data:`FORMAT`."""
    path = Path(path)
    rerun = f"rerun {KINDS[kind]} to write it"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found: {rerun}")
    try:
        saved = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # a torn or foreign file: say which, not a pickle traceback
        raise ValueError(f"{path} is not a readable torch checkpoint ({exc}); {rerun}") from exc
    found = saved.get("kind") if isinstance(saved, dict) else None
    if found != kind:
        raise ValueError(f"{path} is not an {kind} checkpoint (it holds {found or 'no kind'}); {rerun}")
    if saved.get("format") != FORMAT:
        raise ValueError(f"{path} is an {kind} checkpoint of an older layout (format {saved.get('format', 1)}, "
                         f"this imfn reads {FORMAT}): {rerun} (snakemake --forcerun reruns it)")  # fmt: skip
    return saved
