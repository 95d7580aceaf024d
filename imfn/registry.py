"""Every name a config can choose, and what it names: the one place a new source or model is added.

Each registry maps a name to ``"module:attribute"``; :func:`lookup` imports the module when the name is first
looked up, so that asking which names exist (the config checks, before any job) imports neither torch nor the
models. A new sequence source is its data module plus one line in :data:`SOURCES`; a new teacher architecture
is its module plus one line in :data:`TEACHER_ARCHITECTURES` (docs/extending.md).

- :data:`SOURCES`: sequence sources (a :class:`imfn.data.sequences.SequenceSource` each), config ``sources``;
- :data:`TEACHER_ARCHITECTURES`: the tree's leaf codec and sweepers (:mod:`imfn.models.architectures`), config
  ``teacher.training.architecture``;
- :data:`STUDENT_ARCHITECTURES`: the online students (:mod:`imfn.models.student`), a student variant's
  ``architecture``;
- :data:`VIDEO_ARCHITECTURES`: how the video hierarchy's levels are built (:mod:`imfn.models.video_config`),
  config ``video.model.architecture``;
- :data:`COMPRESSORS`: the end-to-end sequence compressors (:mod:`imfn.models.compressors`), config
  ``compressors.models``.
"""

from __future__ import annotations

import importlib
from typing import Any

SOURCES: dict[str, Any] = {
    "mnist": "imfn.data.mnist:SOURCE",
    "moving_mnist": "imfn.data.moving_mnist:SOURCE",
}
TEACHER_ARCHITECTURES: dict[str, Any] = {
    "mlp": "imfn.models.architectures.mlp:ARCHITECTURE",
    "pca": "imfn.models.architectures.pca:ARCHITECTURE",
    "framewise": "imfn.models.architectures.framewise:ARCHITECTURE",
    "mix": "imfn.models.architectures.mix:ARCHITECTURE",
}
STUDENT_ARCHITECTURES: dict[str, Any] = {
    "mlp": "imfn.models.student:MlpStudent",
    "positional": "imfn.models.student:PositionalStudent",
}
VIDEO_ARCHITECTURES: dict[str, Any] = {
    "perceiver": "imfn.models.video_config:PERCEIVER",
    "mix": "imfn.models.video_config:MIX",
}
COMPRESSORS: dict[str, Any] = {
    "transformer": "imfn.models.compressors:TransformerCompressor",
    "mamba": "imfn.models.compressors:MambaCompressor",
}

# what each registry holds, as an error message names it
KINDS = {
    id(SOURCES): "sequence source",
    id(TEACHER_ARCHITECTURES): "teacher architecture",
    id(STUDENT_ARCHITECTURES): "student architecture",
    id(VIDEO_ARCHITECTURES): "video architecture",
    id(COMPRESSORS): "sequence compressor",
}


def lookup(registry: dict[str, Any], name: str) -> Any:
    """What ``name`` names in ``registry`` (imported on first use); a ``ValueError`` naming the known names when
    it names nothing."""
    if name not in registry:
        raise ValueError(f"unknown {KINDS[id(registry)]} {name!r}; the known ones are {sorted(registry)}")
    entry = registry[name]
    if isinstance(entry, str):
        module, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module), attribute)
    return entry


def register(registry: dict[str, Any], name: str, entry: Any) -> None:
    """Add ``entry`` (an object, or ``"module:attribute"``) under ``name``: how a test or a plugin adds a source or
    a model without editing this file. A name already taken is an error."""
    if name in registry:
        raise ValueError(f"{KINDS[id(registry)]} {name!r} is already registered")
    registry[name] = entry
