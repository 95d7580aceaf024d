"""Every kind of training job, killed by SIGKILL mid-way and rerun, ends with the outputs of an uninterrupted run.

Each job runs as the pipeline runs it: ``imfn <verb>`` in its own process. ``IMFN_KILL_AFTER_EPOCH=k`` makes the
training harness SIGKILL its own process right after epoch k's resume checkpoint is written, so the kill lands
at the same point every time. The rerun (without it) must pick up that checkpoint, say so, and end with the same
weights and the same loss rows (timings aside) as a run that was never interrupted, and its TensorBoard curves
show each epoch once, with the value of its loss rows.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from video_fixture import write_ucf_fixture

from imfn.data.mnist import write_split
from imfn.data.sequences import open_sequences
from imfn.data.video import ClipSpec, build_clip_bank, write_video_split
from imfn.train.bank import build_image_bank, build_latent_bank
from imfn.train.sweeper import SweeperTraining, train_sweeper
from imfn.train.trajectories import write_trajectory_set

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def world(mnist_store, tmp_path_factory):
    """Inputs for every kind of job: a split, an image bank, a 2-level PCA teacher with its trajectories, clips."""
    folder = tmp_path_factory.mktemp("resume")
    split = folder / "split.parquet"
    write_split(mnist_store, 0, 0.1, split)
    bank = folder / "bank_L0.zarr"
    sequences = open_sequences("mnist", mnist_store, split, 0)
    build_image_bank(sequences, 50, 1000, bank)
    teacher = [folder / "teacher_L0.pt", folder / "teacher_L1.pt"]
    train_sweeper(
        SweeperTraining(seed=0, dim=8, level=0, epochs=0, architecture="pca"), bank, teacher[0],
        folder / "t0_loss.parquet", folder / "t0_health.parquet", CPU,
    )  # fmt: skip
    build_latent_bank(sequences, [teacher[0]], 8, 1, 50, 1000, folder / "bank_L1.zarr", CPU)
    train_sweeper(
        SweeperTraining(seed=0, dim=8, level=1, epochs=0, architecture="pca"), folder / "bank_L1.zarr", teacher[1],
        folder / "t1_loss.parquet", folder / "t1_health.parquet", CPU,
    )  # fmt: skip
    trajectories = folder / "trajectories.zarr"
    write_trajectory_set(teacher, sequences, "train", 4, 40, trajectories, CPU)
    ucf = write_ucf_fixture(folder / "UCF-101")
    build_clip_bank("ucf101", ClipSpec(16, 16, 0), folder / "clips.zarr", folder / "manifest.parquet", root=ucf)
    write_video_split(folder / "manifest.parquet", 0.25, folder / "clip_split.parquet")
    return {"mnist": mnist_store, "split": split, "bank": bank, "trajectories": trajectories, "folder": folder}


def _jobs(w) -> dict[str, tuple[list[str], int]]:
    """verb and flags (without --out / --loss-out) of each kind of training job, and its epochs."""
    compressor = ["train-compressor", "--source", "mnist", "--mnist", w["mnist"], "--split", w["split"], "--seed", 0]
    compressor += ["--dim", 16]
    compressor += ["--T", 4, "--sequences-per-epoch", 32, "--batch-size", 8, "--lr", 1e-3, "--width", 16]
    compressor += ["--layers", 1, "--heads", 2, "--ffn-mult", 2]
    video = ["train-video", "--bank", w["folder"] / "clips.zarr", "--split", w["folder"] / "clip_split.parquet"]
    video += ["--seed", 0, "--level", 0, "--videos", 4, "--pairs-per-video", 2, "--batch-size", 4, "--frame-size", 16]
    video += ["--patch", 4, "--width", 16, "--heads", 2, "--memory-tokens", 8, "--self-layers", 1, "--mlp-ratio", 2]
    sweeper = ["train-sweeper", "--bank", w["bank"], "--seed", 0, "--dim", 16, "--level", 0, "--codec-hidden", 32]
    return {
        "sweeper": (sweeper + ["--epochs", 4], 4),
        "depth-decoder": (sweeper + ["--architecture", "pca", "--epochs", 0, "--decoder-epochs", 4,
                                     "--decoder-hidden", 16, "--decoder-frames", 512, "--source", "mnist",
                                     "--mnist", w["mnist"], "--split", w["split"]], 4),
        "student": (["train-student", "--trajectories", w["trajectories"], "--seed", 0, "--epochs", 4,
                     "--trajectories-per-epoch", 20, "--batch-size", 10, "--hidden", 16, "--architecture", "positional",
                     "--lr-schedule", "one-cycle", "--init", "regression"], 4),  # the lr schedule resumes too
        "dense-student": (["train-student", "--trajectories", w["trajectories"], "--seed", 0, "--epochs", 4,
                           "--trajectories-per-epoch", 20, "--batch-size", 10, "--hidden", 16,
                           "--architecture", "positional", "--lr-schedule", "one-cycle", "--init", "regression",
                           "--writes", "all"], 4),
        "transformer": (compressor + ["--model", "transformer", "--epochs", 3], 3),
        "mamba": (compressor + ["--model", "mamba", "--d-state", 4, "--decoder-layers", 1, "--epochs", 3], 3),
        "video": (video + ["--epochs", 3], 3),
    }  # fmt: skip


def _run(command, out, env, kill_after=None, log=None):
    argv = [sys.executable, "-m", "imfn.cli", *map(str, command), "--device", "cpu"]
    argv += ["--log", str(log)] if log else []
    argv += ["--out", str(out), "--loss-out", str(out.with_suffix(".loss.parquet"))]
    if command[0] == "train-sweeper":
        argv += ["--health-out", str(out.with_suffix(".health.parquet"))]
    env = {**env, "IMFN_KILL_AFTER_EPOCH": str(kill_after)} if kill_after else env
    return subprocess.run(argv, env=env, capture_output=True, text=True)


def _weights(path):
    """Every tensor of a checkpoint's ``state`` (one module's, or one per module of a level), by its dotted key."""

    def tensors(value, prefix: str) -> dict:
        if isinstance(value, torch.Tensor):
            return {prefix: value}
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in tensors(item, f"{prefix}.{key}").items()}
        return {}

    return tensors(torch.load(path, weights_only=False)["state"], "state")


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["sweeper", "depth-decoder", "student", "dense-student", "transformer", "mamba", "video"]
)
def test_a_killed_training_job_reruns_to_the_outputs_of_an_uninterrupted_run(kind, world, tmp_path, env_with_venv):
    command, epochs = _jobs(world)[kind]
    reference, killed = tmp_path / "reference.pt", tmp_path / "killed.pt"
    done = _run(command, reference, env_with_venv)
    assert done.returncode == 0, done.stderr

    stopped = 2 if epochs > 3 else 1
    log = tmp_path / "logs" / "killed.log"
    died = _run(command, killed, env_with_venv, kill_after=stopped, log=log)
    assert died.returncode == -signal.SIGKILL, died.stderr
    resume_files = list(tmp_path.glob(".killed.*.pt"))
    assert len(resume_files) == 1 and not killed.exists(), "it dies mid-way, leaving only its resume point"
    assert torch.load(resume_files[0], weights_only=False)["epoch"] == stopped

    rerun = _run(command, killed, env_with_venv, log=log)
    assert rerun.returncode == 0, rerun.stderr
    assert f"after epoch {stopped}" in rerun.stderr
    assert not list(tmp_path.glob(".killed.*")), "the resume point goes once the outputs are written"
    a, b = _weights(reference), _weights(killed)
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    timing = ["seconds", "samples_per_second"]
    curve_a = pd.read_parquet(reference.with_suffix(".loss.parquet")).drop(columns=timing)
    curve_b = pd.read_parquet(killed.with_suffix(".loss.parquet")).drop(columns=timing)
    pd.testing.assert_frame_equal(curve_a, curve_b)
    assert len(curve_a) == epochs

    # the job's one training run: the killed attempt's event file and the rerun's
    (run,) = (tmp_path / "logs" / "killed").iterdir()
    assert len(list(run.iterdir())) == 2
    events = EventAccumulator(str(run))
    events.Reload()
    shown = [(p.step, p.value) for p in events.Scalars("loss")]
    rows = pd.read_parquet(killed.with_suffix(".loss.parquet"))
    assert shown == [(e, float(np.float32(v))) for e, v in zip(rows["epoch"], rows["loss"], strict=True)]
