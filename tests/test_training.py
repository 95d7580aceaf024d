"""Training one level: deterministic, loud on NaN and on collapse, whole outputs only (kills: test_resume.py)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from imfn.store import read_array, read_attrs, write_arrays
from imfn.train.bank import build_latent_bank
from imfn.train.depth_decoder import DepthDecoderTraining
from imfn.train.harness import NonFiniteLossError
from imfn.train.health import HealthLimits, LevelCollapseError
from imfn.train.sweeper import SweeperTraining, train_sweeper

DIM = 16


def _train(bank, tmp_path, name, level=0, epochs=2, limits=None, decoder=None, lower=(), image_bank=None, **kw):
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
        image_bank,
    )
    return out


def _weights(path):
    state = torch.load(path, weights_only=False)
    return {
        **{f"s.{k}": v for k, v in state["sweeper"].items()},
        **{f"c.{k}": v for k, v in (state["codec"] or {}).items()},
    }


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_image_bank_holds_train_images_and_zeros(image_bank, mnist_store):
    data, source = read_array(image_bank, "data"), read_array(image_bank, "source_index")
    assert data.shape == (1000, 784) and data.dtype == np.uint8
    assert (source == -1).sum() == 50 and (data[source == -1] == 0).all()
    images = read_array(mnist_store, "images")
    np.testing.assert_array_equal(data[source >= 0], images[source[source >= 0]])
    assert read_attrs(image_bank)["seed"] == 0


def test_same_seed_same_weights(image_bank, tmp_path):
    _assert_same_weights(_train(image_bank, tmp_path, "a"), _train(image_bank, tmp_path, "b"))


def test_training_lowers_the_loss_and_builds_the_next_bank(image_bank, tmp_path):
    out = _train(image_bank, tmp_path, "l0", epochs=4)
    curve = pd.read_parquet(tmp_path / "l0_loss.parquet")
    assert curve["epoch"].tolist() == [1, 2, 3, 4]
    assert curve["reconstruction"].iloc[-1] < curve["reconstruction"].iloc[0]
    build_latent_bank(image_bank, out, 0, DIM, 1, None, tmp_path / "bank_L1.zarr", torch.device("cpu"))
    latents = read_array(tmp_path / "bank_L1.zarr", "data")
    assert latents.shape == (1000, DIM) and latents.dtype == np.float32 and np.isfinite(latents).all()
    assert read_attrs(tmp_path / "bank_L1.zarr")["source_checkpoint"] == str(out)
    assert not (tmp_path / ".l0.resume.pt").exists()  # removed once the level is complete


def test_nan_loss_stops_with_a_clear_error_and_no_output(tmp_path, env_with_venv):
    bank = tmp_path / "bank_L1.zarr"
    latents = np.random.default_rng(0).normal(size=(256, DIM)).astype(np.float32)
    latents[17, 3] = np.nan
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


def test_depth_decoders_learn_what_the_linear_read_out_cannot(image_bank, tmp_path):
    decoder = DepthDecoderTraining(epochs=4, hidden=64, frames=2048, batch_size=64)
    level0 = _train(image_bank, tmp_path, "d0", epochs=0, architecture="pca", decoder=decoder)
    build_latent_bank(image_bank, level0, 0, DIM, 1, None, tmp_path / "bank_L1.zarr", torch.device("cpu"))
    _train(
        tmp_path / "bank_L1.zarr",
        tmp_path,
        "d1",
        level=1,
        epochs=0,
        architecture="pca",
        decoder=decoder,
        lower=[level0],
        image_bank=image_bank,
    )
    curve = pd.read_parquet(tmp_path / "d1_loss.parquet")
    assert curve["stage"].tolist() == ["depth_decoder"] * 4 and (curve["level"] == 1).all()
    assert curve["reconstruction"].iloc[-1] < curve["reconstruction"].iloc[0]
    state = torch.load(tmp_path / "d1.pt", weights_only=False)
    assert state["depth_decoder_config"]["depth"] == 2 and state["codec"] is None


def test_depth_decoder_above_level_0_needs_the_levels_below(image_bank, tmp_path):
    with pytest.raises(ValueError, match="needs the 1 lower levels"):
        _train(image_bank, tmp_path, "x", level=1, epochs=0, architecture="pca", decoder=DepthDecoderTraining(epochs=1))


def test_framewise_levels_train_their_merge_in_pixels_and_beat_the_pca_tree(image_bank, mnist_store, tmp_path):
    from imfn.eval.roundtrip import evaluate_roundtrip

    decoder = DepthDecoderTraining(epochs=3, hidden=64, frames=2048, batch_size=64)
    cpu = torch.device("cpu")
    trees = {}
    for architecture in ("pca", "framewise"):
        kw = {"architecture": architecture, "epochs": 0, "sweeper_hidden": 32}
        level0 = _train(image_bank, tmp_path, f"{architecture}0", decoder=decoder, **kw)
        bank1 = tmp_path / f"{architecture}_bank_L1.zarr"
        build_latent_bank(image_bank, level0, 0, DIM, 1, None, bank1, cpu)
        level1 = _train(
            bank1, tmp_path, f"{architecture}1", level=1, decoder=decoder, lower=[level0], image_bank=image_bank, **kw
        )
        trees[architecture] = [level0, level1]
    curve = pd.read_parquet(tmp_path / "framewise1_loss.parquet")
    assert curve["stage"].tolist() == ["level_and_decoder"] * 3
    assert curve["reconstruction"].iloc[-1] < curve["reconstruction"].iloc[0]
    # the level itself was trained, from its per-block PCA start (one frame per block: 8 numbers -> 4)
    state = torch.load(trees["framewise"][1], weights_only=False)
    assert state["sweeper_config"] == {"dim": DIM, "hidden": 32, "architecture": "framewise", "level": 1}
    assert state["sweeper"]["merge_net.residual.4.weight"].abs().sum() > 0
    health = pd.read_parquet(tmp_path / "framewise1_health.parquet").iloc[0]
    assert not health["collapsed"]
    mnist, split = mnist_store, image_bank.parent / "split.parquet"
    mse = {}
    for architecture, levels in trees.items():
        out = tmp_path / f"{architecture}_T4.parquet"
        evaluate_roundtrip(levels, mnist, split, 0, DIM, 4, 40, out, cpu, architecture)
        frame = pd.read_parquet(out)
        mse[architecture] = frame[frame["position"].isna() & (frame["metric"] == "mse")]["value"].item()
    assert mse["framewise"] < mse["pca"]  # 4 numbers per frame: learned merges beat PCA's linear ones
