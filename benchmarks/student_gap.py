"""Where the student's gap to its teacher comes from, in the teacher's root space.

For one cell's trajectory sets at T (train and test) and, optionally, a trained student, prints:
- the energy of the per-step increments y_{t+1} - y_t the student must produce;
- the end-of-sequence root error of a per-position linear map fitted by least squares on the train
  set (increment_t = A_t leaf_t + b_t): what a model that routes each frame to its slot could reach;
- the same error of the student's own rollout (no teacher forcing), and relative to the spread of y_T.

    python benchmarks/student_gap.py results/mnist/seed0/d1024/pca-pixel 8 [--student paper]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from imfn.models.student import load_student
from imfn.train.student import load_train_set


def per_position_linear(train_targets, train_leaves, test_leaves, ridge: float = 1e-3) -> torch.Tensor:
    """Predicted (n, T, d) test increments from one least-squares map per position."""
    increments = (train_targets[:, 1:] - train_targets[:, :-1]).double()
    predictions = []
    for t in range(train_leaves.shape[1]):
        X = torch.cat([train_leaves[:, t], torch.ones(len(train_leaves), 1)], 1).double()
        W = torch.linalg.solve(X.T @ X + ridge * torch.eye(X.shape[1], dtype=X.dtype), X.T @ increments[:, t])
        predictions.append(torch.cat([test_leaves[:, t], torch.ones(len(test_leaves), 1)], 1).double() @ W)
    return torch.stack(predictions, 1).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cell", type=Path, help="results/mnist/seed{seed}/d{dim}/{variant}")
    parser.add_argument("T", type=int)
    parser.add_argument("--student", default=None, help="variant of a trained student to compare (student.variants)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    train_y, train_leaves, _ = load_train_set(args.cell / f"trajectories_T{args.T}_train.zarr")
    test_y, test_leaves, _ = load_train_set(args.cell / f"trajectories_T{args.T}_test.zarr")
    spread = (test_y[:, -1] - test_y[:, -1].mean(0)).square().mean().item()
    increments = (test_y[:, 1:] - test_y[:, :-1]).square().mean().item()
    print(f"{args.cell} T={args.T}: {len(train_y)} train / {len(test_y)} test trajectories, d={test_y.shape[-1]}")
    print(f"  mean squared increment per step          {increments:.3g}")
    print(f"  variance of y_T (predicting its mean)    {spread:.3g}")
    linear = test_y[:, 0] + per_position_linear(train_y, train_leaves, test_leaves).sum(1)
    error = (linear - test_y[:, -1]).square().mean().item()
    print(f"  per-position linear map, end of sequence {error:.3g}  ({error / spread:.2g} of the variance)")
    if args.student:
        student = load_student(args.cell / f"student_{args.student}_T{args.T}.pt")
        with torch.no_grad():
            states = student.rollout(test_y[:, 0], test_leaves)
        error = (states[:, -1] - test_y[:, -1]).square().mean().item()
        print(
            f"  student ({args.student}) rollout, end of sequence  {error:.3g}  ({error / spread:.2g} of the variance)"
        )


if __name__ == "__main__":
    main()
