"""One default per hyperparameter: config/config.yaml's blocks are the dataclasses' fields, with their defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from imfn.models.compressors import MambaConfig, TransformerConfig
from imfn.models.video import VideoModelConfig
from imfn.train.compressor import CompressorTraining
from imfn.train.depth_decoder import DepthDecoderTraining
from imfn.train.frame_autoencoder import FrameAutoencoderTraining
from imfn.train.health import HealthLimits
from imfn.train.student import StudentTraining
from imfn.train.sweeper import SweeperTraining
from imfn.train.video import VideoTraining

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())


def _block(*keys):
    block = CONFIG
    for key in keys:
        block = block[key]
    return block


# config block -> the dataclass its keys map onto (keys that are not fields of it, e.g. a nested block)
BLOCKS = [
    (("teacher", "training"), SweeperTraining, {"decoder"}),
    (("teacher", "training", "decoder"), DepthDecoderTraining, set()),
    (("teacher", "health"), HealthLimits, set()),
    (("reference", "autoencoder"), FrameAutoencoderTraining, set()),
    (("student", "training"), StudentTraining, set()),
    (("student", "recipes", "paper"), StudentTraining, set()),  # the dataclass defaults are the paper's recipe
    (("compressors", "training"), CompressorTraining, set()),
    (("compressors", "transformer"), TransformerConfig, set()),
    (("compressors", "mamba"), MambaConfig, set()),
    (("video", "training"), VideoTraining, set()),
    (("video", "model"), VideoModelConfig, set()),
]


@pytest.mark.parametrize("keys, cls, nested", BLOCKS, ids=[".".join(k) for k, _, _ in BLOCKS])
def test_config_block_keys_are_fields_with_the_dataclass_defaults(keys, cls, nested):
    block = {k: v for k, v in _block(*keys).items() if k not in nested}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(block) <= set(fields), (
        f"config {'.'.join(keys)} keys that {cls.__name__} lacks: {set(block) - set(fields)}"
    )
    for key, value in block.items():
        if isinstance(value, list):  # a per-level schedule: each entry is handed to one level's job
            continue
        default = fields[key].default
        assert default is not dataclasses.MISSING, f"{cls.__name__}.{key} has no default; config says {value}"
        assert value == default, f"config {'.'.join(keys)}.{key} = {value!r} but {cls.__name__}.{key} = {default!r}"


def test_values_outside_the_blocks_agree_too():
    assert CONFIG["compressors"]["T"] == CompressorTraining.T
    assert CONFIG["video"]["frame_size"] == VideoModelConfig.frame_size


def test_flags_derived_from_a_dataclass_parse_its_types():
    import argparse

    from imfn.cli import add_fields, from_args

    @dataclasses.dataclass(frozen=True)
    class Settings:
        steps: int
        rate: float | None = None
        shuffle: bool = True

    parser = argparse.ArgumentParser()
    add_fields(parser, Settings, "opt-")
    parsed = from_args(Settings, parser.parse_args(["--opt-steps", "3", "--opt-shuffle", "False"]), "opt-")
    assert parsed == Settings(steps=3, rate=None, shuffle=False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--opt-steps", "3", "--opt-shuffle", "maybe"])
    with pytest.raises(SystemExit):  # a field without a default is a required flag
        parser.parse_args([])
