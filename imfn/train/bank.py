"""Level banks: the training data of each tree level (method.md section 2).

Bank 0 (per seed) holds the seed's training images plus all-zero images, shuffled; the
zeros make the tree stable under zero padding, which the student relies on. Bank l+1
(per seed and d) is the merge ``M_l`` applied, without noise or inversion, to random
pairs drawn from bank l.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from imfn.data.mnist import split_indices
from imfn.devices import batch_size
from imfn.job import numpy_generator, seeded_generator
from imfn.models.teacher import load_sweeper_checkpoint
from imfn.store import open_group, read_array, write_arrays

log = logging.getLogger(__name__)


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


def build_image_bank(mnist: Path, split: Path, seed: int, zero_images: int, bank_size: int | None, out: Path) -> None:
    """Bank 0: the seed's training images (optionally a random subset) and ``zero_images`` zeros, shuffled."""
    train = split_indices(split, "train")
    rng = numpy_generator("bank-images", seed)
    if bank_size is not None:
        if not zero_images < bank_size <= len(train) + zero_images:
            raise ValueError(
                f"bank_size {bank_size} must exceed zero_images {zero_images} and be at most {len(train) + zero_images}"
            )
        train = rng.choice(train, size=bank_size - zero_images, replace=False)
    source = np.concatenate([train, np.full(zero_images, -1)]).astype(np.int64)
    source = source[rng.permutation(len(source))]
    images = read_array(mnist, "images")
    data = np.where(source[:, None] >= 0, images[np.maximum(source, 0)], 0).astype(np.uint8)
    write_arrays(
        out,
        {"data": data, "source_index": source},
        {"seed": seed, "level": 0, "kind": "images", "zero_images": zero_images, "mnist": str(mnist)},
    )
    log.info("bank L0 seed %d: %d images (%d zeros)", seed, len(data), zero_images)


@torch.no_grad()
def build_latent_bank(
    previous_bank: Path,
    sweeper_path: Path,
    seed: int,
    dim: int,
    level: int,
    bank_size: int | None,
    out: Path,
    device: torch.device,
    batch: int = 4096,
) -> None:
    """Bank ``level``: sweeper ``level-1`` merges random pairs of bank ``level-1``."""
    checkpoint = load_sweeper_checkpoint(sweeper_path, device)
    sweeper, codec = checkpoint.sweeper, checkpoint.codec
    previous = load_bank(previous_bank, level - 1, dim)
    n_out = bank_size or len(previous)
    gen = seeded_generator("bank-pairs", seed, level)
    left = torch.randint(len(previous), (n_out,), generator=gen)
    right = torch.randint(len(previous), (n_out,), generator=gen)

    def codes(rows: torch.Tensor) -> torch.Tensor:
        rows = rows.to(device)
        return codec.encode(rows.float() / 255.0) if codec is not None else rows

    merged = torch.empty(n_out, dim)
    batch = batch_size(batch, device)
    for start in range(0, n_out, batch):
        sl = slice(start, start + batch)
        merged[sl] = sweeper.merge(codes(previous[left[sl]]), codes(previous[right[sl]])).cpu()
    write_arrays(
        out,
        {"data": merged.numpy()},
        {
            "seed": seed,
            "dim": dim,
            "level": level,
            "kind": "latents",
            "source_checkpoint": str(sweeper_path),
            "source_bank": str(previous_bank),
        },
    )
    log.info(
        "bank L%d seed %d d=%d: %d codes, mean |z| %.3f", level, seed, dim, n_out, merged.norm(dim=1).mean().item()
    )
