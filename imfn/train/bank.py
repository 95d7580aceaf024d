"""Level banks: the training pairs of each tree level (method.md section 2).

A level merges two adjacent windows of one sequence, so its training pairs are exactly that: row ``i`` of the
level-``l`` bank comes from training sequence ``i`` of the source (:mod:`imfn.data.sequences`, part ``train``)
at T = 2^(l+1) frames, split into its two halves of 2^l frames.

- Bank 0 (per seed and source) holds the pairs of adjacent frames themselves: (n, 2, pixels) uint8.
- Bank l >= 1 (per seed, source, d and variant) holds the two children the frozen levels 0..l-1 give for those
  sequences (encode every frame, merge up l levels): (n, 2, d) float32. Sequences are drawn and encoded in
  chunks, since at level 6 the bank's sequences are 128 frames each.

``zero_padded`` of the n rows (the same rows at every level of a bank of n rows, chosen by the stream
``bank-zero-padded``) come from a sequence cut at a frame c uniform in [0, 2^(l+1)) (stream ``bank-cut``, per
level) and zero from frame c on: the student's targets are roots of zero-padded prefixes, so the tree must keep
zero frames well at every level. The ``cut`` array records c for every row (2^(l+1) for a whole sequence).

A latent bank's cost is the frames it encodes, n * 2^(l+1), doubling with every level. ``bank_frames`` caps it: a
bank that would draw more frames holds only bank_frames // 2^(l+1) rows, and the same share of them zero-padded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from imfn.data.sequences import Sequences, same_frame_shape
from imfn.devices import batch_size
from imfn.job import numpy_generator
from imfn.models.teacher import Teacher
from imfn.store import open_group, write_arrays

log = logging.getLogger(__name__)

BANK_FRAMES = 8192  # frames drawn and encoded per chunk when a latent bank is built


def pair_T(level: int) -> int:
    """Frames in the sequence behind one pair of a level-``level`` bank: two windows of 2^level frames."""
    return 2 ** (level + 1)


def default_rows(sequences: Sequences, zero_padded: int) -> int:
    """Rows of a bank when no size is given: as many as the seed's training digits, plus the zero-padded rows."""
    return len(sequences.digits.train) + zero_padded


def zero_padding_cuts(seed: int, level: int, rows: int, zero_padded: int) -> np.ndarray:
    """(rows,) int64: each row's first zeroed frame, 2^(level+1) (none) for a whole sequence. The ``zero_padded``
    cut rows are the same at every level of a bank of ``rows`` rows; their cuts are uniform in [0, 2^(level+1))."""
    if not 0 <= zero_padded < rows:
        raise ValueError(f"a bank of {rows} rows cannot hold {zero_padded} zero-padded rows (at most {rows - 1})")
    T = pair_T(level)
    cut = np.full(rows, T, dtype=np.int64)
    padded = numpy_generator("bank-zero-padded", seed).permutation(rows)[:zero_padded]
    cut[padded] = numpy_generator("bank-cut", seed, level).integers(0, T, size=zero_padded)
    return cut


def draw_padded(sequences: Sequences, start: int, cut: np.ndarray, T: int) -> np.ndarray:
    """Training sequences ``start .. start + len(cut) - 1`` at ``T`` frames, (count, T, pixels) uint8, each zero
    from frame ``cut[row]`` on."""
    frames = sequences.draw("train", start, len(cut), T)
    frames[np.arange(T)[None, :] >= np.asarray(cut)[:, None]] = 0
    return frames


def bank_rows(
    sequences: Sequences, level: int, zero_padded: int, bank_size: int | None, bank_frames: int | None = None
) -> tuple[int, int]:
    """(rows, zero-padded rows) of the level-``level`` bank: ``bank_size`` rows (None: the seed's training digits +
    ``zero_padded``), cut to ``bank_frames`` // 2^(level+1) when they would draw more frames than ``bank_frames``,
    with ``zero_padded``'s share of them zero-padded."""
    rows = default_rows(sequences, zero_padded) if bank_size is None else bank_size
    if bank_frames is None or rows * pair_T(level) <= bank_frames:
        return rows, zero_padded
    capped = bank_frames // pair_T(level)
    if capped < 2:
        raise ValueError(f"bank_frames={bank_frames} leaves the level-{level} bank fewer than 2 sequences of "
                         f"{pair_T(level)} frames")  # fmt: skip
    return capped, zero_padded * capped // rows


