"""Train an end-to-end sequence compressor, the paper's baselines (method.md section 5).

Every epoch draws ``sequences_per_epoch`` sequences of T images from the seed's train split
(a generator seeded by (seed, model, epoch)); the loss is the reconstruction MSE of all T
frames. AdamW, a cosine schedule over all optimizer steps (no warmup: the paper gives none),
gradient clipping. Dropout draws from torch's global generator, seeded once per job and saved
with the resume checkpoint. Training runs in the harness (:mod:`imfn.train.harness`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from imfn.atomic import atomic_output
from imfn.data.mnist import load_split_images
from imfn.job import seed_torch, seeded_generator
from imfn.models.compressors import MODELS, choose_mamba_kernels, compressor_checkpoint
from imfn.models.layers import parameter_count
from imfn.train.harness import Run, resume_path, write_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompressorTraining:
    """Config ``compressors.training`` (and ``compressors.T``)."""

    seed: int
    T: int = 128
    epochs: int = 200
    sequences_per_epoch: int | None = None  # None: len(train split) // T, every image about once
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    clip: float = 1.0  # gradient norm


LOSS_COLUMNS = ["model", "seed", "epoch", "loss", "lr", "samples", "seconds", "samples_per_second"]


def model_config(model_name: str, dim: int, T: int, settings: dict):
    """The model's config dataclass from ``settings`` (config ``compressors.<model>``); unknown keys are an error."""
    if model_name not in MODELS:
        raise ValueError(f"unknown compressor {model_name!r}; choose one of {sorted(MODELS)}")
    config_cls = MODELS[model_name][1]
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{model_name} has no setting {unknown}; its settings are {sorted(known - {'dim', 'T'})}")
    return config_cls(dim=dim, T=T, **settings)


def train_compressor(
    model_name: str,
    config,
    hp: CompressorTraining,
    mnist: Path,
    split: Path,
    out: Path,
    loss_out: Path,
    device: torch.device,
    allow_slow_mamba: bool = False,
) -> None:
    """Train ``model_name`` (transformer | mamba) built from ``config`` (:func:`model_config`); write the
    checkpoint ``out`` and the per-epoch loss ``loss_out``. ``allow_slow_mamba``: see
    :func:`~imfn.models.compressors.choose_mamba_kernels`."""
    model_cls = MODELS[model_name][0]
    data = load_split_images(mnist, split)
    train = torch.from_numpy(data.train).to(device)
    images = torch.from_numpy(data.images).to(device)  # (n, 784) uint8, on the device for the whole run
    per_epoch = hp.sequences_per_epoch or len(train) // hp.T
    if per_epoch < 1:
        raise ValueError(f"train split of {len(train)} images holds no sequence of T = {hp.T}")
    batches = math.ceil(per_epoch / hp.batch_size)

    seed_torch("compressor-weights-and-dropout", hp.seed, model_name)
    kwargs = {"use_kernels": choose_mamba_kernels(device, allow_slow_mamba)} if model_name == "mamba" else {}
    model = model_cls(config, **kwargs).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=hp.epochs * batches)
    log.info(
        "%s seed %d: %s parameters, %d sequences of T=%d per epoch, %d epochs, device %s",
        model_name,
        hp.seed,
        f"{parameter_count(model):,}",
        per_epoch,
        hp.T,
        hp.epochs,
        device,
    )
    run = Run(
        name=f"{model_name} (seed {hp.seed})",
        resume=resume_path(out),
        settings={"model": model_name, "config": asdict(config), **asdict(hp)},
        inputs=[mnist, split],
        state={"model": model, "optimizer": optimizer, "scheduler": scheduler},
        device=device,
        labels={"model": model_name, "seed": hp.seed},
        hint=f"Lower compressors.training.lr (now {hp.lr}).",
    )

    def epoch(e: int) -> dict:
        gen = seeded_generator("compressor-sequences", hp.seed, model_name, e)
        picks = train[torch.randint(len(train), (per_epoch, hp.T), generator=gen).to(device)]
        model.train()
        total = torch.zeros((), device=device)
        for batch in run.batches(picks.split(hp.batch_size)):
            frames = images[batch].float() / 255.0
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
    with atomic_output(out) as tmp:
        torch.save(compressor_checkpoint(model, training=asdict(hp), split=str(split)), tmp)
    run.close()
    log.info("wrote %s", out)
