"""Pixel-space supervision through the frozen stack: a decoder per tree depth.

After level l is trained, sequences of T = 2^(l+1) images from bank 0 are pushed through the
frozen levels 0..l up to the root and read back down; the leaf codes that come back have lost
what the tree could not keep. A decoder trained on exactly those codes (the codec's decoder
plus a zero-initialized MLP residual) learns the best images they can stand for, which a
linear read-out cannot.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from imfn.devices import batch_size
from imfn.job import seeded_generator
from imfn.models.teacher import DepthDecoder, DepthDecoderConfig, Teacher
from imfn.train.harness import Run

log = logging.getLogger(__name__)

PURPOSE_DECODER = 6
READ_BACK_FRAMES = 4096  # frames per no-grad chunk when reading sequences back through the tree


@dataclass(frozen=True)
class DepthDecoderTraining:
    """Config ``teacher.training.decoder`` (flags ``--decoder-*``); ``epochs: 0`` trains no decoder."""

    epochs: int = 0
    hidden: int = 512
    frames: int = 65536  # frames read back through the frozen stack to train on
    batch_size: int = 128
    lr: float = 1e-3


@torch.no_grad()
def read_back_frames(
    teacher: Teacher, images: torch.Tensor, T: int, frames: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaf codes read back through the tree and their target pixels, for random T-sequences."""
    sequences = max(1, frames // T)
    picks = torch.randint(len(images), (sequences, T), generator=generator)
    codes, targets = [], []
    images = images.to(device)  # uint8, on the device once
    for chunk in picks.split(max(1, batch_size(READ_BACK_FRAMES, device) // T)):
        batch = images[chunk.to(device)].float() / 255.0
        codes.append(teacher.read_back(batch).reshape(-1, teacher.codec.config.dim))
        targets.append(batch.reshape(-1, batch.shape[-1]))
    return torch.cat(codes), torch.cat(targets)


def train_depth_decoder(
    teacher: Teacher,
    images: torch.Tensor,
    seed: int,
    level: int,
    hp: DepthDecoderTraining,
    device: torch.device,
    resume: Path,
    inputs: Sequence[Path] = (),
    after: str = "",
    labels: Mapping[str, object] | None = None,
) -> tuple[DepthDecoder, Run]:
    """Train the decoder for depth ``level + 1`` on codes read back through ``teacher`` (levels 0..level).

    ``inputs`` and ``after`` (the fingerprint of the sweeper stage it follows) guard its resume checkpoint."""
    depth, T = level + 1, 2 ** (level + 1)
    teacher.eval().requires_grad_(False)
    codes, targets = read_back_frames(
        teacher, images, T, hp.frames, seeded_generator(PURPOSE_DECODER, seed, level), device
    )
    torch.manual_seed(seed * 1000 + level + 500)
    decoder = DepthDecoder(DepthDecoderConfig(teacher.codec.config.dim, hp.hidden, depth)).to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=hp.lr, fused=True)
    with torch.no_grad():
        start_mse = F.mse_loss(decoder(teacher.codec, codes), targets).item()
    log.info("depth %d decoder (T=%d): %d frames, MSE before training %.5f", depth, T, len(codes), start_mse)
    run = Run(
        name=f"depth {depth} decoder (seed {seed})",
        resume=resume,
        settings={**asdict(hp), "seed": seed, "level": level, "after": after},
        inputs=inputs,
        state={"model": decoder, "optimizer": optimizer},
        device=device,
        labels={**(labels or {}), "stage": "depth_decoder"},
        hint=f"Lower teacher.training.decoder.lr (now {hp.lr}).",
    )

    def epoch(e: int) -> dict:
        order = torch.randperm(len(codes), generator=seeded_generator(PURPOSE_DECODER, seed, level, e + 1))
        total = torch.zeros((), device=device)
        for idx in run.batches(order.split(hp.batch_size)):
            idx = idx.to(device)
            with run.autocast():
                loss = F.mse_loss(decoder(teacher.codec, codes[idx]), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        mse = (total / len(codes)).item()
        return {"loss": mse, "reconstruction": mse, "samples": len(codes)}

    run.train(hp.epochs, epoch)
    return decoder.eval().cpu(), run
