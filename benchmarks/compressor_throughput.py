"""Training throughput (sequences/s, forward + backward + AdamW step) at T = 128, batch 16, of the
Transformer and Mamba compressors and of the IMFN teacher, on this CPU, in one run.

The teacher is trained level by level in the pipeline; here, for a like-for-like cost, one step
pushes the whole batch through the full tree (leaf codec, log2(T) merges, inversions, decoder)
with a pixel MSE and backpropagates through all of it. Sizes: ``quick`` (config/quick.yaml's
compressors; the teacher at d = 1024) and ``paper`` (d = 1024, the paper's layer counts).
Prints a table with each model's rate relative to the teacher's, and writes
benchmarks/compressor_throughput.parquet.

    python benchmarks/compressor_throughput.py [--sizes quick paper] [--steps 3] [--threads 2]
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
from imfn.models.compressors import (
    MambaCompressor,
    MambaConfig,
    TransformerCompressor,
    TransformerConfig,
)
from imfn.models.layers import parameter_count
from imfn.models.teacher import CodecConfig, SweeperConfig, Teacher, build_codec, build_sweeper

T, BATCH, DIM = 128, 16, 1024
REPO = Path(__file__).resolve().parents[1]


def quick_sizes() -> dict:
    return yaml.safe_load((REPO / "config" / "quick.yaml").read_text())["compressors"]


def models(size: str) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    if size == "paper":
        transformer = TransformerCompressor(TransformerConfig(DIM, T, MNIST_FRAME))
        mamba = MambaCompressor(MambaConfig(DIM, T, MNIST_FRAME), use_kernels=False)
    else:
        q = quick_sizes()
        transformer = TransformerCompressor(TransformerConfig(DIM, T, MNIST_FRAME, **q["transformer"]))
        mamba = MambaCompressor(MambaConfig(DIM, T, MNIST_FRAME, **q["mamba"]), use_kernels=False)
    levels = T.bit_length() - 1
    sweepers = [build_sweeper(SweeperConfig.for_dim(DIM)) for _ in range(levels)]
    teacher = Teacher(build_codec(CodecConfig(DIM, MNIST_FRAME)), sweepers)
    return {"imfn-teacher": teacher, "transformer": transformer, "mamba": mamba}


def forward(name: str, model: torch.nn.Module, frames: torch.Tensor) -> torch.Tensor:
    if name != "imfn-teacher":
        return model(frames)
    codes = model.read_back(frames)
    return model.codec.decode(codes.flatten(0, 1)).view_as(frames)


def sequences_per_second(name: str, model: torch.nn.Module, steps: int) -> float:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    frames = torch.rand(BATCH, T, 784, generator=torch.Generator().manual_seed(0))

    def step():
        loss = F.mse_loss(forward(name, model, frames), frames)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["quick", "paper"], choices=["quick", "paper"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "compressor_throughput.parquet")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes:
        for name, model in models(size).items():
            rate = sequences_per_second(name, model, args.steps)
            rows.append({"size": size, "model": name, "params": parameter_count(model), "sequences_per_second": rate})
            print(f"{size:6s} {name:13s} {parameter_count(model):>12,} params  {rate:8.2f} sequences/s", flush=True)
            del model
    frame = pd.DataFrame(rows)
    teacher = frame[frame["model"] == "imfn-teacher"].set_index("size")["sequences_per_second"]
    frame["vs_teacher"] = frame["sequences_per_second"] / frame["size"].map(teacher)
    frame["threads"], frame["T"], frame["batch"] = args.threads, T, BATCH
    print()
    print(frame[["size", "model", "params", "sequences_per_second", "vs_teacher"]].to_string(index=False))
    frame.to_parquet(args.out, index=False)


if __name__ == "__main__":
    main()
