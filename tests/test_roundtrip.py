"""Roundtrip evaluation writes tidy, self-consistent Parquet."""

import pandas as pd
import pytest
import torch

from imfn.data.mnist import write_split
from imfn.data.sequences import open_sequences
from imfn.eval.metrics import mse_per_frame
from imfn.eval.roundtrip import evaluate_roundtrip
from imfn.models.teacher import Teacher
from imfn.train.bank import build_image_bank, build_latent_bank
from imfn.train.sweeper import SweeperTraining, train_sweeper


@pytest.fixture(scope="module")
def two_levels(mnist_store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    split = folder / "split.parquet"
    write_split(mnist_store, 1, 0.1, split)
    sequences = open_sequences("mnist", mnist_store, split, 1)
    build_image_bank(sequences, 50, 800, folder / "bank_L0.zarr")
    cpu = torch.device("cpu")
    sweepers = []
    for level in range(2):
        hp = SweeperTraining(seed=1, dim=8, level=level, epochs=1, codec_hidden=32)
        out = folder / f"sweeper_L{level}.pt"
        bank = folder / f"bank_L{level}.zarr"
        train_sweeper(
            hp,
            bank,
            out,
            folder / f"loss_L{level}.parquet",
            folder / f"health_L{level}.parquet",
            cpu,
        )
        if level == 0:
            build_latent_bank(sequences, [out], 8, 1, 50, None, folder / "bank_L1.zarr", cpu)
        sweepers.append(out)
    return mnist_store, split, sweepers, folder


def test_roundtrip_metrics_are_tidy_and_consistent(two_levels):
    mnist, split, sweepers, folder = two_levels
    sequences = open_sequences("mnist", mnist, split, 1)
    out = folder / "roundtrip_T4.parquet"
    evaluate_roundtrip(sweepers, sequences, 8, 4, 30, out, torch.device("cpu"), "paper")
    frame = pd.read_parquet(out)
    assert set(frame.columns) == {"source", "model", "variant", "seed", "dim", "T", "position", "metric", "value"}
    assert (frame["source"] == "mnist").all()
    overall = frame[frame["position"].isna()].set_index("metric")["value"]
    per_position = frame[frame["position"].notna() & (frame["metric"] == "mse")]
    assert per_position["position"].tolist() == [0, 1, 2, 3]
    assert overall["mse"] == pytest.approx(per_position["value"].mean(), rel=1e-5)
    assert 0 < overall["mse"] < 0.5 and -1 <= overall["ssim"] <= 1 and overall["psnr"] > 0
    again = folder / "again.parquet"
    evaluate_roundtrip(sweepers, sequences, 8, 4, 30, again, torch.device("cpu"), "paper")
    pd.testing.assert_frame_equal(frame, pd.read_parquet(again))  # same seed, same numbers


def test_roundtrip_reads_the_held_out_sequences_0_to_n_minus_1(two_levels):
    mnist, split, sweepers, folder = two_levels
    sequences = open_sequences("mnist", mnist, split, 1)
    out = folder / "roundtrip_T2.parquet"
    evaluate_roundtrip(sweepers, sequences, 8, 2, 25, out, torch.device("cpu"), "paper")
    frame = pd.read_parquet(out)
    mse = frame[frame["position"].isna() & (frame["metric"] == "mse")]["value"].item()
    images = sequences.draw_float("test", 0, 25, 2)
    expected = mse_per_frame(Teacher.load_for(2, sweepers).roundtrip(images), images).mean().item()
    assert mse == pytest.approx(expected, rel=1e-5)


def test_roundtrip_needs_enough_levels(two_levels):
    mnist, split, sweepers, folder = two_levels
    sequences = open_sequences("mnist", mnist, split, 1)
    with pytest.raises(ValueError, match="T=8 needs 3 teacher levels"):
        evaluate_roundtrip(sweepers, sequences, 8, 8, 10, folder / "x.parquet", torch.device("cpu"), "paper")
