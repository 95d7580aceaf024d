"""Train one tree level, locally, on its own bank (method.md section 2).

A bank row is a training pair: two adjacent windows of one sequence (:mod:`imfn.train.bank`), the left
window first. Level 0 trains the leaf codec with its sweeper on pixel MSE; level l >= 1 trains only its
sweeper on latent MSE. Both add Gaussian noise to the merged code during training and a norm penalty on it.
With a depth decoder (pixel-space supervision, :mod:`imfn.train.depth_decoder`) the job then trains the
decoder for its depth through the frozen stack, on training sequences of the level's source.

Both stages run in the training harness (:mod:`imfn.train.harness`): resumable after every
epoch, every epoch's randomness from a generator seeded by (seed, level, epoch), a
non-finite loss stops the job before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from imfn.atomic import atomic_output
from imfn.data.frame import FrameShape
from imfn.data.sequences import Sequences, same_sequences
from imfn.job import seed_torch, seeded_generator
from imfn.models.architectures import architecture
from imfn.models.teacher import CodecConfig, SweeperConfig, Teacher, build_codec, build_sweeper, load_level, save_level
from imfn.store import read_array, read_attrs
from imfn.train.bank import load_bank
from imfn.train.depth_decoder import DepthDecoderTraining, train_depth_decoder
from imfn.train.harness import Run, resume_path, write_rows
from imfn.train.health import HealthLimits, LevelCollapseError, code_health, collapse_reasons

log = logging.getLogger(__name__)

INIT_SAMPLES = 16384  # bank rows (pairs: twice as many frames or codes) that a pca / framewise / mix level starts from
HEALTH_SAMPLES = 4096  # bank rows a level's health is measured on


@dataclass(frozen=True)
class SweeperTraining:
    """One level's settings (config ``teacher.training``, overridden per variant)."""

    seed: int
    dim: int
    level: int
    variant: str = "paper"  # the named override set (config teacher.variants) these settings run under, in outputs
    architecture: str = "mlp"  # mlp: the paper's MLP sweepers from random init | pca: closed-form PCA merges and
    # inverses | framewise: per-frame PCA-started residual merges, trained in pixels with the depth decoder
    # | mix: merges of both children (joint PCA start + residual MLP), trained on the bank, then the depth decoder
    codec_hidden: int = 1024
    sweeper_hidden: int | None = None  # None: d
    batch_size: int = 64
    epochs: int = 50
    lr: float = 1e-3
    noise_sigma: float = 0.01
    norm_penalty: float = 1e-4


