# Paths, wildcard constraints, config checks beyond the schema, and every function the workflow uses, so
# that the other .smk files hold rules only. Paths are f-strings, in which `{{level}}` stays a wildcard.
import math
import os
import re
import shlex
import sys
import types

from imfn.data import moving_mnist
from imfn.data.sequences import SOURCES as KNOWN_SOURCES, frame_shape

# How every network job computes (imfn/devices.py): the device, and bf16 autocast + TF32 on CUDA.
DEVICE = f"--device {config['device']} --mixed-precision {str(config['mixed_precision']).lower()}"

# --- Sequence sources, MNIST and the teacher ------------------------------------------------------
# Every result of a sequence source (config `sources`, imfn/data/sequences.py) lies under results/{source}/...;
# the split is the digits' split of a seed, shared by every source, and lies with mnist's results.
MNIST = "resources/mnist.zarr"
SPLIT = "results/mnist/seed{seed}/split.parquet"
IMAGE_BANK = "results/{source}/seed{seed}/bank_L0.zarr"
CELL = "results/{source}/seed{seed}/d{dim}/{variant}"  # one teacher: a (source, seed, d) cell trained by one variant
LATENT_BANK = f"{CELL}/bank_L{{level}}.zarr"
SWEEPER = f"{CELL}/sweeper_L{{level}}.pt"
SWEEPER_LOSS = f"{CELL}/sweeper_L{{level}}_loss.parquet"
SWEEPER_HEALTH = f"{CELL}/sweeper_L{{level}}_health.parquet"
ROUNDTRIP = f"{CELL}/roundtrip_T{{T}}.parquet"
FRAME_PCA = "results/{source}/seed{seed}/frame_pca.zarr"  # per-frame PCA of the training frames, read by the references
PCA_ROUNDTRIP = "results/{source}/seed{seed}/pca_roundtrip.parquet"
AUTOENCODER = "results/{source}/seed{seed}/autoencoder_k{k}.pt"  # the per-frame autoencoder of k numbers
AUTOENCODER_LOSS = "results/{source}/seed{seed}/autoencoder_k{k}_loss.parquet"
AUTOENCODER_ROUNDTRIP = "results/{source}/seed{seed}/autoencoder_k{k}_roundtrip.parquet"
CLIP_PCA = "results/{source}/seed{seed}/clip_pca.parquet"  # clip PCA and the mean frame at equal memory
TRAJECTORIES = f"{CELL}/trajectories_T{{T}}_{{which}}.zarr"
STUDENT = f"{CELL}/student_{{student_variant}}_T{{T}}.pt"  # one per (seed, T, variant of `student.variants`)
STUDENT_LOSS = f"{CELL}/student_{{student_variant}}_T{{T}}_loss.parquet"
ONLINE = f"{CELL}/online_{{student_variant}}_T{{T}}.parquet"
SOURCE_LOGS = "logs/{source}/seed{seed}"
SOURCE_BENCHMARKS = "benchmarks/{source}/seed{seed}"
LOGS = f"{SOURCE_LOGS}/d{{dim}}/{{variant}}"
BENCHMARKS = f"{SOURCE_BENCHMARKS}/d{{dim}}/{{variant}}"

TEACHER = config["teacher"]
LEVELS = TEACHER["levels"]
ABLATION_VARIANTS = config["ablation"]["variants"]
ABLATION_DIMS = config["ablation"]["dims"]
PAPER_SWEEP = config["paper_sweep"]
STUDENT_CONFIG = config["student"]
# The ablation, the paper sweep, Figures 2-3 and 6 and Tables 1-2 are of this source's results.
PAPER_SOURCE = "mnist"


def _source_grid(name):
    """A source's grid: its entry in `sources`, each key unset there taken from the top-level settings."""
    entry = config["sources"][name] or {}
    variant = entry.get("teacher_variant", TEACHER["variant"])
    return {
        "seeds": entry.get("seeds", config["seeds"]),
        "dims": entry.get("dims", config["dims"]),
        "T": entry.get("T", config["evaluation"]["T"]),
        "variant": variant,
        # the teacher variants trained and reported on this source: its default first, then `variants`
        "variants": [variant] + [v for v in entry.get("variants", []) if v != variant],
        "levels": entry.get("levels", LEVELS),
        "canonical_test": entry.get("canonical_test"),
    }


