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
weights from torch's global generator seeded by (seed, level); on the CPU the same seed gives the same
weights. Training runs in the harness (:mod:`imfn.train.harness`): resumable after every epoch, a
non-finite loss stops the job before anything is written.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from imfn.data.video import frames_tensor, read_clips, split_bank_indices
from imfn.job import seed_torch, seeded_generator
from imfn.models.layers import parameter_count
from imfn.models.video import decode_path, encode, frame_decoder, load_levels, make_level, readout, save_level
from imfn.models.video_config import VideoModelConfig
from imfn.store import read_attrs
from imfn.train.harness import Run, resume_path, write_rows

log = logging.getLogger(__name__)


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
    "samples_per_second",
]


@dataclass(frozen=True)
class VideoTraining:
    """Config ``video.training``: per-level lists (epochs, videos, pairs_per_video) give one level's entry."""

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


def halves(lower: list[torch.nn.Module], frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The memories the levels below give the two halves of windows (B, 2^(k+1), C, H, W): what level k merges."""
    half = frames.shape[1] // 2
    left, right = encode(lower, torch.cat([frames[:, :half], frames[:, half:]])).chunk(2)
    return left, right


class LevelObjective(torch.nn.Module):
    """One level's trainable network and its loss, with the frozen levels below it."""

    def __init__(self, level: torch.nn.Module, lower: list[torch.nn.Module], hp: VideoTraining):
        super().__init__()
        self.net = level
        self.lower = lower  # a plain list: frozen, not part of this module's parameters or state
        self.hp = hp

    def forward(self, frames: torch.Tensor, bits: torch.Tensor):
        """Loss, token loss, pixel loss and memory norm of a batch of windows (B, 2^(k+1), C, H, W)."""
        hp = self.hp
        if hp.level == 0:
            z = self.net.merge(frames[:, 0], frames[:, 1])
            pixel = F.mse_loss(torch.stack(self.net.invert(z), dim=1), frames)
            token = torch.zeros((), device=frames.device)
            loss = pixel
        else:
            half = hp.span // 2
            with torch.no_grad():
                left, right = halves(self.lower, frames)
            z = self.net.merge(left, right)
            left_hat, right_hat = self.net.invert(z)
            token = 0.5 * (F.mse_loss(left_hat, left) + F.mse_loss(right_hat, right))
            # the path-sampled pixel loss: one child (bit 0 of the top level) down through the frozen levels
            top = bits[:, 0].to(frames.device)
            child = torch.where(top.bool()[:, None, None], right_hat, left_hat)
            below = readout([*self.lower, self.net])[:-1]  # with this level's own frame decoder, if it has one
            decoded, offset = decode_path(below, child, bits[:, 1:])
            offset = offset + top.long() * half
            index = offset[:, None] + torch.arange(2, device=frames.device)
            target = frames[torch.arange(len(frames), device=frames.device)[:, None], index]
            pixel = F.mse_loss(decoded, target)
            loss = token + hp.pixel_weight * pixel
        norm = z.pow(2).sum(dim=-1).mean()
        return loss + hp.norm_penalty * norm, token, pixel, norm


def training_clips(bank: Path, split: Path, hp: VideoTraining) -> torch.Tensor:
    """The level's fixed subset of training clips (uint8, (V, F, H, W, C))."""
    train = split_bank_indices(split, "train")
    if hp.videos < len(train):
        gen = seeded_generator("video-subset", hp.seed, hp.level)
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


PCA_SAMPLES = 4000  # windows whose inputs set a level's linear path (their joint PCA; fewer than a frame pair's pixels)


@torch.no_grad()
def level_inputs(hp: VideoTraining, clips: torch.Tensor, lower: list[torch.nn.Module]) -> torch.Tensor:
    """What the level merges, for ``PCA_SAMPLES`` random training windows: frame pairs (n, 2, C, H, W) at level 0,
    the two halves' memories from the frozen levels below (n, 2, M, w) above it."""
    gen = seeded_generator("video-pca", hp.seed, hp.level)
    n = min(PCA_SAMPLES, len(clips) * (clips.shape[1] - hp.span + 1))
    videos = torch.randint(len(clips), (n,), generator=gen)
    starts = torch.randint(clips.shape[1] - hp.span + 1, (n,), generator=gen)
    window = torch.arange(hp.span)
    parts = []
    for idx in torch.arange(n).split(256):
        frames = frames_tensor(clips[videos[idx, None], starts[idx, None] + window])
        if hp.level:
            frames = torch.stack(halves(lower, frames), dim=1)
        parts.append(frames)
    return torch.cat(parts)


def train_video_level(
    hp: VideoTraining,
    cfg: VideoModelConfig,
    bank: Path,
    split: Path,
    lower_paths: list[Path],
    out: Path,
    loss_out: Path,
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
    cfg = replace(cfg, channels=attrs.get("channels", 3))  # the bank's frames say it: RGB footage, grayscale digits
    clips = training_clips(bank, split, hp).to(device)  # uint8, on the device for the whole run
    lower = load_levels(lower_paths, device)
    if lower and lower[0].cfg != cfg:
        raise ValueError(f"level {hp.level}'s model config differs from the levels below ({lower_paths[0]})")
    seed_torch("video-weights", hp.seed, hp.level)  # weight init: same seed, same weights
    objective = LevelObjective(make_level(cfg, hp.level), lower, hp).to(device)
    if cfg.linear_path:  # the level starts as the PCA of its inputs
        objective.net.init_from_data(level_inputs(hp, clips, lower))  # on the clips' device, as the level
    if objective.net.decoder is not None and hp.level:  # its frame decoder starts as the one the levels below use
        objective.net.decoder.load_state_dict(frame_decoder(lower).state_dict())
    optimizer = torch.optim.Adam(objective.net.parameters(), lr=hp.lr, fused=True)
    run = Run(
        name=f"video level {hp.level} (seed {hp.seed})",
        resume=resume_path(out),
        settings={**asdict(hp), "epochs": None, **asdict(cfg)},
        inputs=[bank, split, *lower_paths],
        state={"model": objective.net, "optimizer": optimizer},
        device=device,
        labels={"dataset": attrs["dataset"], "seed": hp.seed, "level": hp.level},
        hint=f"Lower video.training.lr (now {hp.lr}) or check the clip bank {bank}.",
    )
    n_videos, n_frames = clips.shape[:2]
    n = n_videos * hp.pairs_per_video
    log.info(
        "video level %d: %d videos x %d windows of %d frames per epoch, %d epochs, %d parameters",
        hp.level,
        n_videos,
        hp.pairs_per_video,
        hp.span,
        hp.epochs,
        parameter_count(objective.net),
    )
    window = torch.arange(hp.span)

    def epoch(e: int) -> dict:
        gen = seeded_generator("video-train", hp.seed, hp.level, e)
        videos = torch.arange(n_videos).repeat(hp.pairs_per_video)[torch.randperm(n, generator=gen)]
        starts = torch.randint(n_frames - hp.span + 1, (n,), generator=gen)
        bits = torch.randint(2, (n, hp.level), generator=gen)
        objective.net.train()
        totals = torch.zeros(4, device=device)
        for idx in run.batches(torch.arange(n).split(hp.batch_size)):
            frames = frames_tensor(clips[videos[idx, None], starts[idx, None] + window])
            with run.autocast():
                loss, token, pixel, norm = objective(frames, bits[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals += torch.stack([loss.detach(), token.detach(), pixel.detach(), norm.detach()]) * len(frames)
        loss_mean, token_mean, pixel_mean, norm_mean = (totals / n).tolist()
        return {"loss": loss_mean, "token": token_mean, "pixel": pixel_mean, "memory_norm": norm_mean, "samples": n}

    rows = run.train(hp.epochs, epoch)
    objective.net.cpu()
    write_rows(rows, loss_out, LOSS_COLUMNS)
    save_level(out, objective.net, cfg, training=asdict(hp), source_bank=str(bank), dataset=attrs["dataset"])
    run.close()
    log.info("wrote %s", out)
