"""Moving MNIST: sequences of two bouncing digits generated from one seed's split, and the canonical test file.

The generator follows Srivastava et al. (2015) as re-implemented by OpenSTL and PhyDNet
(``MovingMNIST.get_random_trajectory`` / ``generate_moving_mnist``):

- a 64x64 canvas and two 28x28 MNIST digits;
- each digit's top-left corner starts uniform in the unit square, and the unit square is scaled by
  ``64 - 28 = 36`` px per axis, so a corner lies in [0, 36] and the 28x28 patch (not the ink) bounces;
- direction uniform in [0, 2 pi), row velocity ``sin``, column velocity ``cos``; speed 0.1 of the unit square
  per frame (3.6 px);
- per frame: step, then per axis ``if p <= 0: p = 0, flip`` and ``if p >= 1: p = 1, flip``, then record; so
  one step is taken before the first frame;
- the recorded unit position times 36, truncated to an integer (``astype(int)``; positions are >= 0), is the
  corner; the digits are combined by pixelwise max.

Every sequence is a pure function of (seed, split, index): its two digits (drawn with replacement from that
split's MNIST indices) and their starts and directions come from the random stream keyed by
``("moving-mnist-sequence", seed, split, index)`` and by nothing else, so sequence ``index`` is the same in any
batch and its first frames are the same whatever the number of frames asked for.

The canonical test file ``mnist_test_seq.npy`` (Srivastava's 10,000 sequences) is (20, 10000, 64, 64) uint8,
frames first; :func:`read_canonical` returns it sequences first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imfn.data.frame import MNIST_FRAME, FrameShape
from imfn.data.mnist import SplitImages
from imfn.data.source import CanonicalTest, SequenceSource
from imfn.job import numpy_generator

# The source's constants, in one place.
FRAME = FrameShape(height=64, width=64)
DIGIT_SIDE = MNIST_FRAME.height  # an MNIST digit is DIGIT_SIDE x DIGIT_SIDE pixels
DIGITS = 2  # digits per sequence
STEP = 0.1  # speed: fraction of the unit square per frame (0.1 * 36 = 3.6 px)
CANONICAL_FRAMES = 20  # frames per sequence in mnist_test_seq.npy
CANONICAL_LAYOUT = f"({CANONICAL_FRAMES}, N, {FRAME.height}, {FRAME.width}) uint8, frames first, as mnist_test_seq.npy"
# the corner's range per axis (rows, columns): the unit square scales to [0, TRAVEL]
TRAVEL = np.array([FRAME.height - DIGIT_SIDE, FRAME.width - DIGIT_SIDE])

SPLITS = ("train", "test")
SEQUENCE_STREAM = "moving-mnist-sequence"


@dataclass(frozen=True)
class Trajectories:
    """Digit paths in the unit square, one row per recorded frame; the last axis is (row, column).

    ``position[..., t, :]`` is where the corner is in frame ``t`` (after that frame's step and bounce) and
    ``velocity[..., t, :]`` the velocity that the step into frame ``t + 1`` takes, per frame in units of the
    unit square (its length is :data:`STEP`)."""

    position: np.ndarray
    velocity: np.ndarray

    def corners(self) -> np.ndarray:
        """The corners in pixels (int64, each in [0, TRAVEL]): position x TRAVEL, truncated as the source does."""
        return (self.position * TRAVEL).astype(np.int64)


def bounce(start: np.ndarray, direction: np.ndarray, frames: int) -> Trajectories:
    """The paths of digits that start at ``start`` (unit square, (..., 2), row and column) heading at angle
    ``direction`` (radians, (...)), over ``frames`` frames: step, clamp to [0, 1] and flip the velocity
    component of the axis that reached a wall, record. Vectorised over the leading axes."""
    start = np.asarray(start, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64)
    if start.shape[-1:] != (2,) or start.shape[:-1] != direction.shape:
        raise ValueError(f"start must be (..., 2) and direction (...), got {start.shape} and {direction.shape}")
    if frames < 1:
        raise ValueError(f"a trajectory needs at least one frame, got {frames}")
    position = start.copy()
    velocity = np.stack([np.sin(direction), np.cos(direction)], axis=-1) * STEP
    positions = np.empty((frames, *start.shape))
    velocities = np.empty((frames, *start.shape))
    for t in range(frames):
        position += velocity
        low = position <= 0.0
        position[low] = 0.0
        velocity[low] = -velocity[low]
        high = position >= 1.0
        position[high] = 1.0
        velocity[high] = -velocity[high]
        positions[t] = position
        velocities[t] = velocity
    return Trajectories(np.moveaxis(positions, 0, -2), np.moveaxis(velocities, 0, -2))


@dataclass(frozen=True)
class MovingDigits:
    """What a batch of sequences shows: for each sequence its digits (MNIST row indices, (N, DIGITS)) and their
    paths (:class:`Trajectories` of shape (N, DIGITS, T, 2))."""

    digits: np.ndarray
    paths: Trajectories


def draw_moving_digits(bank: SplitImages, seed: int, split: str, start: int, count: int, frames: int) -> MovingDigits:
    """The digits and paths of sequences ``start .. start + count - 1`` of ``split`` for ``seed``, each from its
    own stream keyed by (seed, split, index); the digits come from that split's indices in ``bank``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if start < 0 or count < 0:
        raise ValueError(f"sequence indices must be >= 0: start {start}, count {count}")
    indices = getattr(bank, split)
    if len(indices) == 0:
        raise ValueError(f"the {split} split holds no MNIST images to draw digits from")
    starts = np.empty((count, DIGITS, 2))
    directions = np.empty((count, DIGITS))
    picks = np.empty((count, DIGITS), dtype=np.int64)
    for row, index in enumerate(range(start, start + count)):
        rng = numpy_generator(SEQUENCE_STREAM, seed, split, index)
        draws = rng.random((DIGITS, 3))  # per digit: row, column, direction / (2 pi)
        starts[row] = draws[:, :2]
        directions[row] = draws[:, 2] * 2 * np.pi
        picks[row] = rng.integers(len(indices), size=DIGITS)
    return MovingDigits(indices[picks].astype(np.int64), bounce(starts, directions, frames))


def render(images: np.ndarray, moving: MovingDigits) -> np.ndarray:
    """The frames (N, T, height, width) uint8: each digit of ``images`` (uint8, (n, 784)) pasted at its corner,
    the digits combined by pixelwise max."""
    if images.ndim != 2 or images.shape[1] != DIGIT_SIDE**2 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (n, {DIGIT_SIDE**2}), got {images.dtype} {images.shape}")
    corners = moving.paths.corners()  # (N, DIGITS, T, 2)
    n, _, frames, _ = corners.shape
    out = np.zeros((n, frames, FRAME.height, FRAME.width), dtype=np.uint8)
    flat = out.reshape(-1)
    side = np.arange(DIGIT_SIDE)
    patch = (side[:, None] * FRAME.width + side[None, :]).reshape(-1)  # a digit's pixels from its corner
    frame_start = np.arange(n * frames).reshape(n, frames) * (FRAME.height * FRAME.width)
    for d in range(DIGITS):
        corner = frame_start + corners[:, d, :, 0] * FRAME.width + corners[:, d, :, 1]  # (N, T)
        pixels = corner[:, :, None] + patch  # (N, T, 784) flat indices, distinct within a frame
        digit = images[moving.digits[:, d]][:, None, :]  # (N, 1, 784)
        flat[pixels] = np.maximum(flat[pixels], digit)
    return out


def moving_mnist_sequences(bank: SplitImages, seed: int, split: str, start: int, count: int, frames: int) -> np.ndarray:
    """Sequences ``start .. start + count - 1`` of ``split`` for ``seed``: (count, frames, 64, 64) uint8."""
    return render(bank.images, draw_moving_digits(bank, seed, split, start, count, frames))


def _layout_error(path: Path, found: str) -> ValueError:
    return ValueError(f"{path}: {found}; expected a .npy of {CANONICAL_LAYOUT}")


def open_canonical(path: str | os.PathLike) -> np.ndarray:
    """A canonical Moving MNIST file such as ``mnist_test_seq.npy``, memory-mapped as stored, (20, N, 64, 64)
    uint8, after checking its header (cheap enough to check a config before any job runs); a ``ValueError``
    naming the file, what it holds and the layout expected if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise _layout_error(path, "no such file")
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _layout_error(path, f"not a readable .npy array ({exc})") from exc
    if not isinstance(data, np.ndarray):
        data.close()
        raise _layout_error(path, "an .npz archive, not a single array")
    expected = (CANONICAL_FRAMES, FRAME.height, FRAME.width)
    shape = data.shape
    if len(shape) != 4 or (shape[0], shape[2], shape[3]) != expected or data.dtype != np.uint8 or shape[1] < 1:
        raise _layout_error(path, f"found shape {shape} {data.dtype}")
    return data


def read_canonical(path: str | os.PathLike, frames: int = CANONICAL_FRAMES) -> np.ndarray:
    """The first ``frames`` (1..20) frames of every sequence of a canonical Moving MNIST file such as
    ``mnist_test_seq.npy``, sequences first: (N, frames, 64, 64) uint8."""
    if not 1 <= frames <= CANONICAL_FRAMES:
        raise ValueError(f"{path}: can give 1 to {CANONICAL_FRAMES} frames per sequence, {frames} asked for")
    return np.ascontiguousarray(open_canonical(path)[:frames].transpose(1, 0, 2, 3))


SOURCE = SequenceSource(
    name="moving_mnist",
    frame_shape=FRAME,
    draw=moving_mnist_sequences,
    description="two digits of one part of a seed's split bouncing in a 64x64 frame (Srivastava et al. 2015)",
    frames_share_content=True,
    canonical_test=CanonicalTest(frames=CANONICAL_FRAMES, open=open_canonical),
)
