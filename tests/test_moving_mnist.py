"""Moving MNIST: the generator's recipe on real MNIST digits, its keying by (seed, split, index), and the reader of
the canonical file on small files of the same layout."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from imfn.data.mnist import SplitImages, load_split_images, write_split
from imfn.data.moving_mnist import (
    CANONICAL_LAYOUT,
    DIGIT_SIDE,
    DIGITS,
    FRAME,
    STEP,
    TRAVEL,
    MovingDigits,
    bounce,
    draw_moving_digits,
    moving_mnist_sequences,
    read_canonical,
    render,
)


@pytest.fixture(scope="module")
def bank(mnist_store, tmp_path_factory) -> SplitImages:
    """The real MNIST training images and seed 0's split of them (10% test)."""
    split = tmp_path_factory.mktemp("moving") / "split.parquet"
    write_split(mnist_store, 0, 0.1, split)
    return load_split_images(mnist_store, split)


def test_a_sequence_is_a_function_of_seed_split_and_index_only(bank):
    batch = moving_mnist_sequences(bank, 0, "train", 5, 3, 8)
    assert batch.shape == (3, 8, FRAME.height, FRAME.width) and batch.dtype == np.uint8
    assert np.array_equal(moving_mnist_sequences(bank, 0, "train", 5, 3, 8), batch)
    assert np.array_equal(moving_mnist_sequences(bank, 0, "train", 6, 1, 8)[0], batch[1])  # any batch
    assert not np.array_equal(batch[0], batch[1])
    assert not np.array_equal(moving_mnist_sequences(bank, 1, "train", 5, 1, 8)[0], batch[0])
    assert not np.array_equal(moving_mnist_sequences(bank, 0, "test", 5, 1, 8)[0], batch[0])


def test_the_stream_is_pinned(bank):
    # A change to the draws (their order, the stream's name or keys) would silently move every Moving MNIST number.
    moving = draw_moving_digits(bank, 0, "train", 0, 2, 3)
    assert moving.digits.tolist() == [[8830, 6284], [12569, 19723]]
    assert moving.paths.corners().tolist() == [
        [[[22, 31], [20, 28], [18, 25]], [[4, 31], [1, 33], [0, 34]]],
        [[[22, 23], [19, 23], [15, 22]], [[23, 31], [23, 27], [23, 24]]],
    ]


def test_the_first_frames_do_not_depend_on_the_length(bank):
    long, short = (draw_moving_digits(bank, 3, "test", 10, 4, frames) for frames in (32, 16))
    assert np.array_equal(long.digits, short.digits)
    assert np.array_equal(long.paths.position[..., :16, :], short.paths.position)
    frames_32 = moving_mnist_sequences(bank, 3, "test", 10, 4, 32)
    assert np.array_equal(frames_32[:, :16], moving_mnist_sequences(bank, 3, "test", 10, 4, 16))


def test_one_step_is_taken_before_the_first_frame_and_walls_clamp_and_flip():
    # rows then columns; direction 0 is +column, pi/2 is +row
    start = np.array([[0.5, 0.5], [0.05, 0.5], [0.3, 0.96], [0.1, 0.2]])
    direction = np.array([0.0, -np.pi / 2, 0.0, -np.pi / 2])
    paths = bounce(start, direction, 3)
    corners = paths.corners()
    assert corners[0].tolist() == [[18, 21], [18, 25], [18, 28]]  # 0.6, 0.7, 0.8 of 36, truncated
    assert corners[1].tolist() == [[0, 18], [3, 18], [7, 18]]  # 0.05 - 0.1 < 0: clamped to 0, moves back
    assert corners[2].tolist() == [[10, 36], [10, 32], [10, 28]]  # 1.06 > 1: clamped to 1 (36 px), back
    assert corners[3].tolist() == [[0, 7], [3, 7], [7, 7]]  # landing exactly on the wall also flips
    assert paths.velocity[1, 0, 0] == pytest.approx(STEP) and paths.velocity[2, 0, 1] == pytest.approx(-STEP)


def test_the_paths_follow_the_recipe_on_many_sequences(bank):
    paths = draw_moving_digits(bank, 0, "train", 0, 200, 40).paths
    position, velocity, corners = paths.position, paths.velocity, paths.corners()
    assert corners.dtype == np.int64 and corners.min() == 0 and (corners <= TRAVEL).all()
    assert (corners.max(axis=(0, 1, 2)) == TRAVEL).all()
    assert np.allclose(np.hypot(velocity[..., 0], velocity[..., 1]), STEP)  # 0.1 of the unit square, 3.6 px
    stepped = position[..., :-1, :] + velocity[..., :-1, :]
    wall = (stepped <= 0) | (stepped >= 1)
    flipped = velocity[..., 1:, :] == -velocity[..., :-1, :]
    kept = velocity[..., 1:, :] == velocity[..., :-1, :]
    assert wall.any() and (~wall).any()
    assert np.array_equal(flipped, wall) and (flipped | kept).all()
    assert np.array_equal(position[..., 1:, :], np.clip(stepped, 0, 1))
    # away from the walls a corner moves 3.6 px a frame, up to the truncation to whole pixels
    free = ~wall.any(axis=-1)
    moved = np.diff(corners, axis=-2)[free] - velocity[..., :-1, :][free] * TRAVEL
    assert np.abs(moved).max() < 1
    assert np.allclose(np.hypot(*(velocity[..., :-1, :][free] * TRAVEL).T), 3.6)


