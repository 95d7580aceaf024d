"""What a convolutional per-frame code changes for a memory of moving_mnist clips (a probe, not a pipeline stage).

The `mix` tree's leaf codec is per-frame PCA; its merges are linear maps plus residual MLPs over such codes. A digit
moved by 3.6 px is a different vector of pixels, so nothing linear over pixels sees that two frames hold the same
digit. This probe asks whether a code that does see it (a convolutional autoencoder) lets merges share more. It
trains a conv autoencoder of ``--k`` numbers per frame on the run's moving_mnist training frames, then on held-out
clips of ``--T`` frames (per-pixel MSE) prints:

- the conv code's own error: the floor of any memory built on it;
- per-frame PCA of d // T components and clip PCA of d components *in its latent space*, decoded: the best linear
  memories of d numbers over that code;
- the `mix` tree over that code (per level: the joint PCA of adjacent windows' codes plus a residual MLP that starts
  at zero, trained on latent MSE of adjacent-window pairs, levels one after another, frozen below), at its joint-PCA
  start and trained.

    .venv/bin/python benchmarks/moving_mnist_conv_code.py --run .     # a directory that `make run` ran in

Deterministic on CPU for a given thread count (fixed steps, seeded batches).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from imfn.data.sequences import open_sequences, training_frames
from imfn.models.pca import fit_pca
from imfn.models.teacher import SweeperConfig, build_sweeper
from imfn.models.tree import invert_down, merge_up


def conv_autoencoder(k: int, width: int = 48) -> tuple[nn.Module, nn.Module]:
    """64x64 frame -> k numbers (four stride-2 convs, then linear) and back (a mirror ending in logits)."""
    c = width
    encoder = nn.Sequential(
        nn.Conv2d(1, c, 4, 2, 1), nn.GELU(), nn.Conv2d(c, c, 4, 2, 1), nn.GELU(),
        nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GELU(), nn.Conv2d(2 * c, 2 * c, 4, 2, 1), nn.GELU(),
        nn.Flatten(), nn.Linear(2 * c * 16, k),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Linear(k, 2 * c * 16), nn.Unflatten(1, (2 * c, 4, 4)), nn.GELU(),
        nn.ConvTranspose2d(2 * c, 2 * c, 4, 2, 1), nn.GELU(), nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.GELU(),
        nn.ConvTranspose2d(c, c, 4, 2, 1), nn.GELU(), nn.ConvTranspose2d(c, 1, 4, 2, 1),
    )  # fmt: skip
    return encoder, decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("."), help="a make-run directory (resources/, results/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=256, help="numbers per frame of the conv code")
    parser.add_argument("--dim", type=int, default=256, help="memory size d of the linear memories and the tree")
    parser.add_argument("--T", type=int, default=32, help="longest clip (the tree gets log2(T) levels)")
    parser.add_argument("--ae-steps", type=int, default=4000, help="autoencoder steps of 64 frames")
    parser.add_argument("--clips", type=int, default=4000, help="training clips of T frames the memories fit on")
    parser.add_argument("--level-steps", type=int, default=4000, help="steps of 128 pairs per tree level")
    parser.add_argument("--test-clips", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    seqs = open_sequences(
        "moving_mnist", args.run / "resources/mnist.zarr", args.run / f"results/mnist/seed{args.seed}/split.parquet",
        args.seed,
    )  # fmt: skip
    K, T_max, start = args.k, args.T, time.time()

    encoder, decoder = conv_autoencoder(K)
    frames = training_frames(seqs).reshape(-1, 1, 64, 64)  # uint8
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=2e-3)
    for _ in range(args.ae_steps):
        x = frames[torch.randint(len(frames), (64,), generator=gen)].float() / 255.0
        loss = F.binary_cross_entropy_with_logits(decoder(encoder(x)), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval(), decoder.eval()
    print(f"conv autoencoder, k = {K}: {args.ae_steps} steps of 64 frames ({time.time() - start:.0f} s)", flush=True)

    @torch.no_grad()
    def encode(part: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        pixels, codes = [], []
        for first in range(0, count, 100):
            x = seqs.draw_float(part, first, min(100, count - first), T_max)
            codes.append(encoder(x.reshape(-1, 1, 64, 64)).reshape(len(x), T_max, K))
            pixels.append(x if part == "test" else x[:0])
        return torch.cat(pixels), torch.cat(codes)

    @torch.no_grad()
    def error(codes: torch.Tensor, pixels: torch.Tensor) -> float:
        decoded = torch.cat([torch.sigmoid(decoder(c)) for c in codes.reshape(-1, K).split(2000)])
        return F.mse_loss(decoded.reshape(pixels.shape), pixels).item()

    _, train_codes = encode("train", args.clips)
    test_pixels, test_codes = encode("test", args.test_clips)
    results: dict = {"floor": error(test_codes, test_pixels), "T": {}}
    print(f"conv code alone (held-out frames): {results['floor']:.5f}", flush=True)

    Ts = [2**i for i in range(1, T_max.bit_length()) if 2**i <= T_max]
    frame = fit_pca(train_codes.reshape(-1, K)[:60000])  # per-frame PCA of the code, every T's k
    frame_mean = frame.mean.float()
    for T in Ts:
        basis = frame.components(args.dim // T)
        codes = test_codes[:, :T].reshape(-1, K)
        frame_pca = error(((codes - frame_mean) @ basis) @ basis.T + frame_mean, test_pixels[:, :T])
        windows = fit_pca(train_codes.reshape(-1, T * K))
        basis, mean = windows.components(min(args.dim, windows.rank)), windows.mean.float()
        clips = test_codes[:, :T].reshape(-1, T * K)
        clip_pca = error(((clips - mean) @ basis) @ basis.T + mean, test_pixels[:, :T])
        results["T"][T] = {"latent_frame_pca": frame_pca, "latent_clip_pca": clip_pca}

    @torch.no_grad()
    def tree_error(stack: list, T: int) -> float:
        return error(invert_down(stack, merge_up(stack, test_codes[:, :T]), T), test_pixels[:, :T])

    sweepers, nodes = [], train_codes
    for level, T in enumerate(Ts):
        sweeper = build_sweeper(SweeperConfig.for_dim(K, 512, "mix", level))
        pairs = torch.stack([nodes[:, 0::2], nodes[:, 1::2]], 2).reshape(-1, 2, K)  # adjacent windows of one clip
        sweeper.init_from_data(pairs[torch.randperm(len(pairs), generator=gen)[:16384]])
        linear = tree_error([*sweepers, sweeper], T)
        optimizer = torch.optim.Adam(sweeper.parameters(), lr=1e-3)
        for _ in range(args.level_steps):
            p = pairs[torch.randint(len(pairs), (128,), generator=gen)]
            left, right = sweeper.invert(sweeper.merge(p[:, 0], p[:, 1]))
            loss = F.mse_loss(left, p[:, 0]) + F.mse_loss(right, p[:, 1])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        sweepers.append(sweeper.eval().requires_grad_(False))
        with torch.no_grad():
            nodes = sweeper.merge(nodes[:, 0::2], nodes[:, 1::2])
        results["T"][T].update(tree_linear=linear, tree_trained=tree_error(sweepers, T), pairs=len(pairs))

    print(f"\nheld-out clips ({args.test_clips}), per-pixel MSE, memory d = {args.dim} over a conv code of k = {K}:")
    print("| T | per-frame PCA of the code, d // T | clip PCA of the code, d | mix tree, joint-PCA start | trained |")
    print("|---|---|---|---|---|")
    for T, row in results["T"].items():
        print(f"| {T} | {row['latent_frame_pca']:.5f} | {row['latent_clip_pca']:.5f} | {row['tree_linear']:.5f} | "
              f"{row['tree_trained']:.5f} |")  # fmt: skip
    print(f"\n{time.time() - start:.0f} s in all ({args.threads} threads)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
