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


def test_per_frame_pca_keeps_d_over_T_components(two_levels):
    from imfn.eval.pca import evaluate_pca, fit_pca, pca_roundtrip

    mnist, split, _, folder = two_levels
    frames = torch.rand(10, 784)
    mean, basis = fit_pca(frames)
    torch.testing.assert_close(pca_roundtrip(frames, mean, basis, 784), frames, atol=1e-4, rtol=0)
    out = folder / "pca.parquet"
    evaluate_pca(mnist, split, 1, [64, 256], [2, 8], 20, out)
    frame = pd.read_parquet(out)
    mse = frame[frame["position"].isna() & (frame["metric"] == "mse")].set_index(["dim", "T"])["value"]
    assert (frame["model"] == "pca").all()
    # more components per frame, less error: d=256,T=2 (k=128) < d=64,T=2 (k=32) < d=64,T=8 (k=8)
    assert mse[(256, 2)] < mse[(64, 2)] < mse[(64, 8)]


def test_the_untrained_per_frame_autoencoder_is_per_frame_pca_and_training_beats_it(two_levels):
    from imfn.eval.frame_autoencoder import cells_for, evaluate_frame_autoencoder
    from imfn.eval.pca import evaluate_pca, fit_pca, pca_roundtrip
    from imfn.models.frame_autoencoder import FrameAutoencoder, FrameAutoencoderConfig, load_frame_autoencoder
    from imfn.train.frame_autoencoder import FrameAutoencoderTraining, train_frame_autoencoder

    mnist, split, _, folder = two_levels
    images = torch.rand(300, 784)
    untrained = FrameAutoencoder(FrameAutoencoderConfig(k=16, hidden=32))
    untrained.init_from_data(images)
    mean, basis = fit_pca(images)
    torch.testing.assert_close(untrained(images), pca_roundtrip(images, mean, basis, 16), atol=1e-4, rtol=0)

    assert cells_for(8, [64, 256, 1024], [2, 8, 32, 128]) == [(64, 8), (256, 32), (1024, 128)]
    assert cells_for(784, [1024, 2048], [2]) == [(2048, 2)]  # a frame holds at most 784 numbers
    outs = {name: folder / f"ae_{name}" for name in ("model.pt", "loss.parquet", "roundtrip.parquet")}
    cpu = torch.device("cpu")
    runs = {}
    for epochs in (0, 2):
        hp = FrameAutoencoderTraining(seed=1, k=8, hidden=64, epochs=epochs, batch_size=64)
        train_frame_autoencoder(hp, mnist, split, outs["model.pt"], outs["loss.parquet"], cpu)
        evaluate_frame_autoencoder(
            outs["model.pt"], mnist, split, 1, [64, 256], [2, 8, 32], 20, outs["roundtrip.parquet"], cpu
        )
        runs[epochs] = pd.read_parquet(outs["roundtrip.parquet"])
    frame = runs[2]
    assert (frame["model"] == "autoencoder").all() and frame["variant"].isna().all()  # a reference has no variant
    assert sorted(set(zip(frame["dim"], frame["T"], strict=True))) == [(64, 8), (256, 32)]
    evaluate_pca(mnist, split, 1, [64], [8], 20, folder / "pca_k8.parquet")
    pca = pd.read_parquet(folder / "pca_k8.parquet")

    def mse(f, dim, T):
        return f[f["position"].isna() & (f["metric"] == "mse") & (f["dim"] == dim) & (f["T"] == T)]["value"].item()

    # zero epochs is per-frame PCA on the same held-out sequences; two epochs on 800 images improve on it
    assert mse(runs[0], 64, 8) == pytest.approx(mse(pca, 64, 8), rel=1e-4)
    assert mse(frame, 64, 8) < mse(runs[0], 64, 8)
    assert load_frame_autoencoder(outs["model.pt"]).config == FrameAutoencoderConfig(k=8, hidden=64)
