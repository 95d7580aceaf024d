"""Training, evaluation and reporting of the sequence compressors, on real MNIST sequences at tiny sizes."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from imfn.data.frame import MNIST_FRAME
from imfn.data.mnist import write_split
from imfn.data.sequences import open_sequences
from imfn.eval.compressor import evaluate_compressor
from imfn.models.compressors import TransformerCompressor, load_compressor
from imfn.report.compressors import param_counts, table1, table2
from imfn.train.compressor import CompressorTraining, compressor_config, train_compressor
from imfn.train.harness import NonFiniteLossError

T = 4
SIZES = {
    "transformer": {"width": 24, "layers": 1, "heads": 2, "ffn_mult": 2, "dropout": 0.1},
    "mamba": {"width": 24, "layers": 1, "d_state": 4, "decoder_layers": 1, "heads": 2, "ffn_mult": 2},
}


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def split(mnist_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("split") / "split.parquet"
    write_split(mnist_store, 0, 0.1, out)
    return out


def _train(model, mnist, split, folder, epochs=2, name="m", source="mnist"):
    hp = CompressorTraining(seed=0, epochs=epochs, T=T, sequences_per_epoch=48, batch_size=16, lr=1e-3)
    out, loss_out = folder / f"{name}.pt", folder / f"{name}_loss.parquet"
    sequences = open_sequences(source, mnist, split, 0)
    config = compressor_config(model, 16, T, SIZES[model], sequences.frame_shape)
    train_compressor(model, config, hp, sequences, out, loss_out, "cpu")
    return out, loss_out


def _weights(path):
    return torch.load(path, weights_only=False)["state"]


@pytest.mark.parametrize("model", ["transformer", "mamba"])
def test_training_is_deterministic_and_learns(model, mnist_store, split, tmp_path):
    first, loss_out = _train(model, mnist_store, split, tmp_path, epochs=3, name="a")
    second, _ = _train(model, mnist_store, split, tmp_path, epochs=3, name="b")
    for key, value in _weights(first).items():
        torch.testing.assert_close(_weights(second)[key], value, rtol=0, atol=0)
    losses = pd.read_parquet(loss_out)
    assert list(losses["epoch"]) == [1, 2, 3] and losses["loss"].iloc[-1] < losses["loss"].iloc[0]
    assert losses["lr"].iloc[-1] < losses["lr"].iloc[0]  # the cosine schedule decays
    assert not (tmp_path / ".a.resume.pt").exists()  # the resume point goes once the checkpoint is written


def test_nan_loss_stops_with_a_clear_error_and_no_output(mnist_store, split, tmp_path, monkeypatch):
    monkeypatch.setattr(TransformerCompressor, "forward", lambda self, x: self.decode(self.encode(x), T) * torch.nan)
    with pytest.raises(NonFiniteLossError, match="transformer .*loss became nan"):
        _train("transformer", mnist_store, split, tmp_path, epochs=1, name="nan")
    assert not list(tmp_path.glob("nan*"))


@pytest.mark.parametrize("source", ["mnist", "moving_mnist"])
def test_evaluation_uses_the_teachers_held_out_sequences(source, mnist_store, split, tmp_path):
    checkpoint, _ = _train("mamba", mnist_store, split, tmp_path, epochs=1, source=source)
    out = tmp_path / "eval.parquet"
    sequences = open_sequences(source, mnist_store, split, 0)
    evaluate_compressor(checkpoint, sequences, 20, out, torch.device("cpu"))
    rows = pd.read_parquet(out)
    overall = rows[rows["position"].isna()].set_index("metric")["value"]
    frames = sequences.draw_float("test", 0, 20, T)  # held-out sequences 0..19, as the teacher's roundtrip reads
    model = load_compressor(checkpoint)
    with torch.no_grad():
        expected = F.mse_loss(model(frames), frames).item()
    assert overall["mse"] == pytest.approx(expected, rel=1e-5)
    assert model.source == source and model.config.frame_shape == sequences.frame_shape
    assert set(rows["model"]) == {"mamba"} and set(rows["T"]) == {T} and set(rows["dim"]) == {16}
    assert set(rows["source"]) == {source}
    assert rows["variant"].isna().all()  # a compressor has no variant: its size is its setup
    assert "width 24, 1 layers" in rows["setup"].iloc[0]
    assert rows["setup"].iloc[0].endswith("pure-PyTorch scan")  # Table 1's setup names the implementation


def _metric_rows(model, variant, seed, mse, setup=None):
    base = {"model": model, "variant": variant, "setup": setup, "seed": seed, "dim": 16, "T": T, "position": None}
    return [
        {**base, "metric": "mse", "value": mse},
        {**base, "metric": "psnr", "value": -10 * torch.tensor(mse).log10().item()},
        {**base, "metric": "ssim", "value": 0.5},
    ]


def test_table1_means_and_stds_over_seeds(tmp_path):
    rows = (
        _metric_rows("imfn-teacher", "pca-pixel", 0, 0.01)
        + _metric_rows("imfn-teacher", "pca-pixel", 1, 0.03)
        + _metric_rows("imfn-teacher", "paper", 0, 0.5)  # another variant: not in the table
        + _metric_rows("transformer", None, 0, 0.02, setup="tiny")
        + _metric_rows("pca", None, 0, 0.04)
    )
    path = tmp_path / "m.parquet"
    pd.DataFrame(rows).astype({"position": "Int64"}).to_parquet(path)
    summary = table1([path], "pca-pixel", T, 16, tmp_path / "t1.md")
    teacher = summary[(summary["model"] == "imfn-teacher") & (summary["metric"] == "mse")].iloc[0]
    assert teacher["mean"] == pytest.approx(0.02) and teacher["std"] == pytest.approx(0.0141421, rel=1e-4)
    text = (tmp_path / "t1.md").read_text()
    assert "| IMFN teacher | variant pca-pixel | 2 | 0.020000 ± 0.014142 |" in text
    assert "| Transformer | tiny | 1 | 0.020000 |" in text and "per-frame PCA" in text
    assert "Mamba" not in text.split("\n\n")[1]  # no row for a model without metrics
    with pytest.raises(ValueError, match="no metrics at T=8"):
        table1([path], "pca-pixel", 8, 16, tmp_path / "none.md")


def test_paper_size_counts_on_meta_modules_equal_instantiated_ones(tmp_path):
    from test_compressors import MEASURED  # counted on fully instantiated paper-size models

    param_counts(tmp_path / "counts.parquet")
    counts = pd.read_parquet(tmp_path / "counts.parquet").set_index("model")
    assert counts.loc["transformer", "params"] == MEASURED["transformer"]
    assert counts.loc["mamba", "params"] == MEASURED["mamba"]
    assert (
        counts.loc["imfn-teacher", "params"] == 62_475_024 and counts.loc["imfn-teacher", "paper_params"] == 61_430_000
    )
    table2(tmp_path / "counts.parquet", tmp_path / "t2.md")
    assert (
        "| Transformer | paper size, d=1024, T=128 | 182,431,504 | 182,558,480 | -126,976 |"
        in (tmp_path / "t2.md").read_text()
    )


def test_unknown_compressor_or_setting_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown sequence compressor 'lstm'"):
        compressor_config("lstm", 16, T, {}, MNIST_FRAME)
    with pytest.raises(ValueError, match=r"transformer has no setting \['d_state'\]"):
        compressor_config("transformer", 16, T, {"d_state": 4}, MNIST_FRAME)
    with pytest.raises(ValueError, match=r"transformer has no setting \['frame_shape'\]"):  # the source sets it
        compressor_config("transformer", 16, T, {"frame_shape": [64, 64]}, MNIST_FRAME)


def test_a_compressor_of_one_source_is_not_evaluated_on_another(mnist_store, split, tmp_path):
    checkpoint, _ = _train("transformer", mnist_store, split, tmp_path, epochs=1)
    moving = open_sequences("moving_mnist", mnist_store, split, 0)
    with pytest.raises(ValueError, match="was trained on mnist sequences, not moving_mnist"):
        evaluate_compressor(checkpoint, moving, 4, tmp_path / "x.parquet", torch.device("cpu"))
    hp = CompressorTraining(seed=0, epochs=1, T=T, sequences_per_epoch=16)
    with pytest.raises(ValueError, match="the transformer compressor codes 28x28 frames, moving_mnist's are 64x64"):
        train_compressor("transformer", compressor_config("transformer", 16, T, SIZES["transformer"], MNIST_FRAME), hp,
                         moving, tmp_path / "y.pt", tmp_path / "y.parquet", "cpu")  # fmt: skip
    assert not list(tmp_path.glob("[xy]*"))


def test_every_epoch_trains_on_new_training_sequences(mnist_store, split, monkeypatch, tmp_path):
    from imfn.data.sequences import Sequences

    drawn = []
    draw = Sequences.draw_float
    monkeypatch.setattr(Sequences, "draw_float", lambda self, part, start, count, T: drawn.append(
        (part, start, count)) or draw(self, part, start, count, T))  # fmt: skip
    _train("transformer", mnist_store, split, tmp_path, epochs=2)
    # 48 sequences an epoch in batches of 16: epoch 0 reads 0..47, epoch 1 reads 48..95
    assert drawn == [("train", start, 16) for start in range(0, 96, 16)]
