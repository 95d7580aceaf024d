# Every path the workflow writes, the named lists of outputs, the job groups and the wildcard constraints (the
# functions that fill them in are common.smk's). Paths are f-strings, in which `{{level}}` stays a wildcard.
import re
import sys

# How every network job computes (imfn/devices.py): the device, and bf16 autocast + TF32 on CUDA.
DEVICE = f"--device {config['device']} --mixed-precision {str(config['mixed_precision']).lower()}"
SOURCES = EXPERIMENT.sources
PAPER = EXPERIMENT.paper  # the grid the paper's figures, Tables 1-2, the ablation and the sweep are of (or None)
TEACHER = config["teacher"]
STUDENT_CONFIG = config["student"]
COMPRESSORS = config["compressors"]
VIDEO = config["video"]

# --- Sequence sources, MNIST and the teacher ------------------------------------------------------
# Every result of a sequence source lies under results/{source}/...; the split is the digits' split of a seed,
# shared by every source, and lies with mnist's results.
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
# A source whose frames share content gets its own report: a table per d beside every reference at equal memory,
# MSE against T, MSE per position, and a strip of one held-out clip (imfn/report/source.py).
SOURCE_TABLE = "results/tables/{source}.md"
SOURCE_FIGURES = [f"results/figures/{{source}}_{name}.{ext}" for name in ("mse_vs_T", "per_position", "strip")
                  for ext in ("png", "pdf")]
SOURCE_REPORTS = [path.format(source=name) for name in EXPERIMENT.moving_sources
                  for path in [SOURCE_TABLE, *SOURCE_FIGURES]]

# --- The end-to-end sequence compressors (Transformer, Mamba; method.md section 5) ------------------
COMPRESSOR = "results/{source}/seed{seed}/d{dim}/compressor_{model}.pt"
COMPRESSOR_LOSS = "results/{source}/seed{seed}/d{dim}/compressor_{model}_loss.parquet"
COMPRESSOR_ROUNDTRIP = "results/{source}/seed{seed}/d{dim}/compressor_{model}_roundtrip.parquet"
COMPRESSOR_LOGS = f"{SOURCE_LOGS}/d{{dim}}"
COMPRESSOR_BENCHMARKS = f"{SOURCE_BENCHMARKS}/d{{dim}}"
COMPRESSOR_FIGURES = expand("results/figures/fig6_sequence.{ext}", ext=["png", "pdf"])
COMPRESSOR_REPORT = ["results/tables/table1_compressors.md", "results/tables/table2_params.md", *COMPRESSOR_FIGURES]
# Tables 1-2 and Figure 6 are of the paper's source, at its compressors' d and T
PAPER_COMPRESSORS = EXPERIMENT.compressors.get(PAPER.name) if PAPER else None
COMPRESSOR_OUTPUTS = (COMPRESSOR_REPORT if PAPER_COMPRESSORS else []) \
    + (["results/metrics/compressors.parquet"] if EXPERIMENT.compressors else [])

# --- The video hierarchy (method.md section 6) ------------------------------------------------------
# Paths carry the dataset (config video.dataset), so a demo run and a UCF-101 run do not overwrite each other.
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
# On a sequence source, Table 3 sets the source's tree and clip PCA at the video memory beside every level.
VIDEO_SEQUENCE_REFERENCES = ["results/metrics/teacher.parquet", "results/metrics/clip_pca.parquet"] \
    if EXPERIMENT.video.sequence_source else []
if EXPERIMENT.video.left_out and workflow.is_main_process:
    print(f"NOTE {EXPERIMENT.video.left_out}", file=sys.stderr)

# --- Figures, tables and the time summary -----------------------------------------------------------
STUDENT_FIGURES = expand("results/figures/{name}.{ext}", name=["fig4_prefix_retention", "fig5_end_of_sequence"],
                         ext=["png", "pdf"]) + ["results/tables/student.md"] \
    if any(grid.T for grid in EXPERIMENT.students.values()) else []
TEACHER_FIGURES = expand("results/figures/{name}.{ext}", name=["fig2_mse_vs_dim", "fig3_mse_vs_T", "teacher_health"],
                         ext=["png", "pdf"]) if PAPER else []
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
    model="|".join(re.escape(name) for name in COMPRESSORS["models"]) or "none",
