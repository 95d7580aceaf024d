"""Train one level of the video hierarchy on the clip bank, the levels below frozen (method.md section 6).

A sample of level k is a window of 2^(k+1) consecutive frames from a training clip (``pairs_per_video``
random windows per video per epoch, over a fixed subset of ``videos`` training videos).
- Level 0: merge the two frames to memory tokens, invert, pixel MSE against both frames.
- Level k >= 1: the frozen levels below encode the window's halves to two token latents a, b;
  loss = token MSE of invert(merge(a, b)) against (a, b)  [local]
       + pixel MSE of one random branch decoded through the frozen levels below to two frames,
         against those two frames  [path-sampled]
- plus ``norm_penalty`` x the mean squared norm of a memory token.

Randomness (video subset, windows, branches) comes from generators seeded by (seed, level, epoch),
weights from ``torch.manual_seed``; on the CPU the same seed gives the same weights. A resumable
checkpoint is written after every epoch; a non-finite loss stops the job before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from imfn.atomic import atomic_output
from imfn.data.video import read_clips, split_bank_indices
from imfn.job import seeded_generator
from imfn.models.video import VideoModelConfig, checkpoint, decode_path, encode, load_levels, make_sweeper
from imfn.store import read_attrs

log = logging.getLogger(__name__)

PURPOSE_VIDEO_SUBSET = 20
PURPOSE_VIDEO_TRAIN = 21

LOSS_COLUMNS = [
    "dataset",
    "seed",
    "level",
    "epoch",
    "loss",
    "token",
    "pixel",
    "memory_norm",
    "samples",
    "seconds",
    "clips_per_second",
]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class VideoTraining:
    seed: int
    level: int
    epochs: int
    videos: int  # training videos this level uses (all of them if fewer)
    pairs_per_video: int = 1  # windows per video per epoch
    batch_size: int = 32
    lr: float = 3e-4
    norm_penalty: float = 1e-4
    pixel_weight: float = 1.0  # weight of the path-sampled pixel loss (levels >= 1)

    @property
    def span(self) -> int:
        """Frames one sample of this level covers."""
        return 2 ** (self.level + 1)


def frames_tensor(clips: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, T, 3, H, W) in [0, 1]."""
    return clips.permute(0, 1, 4, 2, 3).float().div_(255.0)


class LevelObjective(torch.nn.Module):
    """One level's trainable sweeper and its loss, with the frozen levels below it."""

    def __init__(self, sweeper: torch.nn.Module, lower: list[torch.nn.Module], hp: VideoTraining):
        super().__init__()
        self.sweeper = sweeper
        self.lower = lower  # a plain list: frozen, not part of this module's parameters or state
        self.hp = hp

    def forward(self, frames: torch.Tensor, bits: torch.Tensor):
        """Loss, token loss, pixel loss and memory norm of a batch of windows (B, 2^(k+1), 3, H, W)."""
        hp = self.hp
        if hp.level == 0:
            z = self.sweeper.merge(frames)
            pixel = F.mse_loss(self.sweeper.invert(z), frames)
            token = torch.zeros((), device=frames.device)
            loss = pixel
        else:
            half = hp.span // 2
            with torch.no_grad():
                both = encode(self.lower, torch.cat([frames[:, :half], frames[:, half:]]))
            left, right = both.chunk(2)
            z = self.sweeper.merge(left, right)
            left_hat, right_hat = self.sweeper.invert(z)
            token = 0.5 * (F.mse_loss(left_hat, left) + F.mse_loss(right_hat, right))
            # the path-sampled pixel loss: one child (bit 0 of the top level) down through the frozen levels
            top = bits[:, 0].to(frames.device)
            child = torch.where(top.bool()[:, None, None], right_hat, left_hat)
            decoded, offset = decode_path(self.lower, child, bits[:, 1:])
            offset = offset + top.long() * half
            index = offset[:, None] + torch.arange(2, device=frames.device)
            target = frames[torch.arange(len(frames), device=frames.device)[:, None], index]
            pixel = F.mse_loss(decoded, target)
            loss = token + hp.pixel_weight * pixel
        norm = z.pow(2).sum(dim=-1).mean()
        return loss + hp.norm_penalty * norm, token, pixel, norm


def _fingerprint(hp: VideoTraining, cfg: VideoModelConfig, bank: Path, lower: list[Path]) -> str:
    """What a resume checkpoint was trained from: hyperparameters, model, bank and lower levels."""
    stamps = [p.stat().st_mtime_ns if p.exists() else 0 for p in [bank / "zarr.json", *lower]]
    payload = json.dumps({**asdict(hp), "epochs": None, **asdict(cfg), "files": stamps, "bank": str(bank.resolve())})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def training_clips(bank: Path, split: Path, hp: VideoTraining) -> torch.Tensor:
    """The level's fixed subset of training clips (uint8, (V, F, H, W, 3))."""
    train = split_bank_indices(split, "train")
    if hp.videos < len(train):
        gen = seeded_generator(PURPOSE_VIDEO_SUBSET, hp.seed, hp.level)
        train = np.sort(train[torch.randperm(len(train), generator=gen)[: hp.videos].numpy()])
    elif hp.videos > len(train):
        log.info(
            "level %d asks for %d videos; the split has %d training videos: using all", hp.level, hp.videos, len(train)
        )
    clips = torch.from_numpy(read_clips(bank, train))
    if clips.shape[1] < hp.span:
        raise ValueError(
            f"level {hp.level} needs windows of {hp.span} frames but the bank's clips have {clips.shape[1]}"
        )
    return clips


