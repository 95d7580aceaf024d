"""`imfn <verb>` refuses bad flags before any work, naming the flag and what is wrong with it."""

from __future__ import annotations

import pytest

from imfn.cli import main


def refusal(argv, capsys) -> str:
    """What argparse says when it refuses ``argv`` (it exits with status 2 before the verb runs)."""
    with pytest.raises(SystemExit) as stop:
        main([str(word) for word in argv])
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_a_missing_input_is_named_as_not_found(tmp_path, capsys):
    (tmp_path / "mnist.zarr").mkdir()
    argv = ["image-bank", "--source", "mnist", "--mnist", tmp_path / "mnist.zarr", "--split",
            tmp_path / "missing.parquet", "--seed", 0, "--zero-padded", 10, "--out", tmp_path / "b.zarr"]  # fmt: skip
    assert f"argument --split: {tmp_path / 'missing.parquet'} not found" in refusal(argv, capsys)
    assert not (tmp_path / "b.zarr").exists()


def test_a_count_below_one_is_refused_by_its_own_rule(tmp_path, capsys):
    for name in ("mnist.zarr", "split.parquet"):
        (tmp_path / name).touch()
    argv = ["image-bank", "--source", "mnist", "--mnist", tmp_path / "mnist.zarr", "--split",
            tmp_path / "split.parquet", "--seed", 0, "--zero-padded", 10, "--bank-size", -3,
            "--out", tmp_path / "bank.zarr"]  # fmt: skip
    message = refusal(argv, capsys)
    assert "argument --bank-size: must be a positive integer, got -3" in message and "at most" not in message


def test_an_unknown_source_is_named_with_the_registered_ones(tmp_path, capsys):
    for name in ("mnist.zarr", "split.parquet"):
        (tmp_path / name).touch()
    log = tmp_path / "job.log"
    argv = ["frame-pca", "--source", "kth", "--mnist", tmp_path / "mnist.zarr", "--split", tmp_path / "split.parquet",
            "--seed", 0, "--out", tmp_path / "pca.zarr", "--log", log]  # fmt: skip
    assert main([str(word) for word in argv]) == 1
    assert "unknown sequence source 'kth'; the known ones are ['mnist', 'moving_mnist']" in log.read_text()
