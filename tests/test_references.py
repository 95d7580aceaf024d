"""The references at equal memory on any sequence source: per-frame PCA, the per-frame autoencoder, clip PCA and
the mean frame, on real MNIST digits (``mnist``: 28x28 frames; ``moving_mnist``: 64x64) at tiny sizes."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch

from imfn.data.frame import MNIST_FRAME, FrameShape
from imfn.data.mnist import write_split
from imfn.data.sequences import open_sequences, training_frames
from imfn.eval.clip_pca import evaluate_clip_pca, fit_clip_pcas
from imfn.eval.frame_autoencoder import cells_for, evaluate_frame_autoencoder
from imfn.eval.metrics import score_held_out
from imfn.eval.pca import evaluate_pca
from imfn.models.frame_autoencoder import FrameAutoencoder, FrameAutoencoderConfig, load_frame_autoencoder
from imfn.models.pca import fit_pca, load_frame_pca, pca_roundtrip, write_frame_pca
from imfn.train.frame_autoencoder import FrameAutoencoderTraining, train_frame_autoencoder

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def split(mnist_store, tmp_path_factory):
    """Seed 1's split with 97% held out: 1,800 training digits (a cheap per-frame PCA at 64x64), 58,200 test."""
    out = tmp_path_factory.mktemp("split") / "split.parquet"
    write_split(mnist_store, 1, 0.97, out)
    return out


@pytest.fixture(scope="module")
def frame_pcas(mnist_store, split, tmp_path_factory):
    """Each source's frame PCA for seed 1, as `imfn frame-pca` writes it."""
    folder = tmp_path_factory.mktemp("frame_pca")
    for source in ("mnist", "moving_mnist"):
        write_frame_pca(open_sequences(source, mnist_store, split, 1), folder / f"{source}.zarr")
    return folder


def test_the_frame_pca_store_is_the_fit_of_the_training_frames_and_names_its_source(
    frame_pcas, mnist_store, split, tmp_path
):
    sequences = open_sequences("moving_mnist", mnist_store, split, 1)
    mean, basis = load_frame_pca(frame_pcas / "moving_mnist.zarr", sequences)
    fit = fit_pca(training_frames(sequences))
    torch.testing.assert_close(mean, fit.mean.float())
    torch.testing.assert_close(basis[:, :16].abs(), fit.components(16).abs())
    with pytest.raises(ValueError, match="mnist.zarr holds mnist seed 1 data, not moving_mnist seed 1"):
        load_frame_pca(frame_pcas / "mnist.zarr", sequences)


def _mse(frame: pd.DataFrame, model: str, dim: int, T: int) -> float:
    rows = frame[(frame["model"] == model) & frame["position"].isna() & (frame["metric"] == "mse")]
    return rows[(rows["dim"] == dim) & (rows["T"] == T)]["value"].item()


def test_per_frame_pca_is_exact_at_full_rank_and_chunking_does_not_change_it():
    frames = torch.rand(300, 64, generator=torch.Generator().manual_seed(0))
    fit = fit_pca(frames)
    assert fit.rank == 64  # more frames than pixels: every direction of the covariance
    torch.testing.assert_close(pca_roundtrip(frames, fit.mean.float(), fit.basis, 64), frames, atol=1e-5, rtol=0)
    torch.testing.assert_close(fit.reconstruct(frames, 64), frames, atol=1e-5, rtol=0)
    pixels = (frames * 255).round().to(torch.uint8)  # uint8 pixels fit as pixels / 255
    import imfn.models.pca as pca

    chunked = pca.PCA_CHUNK
    try:
        pca.PCA_CHUNK = 7
        small_chunks = fit_pca(pixels)
    finally:
        pca.PCA_CHUNK = chunked
    whole = fit_pca(pixels.float() / 255.0)
    torch.testing.assert_close(small_chunks.mean, whole.mean)
    # the same subspace: directions are defined up to sign
    torch.testing.assert_close(small_chunks.components(8).abs(), whole.components(8).abs(), atol=1e-4, rtol=0)
    # fewer frames than pixels: the directions they span, from their Gram matrix, as an SVD finds them
    few = frames[:20].double()
    fit = fit_pca(few)
    assert fit.rank == 19 and fit.components(19).shape == (64, 19)  # 20 frames about their mean span 19 directions
    torch.testing.assert_close(fit.reconstruct(few.float(), 19), few.float(), atol=1e-5, rtol=0)
    _, _, components = torch.linalg.svd(few - few.mean(dim=0), full_matrices=False)
    torch.testing.assert_close((fit.components(5).double().T @ components[:5].T).abs(),
                               torch.eye(5, dtype=torch.float64), atol=1e-5, rtol=0)  # fmt: skip


