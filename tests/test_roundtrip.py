"""Roundtrip evaluation writes tidy, self-consistent Parquet."""

import pandas as pd
import pytest
import torch

from imfn.data.mnist import write_split
from imfn.eval.roundtrip import evaluate_roundtrip
from imfn.train.bank import build_image_bank, build_latent_bank
from imfn.train.sweeper import SweeperTraining, train_sweeper


@pytest.fixture(scope="module")
def two_levels(mnist_store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    split = folder / "split.parquet"
    write_split(mnist_store, 1, 0.1, split)
    build_image_bank(mnist_store, split, 1, 50, 800, folder / "bank_L0.zarr")
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
            build_latent_bank(bank, out, 1, 8, 1, None, folder / "bank_L1.zarr", cpu)
        sweepers.append(out)
    return mnist_store, split, sweepers, folder


def test_roundtrip_metrics_are_tidy_and_consistent(two_levels):
    mnist, split, sweepers, folder = two_levels
    out = folder / "roundtrip_T4.parquet"
    evaluate_roundtrip(sweepers, mnist, split, 1, 8, 4, 30, out, torch.device("cpu"), "paper")
    frame = pd.read_parquet(out)
    assert set(frame.columns) == {"source", "model", "variant", "seed", "dim", "T", "position", "metric", "value"}
    overall = frame[frame["position"].isna()].set_index("metric")["value"]
    per_position = frame[frame["position"].notna() & (frame["metric"] == "mse")]
    assert per_position["position"].tolist() == [0, 1, 2, 3]
    assert overall["mse"] == pytest.approx(per_position["value"].mean(), rel=1e-5)
    assert 0 < overall["mse"] < 0.5 and -1 <= overall["ssim"] <= 1 and overall["psnr"] > 0
    again = folder / "again.parquet"
    evaluate_roundtrip(sweepers, mnist, split, 1, 8, 4, 30, again, torch.device("cpu"), "paper")
    pd.testing.assert_frame_equal(frame, pd.read_parquet(again))  # same seed, same numbers


def test_roundtrip_needs_enough_levels(two_levels):
    mnist, split, sweepers, folder = two_levels
    with pytest.raises(ValueError, match="T=8 needs 3 teacher levels"):
        evaluate_roundtrip(sweepers, mnist, split, 1, 8, 8, 10, folder / "x.parquet", torch.device("cpu"), "paper")
