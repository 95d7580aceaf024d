"""The teacher architectures: how a tree's leaf codec and sweepers are built, one module each, looked up by name
in :data:`imfn.registry.TEACHER_ARCHITECTURES` (config ``teacher.training.architecture``).

- :mod:`~imfn.models.architectures.mlp`: the paper's MLPs from random init;
- :mod:`~imfn.models.architectures.pca`: linear merges and inverses set in closed form from the level's bank;
- :mod:`~imfn.models.architectures.framewise`: each frame's share halved on its own (PCA start + residual MLP);
- :mod:`~imfn.models.architectures.mix`: merges of both children whole (joint PCA start + residual MLP).

Each module defines its :class:`~imfn.models.teacher.Sweeper` (and, where the leaf codec differs from the
per-frame PCA one, its :class:`~imfn.models.teacher.LeafCodec`) and one :class:`TeacherArchitecture` named
``ARCHITECTURE``; everything else (the tree, banks, roundtrip, trajectories, students) works on any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from imfn import registry


@dataclass(frozen=True)
class TeacherArchitecture:
    """What one architecture builds and how its levels train.

    ``codec`` and ``sweeper``: the module classes, built from a ``CodecConfig`` / ``SweeperConfig``.
    ``starts_from_data``: its maps start from a sample of the level's bank (``init_from_data``); else from random
    weights. ``trains_in_pixels``: its levels are trained in pixels through the frozen stack together with their
    depth decoder (the decoder stage trains the sweeper too), not on the bank's pairs."""

    name: str
    codec: type
    sweeper: type
    starts_from_data: bool = True
    trains_in_pixels: bool = False


def architecture(name: str) -> TeacherArchitecture:
    """The registered teacher architecture ``name``."""
    return registry.lookup(registry.TEACHER_ARCHITECTURES, name)