@pytest.mark.parametrize("source", ["mnist", "moving_mnist"])
def test_per_frame_pca_keeps_d_over_T_components(source, frame_pcas, mnist_store, split, tmp_path):
    sequences = open_sequences(source, mnist_store, split, 1)
    out = tmp_path / "pca.parquet"
    evaluate_pca(sequences, frame_pcas / f"{source}.zarr", [64, 256], [2, 8], 12, out)
    frame = pd.read_parquet(out)
    assert set(frame["model"]) == {"pca"} and set(frame["source"]) == {source} and frame["variant"].isna().all()
    # more components per frame, less error: d=256,T=2 (k=128) < d=64,T=2 (k=32) < d=64,T=8 (k=8)
    assert _mse(frame, "pca", 256, 2) < _mse(frame, "pca", 64, 2) < _mse(frame, "pca", 64, 8)
    again = tmp_path / "again.parquet"
    evaluate_pca(sequences, frame_pcas / f"{source}.zarr", [64, 256], [2, 8], 12, again)
    pd.testing.assert_frame_equal(frame, pd.read_parquet(again))  # same seed, same numbers


def test_held_out_scoring_draws_the_test_part_in_chunks(mnist_store, split, monkeypatch):
    import imfn.eval.metrics as metrics

    sequences = open_sequences("moving_mnist", mnist_store, split, 1)
    whole = score_held_out(sequences, 4, 10, lambda frames: frames * 0.5)
    monkeypatch.setattr(metrics, "CHUNK_PIXELS", 3 * 4 * 64 * 64)  # 3 sequences of T = 4 at a time
    chunked = score_held_out(sequences, 4, 10, lambda frames: frames * 0.5)
    frames = sequences.draw_float("test", 0, 10, 4)
    torch.testing.assert_close(chunked[0], whole[0])
    torch.testing.assert_close(whole[0], (frames * 0.5 - frames).pow(2).mean(dim=-1))
    assert whole[1].shape == (10, 4)


def test_the_untrained_per_frame_autoencoder_is_per_frame_pca():
    images = torch.rand(300, 12 * 20)
    config = FrameAutoencoderConfig(k=16, frame_shape=FrameShape(12, 20), hidden=32)
    untrained = FrameAutoencoder(config)
    fit = fit_pca(images)
    mean, basis = fit.mean.float(), fit.basis
    untrained.init_from_pca(mean, basis)
    torch.testing.assert_close(untrained(images), pca_roundtrip(images, mean, basis, 16), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="not of 240-pixel frames"):
        untrained.init_from_pca(mean[:10], basis[:10])


@pytest.mark.parametrize("source", ["mnist", "moving_mnist"])
def test_per_frame_autoencoder_starts_at_per_frame_pca_and_training_beats_it(
    source, frame_pcas, mnist_store, split, tmp_path
):
    sequences = open_sequences(source, mnist_store, split, 1)
    pixels = sequences.frame_shape.pixels
    assert cells_for(8, [64, 256, 1024], [2, 8, 32, 128], pixels) == [(64, 8), (256, 32), (1024, 128)]
    assert cells_for(pixels, [pixels, 4 * pixels], [2], pixels) == [(4 * pixels, 2)]  # a frame holds its pixels
    outs = {name: tmp_path / f"ae_{name}" for name in ("model.pt", "loss.parquet", "roundtrip.parquet")}
    runs = {}
    for epochs in (0, 2):
        hp = FrameAutoencoderTraining(seed=1, k=8, hidden=32, epochs=epochs, batch_size=64, frames=600)
        train_frame_autoencoder(hp, sequences, frame_pcas / f"{source}.zarr", outs["model.pt"], outs["loss.parquet"],
                                CPU)  # fmt: skip
        evaluate_frame_autoencoder(
            outs["model.pt"], sequences, [64, 256], [2, 8, 32], 10, outs["roundtrip.parquet"], CPU
        )  # fmt: skip
        runs[epochs] = pd.read_parquet(outs["roundtrip.parquet"])
    frame = runs[2]
    assert (frame["model"] == "autoencoder").all() and frame["variant"].isna().all()  # a reference has no variant
    assert set(frame["source"]) == {source}
    assert sorted(set(zip(frame["dim"], frame["T"], strict=True))) == [(64, 8), (256, 32)]
    # zero epochs is per-frame PCA (the source's frame PCA) on the same held-out sequences
    mean, basis = load_frame_pca(frame_pcas / f"{source}.zarr", sequences)
    pca_mse, _ = score_held_out(sequences, 8, 10, lambda frames: pca_roundtrip(frames, mean, basis, 8))
    assert _mse(runs[0], "autoencoder", 64, 8) == pytest.approx(pca_mse.mean().item(), rel=1e-4)
    assert _mse(frame, "autoencoder", 64, 8) < _mse(runs[0], "autoencoder", 64, 8)  # 2 epochs on 600 frames help
    model = load_frame_autoencoder(outs["model.pt"])
    assert model.config == FrameAutoencoderConfig(k=8, frame_shape=sequences.frame_shape, hidden=32)


