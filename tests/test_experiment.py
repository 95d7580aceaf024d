"""The experiment object: the shipped configs resolve to the grids the workflow runs, and every check beyond the
schema stops a bad config before any job, naming the key (each in milliseconds, without Snakemake)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from imfn.experiment import ConfigError, Experiment, deep_merge, read_config

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
QUICK = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())


def experiment(*overrides: dict, base: dict = BASE) -> Experiment:
    config = copy.deepcopy(base)
    for override in overrides:
        config = deep_merge(config, override)
    return Experiment.from_config(config)


def refused(match: str, *overrides: dict, base: dict = BASE) -> str:
    with pytest.raises(ConfigError, match=match) as error:
        experiment(*overrides, base=base)
    return str(error.value)


def test_the_quick_config_resolves_to_make_runs_grid():
    quick = Experiment.from_config(read_config(REPO / "config" / "quick.yaml"))
    mnist, moving = quick.sources["mnist"], quick.sources["moving_mnist"]
    assert (mnist.seeds, mnist.dims, mnist.levels, mnist.variants) == ((0, 1), (256, 1024), 7, ("framewise",))
    assert (moving.seeds, moving.dims, moving.T, moving.variants) == ((0,), (256,), (2, 4, 8, 16, 32, 64), ("mix",))
    assert quick.paper is mnist and quick.moving_sources == ["moving_mnist"]
    assert quick.students["moving_mnist"].train == ("dense",) and quick.students["mnist"].T == (8, 32, 128)
    assert (quick.compressors["moving_mnist"].dim, quick.compressors["moving_mnist"].T) == (256, 32)
    video = quick.video
    assert (video.sequence_source, video.memory, video.windows) == ("moving_mnist", 256, [2, 4, 8, 16])
    assert quick.autoencoder_ks("moving_mnist") == [4, 8, 16, 32, 64, 128]
    assert moving.strip == {"seed": 0, "dim": 256, "T": 32, "k": 8} and quick.sources["mnist"].cells(dims=[256])[0] == {
        "source": "mnist", "seed": 0, "dim": 256, "variant": "framewise"}  # fmt: skip


def test_one_merge_rule_for_teacher_and_student_variants():
    quick = experiment(QUICK)
    assert quick.teacher_settings("mix")["decoder"] == {"epochs": 3, "hidden": 512, "frames": 32768, "batch_size": 128,
                                                        "lr": 1e-3}  # a nested block merges key by key  # fmt: skip
    dense = quick.student_settings("dense")  # the variant's overrides over student.training, the budget kept
    assert (dense["architecture"], dense["writes"], dense["epochs"], dense["step_fraction"]) == ("positional", "all",
                                                                                                  300, 0.5)  # fmt: skip
    paper = quick.student_settings("paper")
    assert (paper["architecture"], paper["hidden"], paper["lr"]) == ("mlp", 1024, 1e-4)


def test_the_paper_config_leaves_the_video_branch_out_without_ucf101_and_says_why():
    paper = experiment()
    assert paper.video.left_out.startswith("video.root: resources/UCF-101 is not a directory")
    assert paper.paper_problem("ablation") is None and paper.paper_problem("paper_sweep") is None


@pytest.mark.parametrize(
    "override, named",
    [
        ({"sources": {"moving_mnist": {"levles": 3}}}, "sources.moving_mnist: Additional properties are not allowed "
                                                       "('levles' was unexpected)"),
        ({"sources": {"moving_mnist": {"levels": "six"}}}, "sources.moving_mnist.levels: 'six' is not of type"),
        ({"sources": {"moving_mnist": {"canonical_test": 5}}}, "sources.moving_mnist.canonical_test: 5 is not of type"),
        ({"compressors": {"sources": {"moving_mnist": {"dim": "big"}}}}, "compressors.sources.moving_mnist.dim:"),
        ({"student": {"sources": {"mnist": {"T": [3]}}}}, "student.sources.mnist.T.0: 3 is not one of"),
        ({"teacher": {"bathc_size": 32}}, "teacher: Additional properties are not allowed ('bathc_size'"),
        ({"teacher": {"training": {"lr": "fast"}}}, "teacher.training.lr: 'fast' is not of type"),
        ({"device": "gpu"}, "device: 'gpu' is not one of"),
        ({"student": {"variants": {"slot": {"hiden": 4}}}}, "student.variants.slot: Additional properties"),
    ],
)  # fmt: skip
def test_a_schema_error_names_the_key_however_deep(override, named):
    message = refused("Error validating config", override)
    assert named in message, message


def test_a_renamed_key_stops_before_the_schema_naming_the_new_key():
    message = refused("was renamed to student.variants", {"student": {"recipes": {"slot": {"hidden": 32}}}})
    assert "Error validating" not in message


@pytest.mark.parametrize(
    "override, match",
    [
        ({"teacher": {"variant": "mystery"}}, r"teacher variants \['mystery'\] that teacher.variants does not define"),
        ({"teacher": {"variants": {"pca": {"architecture": "svd"}}}}, "'svd' is no registered teacher architecture"),
        ({"teacher": {"levels": 3, "training": {"epochs": [1, 1]}}, "evaluation": {"T": [2]},
          "sources": {"moving_mnist": {"levels": 3, "T": [2]}}},
         "variant 'paper' lists 2 values but teacher.levels is 3"),
        ({"teacher": {"bank_size": 100, "zero_padded": 100}}, "zero_padded=100 must be less than teacher.bank_size"),
        ({"teacher": {"bank_frames": 600}}, "bank_frames=600 leaves the level-8 bank fewer than 2 sequences"),
        ({"sources": {"kinetics": {}}}, r"config sources names 'kinetics'; the registered sequence sources are"),
        ({"sources": {"moving_mnist": {"levels": 12}}}, "sources.moving_mnist.levels=12 is more than teacher.levels=9"),
        ({"teacher": {"levels": 2}, "evaluation": {"T": [2, 8]}, "student": {"T": [4]},
          "sources": {"moving_mnist": {"levels": 2, "T": [2]}}},
         r"config T \[8\] of source mnist need more than its 2"),
        ({"student": {"train": ["slot", "lstm"]}}, r"student.train names student variants \['lstm'\]"),
        ({"student": {"sources": {"moving_mnist": {"dim": 100}}}}, "d=100 is not one of moving_mnist's dims"),
        ({"student": {"sources": {"moving_mnist": {"T": [128]}}}}, r"student.T has \[128\], which need more than"),
        ({"student": {"sources": {"kth": {}}}}, "student.sources names kth, which is not one of sources"),
        ({"student": {"variants": {"slot": {"architecture": "lstm"}}}}, "'lstm' is no registered student architecture"),
        ({"compressors": {"dim": 999, "seeds": [7]}}, "the compressors' d=999 on mnist is not one of its dims"),
        ({"compressors": {"models": ["transformer", "rwkv"]}}, r"compressors.models names \['rwkv'\]"),
        ({"video": {"training": {"epochs": [1, 1]}}}, "video.training.epochs lists 2 values but video.levels is 4"),
        ({"video": {"clip_frames": 20}}, "clip_frames=20 must be a multiple of 2\\^video.levels = 16"),
        ({"video": {"dataset": "demo", "frame_size": 60}}, "frames of 60x60 do not cut into 8x8 patches"),
        ({"video": {"dataset": "ucf101", "root": None}}, "video.root must name the UCF-101 directory"),
        ({"video": {"dataset": "demo", "model": {"architecture": "mix"}}},
         "level 0's linear maps would hold 603,979,776 weights"),
        ({"video": {"dataset": "youtube8m"}}, "video.dataset 'youtube8m' is neither footage"),
        ({"video": {"dataset": "moving_mnist"}}, "sources.moving_mnist must run .* d = video.model.memory_tokens x "
                                                 "width = 24576"),
    ],
)  # fmt: skip
def test_a_config_the_pipeline_cannot_run_stops_before_any_job_naming_the_key(override, match):
    refused(match, override)


def test_video_on_a_sequence_source_needs_its_frames_unresized(tmp_path):
    quick = QUICK
    refused("video.frame_size=32: moving_mnist frames are 64x64, and they are not resized",
            {"video": {"frame_size": 32, "model": {"patch": 8}}}, base=deep_merge(BASE, quick))  # fmt: skip
    refused(r"memory_tokens x width = 128", {"video": {"model": {"memory_tokens": 2}}}, base=deep_merge(BASE, quick))


def test_an_empty_ucf101_directory_is_refused_before_any_job(tmp_path):
    (tmp_path / "UCF-101" / "ApplyEyeMakeup").mkdir(parents=True)
    refused("no videos .* under .*UCF-101 in the layout", {"video": {"root": str(tmp_path / "UCF-101")}})


def test_a_canonical_test_file_is_checked_before_any_job(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((20, 3, 28, 28), dtype=np.uint8))
    message = refused("canonical_test", {"sources": {"moving_mnist": {"canonical_test": str(tmp_path / "wrong.npy")}}})
    assert "wrong.npy" in message and "(20, N, 64, 64) uint8" in message
    np.save(tmp_path / "right.npy", np.zeros((20, 600, 64, 64), dtype=np.uint8))
    right = {"sources": {"moving_mnist": {"canonical_test": str(tmp_path / "right.npy")}}}
    refused("holds 20 frames per sequence; T up to 64 asked for", right)
    short = {"sources": {"moving_mnist": {"T": [2, 4], "canonical_test": str(tmp_path / "right.npy")}}}
    assert experiment(short).sources["moving_mnist"].canonical_test.endswith("right.npy")
    np.save(tmp_path / "few.npy", np.zeros((20, 300, 64, 64), dtype=np.uint8))  # fewer than evaluation.sequences
    few = {"sources": {"moving_mnist": {"T": [2, 4], "canonical_test": str(tmp_path / "few.npy")}}}
    refused(r"holds 300 sequences; 500 held-out sequences asked for \(config evaluation.sequences\)", few)
    refused("mnist does not", {"sources": {"mnist": {"canonical_test": str(tmp_path / "right.npy")}}})


def test_a_config_without_the_papers_source_plans_no_paper_figures_and_says_so_for_its_targets():
    moving_only = copy.deepcopy(BASE)
    moving_only["sources"] = {"moving_mnist": BASE["sources"]["moving_mnist"]}
    moving_only["student"]["sources"] = {"moving_mnist": BASE["student"]["sources"]["moving_mnist"]}
    moving_only["compressors"]["sources"] = {"moving_mnist": {"dim": 256, "T": 32}}
    plan = Experiment.from_config(moving_only)
    assert plan.paper is None and plan.paper_problem("ablation").startswith("config sources: the ablation is of")
    narrow = experiment({"dims": [1024], "student": {"sources": {"moving_mnist": {"dim": 1024}}}})
    assert "config ablation.dims [256, 1024] are not all in dims [1024]" in narrow.paper_problem("ablation")
    assert "d = 256, which must be in" in narrow.paper_problem("paper_sweep")