def paste(images: np.ndarray, moving: MovingDigits) -> np.ndarray:
    """The frames, one digit at a time with slices: the reference the vectorised renderer must equal."""
    corners = moving.paths.corners()
    n, _, frames, _ = corners.shape
    out = np.zeros((n, frames, FRAME.height, FRAME.width), dtype=np.uint8)
    for s in range(n):
        for d in range(DIGITS):
            digit = images[moving.digits[s, d]].reshape(DIGIT_SIDE, DIGIT_SIDE)
            for t in range(frames):
                top, left = corners[s, d, t]
                window = out[s, t, top : top + DIGIT_SIDE, left : left + DIGIT_SIDE]
                np.maximum(window, digit, out=window)
    return out


def test_a_frame_is_the_pixelwise_max_of_the_two_digits_at_their_corners(bank):
    moving = draw_moving_digits(bank, 0, "train", 0, 12, 20)
    frames = render(bank.images, moving)
    assert np.array_equal(frames, paste(bank.images, moving))
    assert (frames.reshape(12, 20, -1).max(axis=-1) > 0).all()
    # both digits on one corner: max, not the sum or the last digit drawn
    paths = bounce(np.array([[[0.5, 0.5], [0.5, 0.5]]]), np.zeros((1, 2)), 1)
    together = MovingDigits(np.array([[1, 3]]), paths)
    frame = render(bank.images, together)[0, 0]
    top, left = paths.corners()[0, 0, 0]
    window = frame[top : top + DIGIT_SIDE, left : left + DIGIT_SIDE]
    first, second = (bank.images[i].reshape(DIGIT_SIDE, DIGIT_SIDE) for i in (1, 3))
    assert np.array_equal(window, np.maximum(first, second))
    assert not np.array_equal(window, first) and not np.array_equal(window, second)
    assert frame.sum() == window.sum()


def test_each_split_draws_its_digits_from_its_own_part(bank):
    train = draw_moving_digits(bank, 0, "train", 0, 300, 1).digits
    test = draw_moving_digits(bank, 0, "test", 0, 300, 1).digits
    assert set(train.ravel()) <= set(bank.train.tolist())
    assert set(test.ravel()) <= set(bank.test.tolist())
    assert len(set(train.ravel())) > 500 and len(set(test.ravel())) > 500


def test_bad_arguments_are_errors(bank):
    with pytest.raises(ValueError, match="split must be one of"):
        draw_moving_digits(bank, 0, "valid", 0, 1, 4)
    with pytest.raises(ValueError, match="at least one frame"):
        draw_moving_digits(bank, 0, "train", 0, 1, 0)
    with pytest.raises(ValueError, match=">= 0"):
        draw_moving_digits(bank, 0, "train", -1, 1, 4)
    with pytest.raises(ValueError, match="images must be uint8"):
        render(bank.images.reshape(-1, DIGIT_SIDE, DIGIT_SIDE), draw_moving_digits(bank, 0, "train", 0, 1, 4))


def test_the_reader_gives_the_canonical_file_sequences_first(tmp_path):
    stored = np.random.default_rng(0).integers(0, 256, (20, 3, FRAME.height, FRAME.width), dtype=np.uint8)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, stored)
    sequences = read_canonical(path)
    assert sequences.shape == (3, 20, 64, 64) and sequences.dtype == np.uint8
    assert np.array_equal(sequences[2, 7], stored[7, 2])
    assert np.array_equal(read_canonical(path, 16), sequences[:, :16])
    with pytest.raises(ValueError, match="1 to 20 frames"):
        read_canonical(path, 21)


def layout_error(path: Path, found: str) -> str:
    return re.escape(str(path)) + ".*" + found + ".*" + re.escape(CANONICAL_LAYOUT)


@pytest.mark.parametrize(
    ("shape", "dtype", "found"),
    [
        ((20, 3, 32, 32), np.uint8, r"shape \(20, 3, 32, 32\) uint8"),
        ((3, 20, 64, 64), np.uint8, r"shape \(3, 20, 64, 64\) uint8"),
        ((20, 3, 64), np.uint8, r"shape \(20, 3, 64\) uint8"),
        ((20, 0, 64, 64), np.uint8, r"shape \(20, 0, 64, 64\) uint8"),
        ((20, 3, 64, 64), np.float32, r"shape \(20, 3, 64, 64\) float32"),
    ],
)
def test_a_file_of_another_layout_is_an_error_naming_it(tmp_path, shape, dtype, found):
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, np.zeros(shape, dtype=dtype))
    with pytest.raises(ValueError, match=layout_error(path, found)):
        read_canonical(path)


def test_a_missing_or_unreadable_file_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "mnist_test_seq.npy"
    with pytest.raises(ValueError, match=layout_error(missing, "no such file")):
        read_canonical(missing)
    text = tmp_path / "notes.npy"
    text.write_text("not an array\n")
    with pytest.raises(ValueError, match=layout_error(text, "not a readable .npy array")):
        read_canonical(text)
    archive = tmp_path / "sequences.npz"
    np.savez(archive, np.zeros((20, 3, 64, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match=layout_error(archive, "an .npz archive")):
        read_canonical(archive)
