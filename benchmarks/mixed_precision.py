"""Training samples/s with the config's `mixed_precision` switch off (float32) and on (bf16 autocast + TF32),
in one run, on this machine's device: a sweeper level, the Transformer and Mamba compressors, a video level.

On the CPU the switch does nothing (imfn/devices.py), so the two columns measure the same code and their
ratio shows the timing noise. On CUDA it shows the speed-up. Sizes: `paper` (d = 1024, the paper's model
sizes; the default on CUDA) or `quick` (config/quick.yaml's sizes; the default on the CPU). Random data, on
the device. Prints a table and writes benchmarks/mixed_precision.parquet (or `--out`).

    python benchmarks/mixed_precision.py [--size paper|quick] [--steps 20] [--rounds 3] [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
import yaml

from imfn.data.frame import MNIST_FRAME
from imfn.devices import autocast, configure_precision, describe_runtime, mamba_kernels_problem
from imfn.models.compressors import MambaCompressor, MambaConfig, TransformerCompressor, TransformerConfig
from imfn.models.video import VideoModelConfig, make_level
from imfn.train.sweeper import LevelModel, SweeperTraining
from imfn.train.video import LevelObjective, VideoTraining

REPO = Path(__file__).resolve().parents[1]
DIM, T = 1024, 128


def quick() -> dict:
    return yaml.safe_load((REPO / "config" / "quick.yaml").read_text())


def sweeper_step(device: torch.device, size: str):
    """Level 0 (leaf codec + sweeper, the most expensive level), batch 64 as the paper."""
    hp = SweeperTraining(seed=0, dim=DIM if size == "paper" else 256, level=0, epochs=1, batch_size=64)
    model = LevelModel(hp, MNIST_FRAME).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr, fused=True)  # as train_sweeper
    rows = [torch.randint(0, 256, (64, 784), dtype=torch.uint8, device=device) for _ in range(2)]
    noise = torch.randn(64, hp.dim, device=device)

    def step() -> int:
        with autocast():
            loss, _, _ = model.loss(rows[0], rows[1], noise, hp)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return 64

    return f"sweeper L0, d={hp.dim}, batch 64", step


def compressor_step(kind: str, device: torch.device, size: str):
    """A training step of batch 16 sequences of T = 128 frames (compressors.training's batch)."""
    sizes = {} if size == "paper" else quick()["compressors"][kind]
    if kind == "transformer":
        model = TransformerCompressor(TransformerConfig(DIM, T, **sizes))
    else:  # mamba-ssm's kernels where they import (what a GPU job uses), else the pure-PyTorch scan
        use_kernels = device.type == "cuda" and not mamba_kernels_problem()
        model = MambaCompressor(MambaConfig(DIM, T, **sizes), use_kernels=use_kernels)
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    frames = torch.rand(16, T, 784, device=device)

    def step() -> int:
        with autocast():
            loss = F.mse_loss(model(frames), frames)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return 16

    label = "paper size" if size == "paper" else f"width {sizes['width']}"
    extra = f", {model.implementation}" if kind == "mamba" else ""
    return f"{kind}, {label}, batch 16 x T={T}{extra}", step


def video_step(device: torch.device, size: str):
    """Video level 1 (token sweeper over two L0 memories; L0 frozen), batch 32 clips as video.training."""
    cfg = VideoModelConfig() if size == "paper" else VideoModelConfig(**quick()["video"]["model"])
    frame_size = cfg.frame_size
    lower = [make_level(cfg, 0).to(device).eval().requires_grad_(False)]
    hp = VideoTraining(seed=0, level=1, epochs=1, videos=32, batch_size=32)
    objective = LevelObjective(make_level(cfg, 1), lower, hp).to(device)
    optimizer = torch.optim.Adam(objective.net.parameters(), lr=hp.lr)
    frames = torch.rand(32, hp.span, 3, frame_size, frame_size, device=device)
    branches = torch.randint(2, (32, 1), device=device)

    def step() -> int:
        with autocast():
            loss, *_ = objective(frames, branches)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return 32

    return f"video L1, width {cfg.width}, {frame_size}x{frame_size}, batch 32", step


def rate(step, device: torch.device, steps: int) -> float:
    for _ in range(3):  # warm-up (and cuBLAS/cuDNN autotuning)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, samples = time.perf_counter(), 0
    for _ in range(steps):
        samples += step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return samples / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["paper", "quick"], default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "mixed_precision.parquet")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = args.size or ("paper" if device.type == "cuda" else "quick")
    builders = [
        lambda: sweeper_step(device, size),
        lambda: compressor_step("transformer", device, size),
        lambda: compressor_step("mamba", device, size),
        lambda: video_step(device, size),
    ]
    rows = []
    for build in builders:
        torch.manual_seed(0)
        label, step = build()
        rates = {False: 0.0, True: 0.0}
        for _ in range(args.rounds):  # off and on alternate; the best of the rounds counts (less noise)
            for switch in (False, True):
                configure_precision(device, switch)
                rates[switch] = max(rates[switch], rate(step, device, args.steps))
        rows.append({"what": label, "off": rates[False], "on": rates[True], "on/off": rates[True] / rates[False]})
    configure_precision(device, False)
    runtime = describe_runtime(device)
    table = pd.DataFrame(rows)
    print(
        f"device {device} ({runtime['gpu'] or 'CPU'}, torch {runtime['torch']}), sizes: {size}, "
        f"best of {args.rounds} rounds of {args.steps} steps"
    )
    print("samples/s with mixed_precision off (float32) and on (bf16 autocast + TF32 on CUDA; nothing on the CPU)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    table.assign(device=str(device), gpu=runtime["gpu"], size=size).to_parquet(args.out, index=False)


if __name__ == "__main__":
    main()
