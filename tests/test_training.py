"""Training one level: deterministic, loud on NaN and on collapse, whole outputs only (kills: test_resume.py)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from imfn.data.frame import FrameShape
from imfn.data.sequences import open_sequences
from imfn.models.teacher import Teacher, load_level
from imfn.store import read_array, read_attrs, write_arrays
from imfn.train.bank import build_image_bank, build_latent_bank
from imfn.train.depth_decoder import DepthDecoderTraining
from imfn.train.harness import NonFiniteLossError
from imfn.train.health import HealthLimits, LevelCollapseError
from imfn.train.sweeper import SweeperTraining, train_sweeper

DIM = 16


def _train(bank, tmp_path, name, level=0, epochs=2, limits=None, decoder=None, lower=(), sequences=None, **kw):
    hp = SweeperTraining(seed=0, dim=DIM, level=level, epochs=epochs, codec_hidden=32, **kw)
    out = tmp_path / f"{name}.pt"
    train_sweeper(
        hp,
        bank,
        out,
        tmp_path / f"{name}_loss.parquet",
        tmp_path / f"{name}_health.parquet",
        torch.device("cpu"),
        limits,
        decoder,
        lower,
        sequences,
    )
    return out


def _weights(path):
    state = torch.load(path, weights_only=False)["state"]
    return {
        **{f"s.{k}": v for k, v in state["sweeper"].items()},
        **{f"c.{k}": v for k, v in (state["codec"] or {}).items()},
    }


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_image_bank_holds_adjacent_frames_of_one_sequence_and_zero_padded_pairs(image_bank, mnist_sequences):
    data, cut = read_array(image_bank, "data"), read_array(image_bank, "cut")
    assert data.shape == (1000, 2, 784) and data.dtype == np.uint8 and cut.shape == (1000,)
    assert (cut < 2).sum() == 50 and set(cut.tolist()) <= {0, 1, 2}
    drawn = mnist_sequences.draw("train", 0, 1000, 2)  # row i: training sequence i, its frames 0 and 1
    whole = cut == 2
    np.testing.assert_array_equal(data[whole], drawn[whole])
    np.testing.assert_array_equal(data[cut == 1, 0], drawn[cut == 1, 0])  # cut at frame 1: the first frame kept
    assert (data[cut == 1, 1] == 0).all() and (data[cut == 0] == 0).all()
    attrs = read_attrs(image_bank)
    assert (attrs["source"], attrs["seed"], attrs["level"], attrs["T"]) == ("mnist", 0, 0, 2)
    assert attrs["frame_shape"] == [28, 28]


def test_a_latent_bank_holds_the_two_children_of_adjacent_windows_of_one_sequence(
    image_bank, mnist_sequences, tmp_path
):
    cpu = torch.device("cpu")
    level0 = _train(image_bank, tmp_path, "l0", epochs=0, architecture="pca")
    level1 = _train(image_bank, tmp_path, "l1", epochs=0, architecture="pca")  # any level-1 sweeper will do
    state = torch.load(level1, weights_only=False)
    state["level"] = 1
    torch.save(state, level1)
    build_latent_bank(mnist_sequences, [level0], DIM, 1, 30, 300, tmp_path / "bank_L1.zarr", cpu)
    build_latent_bank(mnist_sequences, [level0, level1], DIM, 2, 30, 300, tmp_path / "bank_L2.zarr", cpu)
    teacher = Teacher.load([level0, level1])
    for level, bank in ((1, tmp_path / "bank_L1.zarr"), (2, tmp_path / "bank_L2.zarr")):
        children, cut = read_array(bank, "data"), read_array(bank, "cut")
        T = 2 ** (level + 1)
        assert children.shape == (300, 2, DIM) and children.dtype == np.float32
        assert (cut < T).sum() == 30 and (cut <= T).all()
        frames = torch.from_numpy(mnist_sequences.draw("train", 0, 300, T)).float() / 255.0
        frames[torch.arange(T)[None, :] >= torch.from_numpy(cut)[:, None]] = 0.0  # zero from the cut on
        nodes = teacher.encode_leaves(frames)
        for sweeper in teacher.sweepers[:level]:
            nodes = sweeper.merge(nodes[:, 0::2], nodes[:, 1::2])
        np.testing.assert_allclose(children, nodes.detach().numpy(), rtol=1e-4, atol=1e-5)
        assert (read_attrs(bank)["T"], read_attrs(bank)["zero_padded"]) == (T, 30)
    # the zero-padded rows are the same at every level of a bank of 300 rows; their cuts are drawn per level
    cuts = [read_array(tmp_path / f"bank_L{level}.zarr", "cut") for level in (1, 2)]
    assert np.array_equal(cuts[0] < 4, cuts[1] < 8)
    # a frames cap: 300 rows of 8 frames are 2,400 frames; bank_frames=1200 keeps 150 rows, 15 of them zero-padded
    capped = tmp_path / "bank_L2_capped.zarr"
    build_latent_bank(mnist_sequences, [level0, level1], DIM, 2, 30, 300, capped, cpu, bank_frames=1200)
    children, cut = read_array(capped, "data"), read_array(capped, "cut")
    assert children.shape == (150, 2, DIM) and (cut < 8).sum() == 15 and read_attrs(capped)["count"] == 150
    whole = (cut == 8) & (cuts[1][:150] == 8)  # the same training sequences where neither bank cut them
    np.testing.assert_array_equal(children[whole], read_array(tmp_path / "bank_L2.zarr", "data")[:150][whole])


def test_a_teacher_of_64x64_frames_records_its_frame_and_roundtrips_moving_mnist(
    mnist_store, image_bank, mnist_sequences, tmp_path
):
    from imfn.eval.roundtrip import evaluate_roundtrip

    cpu = torch.device("cpu")
    sequences = open_sequences("moving_mnist", mnist_store, image_bank.parent / "split.parquet", 0)
    build_image_bank(sequences, 10, 300, tmp_path / "bank_L0.zarr")
    assert read_array(tmp_path / "bank_L0.zarr", "data").shape == (300, 2, 64 * 64)
    decoder = DepthDecoderTraining(epochs=1, hidden=16, frames=64, batch_size=32)
    kw = {"architecture": "framewise", "epochs": 0, "sweeper_hidden": 16}
    level0 = _train(tmp_path / "bank_L0.zarr", tmp_path, "m0", decoder=decoder, sequences=sequences, **kw)
    build_latent_bank(sequences, [level0], DIM, 1, 10, 200, tmp_path / "bank_L1.zarr", cpu)
    level1 = _train(tmp_path / "bank_L1.zarr", tmp_path, "m1", 1, decoder=decoder, lower=[level0], sequences=sequences,
                    **kw)  # fmt: skip
    checkpoint = load_level(level0)
    assert checkpoint.codec.config.frame_shape == FrameShape(64, 64) and checkpoint.codec.encoder.in_features == 4096
    assert load_level(level1).saved["config"]["depth_decoder"]["frame_shape"] == {"height": 64, "width": 64}
    out = tmp_path / "roundtrip.parquet"
    evaluate_roundtrip([level0, level1], sequences, DIM, 4, 12, out, cpu, "framewise")
    frame = pd.read_parquet(out)
    assert (frame["source"] == "moving_mnist").all()
    mse = frame[frame["position"].isna() & (frame["metric"] == "mse")]["value"].item()
    assert 0.0 < mse < 0.06  # 64x64 digits on black: the mean frame alone is about 0.036
    with pytest.raises(ValueError, match="the teacher codes 64x64 frames, mnist's are 28x28"):
        evaluate_roundtrip([level0, level1], mnist_sequences, DIM, 4, 4, out, cpu)


def test_a_checkpoint_of_the_old_layout_names_the_rule_that_writes_it_again(image_bank, tmp_path):
    out = _train(image_bank, tmp_path, "old", epochs=0, architecture="pca")
    saved = torch.load(out, weights_only=False)
    old = {"kind": "imfn-sweeper", "level": 0, "sweeper_config": saved["config"]["sweeper"], **saved["state"]}
    torch.save(old, out)  # weights under one key per module, no format: the layout before imfn/models/checkpoint.py
    with pytest.raises(ValueError, match=r"older layout \(format 1, this imfn reads 2\): rerun rule train_sweeper"):
        Teacher.load([out])
    with pytest.raises(FileNotFoundError, match="checkpoint .*missing.pt not found: rerun rule train_sweeper"):
        Teacher.load([tmp_path / "missing.pt"])


def test_same_seed_same_weights(image_bank, tmp_path):
    _assert_same_weights(_train(image_bank, tmp_path, "a"), _train(image_bank, tmp_path, "b"))


def test_training_lowers_the_loss_and_builds_the_next_bank(image_bank, mnist_sequences, tmp_path):
    out = _train(image_bank, tmp_path, "l0", epochs=4)
    curve = pd.read_parquet(tmp_path / "l0_loss.parquet")
    assert curve["epoch"].tolist() == [1, 2, 3, 4]
    assert curve["reconstruction"].iloc[-1] < curve["reconstruction"].iloc[0]
    build_latent_bank(mnist_sequences, [out], DIM, 1, 50, 1000, tmp_path / "bank_L1.zarr", torch.device("cpu"))
    latents = read_array(tmp_path / "bank_L1.zarr", "data")
    assert latents.shape == (1000, 2, DIM) and latents.dtype == np.float32 and np.isfinite(latents).all()
    assert read_attrs(tmp_path / "bank_L1.zarr")["source_checkpoints"] == [str(out)]
    assert not (tmp_path / ".l0.resume.pt").exists()  # removed once the level is complete


def test_nan_loss_stops_with_a_clear_error_and_no_output(tmp_path, env_with_venv):
    bank = tmp_path / "bank_L1.zarr"
    latents = np.random.default_rng(0).normal(size=(128, 2, DIM)).astype(np.float32)
    latents[17, 1, 3] = np.nan
    write_arrays(bank, {"data": latents}, {"level": 1})
    with pytest.raises(NonFiniteLossError, match="level 1 .*loss became nan"):
        _train(bank, tmp_path, "nan", level=1, epochs=1)
    assert not (tmp_path / "nan.pt").exists() and not (tmp_path / "nan_loss.parquet").exists()
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "imfn.cli",
            "train-sweeper",
            "--bank",
            str(bank),
            "--seed",
            "0",
            "--dim",
            str(DIM),
            "--level",
            "1",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "cli.pt"),
            "--loss-out",
            str(tmp_path / "cli.parquet"),
            "--health-out",
            str(tmp_path / "cli_health.parquet"),
        ],
        env=env_with_venv,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 1
    assert "loss became nan" in cli.stderr and "Traceback" not in cli.stderr
    assert not (tmp_path / "cli.pt").exists()


def test_bank_of_the_wrong_kind_is_rejected(image_bank, tmp_path):
    with pytest.raises(ValueError, match="float32"):
        _train(image_bank, tmp_path, "wrong", level=1)


def test_collapsed_level_fails_the_job_when_configured_and_writes_nothing(image_bank, tmp_path):
    # One epoch of the paper's settings at d=16 reconstructs far worse than the mean image: a collapse.
    strict = HealthLimits(max_unexplained_variance=0.9, on_collapse="fail")
    with pytest.raises(LevelCollapseError, match="LEVEL 0 COLLAPSED .*unexplained variance"):
        _train(image_bank, tmp_path, "strict", epochs=1, limits=strict)
    assert list(tmp_path.glob("strict*")) == []
    _train(image_bank, tmp_path, "lenient", epochs=1, limits=HealthLimits(max_unexplained_variance=0.9))
    health = pd.read_parquet(tmp_path / "lenient_health.parquet").iloc[0]
    assert health["collapsed"] and health["unexplained_variance"] > 0.9


def test_pca_architecture_starts_at_the_best_linear_codec_and_stays_healthy(image_bank, tmp_path):
    _train(image_bank, tmp_path, "pca", epochs=0, architecture="pca", norm_penalty=0.0)
    health = pd.read_parquet(tmp_path / "pca_health.parquet").iloc[0]
    assert not health["collapsed"] and health["dead_fraction"] == 0.0
    # d=16 keeps 8 principal components per image: MNIST's top 8 explain about 40-60% of the variance
    assert 0.3 < health["unexplained_variance"] < 0.7


def test_depth_decoders_learn_what_the_linear_read_out_cannot(image_bank, mnist_sequences, tmp_path):
    decoder = DepthDecoderTraining(epochs=4, hidden=64, frames=2048, batch_size=64)
    level0 = _train(
        image_bank, tmp_path, "d0", epochs=0, architecture="pca", decoder=decoder, sequences=mnist_sequences
    )
    build_latent_bank(mnist_sequences, [level0], DIM, 1, 50, 1000, tmp_path / "bank_L1.zarr", torch.device("cpu"))
    _train(
        tmp_path / "bank_L1.zarr",
        tmp_path,
        "d1",
        level=1,
        epochs=0,
        architecture="pca",
        decoder=decoder,
        lower=[level0],
        sequences=mnist_sequences,
    )
    curve = pd.read_parquet(tmp_path / "d1_loss.parquet")
    assert curve["stage"].tolist() == ["depth_decoder"] * 4 and (curve["level"] == 1).all()
    assert curve["reconstruction"].iloc[-1] < curve["reconstruction"].iloc[0]
    saved = torch.load(tmp_path / "d1.pt", weights_only=False)
    assert saved["config"]["depth_decoder"]["depth"] == 2 and saved["state"]["codec"] is None


def test_depth_decoder_above_level_0_needs_the_levels_below(image_bank, tmp_path):
    with pytest.raises(ValueError, match="needs the 1 lower levels"):
        _train(image_bank, tmp_path, "x", level=1, epochs=0, architecture="pca", decoder=DepthDecoderTraining(epochs=1))


def test_framewise_levels_train_their_merge_in_pixels_and_beat_the_pca_tree(image_bank, mnist_sequences, tmp_path):
    from imfn.eval.roundtrip import evaluate_roundtrip

    decoder = DepthDecoderTraining(epochs=3, hidden=64, frames=2048, batch_size=64)
    cpu = torch.device("cpu")
    trees = {}
    for architecture in ("pca", "framewise"):
        kw = {"architecture": architecture, "epochs": 0, "sweeper_hidden": 32, "decoder": decoder}
        level0 = _train(image_bank, tmp_path, f"{architecture}0", sequences=mnist_sequences, **kw)
        bank1 = tmp_path / f"{architecture}_bank_L1.zarr"
        build_latent_bank(mnist_sequences, [level0], DIM, 1, 50, 1000, bank1, cpu)
        level1 = _train(bank1, tmp_path, f"{architecture}1", level=1, lower=[level0], sequences=mnist_sequences, **kw)
        trees[architecture] = [level0, level1]
    curve = pd.read_parquet(tmp_path / "framewise1_loss.parquet")
    assert curve["stage"].tolist() == ["level_and_decoder"] * 3
    assert curve["reconstruction"].iloc[-1] < curve["reconstruction"].iloc[0]
    # the level itself was trained, from its per-block PCA start (one frame per block: 8 numbers -> 4)
    saved = torch.load(trees["framewise"][1], weights_only=False)
    assert saved["config"]["sweeper"] == {"dim": DIM, "hidden": 32, "architecture": "framewise", "level": 1}
    assert saved["state"]["sweeper"]["merge_net.residual.4.weight"].abs().sum() > 0
    health = pd.read_parquet(tmp_path / "framewise1_health.parquet").iloc[0]
    assert not health["collapsed"]
    mse = {}
    for architecture, levels in trees.items():
        out = tmp_path / f"{architecture}_T4.parquet"
        evaluate_roundtrip(levels, mnist_sequences, DIM, 4, 40, out, cpu, architecture)
        frame = pd.read_parquet(out)
        mse[architecture] = frame[frame["position"].isna() & (frame["metric"] == "mse")]["value"].item()
    assert mse["framewise"] < mse["pca"]  # 4 numbers per frame: learned merges beat PCA's linear ones
