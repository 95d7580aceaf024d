"""Train an end-to-end sequence compressor, the paper's baselines (method.md section 5).

Epoch e (from 0) trains on the source's training sequences e * per_epoch .. (e + 1) * per_epoch - 1
(``per_epoch`` = ``sequences_per_epoch``), drawn a batch at a time, so every epoch sees new sequences and a
rerun the same ones; the loss is the reconstruction MSE of all T frames. AdamW, a cosine schedule over all
optimizer steps (no warmup: the paper gives none), gradient clipping. Dropout draws from torch's global
generator, seeded once per job and saved with the resume checkpoint.
Training runs in the harness (:mod:`imfn.train.harness`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from imfn.data.frame import FrameShape
from imfn.data.sequences import Sequences, same_frame_shape
from imfn.job import seed_torch
from imfn.models.compressors import build_compressor, compressor_class, save_compressor
from imfn.models.layers import parameter_count
from imfn.train.harness import Run, resume_path, write_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompressorTraining:
    """Config ``compressors.training`` (and ``compressors.T``)."""

    seed: int
    T: int = 128
    epochs: int = 200
    sequences_per_epoch: int | None = None  # None: training digits // T (mnist: every digit about once an epoch)
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    clip: float = 1.0  # gradient norm


LOSS_COLUMNS = ["model", "seed", "epoch", "loss", "lr", "samples", "seconds", "samples_per_second"]


def compressor_config(model_name: str, dim: int, T: int, settings: dict, frame_shape: FrameShape):
    """The model's config dataclass from ``settings`` (config ``compressors.<model>``) for frames of
    ``frame_shape``; unknown keys are an error."""
    config_cls = compressor_class(model_name).config_class
    given = {"dim", "T", "frame_shape"}
    known = {f.name for f in fields(config_cls)} - given
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{model_name} has no setting {unknown}; its settings are {sorted(known)}")
    return config_cls(dim=dim, T=T, frame_shape=frame_shape, **settings)


def train_compressor(
    model_name: str,
    config,
    hp: CompressorTraining,
    sequences: Sequences,
    out: Path,
    loss_out: Path,
    device: torch.device,
    allow_slow_mamba: bool = False,
    inputs: Sequence[Path] = (),
) -> None:
    """Train ``model_name`` (transformer | mamba) built from ``config`` (:func:`compressor_config`) on the training
    sequences of ``sequences``; write the checkpoint ``out`` (it records the source and its frame shape) and the
    per-epoch loss ``loss_out``. ``allow_slow_mamba``: see :func:`~imfn.models.compressors.choose_mamba_kernels`.
    ``inputs``: the files the sequences are read from (a resume point from other files is not resumed)."""
    if sequences.seed != hp.seed:
        raise ValueError(f"training seed {hp.seed} but the sequences are seed {sequences.seed}'s")
    same_frame_shape(f"the {model_name} compressor", config.frame_shape, sequences)
    training_digits = len(sequences.digits.train)
    per_epoch = hp.sequences_per_epoch or training_digits // hp.T
    if per_epoch < 1:
        raise ValueError(f"train split of {training_digits} images holds no sequence of T = {hp.T}")
    batches = math.ceil(per_epoch / hp.batch_size)

    seed_torch("compressor-weights-and-dropout", hp.seed, model_name)
    model = build_compressor(config, device, allow_slow_mamba)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=hp.epochs * batches)
    log.info(
        "%s %s seed %d: %s parameters, %d sequences of T=%d per epoch, %d epochs, device %s",
        model_name,
        sequences.source,
        hp.seed,
        f"{parameter_count(model):,}",
        per_epoch,
        hp.T,
        hp.epochs,
        device,
    )
    run = Run(
        name=f"{model_name} ({sequences.source}, seed {hp.seed})",
        resume=resume_path(out),
        settings={"model": model_name, "source": sequences.source, "config": asdict(config), **asdict(hp)},
        inputs=list(inputs),
        state={"model": model, "optimizer": optimizer, "scheduler": scheduler},
        device=device,
        labels={"model": model_name, "seed": hp.seed},
        hint=f"Lower compressors.training.lr (now {hp.lr}).",
    )

    def epoch(e: int) -> dict:
        model.train()
        total = torch.zeros((), device=device)
        starts = range(e * per_epoch, (e + 1) * per_epoch, hp.batch_size)
        for start in run.batches(starts):
            count = min(hp.batch_size, (e + 1) * per_epoch - start)
            frames = sequences.draw_float("train", start, count, hp.T).to(device)
            with run.autocast():
                loss = F.mse_loss(model(frames), frames)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), hp.clip)
            optimizer.step()
            scheduler.step()
            total += loss.detach() * len(frames)
        return {"loss": (total / per_epoch).item(), "lr": scheduler.get_last_lr()[0], "samples": per_epoch}

    rows = run.train(hp.epochs, epoch)
    model.eval().cpu()
    write_rows(rows, loss_out, LOSS_COLUMNS)
    save_compressor(out, model, training=asdict(hp), source=sequences.source)
    run.close()
    log.info("wrote %s", out)
