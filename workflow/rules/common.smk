# Paths, wildcard constraints, config checks beyond the schema, and every function the workflow uses, so
# that the other .smk files hold rules only. Paths are f-strings, in which `{{level}}` stays a wildcard.
import math
import os
import re
import shlex
import sys

# How every network job computes (imfn/devices.py): the device, and bf16 autocast + TF32 on CUDA.
DEVICE = f"--device {config['device']} --mixed-precision {str(config['mixed_precision']).lower()}"

# --- MNIST and the teacher -------------------------------------------------------------------------
MNIST = "resources/mnist.zarr"
SPLIT = "results/mnist/seed{seed}/split.parquet"
IMAGE_BANK = "results/mnist/seed{seed}/bank_L0.zarr"
CELL = "results/mnist/seed{seed}/d{dim}/{variant}"  # one teacher: a (seed, d) grid cell trained by one variant
LATENT_BANK = f"{CELL}/bank_L{{level}}.zarr"
SWEEPER = f"{CELL}/sweeper_L{{level}}.pt"
SWEEPER_LOSS = f"{CELL}/sweeper_L{{level}}_loss.parquet"
SWEEPER_HEALTH = f"{CELL}/sweeper_L{{level}}_health.parquet"
ROUNDTRIP = f"{CELL}/roundtrip_T{{T}}.parquet"
PCA_ROUNDTRIP = "results/mnist/seed{seed}/pca_roundtrip.parquet"
AUTOENCODER = "results/mnist/seed{seed}/autoencoder_k{k}.pt"  # the per-frame autoencoder of k numbers
AUTOENCODER_LOSS = "results/mnist/seed{seed}/autoencoder_k{k}_loss.parquet"
AUTOENCODER_ROUNDTRIP = "results/mnist/seed{seed}/autoencoder_k{k}_roundtrip.parquet"
TRAJECTORIES = f"{CELL}/trajectories_T{{T}}_{{which}}.zarr"
STUDENT = f"{CELL}/student_{{student_variant}}_T{{T}}.pt"  # one per (seed, T, variant of `student.variants`)
STUDENT_LOSS = f"{CELL}/student_{{student_variant}}_T{{T}}_loss.parquet"
ONLINE = f"{CELL}/online_{{student_variant}}_T{{T}}.parquet"
LOGS = "logs/mnist/seed{seed}/d{dim}/{variant}"
BENCHMARKS = "benchmarks/mnist/seed{seed}/d{dim}/{variant}"