def test_a_checkpoint_of_other_frames_is_an_error_naming_both(mnist_store, split, tmp_path):
    from imfn.models.frame_autoencoder import save_frame_autoencoder

    model = FrameAutoencoder(FrameAutoencoderConfig(k=4, frame_shape=MNIST_FRAME, hidden=8))
    save_frame_autoencoder(tmp_path / "mnist.pt", model)
    assert load_frame_autoencoder(tmp_path / "mnist.pt").config.frame_shape == MNIST_FRAME
    moving = open_sequences("moving_mnist", mnist_store, split, 1)
    with pytest.raises(ValueError, match="mnist.pt codes 28x28 frames, moving_mnist's are 64x64"):
        evaluate_frame_autoencoder(tmp_path / "mnist.pt", moving, [16], [4], 2, tmp_path / "x.parquet", CPU)
    assert not (tmp_path / "x.parquet").exists()


def test_clip_pca_is_exact_on_clips_of_known_rank_and_matches_an_svd():
    generator = torch.Generator().manual_seed(0)
    M, D, r = 40, 3000, 5
    directions = torch.randn(r, D, generator=generator, dtype=torch.float64)
    clips, held_out = (0.5 + 0.03 * torch.randn(n, r, generator=generator, dtype=torch.float64) @ directions
                       for n in (M, 7))  # fmt: skip
    assert min(clips.min(), held_out.min()) > 0 and max(clips.max(), held_out.max()) < 1  # no clipping in the way
    pca = fit_pca(clips)
    assert pca.rank == r  # 40 clips in a 5-dimensional subspace span 5 directions about their mean
    for d in range(r + 1):  # clips the fit never saw, from the same subspace: exact at d = r, not before
        error = (pca.reconstruct(held_out.float(), d) - held_out.float()).pow(2).mean().item()
        assert (error < 1e-10) == (d == r), (d, error)
    with pytest.raises(ValueError, match="rank 5 cannot keep 6"):
        pca.reconstruct(clips.float(), 6)
    # against the components of a plain SVD of the centred clips, on clips the fit never saw
    noisy = torch.rand(M, 50, generator=generator, dtype=torch.float64)
    mean = noisy.mean(dim=0)
    _, _, components = torch.linalg.svd(noisy - mean, full_matrices=False)
    test = torch.rand(9, 50, generator=generator, dtype=torch.float64)
    fit = fit_pca(noisy)
    for d in (1, 7, 20):
        expected = ((test - mean) @ components[:d].T @ components[:d] + mean).clamp(0, 1)
        torch.testing.assert_close(fit.reconstruct(test.float(), d), expected.float(), atol=1e-5, rtol=0)


