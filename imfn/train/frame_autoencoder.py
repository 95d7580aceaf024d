"""Train the per-frame autoencoder of k numbers (:mod:`imfn.models.frame_autoencoder`) on a seed's
training split: the limit at equal memory each teacher result stands beside (its evaluation:
:mod:`imfn.eval.frame_autoencoder`).

Training runs in the harness (resumable, seeded per epoch, a non-finite loss stops the job).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from imfn.atomic import atomic_output
from imfn.data.mnist import load_split_images
from imfn.job import seed_torch, seeded_generator
from imfn.models.frame_autoencoder import FrameAutoencoder, FrameAutoencoderConfig, frame_autoencoder_checkpoint
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


def train_frame_autoencoder(
    hp: FrameAutoencoderTraining,
    mnist: Path,
    split: Path,
    out: Path,
    loss_out: Path,
    device: torch.device,
) -> None:
    data = load_split_images(mnist, split)
    train = torch.from_numpy(data.images)[torch.from_numpy(data.train)].reshape(len(data.train), -1)
    images = (train.float() / 255.0).to(device)
    seed_torch("autoencoder-weights", hp.seed, hp.k)
    model = FrameAutoencoder(FrameAutoencoderConfig(hp.k, hp.hidden))
    model.init_from_data(images.cpu())
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr, fused=True)
    run = Run(
        name=f"per-frame autoencoder k={hp.k} (seed {hp.seed})",
        resume=resume_path(out),
        settings=asdict(hp),
        inputs=[mnist, split],
        state={"model": model, "optimizer": optimizer},
        device=device,
        labels={"seed": hp.seed, "k": hp.k},
        hint=f"Lower reference.autoencoder.lr (now {hp.lr}).",
    )

    def epoch(e: int) -> dict:
        order = torch.randperm(len(images), generator=seeded_generator("autoencoder-order", hp.seed, hp.k, e))
        total = torch.zeros((), device=device)
        model.train()
        for idx in run.batches(order.split(hp.batch_size)):
            x = images[idx.to(device)]
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
    with atomic_output(out) as tmp:
        torch.save(frame_autoencoder_checkpoint(model, training=asdict(hp)), tmp)
    run.close()
    log.info("wrote %s", out)