SOURCES = {name: _source_grid(name) for name in config["sources"]}
# The paper source's grid: what the ablation and the paper sweep run beside.
SEEDS, DIMS, TS = (SOURCES.get(PAPER_SOURCE, {}).get(key, []) for key in ("seeds", "dims", "T"))
VARIANT = SOURCES.get(PAPER_SOURCE, {}).get("variant", TEACHER["variant"])
# The students' sources: per source its student d, T and trained variants (`student.sources.<source>`, each key
# unset there taken from student.dim, T, train); they distil the source's teacher (its teacher_variant).
STUDENT_SOURCES = {
    name: {key: (entry or {}).get(key, STUDENT_CONFIG[key]) for key in ("dim", "T", "train")}
    for name, entry in STUDENT_CONFIG["sources"].items()
}


def autoencoder_ks(source, dims=None, Ts=None):
    """The per-frame references keep k = d // T numbers per frame (at most a frame's pixels; k = 0 is the mean
    frame, which per-frame PCA shows): one per-frame autoencoder per (source, seed, k)."""
    pixels = frame_shape(source).pixels
    dims, Ts = dims or SOURCES[source]["dims"], Ts or SOURCES[source]["T"]
    return sorted({min(d // T, pixels) for d in dims for T in Ts} - {0})


# Clip PCA and the mean frame: the references of a source whose frames share content (not mnist's).
CLIP_PCA_SOURCES = [name for name in SOURCES if name != PAPER_SOURCE]
# Those sources' own report (imfn/report/source.py): a table per d beside every reference, MSE against T, MSE
# per position, and a strip of one held-out clip of STRIP_T frames (or its longest T) through every model.
STRIP_T = 32
SOURCE_TABLE = "results/tables/{source}.md"
SOURCE_FIGURES = [f"results/figures/{{source}}_{name}.{ext}" for name in ("mse_vs_T", "per_position", "strip")
                  for ext in ("png", "pdf")]
SOURCE_REPORTS = [path.format(source=name) for name in CLIP_PCA_SOURCES for path in [SOURCE_TABLE, *SOURCE_FIGURES]]

# --- The end-to-end sequence compressors (Transformer, Mamba; method.md section 5) ------------------
COMPRESSORS = config["compressors"]
# Per source: its d and T (`compressors.sources.<source>`, falling back to compressors.dim and T).
COMPRESSOR_SOURCES = {
    name: {key: (entry or {}).get(key, COMPRESSORS[key]) for key in ("dim", "T")}
    for name, entry in COMPRESSORS["sources"].items()
} if COMPRESSORS["models"] else {}
# Tables 1-2 and Figure 6 are of the paper source, at its d and T.
PAPER_COMPRESSORS = COMPRESSOR_SOURCES.get(PAPER_SOURCE, {key: COMPRESSORS[key] for key in ("dim", "T")})
COMPRESSOR = "results/{source}/seed{seed}/d{dim}/compressor_{model}.pt"
COMPRESSOR_LOSS = "results/{source}/seed{seed}/d{dim}/compressor_{model}_loss.parquet"
COMPRESSOR_ROUNDTRIP = "results/{source}/seed{seed}/d{dim}/compressor_{model}_roundtrip.parquet"
COMPRESSOR_LOGS = f"{SOURCE_LOGS}/d{{dim}}"
COMPRESSOR_BENCHMARKS = f"{SOURCE_BENCHMARKS}/d{{dim}}"
COMPRESSOR_TABLE1 = "results/tables/table1_compressors.md"
COMPRESSOR_TABLE2 = "results/tables/table2_params.md"
COMPRESSOR_FIGURES = expand("results/figures/fig6_sequence.{ext}", ext=["png", "pdf"])
COMPRESSOR_REPORT = [COMPRESSOR_TABLE1, COMPRESSOR_TABLE2, *COMPRESSOR_FIGURES] \
    if PAPER_SOURCE in COMPRESSOR_SOURCES else []
COMPRESSOR_OUTPUTS = COMPRESSOR_REPORT + (["results/metrics/compressors.parquet"] if COMPRESSOR_SOURCES else [])

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
VIDEO_MEMORY = VIDEO["model"]["memory_tokens"] * VIDEO["model"]["width"]  # the numbers one memory holds
# On moving_mnist, Table 3 sets the source's tree and clip PCA at the video memory beside every level.
VIDEO_SEQUENCE_REFERENCES = ["results/metrics/teacher.parquet", "results/metrics/clip_pca.parquet"] \
    if VIDEO["dataset"] == "moving_mnist" else []


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
                         ext=["png", "pdf"]) + ["results/tables/student.md"] \
    if any(setting["T"] for setting in STUDENT_SOURCES.values()) else []
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
GROUP_LEVEL = "level_{source}_s{seed}_d{dim}_{variant}_L{level}"  # a level's bank, then its sweeper
GROUP_ROUNDTRIPS = "roundtrips_{source}_s{seed}_d{dim}_{variant}"  # a cell's roundtrips at every T
GROUP_TRAJECTORIES = "trajectories_{source}_s{seed}_d{dim}_{variant}_T{T}"  # a student's training and test sets
GROUP_ONLINE = "online_{source}_s{seed}_d{dim}_{variant}_T{T}"  # the online evaluation of its students (all variants)

# The levels of a cell train one after another, and its students (trajectories, training, evaluation) come
# after the last: the longest chain of the run. Its jobs go first when several are ready, so that the jobs
# that wait on nothing (the per-frame autoencoders, video, compressors) fill the idle cores at the end
# instead of the chain running alone.
CHAIN_PRIORITY = 10

wildcard_constraints:
    source="|".join(re.escape(name) for name in SOURCES),
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
def _check_sources():
    """Every source is known, runs a grid its teacher can reach, and a canonical test file has its layout."""
    unknown = sorted(set(SOURCES) - set(KNOWN_SOURCES))
    if unknown:
        raise ValueError(f"config sources names {unknown}; the sources are {list(KNOWN_SOURCES)}")
    if PAPER_SOURCE not in SOURCES:
        raise ValueError(f"config sources must hold {PAPER_SOURCE}: the ablation, the paper sweep and Figures 2-3 "
                         "and 6 are of its results")
    for name, grid_ in SOURCES.items():
        if grid_["levels"] > LEVELS:
            raise ValueError(f"config sources.{name}.levels={grid_['levels']} is more than teacher.levels={LEVELS}")
        too_long = [T for T in grid_["T"] if int(math.log2(T)) > grid_["levels"]]
        if too_long:
            raise ValueError(f"config T {too_long} of source {name} need more than its {grid_['levels']} teacher "
                             "levels")
        canonical = grid_["canonical_test"]
        if canonical is None:
            continue
        if name != "moving_mnist":
            raise ValueError(f"config sources.{name}.canonical_test: a canonical test file is for moving_mnist only")
        moving_mnist.open_canonical(canonical)  # its layout, before any job runs
        too_long = [T for T in grid_["T"] if T > moving_mnist.CANONICAL_FRAMES]
        if too_long:
            raise ValueError(f"config sources.{name}: T {too_long} with canonical_test {canonical}, whose sequences "
                             f"hold {moving_mnist.CANONICAL_FRAMES} frames (T up to 16)")


def _check_config():
    unknown = sorted({VARIANT, *(v for g in SOURCES.values() for v in g["variants"]), *ABLATION_VARIANTS,
                      *PAPER_SWEEP["variants"]} - set(TEACHER["variants"]))
    if unknown:
        raise ValueError(f"config names teacher variants {unknown} that teacher.variants does not define "
                         f"(defined: {sorted(TEACHER['variants'])})")
    for name in TEACHER["variants"]:
        epochs = variant_settings(name)["epochs"]
        if isinstance(epochs, list) and len(epochs) != LEVELS:
            raise ValueError(f"config teacher.epochs of variant {name!r} lists {len(epochs)} values "
                             f"but teacher.levels is {LEVELS}")
    if TEACHER["bank_size"] is not None and TEACHER["zero_padded"] >= TEACHER["bank_size"]:
        raise ValueError(f"config teacher.zero_padded={TEACHER['zero_padded']} must be less than teacher.bank_size="
                         f"{TEACHER['bank_size']}: a bank's zero-padded rows are some of its rows")
    deepest = max(entry["levels"] for entry in SOURCES.values()) - 1
    if TEACHER["bank_frames"] is not None and TEACHER["bank_frames"] // 2 ** (deepest + 1) < 2:
        raise ValueError(f"config teacher.bank_frames={TEACHER['bank_frames']} leaves the level-{deepest} bank fewer "
                         f"than 2 sequences of {2 ** (deepest + 1)} frames")


def _check_students():
    """Every student source runs, has a teacher at its student d that reaches its T, and trains defined variants."""
    for name, setting in STUDENT_SOURCES.items():
        if name not in SOURCES:
            raise ValueError(f"config student.sources names {name}, which is not one of sources {list(SOURCES)}")
        grid_, where = SOURCES[name], f"config student (source {name})"
        if setting["T"] and setting["dim"] not in grid_["dims"]:
            raise ValueError(f"{where}: d={setting['dim']} is not one of {name}'s dims {grid_['dims']}: no teacher to "
                             "distill")
        unknown = sorted(set(setting["train"]) - set(STUDENT_CONFIG["variants"]))
        if unknown:
            raise ValueError(f"{where}: student.train names student variants {unknown} that student.variants does "
                             f"not define (defined: {sorted(STUDENT_CONFIG['variants'])})")
        too_long = [T for T in setting["T"] if int(math.log2(T)) > grid_["levels"]]
        if too_long:
            raise ValueError(f"{where}: student.T has {too_long}, which need more than {name}'s {grid_['levels']} "
                             "teacher levels")


def _check_compressors():
    problems = []
    for name, setting in COMPRESSOR_SOURCES.items():
        if name not in SOURCES:
            problems.append(f"compressors.sources names {name}, which is not one of sources {list(SOURCES)}")
            continue
        grid_ = SOURCES[name]
        if not set(COMPRESSORS["seeds"]) <= set(grid_["seeds"]):
            problems.append(f"compressors.seeds {COMPRESSORS['seeds']} are not all in {name}'s seeds {grid_['seeds']}")
        if setting["dim"] not in grid_["dims"]:
            problems.append(f"the compressors' d={setting['dim']} on {name} is not one of its dims {grid_['dims']}")
        if setting["T"] not in grid_["T"]:
            problems.append(f"the compressors' T={setting['T']} on {name} is not one of its T {grid_['T']}")
    if problems:
        raise ValueError("config: " + "; ".join(problems) + " (the compressors are compared with the teacher there)")


LINEAR_PATH_WEIGHTS = 50_000_000  # the most weights one linear map of video.model.linear_path may hold


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
    channels = 1 if VIDEO["dataset"] == "moving_mnist" else 3
    weights = 2 * channels * VIDEO["frame_size"] ** 2 * VIDEO_MEMORY  # level 0's linear merge (and its inverter)
    if VIDEO["model"]["linear_path"] and weights > LINEAR_PATH_WEIGHTS:
        raise ValueError(f"config video.model.linear_path: level 0's linear maps would hold {weights:,} weights each "
                         f"(2 frames x {channels} x {VIDEO['frame_size']}^2 pixels x {VIDEO_MEMORY} memory numbers), "
                         f"more than {LINEAR_PATH_WEIGHTS:,}; it is meant for small frames and memories such as "
                         "moving_mnist's 64x64 grayscale at 4 x 64 tokens (2.1M)")
    if VIDEO["dataset"] == "moving_mnist":
        windows = [2 ** (level + 1) for level in range(VIDEO_LEVELS)]
        grid_ = SOURCES.get("moving_mnist")
        if grid_ is None or VIDEO["seed"] not in grid_["seeds"] or VIDEO_MEMORY not in grid_["dims"] \
                or not set(windows) <= set(grid_["T"]):
            raise ValueError(
                f"config video.dataset moving_mnist: Table 3 sets the moving_mnist tree and clip PCA beside every "
                f"level, so sources.moving_mnist must run seed video.seed={VIDEO['seed']}, d = video.model."
                f"memory_tokens x width = {VIDEO_MEMORY} and T {windows}"
                + (f" (it runs seeds {grid_['seeds']}, dims {grid_['dims']}, T {grid_['T']})" if grid_ else ""))
        if VIDEO["frame_size"] != frame_shape("moving_mnist").height:
            raise ValueError(f"config video.frame_size={VIDEO['frame_size']}: moving_mnist frames are "
                             f"{frame_shape('moving_mnist').height} pixels square, and they are not resized")


_check_config()
_check_sources()
_check_students()
_check_compressors()
_check_video_config()


# --- The sequences a job reads ----------------------------------------------------------------------
def sequence_inputs(w, held_out=True):
    """What `imfn`'s SEQUENCES flags of source ``w.source`` read: the MNIST store, the seed's split and, for a job
    that reads the held-out part, the source's canonical test file if one is configured."""
    inputs = {"mnist": MNIST, "split": SPLIT.format(seed=w.seed)}
    canonical = SOURCES[w.source]["canonical_test"]
    if held_out and canonical is not None:
        inputs["canonical"] = canonical
    return inputs


def training_sequence_inputs(w):
    return sequence_inputs(w, held_out=False)


def sequence_flags(w, held_out=True):
    """`--source --mnist --split [--canonical-test]`: the sequences of :func:`sequence_inputs`."""
    inputs = sequence_inputs(w, held_out)
    return (f"--source {w.source} --mnist {inputs['mnist']} --split {inputs['split']}"
            + (f" --canonical-test {inputs['canonical']}" if "canonical" in inputs else ""))


def training_sequence_flags(w):
    return sequence_flags(w, held_out=False)


def source_list(w, key):
    """A source's dims or T, as space-separated flag values."""
    return " ".join(map(str, SOURCES[w.source][key]))


# --- Teacher and student inputs ---------------------------------------------------------------------
def bank_path(source, seed, dim, variant, level):
    """Level 0's bank holds frame pairs and is shared by every d and variant; higher banks hold d-dim codes."""
    level = int(level)
    if level == 0:
        return IMAGE_BANK.format(source=source, seed=seed)
    return LATENT_BANK.format(source=source, seed=seed, dim=dim, variant=variant, level=level)


def sweeper_paths(source, seed, dim, variant, levels):
    return [SWEEPER.format(source=source, seed=seed, dim=dim, variant=variant, level=level) for level in range(levels)]


def lower_levels(w):
    """The checkpoints of the levels below ``w.level``."""
    return sweeper_paths(w.source, w.seed, w.dim, w.variant, int(w.level))


def train_inputs(w):
    """A level trains on its bank; with a depth decoder it also reads the training sequences and the levels below."""
    inputs = {"bank": bank_path(w.source, w.seed, w.dim, w.variant, w.level)}
    if variant_settings(w.variant)["decoder"]["epochs"] > 0:
        inputs |= training_sequence_inputs(w)
        inputs["lower"] = lower_levels(w)
    return inputs


def decoder_inputs(w):
    """The sequences' flags and `--lower` for a variant with depth decoders (nothing without them)."""
    inputs = train_inputs(w)
    if "lower" not in inputs:
        return ""
    lower = " ".join(inputs["lower"])
    return training_sequence_flags(w) + (f" --lower {lower}" if lower else "")


def teacher_for_T(w):
    """The teacher levels a sequence of length T goes through."""
    return sweeper_paths(w.source, w.seed, w.dim, w.variant, int(math.log2(int(w.T))))


# --- Target lists -----------------------------------------------------------------------------------
def cells(source, variants, dims, seeds):
    return [dict(source=source, seed=s, dim=d, variant=v) for v in variants for s in seeds for d in dims]


def grid(pattern, source=PAPER_SOURCE, variants=None, dims=None, seeds=None):
    """``pattern`` over a source's seeds x dims x variants (unset: the source's grid and teacher variants), and
    over its levels / T when it has those wildcards."""
    config_ = SOURCES[source]
    cells_ = cells(source, variants or config_["variants"], dims or config_["dims"], seeds or config_["seeds"])
    if "{level}" in pattern:
        return [pattern.format(**c, level=l) for c in cells_ for l in range(config_["levels"])]
    if "{T}" in pattern:
        return [pattern.format(**c, T=T) for c in cells_ for T in config_["T"]]
    return [pattern.format(**c) for c in cells_]


def source_grids(pattern):
    """:func:`grid` of every source, each at its own grid."""
    return [path for source in SOURCES for path in grid(pattern, source)]


def per_source_seed(pattern, sources=None):
    """``pattern`` (wildcards source and seed) for every seed of each of ``sources`` (unset: all)."""
    return [pattern.format(source=source, seed=seed) for source in (sources or SOURCES)
            for seed in SOURCES[source]["seeds"]]


def autoencoder_roundtrips():
    return [AUTOENCODER_ROUNDTRIP.format(source=source, seed=seed, k=k) for source in SOURCES
            for seed in SOURCES[source]["seeds"] for k in autoencoder_ks(source)]


def paper_sweep_grid(pattern):
    """``pattern`` over the paper sweep's variants at its one seed and d."""
    return grid(pattern, PAPER_SOURCE, PAPER_SWEEP["variants"], [PAPER_SWEEP["dim"]], [PAPER_SWEEP["seed"]])


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
    ks = autoencoder_ks(PAPER_SOURCE, [PAPER_SWEEP["dim"]])
    return [AUTOENCODER_ROUNDTRIP.format(source=PAPER_SOURCE, seed=PAPER_SWEEP["seed"], k=k) for k in ks]


def student_grid(pattern):
    """``pattern`` over each student source's seeds x its student T x its trained student variants, for the source's
    teacher at its student d."""
    return [pattern.format(source=source, seed=s, dim=setting["dim"], variant=SOURCES[source]["variant"], T=T,
                           student_variant=name)
            for source, setting in STUDENT_SOURCES.items()
            for s in SOURCES[source]["seeds"] for T in setting["T"] for name in setting["train"]]


def trajectories_n(wildcards):
    """Sequences in a trajectory set: `student.train_frames` or `test_frames` frames, T per sequence."""
    return max(1, STUDENT_CONFIG[f"{wildcards.which}_frames"] // int(wildcards.T))


def student_flags(wildcards):
    """`imfn train-student` flags: the shared budget `student.training` with the student variant's settings."""
    return flags({**STUDENT_CONFIG["training"], **STUDENT_CONFIG["variants"][wildcards.student_variant]})


def compressor_grid(pattern, sources=None):
    """``pattern`` over the compressors' seeds and models on each of ``sources`` (unset: all of theirs)."""
    return [pattern.format(source=source, seed=s, dim=COMPRESSOR_SOURCES[source]["dim"], model=m)
            for source in (sources or COMPRESSOR_SOURCES) for s in COMPRESSORS["seeds"] for m in COMPRESSORS["models"]]


def compressor_setting(w, key):
    """The compressors' d or T on source ``w.source``."""
    return COMPRESSOR_SOURCES[w.source][key]


def metric_inputs(w):
    """The files one tidy table under results/metrics concatenates (every source's rows, with a source column)."""
    return {
        "teacher": source_grids(ROUNDTRIP),
        "teacher_health": source_grids(SWEEPER_HEALTH),
        "teacher_ablation": grid(ROUNDTRIP, PAPER_SOURCE, ABLATION_VARIANTS, ABLATION_DIMS),
        "teacher_ablation_health": grid(SWEEPER_HEALTH, PAPER_SOURCE, ABLATION_VARIANTS, ABLATION_DIMS),
        "paper_sweep": paper_sweep_grid(ROUNDTRIP),
        "paper_sweep_health": paper_sweep_grid(SWEEPER_HEALTH),
        "pca": per_source_seed(PCA_ROUNDTRIP),
        "autoencoder": autoencoder_roundtrips(),
        "clip_pca": per_source_seed(CLIP_PCA, CLIP_PCA_SOURCES),
        "student": student_grid(ONLINE),
        "compressors": compressor_grid(COMPRESSOR_ROUNDTRIP),
    }[w.table]


def strip_T(source):
    """The clip length of a source's strip figure: STRIP_T if the source evaluates it, else its longest T."""
    Ts = SOURCES[source]["T"]
    return STRIP_T if STRIP_T in Ts else max(Ts)


def source_report_inputs(w):
    """The metric tables, and the checkpoints the strip reads: every teacher variant at the source's first seed and
    d, the per-frame autoencoder of k = d // T there, and the compressors trained on the source at that (d, T)."""
    grid_ = SOURCES[w.source]
    seed, dim, T = grid_["seeds"][0], grid_["dims"][0], strip_T(w.source)
    cell = dict(source=w.source, seed=seed, dim=dim)
    k = min(dim // T, frame_shape(w.source).pixels)
    compressor = COMPRESSOR_SOURCES.get(w.source)
    return {
        "metrics": [f"results/metrics/{name}.parquet" for name in ("teacher", "pca", "autoencoder", "clip_pca")]
        + (["results/metrics/compressors.parquet"] if compressor else []),
        "sweepers": [SWEEPER.format(**cell, variant=v, level=level) for v in grid_["variants"]
                     for level in range(int(math.log2(T)))],
        "autoencoder": [AUTOENCODER.format(source=w.source, seed=seed, k=k)] if k else [],
        "pca": [FRAME_PCA.format(source=w.source, seed=seed)],
        "compressors": [COMPRESSOR.format(source=w.source, seed=seed, dim=dim, model=m) for m in COMPRESSORS["models"]]
        if compressor and compressor["dim"] == dim and compressor["T"] == T and seed in COMPRESSORS["seeds"] else [],
        **sequence_inputs(dict_wildcards(w.source, seed)),
    }


def dict_wildcards(source, seed):
    """Wildcards-like object for :func:`sequence_inputs` outside a rule of those wildcards."""
    return types.SimpleNamespace(source=source, seed=seed)


def source_report_flags(w):
    grid_ = SOURCES[w.source]
    seed, dim = grid_["seeds"][0], grid_["dims"][0]
    cells_ = " ".join(CELL.format(source=w.source, seed=seed, dim=dim, variant=v) for v in grid_["variants"])
    return (f"{sequence_flags(dict_wildcards(w.source, seed))} --seed {seed} --T {strip_T(w.source)}"
            f" --teachers {cells_}")


def video_source(wildcards):
    """What video_clips reads: nothing of the pipeline's for footage, the MNIST store and the split of video.seed
    for moving_mnist. Asking for the video branch without UCF-101 stops here, before any job."""
    if VIDEO_LEFT_OUT:
        raise WorkflowError(VIDEO_LEFT_OUT)
    if VIDEO["dataset"] == "moving_mnist":
        return {"mnist": MNIST, "split": SPLIT.format(seed=VIDEO["seed"])}
    return {}


def video_source_flags(wildcards, input):
    """`imfn video-clips` flags of the dataset: the root (ucf101), or the sequences and how many (moving_mnist)."""
    if VIDEO["dataset"] == "ucf101":
        return optional("--root", VIDEO["root"])
    if VIDEO["dataset"] == "moving_mnist":
        return (f"--mnist {input.mnist} --split {input.split} --clips {VIDEO['clips']}"
                f" --validation-fraction {VIDEO['validation_fraction']}")
    return ""


def video_levels_up_to(level):
    return [VIDEO_LEVEL.format(level=l) for l in range(int(level))]


# --- Reporting and provenance -----------------------------------------------------------------------
def reported(paths, category, subcategory=None):
    """Mark the PNG figures and Markdown tables among ``paths`` (one path or a list) for `snakemake --report`,
    each with its caption workflow/report/<file stem>.rst, `{source}` read as `source` (the PDFs are the same figures,
    left out of the report)."""
    def caption(path):  # (a line may not start with `report`: the parser takes it for the directive)
        stem = os.path.basename(path).rsplit(".", 1)[0].replace("{source}", "source")  # one caption for every source
        return f"../report/{stem}.rst"

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