TEACHER = config["teacher"]
LEVELS = TEACHER["levels"]
VARIANT = TEACHER["variant"]
SEEDS, DIMS, TS = config["seeds"], config["dims"], config["evaluation"]["T"]
ABLATION_VARIANTS = config["ablation"]["variants"]
ABLATION_DIMS = config["ablation"]["dims"]
PAPER_SWEEP = config["paper_sweep"]
STUDENT_CONFIG = config["student"]
# The per-frame references keep k = d // T numbers per frame (at most a frame's 784 pixels; k = 0 is the mean image,
# which per-frame PCA shows): one per-frame autoencoder per (seed, k).
AUTOENCODER_KS = sorted({min(d // T, 784) for d in DIMS for T in TS} - {0})

# --- The end-to-end sequence compressors (Transformer, Mamba; method.md section 5) ------------------
COMPRESSORS = config["compressors"]
COMPRESSOR = "results/mnist/seed{seed}/d{dim}/compressor_{model}.pt"
COMPRESSOR_LOSS = "results/mnist/seed{seed}/d{dim}/compressor_{model}_loss.parquet"
COMPRESSOR_ROUNDTRIP = "results/mnist/seed{seed}/d{dim}/compressor_{model}_roundtrip.parquet"
COMPRESSOR_LOGS = "logs/mnist/seed{seed}/d{dim}"
COMPRESSOR_BENCHMARKS = "benchmarks/mnist/seed{seed}/d{dim}"
COMPRESSOR_TABLE1 = "results/tables/table1_compressors.md"
COMPRESSOR_TABLE2 = "results/tables/table2_params.md"
COMPRESSOR_FIGURES = expand("results/figures/fig6_sequence.{ext}", ext=["png", "pdf"])
COMPRESSOR_OUTPUTS = [COMPRESSOR_TABLE1, COMPRESSOR_TABLE2, *COMPRESSOR_FIGURES] if COMPRESSORS["models"] else []

# --- The video hierarchy (method.md section 6) ------------------------------------------------------
# Paths carry the dataset (config video.dataset), so a demo run and a UCF-101 run do not overwrite each other.
VIDEO = config["video"]
VIDEO_LEVELS = VIDEO["levels"]
VIDEO_DIR = f"results/video/{VIDEO['dataset']}"
VIDEO_CLIPS = f"{VIDEO_DIR}/clips.zarr"
VIDEO_MANIFEST = f"{VIDEO_DIR}/manifest.parquet"
VIDEO_SPLIT = f"{VIDEO_DIR}/split.parquet"
VIDEO_LEVEL = f"{VIDEO_DIR}/level{{level}}.pt"
VIDEO_LEVEL_LOSS = f"{VIDEO_DIR}/level{{level}}_loss.parquet"
VIDEO_EVAL = f"{VIDEO_DIR}/eval_L{{level}}.parquet"
VIDEO_PCA = f"{VIDEO_DIR}/pca.parquet"  # per-frame PCA with as many numbers per clip as each level's memory
VIDEO_RECONSTRUCTIONS = f"{VIDEO_DIR}/reconstructions_L{{level}}.zarr"
VIDEO_LOGS = f"logs/video/{VIDEO['dataset']}"
VIDEO_BENCHMARKS = f"benchmarks/video/{VIDEO['dataset']}"
VIDEO_FIGURES = expand("results/figures/fig_video_reconstructions.{ext}", ext=["png", "pdf"])
VIDEO_OUTPUTS = ["results/metrics/video.parquet", "results/tables/table3_video.md", *VIDEO_FIGURES]


def _video_left_out():
    """Why the video branch cannot run here, decided before any job (None when it can): UCF-101 is not on disk."""
    if VIDEO["dataset"] != "ucf101" or os.path.isdir(VIDEO["root"]):
        return None
    return (f"video.root: {VIDEO['root']} is not a directory, so the video branch (Table 3) is left out. "
            "To include it, put UCF-101 there (<root>/<Class>/v_<Class>_gXX_cYY.avi) or point video.root at it "
            "in a --configfile; `video: {dataset: demo}` runs the branch on the demo footage instead.")


VIDEO_LEFT_OUT = _video_left_out()
if VIDEO_LEFT_OUT and workflow.is_main_process:
    print(f"NOTE {VIDEO_LEFT_OUT}", file=sys.stderr)

# --- Figures, tables and the time summary -----------------------------------------------------------
STUDENT_FIGURES = expand("results/figures/{name}.{ext}", name=["fig4_prefix_retention", "fig5_end_of_sequence"],
                         ext=["png", "pdf"]) + ["results/tables/student.md"] if STUDENT_CONFIG["T"] else []
TEACHER_FIGURES = expand("results/figures/{name}.{ext}", name=["fig2_mse_vs_dim", "fig3_mse_vs_T", "teacher_health"],
                         ext=["png", "pdf"])
ABLATION_OUTPUTS = ["results/tables/teacher_ablation.md", "results/figures/teacher_ablation_mse_vs_T.png",
                    "results/figures/teacher_ablation_mse_vs_T.pdf"]
PAPER_SWEEP_OUTPUTS = ["results/tables/paper_sweep.md", "results/figures/paper_sweep_mse_vs_T.png",
                       "results/figures/paper_sweep_mse_vs_T.pdf"]
TIME_SUMMARY = ["results/metrics/time_summary.parquet", "results/figures/time_summary.png"]

# --- Job groups: on a cluster (Snakemake ignores them locally) the jobs of one group share one allocation,
# so short GPU jobs do not each wait in the queue for their own GPU. The SLURM profile merges the
# independent jobs of one pattern (group-components) and gives every group one GPU, on which its jobs run
# one after another. A failed group job loses the outputs of all its jobs, so long training jobs are grouped
# only with a short job that precedes them (a level's bank), never with their evaluation.
GROUP_LEVEL = "level_s{seed}_d{dim}_{variant}_L{level}"  # a level's bank, then its sweeper
GROUP_ROUNDTRIPS = "roundtrips_s{seed}_d{dim}_{variant}"  # a cell's roundtrips at every T
GROUP_TRAJECTORIES = "trajectories_s{seed}_d{dim}_{variant}_T{T}"  # a student's training and test sets
GROUP_ONLINE = "online_s{seed}_d{dim}_{variant}_T{T}"  # the online evaluation of its students (all variants)

# The levels of a cell train one after another, and its students (trajectories, training, evaluation) come
# after the last: the longest chain of the run. Its jobs go first when several are ready, so that the jobs
# that wait on nothing (the per-frame autoencoders, video, compressors) fill the idle cores at the end
# instead of the chain running alone.
CHAIN_PRIORITY = 10

wildcard_constraints:
    seed=r"\d+",
    dim=r"\d+",
    level=r"\d+",
    T=r"\d+",
    k=r"\d+",
    variant="|".join(re.escape(name) for name in TEACHER["variants"]),
    which="train|test",
    student_variant="|".join(re.escape(name) for name in STUDENT_CONFIG["variants"]),


# --- Command-line flags from config blocks ----------------------------------------------------------
def flags(block, prefix="", level=None):
    """A config block as `imfn` flags: key `a_b` is `--a-b VALUE`; a nested block `c: {d: 1}` is `--c-d 1`;
    null is left out (the command's default); a list is its entry at ``level`` when a level is given
    (per-level schedules), else its items joined by spaces."""
    rendered = []
    for key, value in block.items():
        if isinstance(value, dict):
            rendered.append(flags(value, f"{prefix}{key}-", level))
            continue
        if value is None:
            continue
        if isinstance(value, list):
            value = value[level] if level is not None else " ".join(map(str, value))
        rendered.append(f"--{prefix}{key}".replace("_", "-") + f" {value}")
    return " ".join(flag for flag in rendered if flag)


def optional(flag, value):
    """A command-line flag, or nothing when the value is null."""
    return "" if value is None else f"{flag} {value}"


def deep_merge(base, override):
    """``base`` with ``override`` on top, nested blocks merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def variant_settings(name):
    """A variant's full hyperparameters: the base `training` block with its overrides merged in."""
    return deep_merge(TEACHER["training"], TEACHER["variants"][name])


# --- Config checks beyond the schema ----------------------------------------------------------------
def _check_config():
    unknown = sorted({VARIANT, *ABLATION_VARIANTS, *PAPER_SWEEP["variants"]} - set(TEACHER["variants"]))
    if unknown:
        raise ValueError(f"config names teacher variants {unknown} that teacher.variants does not define "
                         f"(defined: {sorted(TEACHER['variants'])})")
    for name in TEACHER["variants"]:
        epochs = variant_settings(name)["epochs"]
        if isinstance(epochs, list) and len(epochs) != LEVELS:
            raise ValueError(f"config teacher.epochs of variant {name!r} lists {len(epochs)} values "
                             f"but teacher.levels is {LEVELS}")
    if STUDENT_CONFIG["T"] and STUDENT_CONFIG["dim"] not in DIMS:
        raise ValueError(f"config student.dim={STUDENT_CONFIG['dim']} is not one of dims {DIMS}: no teacher to distill")
    unknown = sorted(set(STUDENT_CONFIG["train"]) - set(STUDENT_CONFIG["variants"]))
    if unknown:
        raise ValueError(f"config student.train names student variants {unknown} that student.variants does not "
                         f"define (defined: {sorted(STUDENT_CONFIG['variants'])})")
    too_long = [T for T in TS + STUDENT_CONFIG["T"] if int(math.log2(T)) > LEVELS]
    if too_long:
        raise ValueError(f"config evaluation.T / student.T have {too_long}, which need more than "
                         f"teacher.levels={LEVELS} levels")


def _check_compressors():
    if not COMPRESSORS["models"]:
        return
    problems = []
    if not set(COMPRESSORS["seeds"]) <= set(SEEDS):
        problems.append(f"compressors.seeds {COMPRESSORS['seeds']} are not all in seeds {SEEDS} (they use its splits)")
    if COMPRESSORS["dim"] not in DIMS:
        problems.append(f"compressors.dim={COMPRESSORS['dim']} is not one of dims {DIMS}")
    if COMPRESSORS["T"] not in TS:
        problems.append(f"compressors.T={COMPRESSORS['T']} is not one of evaluation.T {TS}")
    if problems:
        raise ValueError("config: " + "; ".join(problems) + " (Table 1 compares them with the teacher there)")


def _check_video_config():
    for key in ("epochs", "videos", "pairs_per_video"):
        if len(VIDEO["training"][key]) != VIDEO_LEVELS:
            raise ValueError(f"config video.training.{key} lists {len(VIDEO['training'][key])} values "
                             f"but video.levels is {VIDEO_LEVELS}")
    if VIDEO["clip_frames"] % 2**VIDEO_LEVELS:
        raise ValueError(f"config video.clip_frames={VIDEO['clip_frames']} must be a multiple of "
                         f"2^video.levels = {2**VIDEO_LEVELS} (the frames one level-{VIDEO_LEVELS - 1} memory holds)")
    if VIDEO["frame_size"] % VIDEO["model"]["patch"]:
        raise ValueError(f"config video.frame_size={VIDEO['frame_size']} is not a multiple of "
                         f"video.model.patch={VIDEO['model']['patch']}")
    if VIDEO["dataset"] == "ucf101" and not VIDEO["root"]:
        raise ValueError("config video.root must name the UCF-101 directory when video.dataset is ucf101")


_check_config()
_check_compressors()
_check_video_config()


# --- Teacher and student inputs ---------------------------------------------------------------------
def bank_path(seed, dim, variant, level):
    """Level 0's bank holds images and is shared by every d and variant; higher banks hold d-dim codes."""
    level = int(level)
    if level == 0:
        return IMAGE_BANK.format(seed=seed)
    return LATENT_BANK.format(seed=seed, dim=dim, variant=variant, level=level)


def sweeper_paths(seed, dim, variant, levels):
    return [SWEEPER.format(seed=seed, dim=dim, variant=variant, level=level) for level in range(levels)]


def train_inputs(w):
    """A level trains on its bank; with a depth decoder it also reads the images and the levels below."""
    inputs = {"bank": bank_path(w.seed, w.dim, w.variant, w.level)}
    if variant_settings(w.variant)["decoder"]["epochs"] > 0:
        inputs["image_bank"] = IMAGE_BANK.format(seed=w.seed)
        inputs["lower"] = sweeper_paths(w.seed, w.dim, w.variant, int(w.level))
    return inputs


def decoder_inputs(w):
    """`--image-bank` and `--lower` for a variant with depth decoders (nothing without them)."""
    inputs = train_inputs(w)
    if "image_bank" not in inputs:
        return ""
    lower = " ".join(inputs["lower"])
    return f"--image-bank {inputs['image_bank']}" + (f" --lower {lower}" if lower else "")


def teacher_for_T(w):
    """The teacher levels a sequence of length T goes through."""
    return sweeper_paths(w.seed, w.dim, w.variant, int(math.log2(int(w.T))))


# --- Target lists -----------------------------------------------------------------------------------
def cells(variants, dims, seeds):
    return [dict(seed=s, dim=d, variant=v) for v in variants for s in seeds for d in dims]


def grid(pattern, variants=(VARIANT,), dims=DIMS, seeds=SEEDS):
    """``pattern`` over seeds x dims x variants, and over levels / T when it has those wildcards."""
    if "{level}" in pattern:
        return [pattern.format(**c, level=l) for c in cells(variants, dims, seeds) for l in range(LEVELS)]
    if "{T}" in pattern:
        return [pattern.format(**c, T=T) for c in cells(variants, dims, seeds) for T in TS]
    return [pattern.format(**c) for c in cells(variants, dims, seeds)]


def paper_sweep_grid(pattern):
    """``pattern`` over the paper sweep's variants at its one seed and d."""
    return grid(pattern, PAPER_SWEEP["variants"], [PAPER_SWEEP["dim"]], [PAPER_SWEEP["seed"]])


def ablation_inputs(wildcards):
    """The ablation's metrics and the per-frame references beside them (computed for `dims` only)."""
    if not set(ABLATION_DIMS) <= set(DIMS):
        raise ValueError(f"config ablation.dims {ABLATION_DIMS} are not all in dims {DIMS} "
                         "(the per-frame references are computed for dims)")
    return [f"results/metrics/{name}.parquet" for name in
            ("teacher_ablation", "teacher_ablation_health", "autoencoder", "pca")]


def paper_sweep_autoencoders(wildcards):
    """The per-frame autoencoders at the paper sweep's seed and d, one per T (k = d // T)."""
    if PAPER_SWEEP["dim"] not in DIMS or PAPER_SWEEP["seed"] not in SEEDS:
        raise ValueError(f"config paper_sweep runs at seed {PAPER_SWEEP['seed']} and d = {PAPER_SWEEP['dim']}, which "
                         f"must be in seeds {SEEDS} and dims {DIMS} (the per-frame references are computed there)")
    ks = sorted({min(PAPER_SWEEP["dim"] // T, 784) for T in TS} - {0})
    return [AUTOENCODER_ROUNDTRIP.format(seed=PAPER_SWEEP["seed"], k=k) for k in ks]


def student_grid(pattern):
    """``pattern`` over seeds x student T x the trained student variants, for the grid's teacher at d = student.dim."""
    return [pattern.format(seed=s, dim=STUDENT_CONFIG["dim"], variant=VARIANT, T=T, student_variant=name)
            for s in SEEDS for T in STUDENT_CONFIG["T"] for name in STUDENT_CONFIG["train"]]


def trajectories_n(wildcards):
    """Sequences in a trajectory set: `student.train_frames` or `test_frames` frames, T per sequence."""
    return max(1, STUDENT_CONFIG[f"{wildcards.which}_frames"] // int(wildcards.T))


def student_flags(wildcards):
    """`imfn train-student` flags: the shared budget `student.training` with the student variant's settings."""
    return flags({**STUDENT_CONFIG["training"], **STUDENT_CONFIG["variants"][wildcards.student_variant]})


def compressor_grid(pattern):
    return [pattern.format(seed=s, dim=COMPRESSORS["dim"], model=m)
            for s in COMPRESSORS["seeds"] for m in COMPRESSORS["models"]]


def metric_inputs(w):
    """The files one tidy table under results/metrics concatenates."""
    return {
        "teacher": grid(ROUNDTRIP),
        "teacher_health": grid(SWEEPER_HEALTH),
        "teacher_ablation": grid(ROUNDTRIP, ABLATION_VARIANTS, ABLATION_DIMS),
        "teacher_ablation_health": grid(SWEEPER_HEALTH, ABLATION_VARIANTS, ABLATION_DIMS),
        "paper_sweep": paper_sweep_grid(ROUNDTRIP),
        "paper_sweep_health": paper_sweep_grid(SWEEPER_HEALTH),
        "pca": expand(PCA_ROUNDTRIP, seed=SEEDS),
        "autoencoder": expand(AUTOENCODER_ROUNDTRIP, seed=SEEDS, k=AUTOENCODER_KS),
        "student": student_grid(ONLINE),
        "compressors": compressor_grid(COMPRESSOR_ROUNDTRIP),
    }[w.table]


def video_source(wildcards):
    """video_clips reads no pipeline file; asking for the video branch without UCF-101 stops here, before any job."""
    if VIDEO_LEFT_OUT:
        raise WorkflowError(VIDEO_LEFT_OUT)
    return []


def video_levels_up_to(level):
    return [VIDEO_LEVEL.format(level=l) for l in range(int(level))]


# --- Reporting and provenance -----------------------------------------------------------------------
def reported(paths, category, subcategory=None):
    """Mark the PNG figures and Markdown tables among ``paths`` (one path or a list) for `snakemake --report`,
    each with its caption workflow/report/<file stem>.rst (the PDFs are the same figures, left out of the report)."""
    def caption(path):  # (a line may not start with `report`: the parser takes it for the directive)
        return f"../report/{os.path.basename(path).rsplit('.', 1)[0]}.rst"

    def mark(path):
        return (snakemake.io.report(path, caption=caption(path), category=category, subcategory=subcategory)
                if path.endswith((".png", ".md")) else path)

    return mark(paths) if isinstance(paths, str) else [mark(path) for path in paths]


def time_summary_inputs(wildcards):
    """Everything else `all` asks for: the summary runs last, once every benchmarked job it covers has run.
    (Benchmark files are read from benchmarks/ when it runs; the inputs only order it and rerun it.)"""
    return [path for path in rules.all.input if path not in TIME_SUMMARY]


def benchmark_patterns():
    """`name=pattern` for each benchmarked step of the workflow, which is how the time summary names a file's step."""
    return " ".join(shlex.quote(f"{r.name}={snakemake.io.strip_wildcard_constraints(r.benchmark)}")
                    for r in sorted(workflow.rules, key=lambda r: r.name) if isinstance(r.benchmark, str))
