"""Train one tree level, locally, on its own bank (method.md section 2).

Per minibatch the *right* element comes from the minibatch and the *left* element is an
independent random partner from the same bank. Level 0 trains the leaf codec with its
sweeper on pixel MSE; level l >= 1 trains only its sweeper on latent MSE. Both add
Gaussian noise to the merged code during training and a norm penalty on it.

A resumable checkpoint is written after every epoch; a rerun picks it up and, because
every epoch's randomness comes from a generator seeded by (seed, level, epoch), ends
with the same weights as an uninterrupted run. A non-finite loss stops the job before
anything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from imfn.atomic import atomic_output
from imfn.health import DEFAULT_LIMITS, HealthLimits, LevelCollapseError, code_health, collapse_reasons
from imfn.job import seeded_generator
from imfn.models.teacher import (
    CodecConfig,
    LeafCodec,
    Sweeper,
    SweeperConfig,
    load_sweeper_checkpoint,
    sweeper_checkpoint,
)
from imfn.store import open_group
from imfn.train.depth_decoder import DepthDecoderTraining, train_depth_decoder
from imfn.tree import Teacher

log = logging.getLogger(__name__)

PURPOSE_TRAIN = 1
PURPOSE_INIT = 4
PURPOSE_HEALTH = 5
INIT_SAMPLES = 16384
HEALTH_SAMPLES = 4096


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class SweeperTraining:
    seed: int
    dim: int
    level: int
    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    noise_sigma: float = 0.01
    norm_penalty: float = 1e-4
    codec_hidden: int = 1024
    sweeper_hidden: int | None = None
    recipe: str = "paper"
    variant: str = "paper"  # the name this recipe runs under in the config, recorded in outputs


def load_bank(path: Path, level: int, dim: int) -> torch.Tensor:
    """Bank rows as a CPU tensor: uint8 images at level 0, float32 latents above."""
    group = open_group(path)
    data = group["data"][...]
    if level == 0 and data.dtype != np.uint8:
        raise ValueError(f"level-0 bank {path} must hold uint8 images, found {data.dtype}")
    if level > 0 and (data.dtype != np.float32 or data.shape[1] != dim):
        raise ValueError(
            f"level-{level} bank {path} must hold float32 (n, {dim}) latents, found {data.dtype} {data.shape}"
        )
    return torch.from_numpy(data)


def _fingerprint(hp: SweeperTraining, bank: Path) -> str:
    """Identifies what a resume checkpoint was trained from: hyperparameters and the bank build."""
    meta = bank / "zarr.json"
    stamp = meta.stat().st_mtime_ns if meta.exists() else 0
    payload = json.dumps(
        {**asdict(hp), "epochs": None, "bank": str(bank.resolve()), "bank_mtime": stamp}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class LevelModel(torch.nn.Module):
    """What one level trains: its sweeper, plus the leaf codec at level 0."""

    def __init__(self, hp: SweeperTraining):
        super().__init__()
        self.level = hp.level
        self.sweeper = Sweeper(SweeperConfig.for_dim(hp.dim, hp.sweeper_hidden, hp.recipe))
        self.codec = LeafCodec(CodecConfig(hp.dim, hp.codec_hidden, hp.recipe)) if hp.level == 0 else None

    def inputs(self, rows: torch.Tensor) -> torch.Tensor:
        """Bank rows as the sweeper's inputs: pixels in [0, 1] at level 0, codes above."""
        return rows.float() / 255.0 if self.codec is not None else rows

    def codes(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(inputs) if self.codec is not None else inputs

    def reconstruct(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(codes) if self.codec is not None else codes

    @torch.no_grad()
    def init_from_bank(self, data: torch.Tensor, hp: SweeperTraining) -> None:
        """Data-dependent initialization (the ``pca`` recipe); the paper's recipe starts from random weights."""
        if hp.recipe != "pca":
            return
        gen = seeded_generator(PURPOSE_INIT, hp.seed, hp.level)
        inputs = self.inputs(data[torch.randperm(len(data), generator=gen)[:INIT_SAMPLES]])
        if self.codec is not None:
            self.codec.init_from_data(inputs)
        self.sweeper.init_from_data(self.codes(inputs))

    @torch.no_grad()
    def health(self, data: torch.Tensor, hp: SweeperTraining) -> dict:
        """Health of the codes this level merges, on a fixed sample of pairs from its bank."""
        gen = seeded_generator(PURPOSE_HEALTH, hp.seed, hp.level)
        left = self.inputs(data[torch.randint(len(data), (HEALTH_SAMPLES,), generator=gen)])
        right = self.inputs(data[torch.randint(len(data), (HEALTH_SAMPLES,), generator=gen)])
        merged = self.sweeper.merge(self.codes(left), self.codes(right))
        left_hat, right_hat = (self.reconstruct(x) for x in self.sweeper.invert(merged))
        mse = 0.5 * (F.mse_loss(left_hat, left) + F.mse_loss(right_hat, right)).item()
        variance = torch.cat([left, right]).var(dim=0).mean().item()
        return code_health(merged, mse, variance)

    def loss(self, left: torch.Tensor, right: torch.Tensor, noise: torch.Tensor, hp: SweeperTraining):
        left, right = self.inputs(left), self.inputs(right)
        # Left and right go through the codec as one batch of 2B rows: same math, larger matmuls.
        z = self.sweeper.merge(*self.codes(torch.cat([left, right])).chunk(2))
        left_hat, right_hat = self.reconstruct(torch.cat(self.sweeper.invert(z + hp.noise_sigma * noise))).chunk(2)
        reconstruction = 0.5 * (F.mse_loss(left_hat, left) + F.mse_loss(right_hat, right))
        norm = z.pow(2).sum(dim=1).mean()
        return reconstruction + hp.norm_penalty * norm, reconstruction, norm


def make_optimizer(model: torch.nn.Module, hp: SweeperTraining) -> torch.optim.Adam:
    # Fused Adam is the same update in one kernel per step: at d=1024 it cuts a CPU step by ~20%.
    return torch.optim.Adam(model.parameters(), lr=hp.lr, fused=True)


LOSS_COLUMNS = [
    "variant",
    "seed",
    "dim",
    "level",
    "stage",
    "epoch",
    "loss",
    "reconstruction",
    "code_norm",
    "seconds",
    "samples_per_second",
]


def train_sweeper(
    hp: SweeperTraining,
    bank: Path,
    out: Path,
    loss_out: Path,
    health_out: Path,
    resume: Path,
    device: torch.device,
    limits: HealthLimits = DEFAULT_LIMITS,
    on_collapse: str = "warn",
    decoder: DepthDecoderTraining | None = None,
    lower: Sequence[Path] = (),
    image_bank: Path | None = None,
) -> None:
    """Train level ``hp.level`` on ``bank``; write the checkpoint ``out``, its loss curve ``loss_out``
    and its health ``health_out``. A collapsed level warns loudly or, with ``on_collapse="fail"``,
    stops before writing anything.

    With ``decoder`` (and, above level 0, the ``lower`` levels' checkpoints and the ``image_bank``),
    the level also trains the decoder for its depth through the frozen stack below it."""
    if on_collapse not in {"warn", "fail"}:
        raise ValueError(f"on_collapse must be 'warn' or 'fail', got {on_collapse!r}")
    train_decoder = decoder is not None and decoder.epochs > 0
    if train_decoder and (len(lower) != hp.level or (hp.level > 0 and image_bank is None)):
        raise ValueError(
            f"the depth decoder of level {hp.level} needs the {hp.level} lower levels' checkpoints "
            f"(got {len(lower)}) and, above level 0, the image bank"
        )
    data = load_bank(bank, hp.level, hp.dim)
    n = len(data)
    torch.manual_seed(hp.seed * 1000 + hp.level)  # weight init: same seed, same weights
    model = LevelModel(hp)
    model.init_from_bank(data, hp)
    model.to(device)
    optimizer = make_optimizer(model, hp)
    fingerprint = _fingerprint(hp, bank)
    rows: list[dict] = []
    start_epoch = 0
    if resume.exists():
        state = torch.load(resume, map_location=device, weights_only=False)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            rows, start_epoch = state["rows"], state["epoch"]
            log.info("resuming level %d from %s after epoch %d", hp.level, resume, start_epoch)
        else:
            log.warning("ignoring %s: it was trained from other settings or another bank", resume)

    data_on_device = data.to(device)
    batches = math.ceil(n / hp.batch_size)
    for epoch in range(start_epoch, hp.epochs):
        gen = seeded_generator(PURPOSE_TRAIN, hp.seed, hp.level, epoch)
        order = torch.randperm(n, generator=gen)
        partners = torch.randint(n, (n,), generator=gen)
        t0 = time.perf_counter()
        totals = torch.zeros(3, device=device)
        model.train()
        for b in tqdm(range(batches), desc=f"L{hp.level} epoch {epoch + 1}/{hp.epochs}", mininterval=10, leave=False):
            idx = order[b * hp.batch_size : (b + 1) * hp.batch_size]
            right = data_on_device[idx.to(device)]
            left = data_on_device[partners[idx].to(device)]
            noise = torch.randn(len(idx), hp.dim, generator=gen).to(device)
            loss, reconstruction, norm = model.loss(left, right, noise, hp)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals += torch.stack([loss.detach(), reconstruction.detach(), norm.detach()]) * len(idx)
        loss_mean, reconstruction_mean, norm_mean = (totals / n).tolist()
        seconds = time.perf_counter() - t0
        if not all(math.isfinite(v) for v in (loss_mean, reconstruction_mean, norm_mean)):
            raise NonFiniteLossError(
                f"level {hp.level} (seed {hp.seed}, d={hp.dim}): loss became {loss_mean} in epoch {epoch + 1}; "
                f"nothing was written. Lower lr (now {hp.lr}) or check the bank {bank}."
            )
        rows.append(
            {
                "variant": hp.variant,
                "seed": hp.seed,
                "dim": hp.dim,
                "level": hp.level,
                "stage": "sweeper",
                "epoch": epoch + 1,
                "loss": loss_mean,
                "reconstruction": reconstruction_mean,
                "code_norm": norm_mean,
                "seconds": seconds,
                "samples_per_second": n / seconds,
            }
        )
        log.info(
            "level %d epoch %d/%d: loss %.6f (reconstruction %.6f, |z|^2 %.2f) in %.1f s",
            hp.level,
            epoch + 1,
            hp.epochs,
            loss_mean,
            reconstruction_mean,
            norm_mean,
            seconds,
        )
        with atomic_output(resume) as tmp:
            torch.save(
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch + 1,
                    "rows": rows,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                },
                tmp,
            )

    model.eval()
    health = {
        "variant": hp.variant,
        "seed": hp.seed,
        "level": hp.level,
        "recipe": hp.recipe,
        **model.health(data_on_device, hp),
        "max_unexplained_variance": limits.max_unexplained_variance,
        "max_dead_fraction": limits.max_dead_fraction,
    }
    reasons = collapse_reasons(health, limits)
    health["collapsed"] = bool(reasons)
    log.info(
        "level %d health: unexplained variance %.4f, effective rank %.1f of %d, dead %.1f%%, mean |z| %.3f",
        hp.level,
        health["unexplained_variance"],
        health["effective_rank"],
        hp.dim,
        100 * health["dead_fraction"],
        health["mean_abs_code"],
    )
    if reasons:
        message = (
            f"LEVEL {hp.level} COLLAPSED (seed {hp.seed}, d={hp.dim}, recipe {hp.recipe}): "
            + "; ".join(reasons)
            + ". Every level above it trains on a degenerate bank."
        )
        if on_collapse == "fail":
            raise LevelCollapseError(message + " Nothing was written (teacher.on_collapse: fail).")
        log.warning("!" * 80)
        log.warning(message)
        log.warning("!" * 80)
    depth_decoder = None
    if train_decoder:
        below = [load_sweeper_checkpoint(path, device) for path in lower]
        codec = model.codec if hp.level == 0 else below[0].codec
        teacher = Teacher(codec, [level.sweeper for level in below] + [model.sweeper])
        images = data if hp.level == 0 else load_bank(image_bank, 0, hp.dim)
        depth_decoder, decoder_rows = train_depth_decoder(teacher, images, hp.seed, hp.level, decoder, device)
        rows += [
            {"variant": hp.variant, "seed": hp.seed, "dim": hp.dim, "level": hp.level, **row} for row in decoder_rows
        ]
    model.cpu()
    with atomic_output(health_out) as tmp:
        pd.DataFrame([health]).to_parquet(tmp, index=False)
    with atomic_output(loss_out) as tmp:
        pd.DataFrame(rows, columns=LOSS_COLUMNS).to_parquet(tmp, index=False)
    with atomic_output(out) as tmp:
        torch.save(
            sweeper_checkpoint(
                hp.level,
                model.sweeper,
                model.codec,
                depth_decoder,
                training=asdict(hp),
                decoder_training=asdict(decoder) if train_decoder else None,
                source_bank=str(bank),
            ),
            tmp,
        )
    resume.unlink(missing_ok=True)
    log.info("wrote %s", out)
