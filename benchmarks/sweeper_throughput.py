"""Training throughput of one sweeper level against this machine's matmul peak.

Trains level 0 (codec + sweeper, the most expensive level) and level 1 (sweeper only) for a
fixed number of Adam steps at batch 64 on random data, for d = 256 and 1024. FLOPs per step
are counted by torch's FlopCounterMode on the real training step; the matmul peak is a large
float32 square matmul timed in the same run with the same thread count. Prints a table and
writes benchmarks/sweeper_throughput.parquet.

    python benchmarks/sweeper_throughput.py [--steps 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from imfn.data.frame import MNIST_FRAME
from imfn.train.sweeper import LevelModel, SweeperTraining


def matmul_peak(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a large float32 square matmul (the best this CPU does with these threads)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def train_step(model, optimizer, hp, batch):
    loss, _, _ = model.loss(*batch, hp)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(dim: int, level: int, steps: int, batch_size: int = 64) -> dict:
    hp = SweeperTraining(seed=0, dim=dim, level=level, epochs=1, batch_size=batch_size)
    torch.manual_seed(0)
    model = LevelModel(hp, MNIST_FRAME)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr, fused=True)  # as train_sweeper

    def rows() -> torch.Tensor:  # what the level's bank holds: uint8 images at level 0, codes above
        if level == 0:
            return torch.randint(0, 256, (batch_size, 784), dtype=torch.uint8)
        return torch.randn(batch_size, dim)

    batches = [(rows(), rows(), torch.randn(batch_size, dim)) for _ in range(8)]
    with FlopCounterMode(display=False) as counter:
        train_step(model, optimizer, hp, batches[0])
    flops_per_step = counter.get_total_flops()
    for i in range(5):  # warm-up
        train_step(model, optimizer, hp, batches[i % 8])
    t0 = time.perf_counter()
    for i in range(steps):
        train_step(model, optimizer, hp, batches[i % 8])
    seconds = time.perf_counter() - t0
    return {
        "dim": dim,
        "level": level,
        "batch_size": batch_size,
        "steps": steps,
        "samples_per_s": steps * batch_size / seconds,
        "gflop_per_step": flops_per_step / 1e9,
        "achieved_gflops": flops_per_step * steps / seconds / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--dims", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".parquet"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak(args.threads)
    rows = [measure(dim, level, args.steps) for dim in args.dims for level in (0, 1)]
    peak_after = matmul_peak(args.threads)
    frame = pd.DataFrame(rows)
    frame["matmul_peak_gflops"] = max(peak, peak_after)
    frame["fraction_of_peak"] = frame["achieved_gflops"] / frame["matmul_peak_gflops"]
    frame["threads"] = args.threads
    frame.to_parquet(args.out, index=False)
    print(f"matmul peak (2048^3 float32, {args.threads} threads): {max(peak, peak_after):.1f} GFLOP/s")
    print(
        frame[["dim", "level", "samples_per_s", "gflop_per_step", "achieved_gflops", "fraction_of_peak"]].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"
        )
    )


if __name__ == "__main__":
    main()
