# Paths, wildcard constraints, config checks beyond the schema, and input functions.
import math

wildcard_constraints:
    seed=r"\d+",
    dim=r"\d+",
    level=r"\d+",
    T=r"\d+",

MNIST = "resources/mnist.zarr"
SPLIT = "results/mnist/seed{seed}/split.parquet"
IMAGE_BANK = "results/mnist/seed{seed}/bank_L0.zarr"
LATENT_BANK = "results/mnist/seed{seed}/d{dim}/bank_L{level}.zarr"
SWEEPER = "results/mnist/seed{seed}/d{dim}/sweeper_L{level}.pt"
SWEEPER_LOSS = "results/mnist/seed{seed}/d{dim}/sweeper_L{level}_loss.parquet"
ROUNDTRIP = "results/mnist/seed{seed}/d{dim}/roundtrip_T{T}.parquet"
TEACHER_METRICS = "results/metrics/teacher.parquet"
TEACHER_FIGURES = expand("results/figures/{name}.{ext}", name=["fig2_mse_vs_dim", "fig3_mse_vs_T"], ext=["png", "pdf"])

TEACHER = config["teacher"]
LEVELS = TEACHER["levels"]
# Every level is trained, even one no evaluated T reaches (the paper's 9th sweeper at T <= 256).
ALL_SWEEPERS = expand(SWEEPER, seed=config["seeds"], dim=config["dims"], level=range(LEVELS))


def _check_config():
    epochs = TEACHER["epochs"]
    if isinstance(epochs, list) and len(epochs) != LEVELS:
        raise ValueError(f"config teacher.epochs lists {len(epochs)} values but teacher.levels is {LEVELS}")
    too_long = [T for T in config["evaluation"]["T"] if int(math.log2(T)) > LEVELS]
    if too_long:
        raise ValueError(f"config evaluation.T has {too_long}, which need more than teacher.levels={LEVELS} levels")


_check_config()


def epochs_for(level):
    epochs = TEACHER["epochs"]
    return epochs[int(level)] if isinstance(epochs, list) else epochs


def bank_path(seed, dim, level):
    """Level 0's bank holds images and is shared by every d; higher banks hold d-dim codes."""
    level = int(level)
    if level == 0:
        return IMAGE_BANK.format(seed=seed)
    return LATENT_BANK.format(seed=seed, dim=dim, level=level)


def bank_for(wildcards):
    return bank_path(wildcards.seed, wildcards.dim, wildcards.level)


def sweepers_for_T(wildcards):
    depth = int(math.log2(int(wildcards.T)))
    return [SWEEPER.format(seed=wildcards.seed, dim=wildcards.dim, level=level) for level in range(depth)]


def optional(flag, value):
    """A command-line flag, or nothing when the config value is null."""
    return "" if value is None else f"{flag} {value}"