def train_video_level(
    hp: VideoTraining,
    cfg: VideoModelConfig,
    bank: Path,
    split: Path,
    lower_paths: list[Path],
    out: Path,
    loss_out: Path,
    resume: Path,
    device: torch.device,
) -> None:
    """Train level ``hp.level`` with levels 0..level-1 (``lower_paths``) frozen; write its checkpoint
    ``out`` and loss curve ``loss_out``."""
    if len(lower_paths) != hp.level:
        raise ValueError(
            f"level {hp.level} needs the checkpoints of the {hp.level} levels below, got {len(lower_paths)}"
        )
    attrs = read_attrs(bank)
    if attrs["frame_size"] != cfg.frame_size:
        raise ValueError(f"clip bank {bank} holds {attrs['frame_size']}px frames; the model expects {cfg.frame_size}")
    clips = training_clips(bank, split, hp)
    lower = load_levels(lower_paths, device)
    if lower and lower[0].cfg != cfg:
        raise ValueError(f"level {hp.level}'s model config differs from the levels below ({lower_paths[0]})")
    torch.manual_seed(hp.seed * 1000 + hp.level)  # weight init: same seed, same weights
    objective = LevelObjective(make_sweeper(cfg, hp.level), lower, hp).to(device)
    optimizer = torch.optim.Adam(objective.sweeper.parameters(), lr=hp.lr, fused=True)
    fingerprint = _fingerprint(hp, cfg, bank, lower_paths)
    rows: list[dict] = []
    start_epoch = 0
    if resume.exists():
        state = torch.load(resume, map_location=device, weights_only=False)
        if state.get("fingerprint") == fingerprint:
            objective.sweeper.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            rows, start_epoch = state["rows"], state["epoch"]
            log.info("resuming video level %d from %s after epoch %d", hp.level, resume, start_epoch)
        else:
            log.warning("ignoring %s: it was trained from other settings, bank or lower levels", resume)

    n_videos, n_frames = clips.shape[:2]
    n = n_videos * hp.pairs_per_video
    batches = math.ceil(n / hp.batch_size)
    log.info(
        "video level %d: %d videos x %d windows of %d frames per epoch, %d epochs, %d parameters",
        hp.level,
        n_videos,
        hp.pairs_per_video,
        hp.span,
        hp.epochs,
        sum(p.numel() for p in objective.sweeper.parameters()),
    )
    for epoch in range(start_epoch, hp.epochs):
        gen = seeded_generator(PURPOSE_VIDEO_TRAIN, hp.seed, hp.level, epoch)
        videos = torch.arange(n_videos).repeat(hp.pairs_per_video)[torch.randperm(n, generator=gen)]
        starts = torch.randint(n_frames - hp.span + 1, (n,), generator=gen)
        bits = torch.randint(2, (n, hp.level), generator=gen)
        window = torch.arange(hp.span)
        objective.sweeper.train()
        totals = torch.zeros(4, device=device)
        t0 = time.perf_counter()
        for b in tqdm(
            range(batches), desc=f"video L{hp.level} epoch {epoch + 1}/{hp.epochs}", mininterval=10, leave=False
        ):
            idx = slice(b * hp.batch_size, (b + 1) * hp.batch_size)
            frames = frames_tensor(clips[videos[idx, None], starts[idx, None] + window]).to(device)
            loss, token, pixel, norm = objective(frames, bits[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals += torch.stack([loss.detach(), token.detach(), pixel.detach(), norm.detach()]) * len(frames)
        seconds = time.perf_counter() - t0
        loss_mean, token_mean, pixel_mean, norm_mean = (totals / n).tolist()
        if not all(math.isfinite(v) for v in (loss_mean, token_mean, pixel_mean, norm_mean)):
            raise NonFiniteLossError(
                f"video level {hp.level} (seed {hp.seed}): loss became {loss_mean} in epoch {epoch + 1}; "
                f"nothing was written. Lower video.training.lr (now {hp.lr}) or check the clip bank {bank}."
            )
        rows.append(
            {
                "dataset": attrs["dataset"],
                "seed": hp.seed,
                "level": hp.level,
                "epoch": epoch + 1,
                "loss": loss_mean,
                "token": token_mean,
                "pixel": pixel_mean,
                "memory_norm": norm_mean,
                "samples": n,
                "seconds": seconds,
                "clips_per_second": n / seconds,
            }
        )
        log.info(
            "video level %d epoch %d/%d: loss %.6f (token %.6f, pixel %.6f, |z|^2 %.2f), %.1f windows/s",
            hp.level,
            epoch + 1,
            hp.epochs,
            loss_mean,
            token_mean,
            pixel_mean,
            norm_mean,
            n / seconds,
        )
        with atomic_output(resume) as tmp:
            torch.save(
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch + 1,
                    "rows": rows,
                    "model": objective.sweeper.state_dict(),
                    "optimizer": optimizer.state_dict(),
                },
                tmp,
            )
    objective.sweeper.cpu()
    with atomic_output(loss_out) as tmp:
        pd.DataFrame(rows, columns=LOSS_COLUMNS).to_parquet(tmp, index=False)
    with atomic_output(out) as tmp:
        torch.save(
            checkpoint(objective.sweeper, cfg, training=asdict(hp), source_bank=str(bank), dataset=attrs["dataset"]),
            tmp,
        )
    resume.unlink(missing_ok=True)
    log.info("wrote %s", out)