def _attrs(sequences: Sequences, level: int, rows: int, zero_padded: int) -> dict:
    return {
        "source": sequences.source,
        "seed": sequences.seed,
        "level": level,
        "part": "train",
        "start": 0,
        "count": rows,
        "T": pair_T(level),
        "zero_padded": zero_padded,
        "frame_shape": sequences.frame_shape.as_list(),
    }


def load_bank(path: Path, level: int, dim: int) -> torch.Tensor:
    """Bank rows as a CPU tensor of pairs: (n, 2, pixels) uint8 images at level 0, (n, 2, d) float32 codes above."""
    data = open_group(path)["data"][...]
    if level == 0 and (data.dtype != np.uint8 or data.ndim != 3 or data.shape[1] != 2):
        raise ValueError(f"level-0 bank {path} must hold (n, 2, pixels) uint8 image pairs, found {data.dtype} "
                         f"{data.shape}")  # fmt: skip
    if level > 0 and (data.dtype != np.float32 or data.shape[1:] != (2, dim)):
        raise ValueError(f"level-{level} bank {path} must hold (n, 2, {dim}) float32 code pairs, found {data.dtype} "
                         f"{data.shape}")  # fmt: skip
    return torch.from_numpy(data)


def build_image_bank(sequences: Sequences, zero_padded: int, bank_size: int | None, out: Path) -> None:
    """Bank 0: the adjacent frame pairs of training sequences 0..n-1, ``zero_padded`` of them cut."""
    rows, zero_padded = bank_rows(sequences, 0, zero_padded, bank_size)
    cut = zero_padding_cuts(sequences.seed, 0, rows, zero_padded)
    data = draw_padded(sequences, 0, cut, pair_T(0))
    write_arrays(out, {"data": data, "cut": cut}, {**_attrs(sequences, 0, rows, zero_padded), "kind": "images"})
    log.info("bank L0 %s seed %d: %d frame pairs (%d zero-padded)", sequences.source, sequences.seed, rows,
             zero_padded)  # fmt: skip


@torch.no_grad()
def build_latent_bank(
    sequences: Sequences,
    lower: Sequence[Path],
    dim: int,
    level: int,
    zero_padded: int,
    bank_size: int | None,
    out: Path,
    device: torch.device,
    bank_frames: int | None = None,
) -> None:
    """Bank ``level``: the two children that the frozen levels 0..level-1 (checkpoints ``lower``) give for training
    sequences 0..n-1 of 2^(level+1) frames, ``zero_padded`` of them cut."""
    if level < 1 or len(lower) != level:
        raise ValueError(f"bank {level} is built by levels 0..{level - 1}: got {len(lower)} checkpoints")
    teacher = Teacher.load(list(lower), device)
    if teacher.codec.config.dim != dim:
        raise ValueError(f"{lower[0]} is a d={teacher.codec.config.dim} teacher, not d={dim}")
    same_frame_shape("the teacher", teacher.frame_shape, sequences)
    (rows, zero_padded), T = bank_rows(sequences, level, zero_padded, bank_size, bank_frames), pair_T(level)
    cut = zero_padding_cuts(sequences.seed, level, rows, zero_padded)
    children = np.empty((rows, 2, dim), dtype=np.float32)
    step = max(1, batch_size(BANK_FRAMES, device) // T)
    for start in range(0, rows, step):
        chunk = slice(start, min(start + step, rows))
        frames = torch.from_numpy(draw_padded(sequences, start, cut[chunk], T)).to(device).float() / 255.0
        nodes = teacher.encode_leaves(frames)
        for sweeper in teacher.sweepers:
            nodes = sweeper.merge(nodes[:, 0::2], nodes[:, 1::2])
        children[chunk] = nodes.float().cpu().numpy()
    if not np.isfinite(children).all():
        raise ValueError(f"levels {[str(p) for p in lower]} gave non-finite codes; nothing was written to {out}")
    attrs = {**_attrs(sequences, level, rows, zero_padded), "kind": "latents", "dim": dim}
    write_arrays(out, {"data": children, "cut": cut}, attrs | {"source_checkpoints": [str(p) for p in lower]})
    log.info("bank L%d %s seed %d d=%d: %d pairs of %d-frame children, mean |z| %.3f", level, sequences.source,
             sequences.seed, dim, rows, T // 2, float(np.linalg.norm(children, axis=-1).mean()))  # fmt: skip