class LevelModel(torch.nn.Module):
    """What one level trains: its sweeper, plus the leaf codec at level 0."""

    def __init__(self, hp: SweeperTraining, frame_shape: FrameShape | None = None):
        """``frame_shape``: the bank's frames, which level 0's codec is built for (the levels above hold none)."""
        super().__init__()
        self.level = hp.level
        self.architecture = architecture(hp.architecture)
        self.sweeper = build_sweeper(SweeperConfig.for_dim(hp.dim, hp.sweeper_hidden, hp.architecture, hp.level))
        if hp.level == 0 and frame_shape is None:
            raise ValueError("level 0 holds the leaf codec: it needs the frame shape of its bank")
        codec = CodecConfig(hp.dim, frame_shape, hp.codec_hidden, hp.architecture) if hp.level == 0 else None
        self.codec = build_codec(codec) if codec is not None else None

    def inputs(self, rows: torch.Tensor) -> torch.Tensor:
        """Bank rows as the sweeper's inputs: pixels in [0, 1] at level 0, codes above."""
        return rows.float() / 255.0 if self.codec is not None else rows

    def codes(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(inputs) if self.codec is not None else inputs

    def reconstruct(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(codes) if self.codec is not None else codes

    @torch.no_grad()
    def init_from_bank(self, data: torch.Tensor, hp: SweeperTraining) -> None:
        """Data-dependent initialization from a sample of the bank's pairs, for an architecture that
        ``starts_from_data`` (the others start from random weights)."""
        if not self.architecture.starts_from_data:
            return
        gen = seeded_generator("sweeper-init-sample", hp.seed, hp.level)
        inputs = self.inputs(data[torch.randperm(len(data), generator=gen)[:INIT_SAMPLES]].flatten(0, 1))
        if self.codec is not None:
            self.codec.init_from_data(inputs)
        self.sweeper.init_from_data(self.codes(inputs).unflatten(0, (-1, 2)))

    @torch.no_grad()
    def health(self, data: torch.Tensor, hp: SweeperTraining) -> dict:
        """Health of the codes this level merges, on a fixed sample of pairs from its bank."""
        gen = seeded_generator("sweeper-health", hp.seed, hp.level)
        pairs = data[torch.randint(len(data), (HEALTH_SAMPLES,), generator=gen).to(data.device)]
        left, right = self.inputs(pairs[:, 0]), self.inputs(pairs[:, 1])
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


LOSS_COLUMNS = [
    "source",
    "variant",
    "seed",
    "dim",
    "level",
    "stage",
    "epoch",
    "loss",
    "reconstruction",
    "code_norm",
    "samples",
    "seconds",
    "samples_per_second",
]


def train_sweeper(
    hp: SweeperTraining,
    bank: Path,
    out: Path,
    loss_out: Path,
    health_out: Path,
    device: torch.device,
    limits: HealthLimits | None = None,
    decoder: DepthDecoderTraining | None = None,
    lower: Sequence[Path] = (),
    sequences: Sequences | None = None,
) -> None:
    """Train level ``hp.level`` on the pairs of ``bank``; write the checkpoint ``out``, its loss curve ``loss_out``
    and its health ``health_out``. A collapsed level warns loudly or, with ``limits.on_collapse="fail"``,
    stops before writing anything.

    With ``decoder`` (and the ``lower`` levels' checkpoints and the ``sequences`` the bank was drawn from),
    the level also trains the decoder for its depth through the frozen stack below it."""
    limits = limits or HealthLimits()
    train_decoder = decoder is not None and decoder.epochs > 0
    if train_decoder and (len(lower) != hp.level or sequences is None):
        raise ValueError(
            f"the depth decoder of level {hp.level} needs the {hp.level} lower levels' checkpoints "
            f"(got {len(lower)}) and the sequences its bank was drawn from"
        )
    data = load_bank(bank, hp.level, hp.dim)
    attrs = read_attrs(bank)
    if sequences is not None:
        same_sequences(str(bank), attrs, sequences)
    n = len(data)
    seed_torch("sweeper-weights", hp.seed, hp.level)  # weight init: same seed, same weights
    model = LevelModel(hp, FrameShape.of(attrs["frame_shape"]) if hp.level == 0 else None)
    labels = {"source": attrs.get("source"), "variant": hp.variant, "seed": hp.seed, "dim": hp.dim, "level": hp.level}
    model.init_from_bank(data, hp)
    model.to(device)
    # Fused Adam is the same update in one kernel per step: at d=1024 it cuts a CPU step by ~20%.
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr, fused=True)
    run = Run(
        name=f"level {hp.level} (seed {hp.seed}, d={hp.dim})",
        resume=resume_path(out),
        settings={**asdict(hp), "epochs": None},
        inputs=[bank],
        state={"model": model, "optimizer": optimizer},
        device=device,
        labels={**labels, "stage": "sweeper"},
        hint=f"Lower lr (now {hp.lr}) or check the bank {bank}.",
    )
    data_on_device = data.to(device)

    def epoch(e: int) -> dict:
        gen = seeded_generator("sweeper-train", hp.seed, hp.level, e)
        order = torch.randperm(n, generator=gen)
        totals = torch.zeros(3, device=device)
        model.train()
        for idx in run.batches(order.split(hp.batch_size)):
            pairs = data_on_device[idx.to(device)]
            left, right = pairs[:, 0], pairs[:, 1]
            noise = torch.randn(len(idx), hp.dim, generator=gen).to(device)
            with run.autocast():
                loss, reconstruction, norm = model.loss(left, right, noise, hp)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals += torch.stack([loss.detach(), reconstruction.detach(), norm.detach()]) * len(idx)
        loss_mean, reconstruction_mean, norm_mean = (totals / n).tolist()
        return {"loss": loss_mean, "reconstruction": reconstruction_mean, "code_norm": norm_mean, "samples": n}

    rows = run.train(hp.epochs, epoch)
    model.eval()
    depth_decoder, decoder_run = None, None
    if train_decoder:
        below = [load_level(path, device) for path in lower]
        codec = model.codec if hp.level == 0 else below[0].codec
        teacher = Teacher(codec, [level.sweeper for level in below] + [model.sweeper])
        depth_decoder, decoder_run = train_depth_decoder(
            teacher,
            sequences,
            read_array(bank, "cut"),
            hp.level,
            decoder,
            device,
            resume=resume_path(out, "decoder-resume"),
            inputs=[bank, *lower],
            after=run.fingerprint,
            labels=labels,
            with_sweeper=model.architecture.trains_in_pixels,
        )
        rows = rows + decoder_run.rows
    # health last: an architecture that trains in pixels trains the sweeper in the decoder stage too
    health = {
        "source": attrs.get("source"),
        "variant": hp.variant,
        "seed": hp.seed,
        "level": hp.level,
        "architecture": hp.architecture,
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
            f"LEVEL {hp.level} COLLAPSED (seed {hp.seed}, d={hp.dim}, architecture {hp.architecture}): "
            + "; ".join(reasons)
            + ". Every level above it trains on a degenerate bank."
        )
        if limits.on_collapse == "fail":
            raise LevelCollapseError(message + " Nothing was written (teacher.health.on_collapse: fail).")
        log.warning("!" * 80)
        log.warning(message)
        log.warning("!" * 80)
    model.cpu()
    with atomic_output(health_out) as tmp:
        pd.DataFrame([health]).to_parquet(tmp, index=False)
    write_rows(rows, loss_out, LOSS_COLUMNS)
    save_level(
        out, hp.level, model.sweeper, model.codec, depth_decoder, training=asdict(hp),
        decoder_training=asdict(decoder) if train_decoder else None, source_bank=str(bank),
    )  # fmt: skip
    run.close()
    if decoder_run is not None:
        decoder_run.close()
    log.info("wrote %s", out)
