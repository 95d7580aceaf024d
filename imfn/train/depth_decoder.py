"""Pixel-space supervision through the frozen stack: a decoder per tree depth.

After level l is trained, training sequences of T = 2^(l+1) frames (the first ones of the level's
bank, zero-padded where its rows are, :mod:`imfn.train.bank`) are pushed through the frozen levels 0..l
up to the root and read back down; the leaf codes that come back have lost
what the tree could not keep. A decoder trained on exactly those codes (the codec's decoder
plus a zero-initialized MLP residual) learns the best images they can stand for, which a
linear read-out cannot.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from imfn.data.sequences import Sequences, same_frame_shape
from imfn.devices import batch_size
from imfn.job import seed_torch, seeded_generator
from imfn.models.teacher import DepthDecoder, DepthDecoderConfig, Teacher
from imfn.models.tree import invert_down
from imfn.train.bank import draw_padded
from imfn.train.harness import Run

log = logging.getLogger(__name__)

READ_BACK_FRAMES = 4096  # frames per no-grad chunk when reading sequences back through the tree
START_FRAMES = 4096  # frames the logged MSE before training is measured on (a diagnostic, not a result)


@dataclass(frozen=True)
class DepthDecoderTraining:
    """Config ``teacher.training.decoder`` (flags ``--decoder-*``); ``epochs: 0`` trains no decoder."""

    epochs: int = 0
    hidden: int = 512
    frames: int = 65536  # frames read back through the frozen stack to train on
    batch_size: int = 128
    lr: float = 1e-3


def _chunks(sequences: Sequences, cut: np.ndarray, T: int, frames: int, device: torch.device):
    """Training sequences 0..S-1 of ``T`` frames (S = frames // T, at most the bank's rows), zero-padded as the
    bank's ``cut`` says, as float pixels on ``device`` in chunks of about :data:`READ_BACK_FRAMES` frames."""
    count = min(max(1, frames // T), len(cut))
    if count < frames // T:
        log.info("the bank holds %d rows: %d sequences of T=%d instead of %d", len(cut), count, T, frames // T)
    step = max(1, batch_size(READ_BACK_FRAMES, device) // T)
    for start in range(0, count, step):
        chunk = draw_padded(sequences, start, cut[start : min(start + step, count)], T)
        yield torch.from_numpy(chunk).to(device).float() / 255.0


@torch.no_grad()
def read_back_frames(
    teacher: Teacher, sequences: Sequences, cut: np.ndarray, T: int, frames: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaf codes read back through the tree and their target pixels, (S * T, d) and (S * T, pixels), for the
    training sequences of :func:`_chunks`."""
    codes, targets = [], []
    for batch in _chunks(sequences, cut, T, frames, device):
        codes.append(teacher.read_back(batch).reshape(-1, teacher.codec.config.dim))
        targets.append(batch.reshape(-1, batch.shape[-1]))
    return torch.cat(codes), torch.cat(targets)


@torch.no_grad()
def children_and_frames(
    teacher: Teacher, sequences: Sequences, cut: np.ndarray, T: int, frames: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """For the training sequences of :func:`_chunks`: the two children the top level merges, (S, 2, d), computed
    by the frozen levels below it, and the sequences' pixels (S, T, pixels)."""
    children, targets = [], []
    lower = teacher.sweepers[:-1]
    for batch in _chunks(sequences, cut, T, frames, device):
        nodes = teacher.encode_leaves(batch)
        for sweeper in lower:
            nodes = sweeper.merge(nodes[:, 0::2], nodes[:, 1::2])
        children.append(nodes)
        targets.append(batch)
    return torch.cat(children), torch.cat(targets)


def train_depth_decoder(
    teacher: Teacher,
    sequences: Sequences,
    cut: np.ndarray,
    level: int,
    hp: DepthDecoderTraining,
    device: torch.device,
    resume: Path,
    inputs: Sequence[Path] = (),
    after: str = "",
    labels: Mapping[str, object] | None = None,
    with_sweeper: bool = False,
) -> tuple[DepthDecoder, Run]:
    """Train the decoder for depth ``level + 1`` on codes read back through ``teacher`` (levels 0..level), from
    training sequences of ``sequences`` zero-padded as the level's bank (its ``cut`` array).
    ``with_sweeper`` (the ``framewise`` architecture) trains the top level's sweeper with it, end to end in pixels:
    its merge and inverter between the frozen levels below and the decoder.

    ``inputs`` and ``after`` (the fingerprint of the sweeper stage it follows) guard its resume checkpoint."""
    depth, T, seed = level + 1, 2 ** (level + 1), sequences.seed
    teacher.eval().requires_grad_(False)
    same_frame_shape("the teacher", teacher.frame_shape, sequences)
    seed_torch("decoder-weights", seed, level)
    config = DepthDecoderConfig(teacher.codec.config.dim, hp.hidden, depth, teacher.frame_shape)
    decoder = DepthDecoder(config).to(device)
    top = teacher.sweepers[level]
    if with_sweeper:
        children, targets = children_and_frames(teacher, sequences, cut, T, hp.frames, device)
        top.train().requires_grad_(True)
        parameters = [*decoder.parameters(), *top.parameters()]
        state = {"model": decoder, "sweeper": top}
    else:
        codes, targets = read_back_frames(teacher, sequences, cut, T, hp.frames, device)
        parameters = list(decoder.parameters())
        state = {"model": decoder}

    def pixels(idx: torch.Tensor) -> torch.Tensor:
        """(batch, pixels) pixels of the rows (frames, or with the sweeper sequences) ``idx``."""
        if not with_sweeper:
            return decoder(teacher.codec, codes[idx])
        root = top.merge(children[idx, 0], children[idx, 1])
        leaves = invert_down(teacher.sweepers, root, T)
        return decoder(teacher.codec, leaves.flatten(0, 1))

    def target(idx: torch.Tensor) -> torch.Tensor:
        return targets[idx].flatten(0, 1) if with_sweeper else targets[idx]

    rows = len(children) if with_sweeper else len(codes)
    step = max(1, hp.batch_size // T) if with_sweeper else hp.batch_size  # frames per step either way
    optimizer = torch.optim.Adam(parameters, lr=hp.lr, fused=True)
    with torch.no_grad():  # on the first START_FRAMES frames: independent sequences, like any others
        first = torch.arange(min(rows, max(1, START_FRAMES // T) if with_sweeper else START_FRAMES), device=device)
        sample = target(first)
        start_mse = F.mse_loss(pixels(first), sample).item()
    what = "level and decoder" if with_sweeper else "decoder"
    frames = len(targets.flatten(0, -2))
    log.info(
        "depth %d %s (T=%d): %d frames, MSE before training %.5f (first %d)",
        depth,
        what,
        T,
        frames,
        start_mse,
        len(sample),
    )
    state["optimizer"] = optimizer
    run = Run(
        name=f"depth {depth} {what} (seed {seed})",
        resume=resume,
        settings={**asdict(hp), "seed": seed, "level": level, "after": after, "with_sweeper": with_sweeper},
        inputs=inputs,
        state=state,
        device=device,
        labels={**(labels or {}), "stage": "level_and_decoder" if with_sweeper else "depth_decoder"},
        hint=f"Lower teacher.training.decoder.lr (now {hp.lr}).",
    )

    def epoch(e: int) -> dict:
        order = torch.randperm(rows, generator=seeded_generator("decoder-order", seed, level, e))
        total = torch.zeros((), device=device)
        for idx in run.batches(order.split(step)):
            idx = idx.to(device)
            with run.autocast():
                loss = F.mse_loss(pixels(idx), target(idx))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        mse = (total / rows).item()
        return {"loss": mse, "reconstruction": mse, "samples": frames}

    run.train(hp.epochs, epoch)
    top.eval().requires_grad_(False)
    return decoder.eval().cpu(), run
