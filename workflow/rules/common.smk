# Paths, wildcard constraints, config checks beyond the schema, and input functions.
import math
import re

MNIST = "resources/mnist.zarr"
SPLIT = "results/mnist/seed{seed}/split.parquet"
IMAGE_BANK = "results/mnist/seed{seed}/bank_L0.zarr"
CELL = "results/mnist/seed{seed}/d{dim}/{variant}"  # one teacher: a (seed, d) grid cell trained by one variant
LATENT_BANK = CELL + "/bank_L{level}.zarr"
SWEEPER = CELL + "/sweeper_L{level}.pt"
SWEEPER_LOSS = CELL + "/sweeper_L{level}_loss.parquet"
SWEEPER_HEALTH = CELL + "/sweeper_L{level}_health.parquet"
ROUNDTRIP = CELL + "/roundtrip_T{T}.parquet"
PCA_ROUNDTRIP = "results/mnist/seed{seed}/pca_roundtrip.parquet"
TRAJECTORIES = CELL + "/trajectories_T{T}_{which}.zarr"
STUDENT = CELL + "/student_{schedule}_T{T}.pt"
STUDENT_LOSS = CELL + "/student_{schedule}_T{T}_loss.parquet"
ONLINE = CELL + "/online_{schedule}_T{T}.parquet"
LOGS = "logs/mnist/seed{seed}/d{dim}/{variant}"
BENCHMARKS = "benchmarks/mnist/seed{seed}/d{dim}/{variant}"

TEACHER = config["teacher"]
LEVELS = TEACHER["levels"]
VARIANT = TEACHER["variant"]
SEEDS, DIMS, TS = config["seeds"], config["dims"], config["evaluation"]["T"]
ABLATION_VARIANTS = config["ablation"]["variants"]
ABLATION_DIM = max(DIMS)
STUDENT_CONFIG = config["student"]

wildcard_constraints:
    seed=r"\d+",
    dim=r"\d+",
    level=r"\d+",
    T=r"\d+",
    variant="|".join(re.escape(name) for name in TEACHER["variants"]),
    which="train|test",
    schedule="paper|curriculum",


def variant_settings(name):
    """A variant's full hyperparameters: the base `training` block with its overrides."""
    return {**TEACHER["training"], **TEACHER["variants"][name]}


def _check_config():
    unknown = sorted({VARIANT, *ABLATION_VARIANTS} - set(TEACHER["variants"]))
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
    too_long = [T for T in TS + STUDENT_CONFIG["T"] if int(math.log2(T)) > LEVELS]
    if too_long:
        raise ValueError(f"config evaluation.T / student.T have {too_long}, which need more than "
                         f"teacher.levels={LEVELS} levels")


_check_config()


def epochs_for(variant, level):
    epochs = variant_settings(variant)["epochs"]
    return epochs[int(level)] if isinstance(epochs, list) else epochs


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
    if variant_settings(w.variant)["decoder_epochs"] > 0:
        inputs["image_bank"] = IMAGE_BANK.format(seed=w.seed)
        inputs["lower"] = sweeper_paths(w.seed, w.dim, w.variant, int(w.level))
    return inputs


def optional(flag, value):
    """A command-line flag, or nothing when the value is null."""
    return "" if value is None else f"{flag} {value}"


def cells(variants, dims):
    return [dict(seed=s, dim=d, variant=v) for v in variants for s in SEEDS for d in dims]


def grid(pattern, variants=(VARIANT,), dims=DIMS):
    """``pattern`` over seeds x dims x variants, and over levels / T when it has those wildcards."""
    if "{level}" in pattern:
        return [pattern.format(**c, level=l) for c in cells(variants, dims) for l in range(LEVELS)]
    if "{T}" in pattern:
        return [pattern.format(**c, T=T) for c in cells(variants, dims) for T in TS]
    return [pattern.format(**c) for c in cells(variants, dims)]


def student_grid(pattern):
    """``pattern`` over seeds x student T x schedules, for the grid's teacher at d = student.dim."""
    return [pattern.format(seed=s, dim=STUDENT_CONFIG["dim"], variant=VARIANT, T=T, schedule=schedule)
            for s in SEEDS for T in STUDENT_CONFIG["T"] for schedule in STUDENT_CONFIG["schedules"]]


def teacher_for_T(w):
    """The teacher levels a sequence of length T goes through."""
    return sweeper_paths(w.seed, w.dim, w.variant, int(math.log2(int(w.T))))


STUDENT_FIGURES = expand("results/figures/{name}.{ext}", name=["fig4_prefix_retention", "fig5_end_of_sequence"],
                         ext=["png", "pdf"]) if STUDENT_CONFIG["T"] else []
TEACHER_FIGURES = expand("results/figures/{name}.{ext}", name=["fig2_mse_vs_dim", "fig3_mse_vs_T", "teacher_health"],
                         ext=["png", "pdf"])
ABLATION_OUTPUTS = ["results/tables/teacher_ablation.md", "results/figures/teacher_ablation_mse_vs_T.png",
                    "results/figures/teacher_ablation_mse_vs_T.pdf"]


def training_flags(w):
    """`imfn train-sweeper` flags for one level of one variant."""
    s = variant_settings(w.variant)
    flags = [
        f"--variant {w.variant} --recipe {s['recipe']} --epochs {epochs_for(w.variant, w.level)} --batch-size {s['batch_size']}",
        f"--lr {s['lr']} --noise-sigma {s['noise_sigma']} --norm-penalty {s['norm_penalty']}",
        f"--codec-hidden {s['codec_hidden']}", optional("--sweeper-hidden", s["sweeper_hidden"]),
        f"--on-collapse {TEACHER['on_collapse']}",
        f"--max-unexplained-variance {TEACHER['health']['max_unexplained_variance']}",
        f"--max-dead-fraction {TEACHER['health']['max_dead_fraction']}",
    ]
    if s["decoder_epochs"] > 0:
        inputs = train_inputs(w)
        flags += [
            f"--decoder-epochs {s['decoder_epochs']} --decoder-hidden {s['decoder_hidden']}",
            f"--decoder-frames {s['decoder_frames']} --decoder-batch-size {s['decoder_batch_size']}",
            f"--decoder-lr {s['decoder_lr']} --image-bank {inputs['image_bank']}",
            "--lower " + " ".join(inputs["lower"]) if inputs["lower"] else "",
        ]
    return " ".join(flag for flag in flags if flag)