def test_clip_pca_chunks_and_uint8_clips_give_the_same_fit(monkeypatch):
    import imfn.models.pca as pca

    pixels = torch.randint(0, 256, (30, 500), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    whole = fit_pca(pixels.double() / 255.0)
    monkeypatch.setattr(pca, "CHUNK_VALUES", 30 * 7)  # 7 columns at a time
    chunked = fit_pca(pixels)
    torch.testing.assert_close(chunked.eigenvalues, whole.eigenvalues, rtol=1e-5, atol=0)  # float32 products
    test = torch.rand(4, 500, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(chunked.reconstruct(test, 12), whole.reconstruct(test, 12), atol=1e-5, rtol=0)


def test_clip_pca_of_every_T_from_one_draw_is_the_fit_of_each_T_alone(mnist_store, split):
    sequences = open_sequences("moving_mnist", mnist_store, split, 1)
    clips = torch.from_numpy(sequences.draw("train", 0, 30, 4))
    test = sequences.draw_float("test", 0, 3, 4)
    fits = dict(fit_clip_pcas(clips, [4, 1, 2]))
    assert list(fits) == [1, 2, 4]
    for T, grown in fits.items():
        alone = fit_pca(torch.from_numpy(sequences.draw("train", 0, 30, T)).flatten(1))
        torch.testing.assert_close(grown.eigenvalues, alone.eigenvalues, rtol=1e-6, atol=0)
        torch.testing.assert_close(grown.reconstruct(test[:, :T], 10), alone.reconstruct(test[:, :T], 10),
                                   atol=1e-5, rtol=0)  # fmt: skip
    with pytest.raises(ValueError, match="clip PCA at T=8 from fit clips of 4 frames"):
        next(fit_clip_pcas(clips, [8]))


def test_clip_pca_and_mean_frame_rows_on_moving_mnist(frame_pcas, mnist_store, split, tmp_path, caplog):
    sequences = open_sequences("moving_mnist", mnist_store, split, 1)
    out = tmp_path / "clip_pca.parquet"
    with caplog.at_level("WARNING"):
        evaluate_clip_pca(sequences, frame_pcas / "moving_mnist.zarr", [8, 64], [2, 4], 10, 40, out)
    assert "40 fit clips span 39 directions, fewer than d=64; keeping 39" in caplog.text
    frame = pd.read_parquet(out)
    assert set(frame["model"]) == {"clip-pca", "mean-frame"} and frame["variant"].isna().all()
    assert set(frame["source"]) == {"moving_mnist"}
    assert sorted(set(zip(frame["dim"], frame["T"], strict=True))) == [(8, 2), (8, 4), (64, 2), (64, 4)]
    per_position = frame[frame["position"].notna() & (frame["metric"] == "mse") & (frame["model"] == "clip-pca")]
    assert sorted(set(per_position[per_position["T"] == 4]["position"])) == [0, 1, 2, 3]
    # the mean frame is the same at every d; components help; every code beats the mean frame
    assert _mse(frame, "mean-frame", 8, 4) == _mse(frame, "mean-frame", 64, 4)
    for T in (2, 4):
        assert _mse(frame, "clip-pca", 64, T) < _mse(frame, "clip-pca", 8, T) < _mse(frame, "mean-frame", 8, T)
    mean = training_frames(sequences).double().mean(dim=0) / 255.0
    held_out = sequences.draw_float("test", 0, 10, 2).double()
    assert _mse(frame, "mean-frame", 8, 2) == pytest.approx((held_out - mean).pow(2).mean().item(), rel=1e-5)


def test_the_verbs_run_on_moving_mnist(mnist_store, split, tmp_path, env_with_venv):
    sequences = ["--source", "moving_mnist", "--mnist", mnist_store, "--split", split, "--seed", 1]
    pca = [sys.executable, "-m", "imfn.cli", "frame-pca", *map(str, [*sequences, "--out", tmp_path / "pca.zarr"])]
    done = subprocess.run(pca, env=env_with_venv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    base = [*sequences, "--pca", tmp_path / "pca.zarr", "--dims", 32, "--T", 2, 4, "--sequences", 4]
    runs = {
        "pca-roundtrip": ["--out", tmp_path / "pca.parquet"],
        "clip-pca": ["--fit-clips", 20, "--out", tmp_path / "clip.parquet"],
        "frame-autoencoder": ["--k", 8, "--hidden", 16, "--epochs", 1, "--frames", 200, "--out", tmp_path / "ae.pt",
                              "--loss-out", tmp_path / "ae_loss.parquet", "--roundtrip-out", tmp_path / "ae.parquet",
                              "--device", "cpu"],
    }  # fmt: skip
    for name, flags in runs.items():
        argv = [sys.executable, "-m", "imfn.cli", name, *map(str, base + flags)]
        done = subprocess.run(argv, env=env_with_venv, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    tables = {name: pd.read_parquet(tmp_path / f"{name}.parquet") for name in ("pca", "clip", "ae")}
    assert set(tables["clip"]["model"]) == {"clip-pca", "mean-frame"}
    assert set(tables["ae"]["T"]) == {4} and set(tables["pca"]["T"]) == {2, 4}  # k = 8 is d = 32 at T = 4
    assert all(set(table["source"]) == {"moving_mnist"} for table in tables.values())
    wrong = subprocess.run(
        [sys.executable, "-m", "imfn.cli", "clip-pca", *map(str, [*base, "--fit-clips", 1, "--out", tmp_path / "x"])],
        env=env_with_venv, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert wrong.returncode == 1 and "clip PCA needs at least 2 fit clips, got 1" in wrong.stderr
    assert not (tmp_path / "x").exists()
