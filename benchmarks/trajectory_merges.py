"""Cost of a zero-padded teacher trajectory: naive rebuild (O(T^2) merges) vs Merkle path (O(T log T)).

For T in {16, 64, 256} at d = 256, N = 8 sequences, random ``paper`` sweepers: node merges per
sequence and wall time of both, their ratios, next to T / log2(T) (the asymptotic merge ratio).
The naive rebuild batches a whole level into one matmul while the Merkle path makes many small
calls, so the wall-time ratio sits below the merge ratio. Also the per-frame write latency of
``TreeMemory`` (log2(T) merges) and ``StudentMemory`` (one step of each student variant: ``mlp``, ``slot``
(the ``positional`` architecture) and ``dense`` (``positional`` with ``writes: all``)) at T = 8, 64 and 256, with
each one's ratio of the longest T to the shortest: a student's work per frame does not grow with T, the tree's
grows as log2(T). Prints a table and writes benchmarks/trajectory_merges.parquet.

    python benchmarks/trajectory_merges.py [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pandas as pd
import torch

from imfn.data.frame import MNIST_FRAME
from imfn.models.memory import StudentMemory, TreeMemory
from imfn.models.merkle import merkle_trajectory, naive_trajectory
from imfn.models.student import StudentConfig, build_student
from imfn.models.teacher import CodecConfig, SweeperConfig, Teacher, build_codec, build_sweeper


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def trajectory_row(T: int, dim: int, batch: int) -> dict:
    torch.manual_seed(T)
    sweepers = [build_sweeper(SweeperConfig.for_dim(dim)).eval() for _ in range(int(math.log2(T)))]
    leaves, zero_leaf = torch.randn(batch, T, dim), torch.randn(dim)
    merkle_trajectory(sweepers, leaves[:, :2], zero_leaf)  # warm-up (T = 2 uses sweeper 0 only)
    naive_repeats = 1 if T >= 256 else 3
    naive_s, naive = best_time(lambda: naive_trajectory(sweepers, leaves, zero_leaf), naive_repeats)
    merkle_s, merkle = best_time(lambda: merkle_trajectory(sweepers, leaves, zero_leaf), 5)
    max_abs_diff = (naive.states - merkle.states).abs().max().item()
    return {
        "benchmark": "trajectory",
        "T": T,
        "dim": dim,
        "batch": batch,
        "naive_merges": naive.merges,
        "merkle_merges": merkle.merges,
        "merge_ratio": naive.merges / merkle.merges,
        "T_over_log2T": T / math.log2(T),
        "naive_s": naive_s,
        "merkle_s": merkle_s,
        "time_ratio": naive_s / merkle_s,
        "naive_repeats": naive_repeats,
        "max_abs_diff": max_abs_diff,
    }


def _per_step_ms(memory, codes: torch.Tensor) -> torch.Tensor:
    per_step = []
    for t in range(len(codes)):
        t0 = time.perf_counter()
        memory.write_code(codes[t])
        per_step.append(time.perf_counter() - t0)
    return torch.tensor(per_step) * 1e3


def write_latency_row(T: int, dim: int, batch: int) -> dict:
    """Per-frame cost of writing leaf codes: the tree's Merkle update vs one student step."""
    torch.manual_seed(0)
    codec = build_codec(CodecConfig(dim, MNIST_FRAME, 1024, "mlp"))
    teacher = Teacher(codec, [build_sweeper(SweeperConfig.for_dim(dim)) for _ in range(int(math.log2(T)))]).eval()
    students = {  # each at its config variant's width
        name: build_student(StudentConfig(dim, T, hidden, architecture, writes)).eval()
        for name, architecture, hidden, writes in (
            ("mlp", "mlp", 2 * dim, "share"),
            ("slot", "positional", 512, "share"),
            ("dense", "positional", 512, "all"),
        )
    }
    codes = torch.randn(T, batch, dim)
    row = {"benchmark": "memory_write", "T": T, "dim": dim, "batch": batch}
    for name, make in (
        ("tree", lambda: TreeMemory(teacher, T, batch)),
        *((f"{key}_student", lambda key=key: StudentMemory(teacher, students[key], batch)) for key in students),
    ):
        _per_step_ms(make(), codes[: min(T, 8)])  # warm-up
        steps = _per_step_ms(make(), codes)
        row[f"{name}_median_ms"] = steps.median().item()
        row[f"{name}_max_ms"] = steps.max().item()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--write-lengths", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".parquet"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trajectories = pd.DataFrame([trajectory_row(T, args.dim, args.batch) for T in args.lengths])
    writes = pd.DataFrame([write_latency_row(T, args.dim, args.batch) for T in args.write_lengths])
    frame = pd.concat([trajectories, writes], ignore_index=True)
    frame["threads"] = args.threads
    frame.to_parquet(args.out, index=False)

    def show(table: pd.DataFrame) -> str:
        return table.to_string(index=False, float_format=lambda v: f"{v:.4g}")

    print(f"d = {args.dim}, N = {args.batch}, {args.threads} threads; merges are node merges per sequence")
    print(
        show(
            trajectories[
                [
                    "T",
                    "naive_merges",
                    "merkle_merges",
                    "merge_ratio",
                    "T_over_log2T",
                    "naive_s",
                    "merkle_s",
                    "time_ratio",
                    "max_abs_diff",
                ]
            ]
        )
    )
    print("\nper-frame write latency (ms): tree = Merkle path update (log2 T merges), students = one step each")
    names = ("tree", "mlp_student", "slot_student", "dense_student")
    columns = [f"{name}_{stat}_ms" for name in names for stat in ("median", "max")]
    print(show(writes[["T", *columns]]))
    shortest, longest = writes.iloc[0], writes.iloc[-1]
    print(f"\nmedian per-frame latency at T = {longest['T']} over T = {shortest['T']} (same run): "
          + ", ".join(f"{name} {longest[f'{name}_median_ms'] / shortest[f'{name}_median_ms']:.2f}x" for name in names)
          + f"; log2 ratio {math.log2(longest['T']) / math.log2(shortest['T']):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
