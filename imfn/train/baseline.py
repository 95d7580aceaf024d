"""Train an end-to-end sequence compressor, the paper's baselines (method.md section 5).

Every epoch draws ``sequences_per_epoch`` sequences of T images from the seed's train split
(a generator seeded by (seed, model, epoch)); the loss is the reconstruction MSE of all T
frames. AdamW, a cosine schedule over all optimizer steps (no warmup: the paper gives none),
gradient clipping. Dropout draws from torch's global generator, seeded once per job and saved
with the resume checkpoint.

A resumable checkpoint is written after every epoch; a rerun picks it up and ends with the same
weights as an uninterrupted run. A non-finite loss stops the job before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from imfn.atomic import atomic_output
from imfn.data.mnist import split_indices
from imfn.job import seeded_generator
from imfn.models.baselines import MODELS, baseline_checkpoint, param_count
from imfn.store import read_array

log = logging.getLogger(__name__)

PURPOSE_BASELINE = 9
MODEL_IDS = {"transformer": 1, "mamba": 2}


class NonFiniteBaselineLoss(RuntimeError):
    """The baseline's training loss became NaN or infinite."""


@dataclass(frozen=True)
class BaselineTraining:
    seed: int
    epochs: int
    T: int = 128
    sequences_per_epoch: int | None = None  # None: len(train split) // T, every image about once
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    clip: float = 1.0


LOSS_COLUMNS = ["model", "seed", "epoch", "loss", "lr", "seconds", "sequences_per_second"]


def _fingerprint(model: str, config: dict, hp: BaselineTraining, mnist: Path, split: Path) -> str:
    payload = json.dumps(
        {"model": model, "config": config, **asdict(hp), "mnist": str(mnist.resolve()), "split": str(split.resolve())},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def train_baseline(
    model_name: str,
    model_config: dict,
    hp: BaselineTraining,
    mnist: Path,
    split: Path,
    out: Path,
    loss_out: Path,
    resume: Path,
    device: torch.device,
) -> None:
    """Train ``model_name`` (transformer | mamba) with ``model_config`` (its config dataclass's
    fields but T); write the checkpoint ``out`` and the per-epoch loss ``loss_out``."""
    if model_name not in MODELS:
        raise ValueError(f"unknown baseline {model_name!r}; choose one of {sorted(MODELS)}")
    model_cls, config_cls = MODELS[model_name]
    config = config_cls(T=hp.T, **model_config)
    train = torch.from_numpy(split_indices(split, "train"))
    images = torch.from_numpy(read_array(mnist, "images"))  # (n, 784) uint8
    per_epoch = hp.sequences_per_epoch or len(train) // hp.T
    if per_epoch < 1:
        raise ValueError(f"train split of {len(train)} images holds no sequence of T = {hp.T}")
    batches = math.ceil(per_epoch / hp.batch_size)

    torch.manual_seed(hp.seed * 1000 + 900 + MODEL_IDS[model_name])  # weight init and dropout
    kwargs = {"use_kernels": None} if model_name == "mamba" else {}
    model = model_cls(config, **kwargs).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=hp.epochs * batches)
    log.info(
        "%s seed %d: %s parameters, %d sequences of T=%d per epoch, %d epochs, device %s",
        model_name,
        hp.seed,
        f"{param_count(model):,}",
        per_epoch,
        hp.T,
        hp.epochs,
        device,
    )

    fingerprint = _fingerprint(model_name, asdict(config), hp, mnist, split)
    rows: list[dict] = []
    start_epoch = 0
    if resume.exists():
        state = torch.load(resume, map_location=device, weights_only=False)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            rows, start_epoch = state["rows"], state["epoch"]
            log.info("resuming %s from %s after epoch %d", model_name, resume, start_epoch)
        else:
            log.warning("ignoring %s: it was trained from other settings", resume)

    for epoch in range(start_epoch, hp.epochs):
        gen = seeded_generator(PURPOSE_BASELINE, hp.seed, MODEL_IDS[model_name], epoch)
        picks = train[torch.randint(len(train), (per_epoch, hp.T), generator=gen)]
        model.train()
        t0, total = time.perf_counter(), torch.zeros((), device=device)
        for b in tqdm(range(batches), desc=f"{model_name} epoch {epoch + 1}/{hp.epochs}", mininterval=10, leave=False):
            frames = images[picks[b * hp.batch_size : (b + 1) * hp.batch_size]].to(device).float() / 255.0
            loss = F.mse_loss(model(frames), frames)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), hp.clip)
            optimizer.step()
            scheduler.step()
            total += loss.detach() * len(frames)
        loss_mean = (total / per_epoch).item()
        seconds = time.perf_counter() - t0
        if not math.isfinite(loss_mean):
            raise NonFiniteBaselineLoss(
                f"{model_name} (seed {hp.seed}): loss became {loss_mean} in epoch {epoch + 1}; nothing was written. "
                f"Lower lr (now {hp.lr})."
            )
        rows.append(
            {
                "model": model_name,
                "seed": hp.seed,
                "epoch": epoch + 1,
                "loss": loss_mean,
                "lr": scheduler.get_last_lr()[0],
                "seconds": seconds,
                "sequences_per_second": per_epoch / seconds,
            }
        )
        log.info("%s epoch %d/%d: loss %.6f in %.1f s", model_name, epoch + 1, hp.epochs, loss_mean, seconds)
        with atomic_output(resume) as tmp:
            torch.save(
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch + 1,
                    "rows": rows,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                },
                tmp,
            )

    model.eval().cpu()
    with atomic_output(loss_out) as tmp:
        pd.DataFrame(rows, columns=LOSS_COLUMNS).to_parquet(tmp, index=False)
    with atomic_output(out) as tmp:
        torch.save(baseline_checkpoint(model, training=asdict(hp), split=str(split)), tmp)
    resume.unlink(missing_ok=True)
    log.info("wrote %s", out)
