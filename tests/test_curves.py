"""A training job's curves as it trains (TensorBoard events beside its log) and its progress as whole log lines."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from imfn import job
from imfn import progress as progress_module
from imfn.progress import progress, progress_line
from imfn.train.depth_decoder import DepthDecoderTraining
from imfn.train.sweeper import SweeperTraining, train_sweeper

CPU = torch.device("cpu")
JOB = "mnist/seed0/d16/paper/train_sweeper_L0"


@pytest.fixture
def job_log(tmp_path, monkeypatch):
    """This process set up as the pipeline job ``JOB`` (its log under tmp_path/logs/); undone after the test."""
    monkeypatch.setattr(job, "_log_file", job._log_file)
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    log_file = tmp_path / "logs" / f"{JOB}.log"
    job.setup_logging(log_file)
    yield log_file
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _train(bank, tmp_path, epochs, decoder=None, lr=1e-3, sequences=None):
    hp = SweeperTraining(seed=0, dim=16, level=0, epochs=epochs, codec_hidden=32, lr=lr)
    out = tmp_path / "level0.pt"
    health = tmp_path / "health.parquet"
    train_sweeper(hp, bank, out, tmp_path / "loss.parquet", health, CPU, None, decoder, (), sequences)
    return pd.read_parquet(tmp_path / "loss.parquet")


def _curves(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of one run folder as TensorBoard shows it: (step, value) per point."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(p.step, p.value) for p in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_training_job_writes_every_epoch_of_its_loss_rows_as_tensorboard_curves(
    image_bank, mnist_sequences, job_log, tmp_path, monkeypatch
):
    monkeypatch.setattr(progress_module, "EVERY", 0.0)  # a progress line after every batch
    decoder = DepthDecoderTraining(epochs=2, hidden=16, frames=256, batch_size=64)
    rows = _train(image_bank, tmp_path, epochs=3, decoder=decoder, sequences=mnist_sequences)
    assert rows["stage"].tolist() == ["sweeper"] * 3 + ["depth_decoder"] * 2

    # beside the log, named like it: one folder per training run of the job
    curves = tmp_path / "logs" / JOB
    assert sorted(p.name for p in curves.iterdir()) == ["depth_1_decoder_seed_0", "level_0_seed_0_d=16"]
    for run, stage in (("level_0_seed_0_d=16", "sweeper"), ("depth_1_decoder_seed_0", "depth_decoder")):
        expected = rows[rows["stage"] == stage].dropna(axis="columns")
        shown = _curves(curves / run)
        assert {"loss", "reconstruction", "seconds", "samples_per_second"} <= shown.keys()
        assert shown.keys() <= set(expected.columns)
        for tag, points in shown.items():
            # TensorBoard keeps a scalar as float32
            assert points == [(e, float(np.float32(v))) for e, v in zip(expected["epoch"], expected[tag], strict=True)]

    text = job_log.read_text()
    assert "\r" not in text
    progress_lines = [line for line in text.splitlines() if "epoch 2/3 [" in line]
    assert progress_lines and all(f"{JOB}: level 0 (seed 0, d=16) epoch 2/3 [" in line for line in progress_lines)
    assert "100% 16/16 batches" in progress_lines[-1]  # 1000 images in batches of 64


def test_a_rerun_of_a_job_hides_the_points_the_attempt_before_wrote(image_bank, job_log, tmp_path):
    _train(image_bank, tmp_path, epochs=3)
    rows = _train(image_bank, tmp_path, epochs=2, lr=3e-3)  # started again from scratch, with another lr
    run = tmp_path / "logs" / JOB / "level_0_seed_0_d=16"
    assert len(list(run.iterdir())) == 2, "each attempt wrote its own event file"
    loss = _curves(run)["loss"]
    assert loss == [(e, float(np.float32(v))) for e, v in zip(rows["epoch"], rows["loss"], strict=True)]


def test_progress_lines_are_whole_lines_named_by_the_job(job_log):
    assert list(progress(range(5), "roundtrip T=8", every=0.0)) == list(range(5))
    text = job_log.read_text()
    lines = [line for line in text.splitlines() if "roundtrip T=8" in line]
    assert len(lines) == 5 and "\r" not in text
    assert all(f"{JOB}: roundtrip T=8 [" in line for line in lines)
    assert " 100% 5/5 batches, " in lines[-1]
    assert "left" not in lines[-1] and "left" in lines[0]


def test_a_progress_line_shows_the_share_done_the_rate_and_the_time_left():
    assert progress_line("x epoch 2/3", 154, 266, 12.73) == (
        "x epoch 2/3 [######......] 57% 154/266 batches, 12.1 batches/s, 9 s left"
    )
    assert progress_line("decoding videos", 30, 3000, 20.0, "videos") == (
        "decoding videos [............] 1% 30/3000 videos, 1.5 videos/s, 33.0 min left"
    )
    assert progress_line("stream", 40, None, 4.0) == "stream 40 batches, 10 batches/s"


def test_curves_that_cannot_be_written_cost_a_warning_not_the_job(image_bank, job_log, tmp_path):
    (tmp_path / "logs" / JOB).write_text("a file where the job's curves folder would go")
    rows = _train(image_bank, tmp_path, epochs=2)
    assert rows["epoch"].tolist() == [1, 2] and (tmp_path / "level0.pt").exists()
    assert job_log.read_text().count("training curves off: cannot write") == 1
