"""Train the per-frame autoencoder of k numbers (:mod:`imfn.models.frame_autoencoder`) on frames of a source's
training sequences: the reference at equal memory each teacher result stands beside (its evaluation:
:mod:`imfn.eval.frame_autoencoder`).

Its linear part starts at the source's frame PCA (:func:`imfn.models.pca.write_frame_pca`, fit on all its training
frames, :func:`imfn.data.sequences.training_frames`, of which it trains on ``frames``), its residuals at zero.
Training runs in the harness (resumable, seeded per epoch, a non-finite loss stops the job). The frames stay uint8
until a batch needs them: 54,000 64x64 frames are 221 MB so, 885 MB as floats.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from imfn.data.sequences import Sequences, training_frames
from imfn.job import seed_torch, seeded_generator
from imfn.models.frame_autoencoder import FrameAutoencoder, FrameAutoencoderConfig, save_frame_autoencoder
from imfn.models.pca import load_frame_pca
from imfn.train.harness import Run, resume_path, write_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameAutoencoderTraining:
    """Config ``reference.autoencoder`` (method.md section 3c)."""

    seed: int
    k: int
    hidden: int = 1024
    epochs: int = 12
    batch_size: int = 128
    lr: float = 1e-3
    frames: int | None = None  # training frames (one per training sequence); None: as many as the training digits


def train_frame_autoencoder(
    hp: FrameAutoencoderTraining,
    sequences: Sequences,
    pca: Path,
    out: Path,
    loss_out: Path,
    device: torch.device,
    inputs: Sequence[Path] = (),
) -> None:
    """Train on ``hp.frames`` training frames of ``sequences``, from the frame PCA ``pca``; ``inputs``: the files
    they are read from (a resume point from other files is not resumed)."""
    if sequences.seed != hp.seed:
        raise ValueError(f"training seed {hp.seed} but the sequences are seed {sequences.seed}'s")
    frames = training_frames(sequences, hp.frames)
    seed_torch("autoencoder-weights", hp.seed, hp.k)
    model = FrameAutoencoder(FrameAutoencoderConfig(hp.k, sequences.frame_shape, hp.hidden))
    model.init_from_pca(*load_frame_pca(pca, sequences))
    model.to(device)
    images = frames.to(device)  # uint8
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr, fused=True)
    run = Run(
        name=f"per-frame autoencoder k={hp.k} ({sequences.source}, seed {hp.seed})",
        resume=resume_path(out),
        settings={"source": sequences.source, **asdict(hp)},
        inputs=[*inputs, pca],
        state={"model": model, "optimizer": optimizer},
        device=device,
        labels={"seed": hp.seed, "k": hp.k},
        hint=f"Lower reference.autoencoder.lr (now {hp.lr}).",
    )
    log.info("per-frame autoencoder k=%d on %d %dx%d training frames of %s", hp.k, len(images),
             sequences.frame_shape.height, sequences.frame_shape.width, sequences.source)  # fmt: skip

    def epoch(e: int) -> dict:
        order = torch.randperm(len(images), generator=seeded_generator("autoencoder-order", hp.seed, hp.k, e))
        total = torch.zeros((), device=device)
        model.train()
        for idx in run.batches(order.split(hp.batch_size)):
            x = images[idx.to(device)].float() / 255.0
            with run.autocast():
                loss = F.mse_loss(model(x), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        mse = (total / len(images)).item()
        return {"loss": mse, "samples": len(images)}

    loss_rows = run.train(hp.epochs, epoch)
    model.eval().cpu()
    write_rows(loss_rows, loss_out)
    save_frame_autoencoder(out, model, training=asdict(hp), source=sequences.source)
    run.close()
    log.info("wrote %s", out)
