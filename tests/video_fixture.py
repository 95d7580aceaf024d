"""A tiny video dataset in UCF-101's layout, encoded with PyAV, bad files included.

Good videos (8): moving coloured squares, 20-40 frames of 80x60, one of them an .mp4 of another
resolution (120x90), one a single frame (padded to the clip length by the loader).
Bad files (3): a zero-byte file, random bytes, and a video truncated to 70% of its bytes.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

GOOD = {  # relative path -> (frames, width, height)
    "Juggling/v_Juggling_g01_c01.avi": (24, 80, 60),
    "Juggling/v_Juggling_g01_c02.avi": (40, 80, 60),
    "Juggling/v_Juggling_g02_c01.mp4": (20, 120, 90),
    "Juggling/v_Juggling_g02_c02.avi": (30, 80, 60),
    "Rowing/v_Rowing_g01_c01.avi": (24, 80, 60),
    "Rowing/v_Rowing_g01_c02.avi": (32, 80, 60),
    "Rowing/v_Rowing_g02_c01.avi": (28, 80, 60),
    "Rowing/v_Rowing_g03_c01.avi": (1, 80, 60),
}
EMPTY = "Juggling/v_Juggling_g03_c01.avi"
CORRUPT = "Rowing/v_Rowing_g04_c01.avi"
TRUNCATED = "Juggling/v_Juggling_g04_c01.avi"


def moving_square(n: int, width: int, height: int, seed: int) -> np.ndarray:
    """(n, height, width, 3) uint8: a coloured square drifting over a coloured background."""
    rng = np.random.default_rng(seed)
    background, colour = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    side = height // 3
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    frames[:] = background
    for t in range(n):
        x, y = (3 * t + seed) % (width - side), (2 * t + seed) % (height - side)
        frames[t, y : y + side, x : x + side] = colour
    return frames


def write_video(path: Path, frames: np.ndarray, codec: str = "mpeg4", rate: int = 25) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_ucf_fixture(root: Path) -> Path:
    for i, (rel, (n, width, height)) in enumerate(GOOD.items()):
        write_video(root / rel, moving_square(n, width, height, seed=i))
    (root / EMPTY).write_bytes(b"")
    (root / CORRUPT).write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    noise = np.random.default_rng(1).integers(0, 256, (60, 60, 80, 3), dtype=np.uint8)  # noise: a large file
    write_video(root / TRUNCATED, noise)
    data = (root / TRUNCATED).read_bytes()
    (root / TRUNCATED).write_bytes(data[: int(0.7 * len(data))])
    return root
