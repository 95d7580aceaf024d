# IMFN reference pipeline. Paper grid:   snakemake --cores all --resources gpu=4
# CPU-sized run:                          snakemake --cores all --configfile config/quick.yaml
import os

from snakemake.utils import min_version

from imfn.experiment import Experiment

min_version("9.0")

configfile: os.path.join(workflow.basedir, "config/config.yaml")

# The experiment the config describes: renamed keys, the schema (workflow/schemas/config.schema.yaml) and every
# cross-field check, before any job; the rules read its grids and roles (imfn/experiment/).
EXPERIMENT = Experiment.from_config(config)

report: "workflow/report/workflow.rst"

# Inside a cluster allocation (a job Snakemake submitted), a group's GPU jobs share the allocation's one GPU,
# one after another: the same pool of 1 the SLURM profile gives each group (`resources: gpu: 1`, local),
# which Snakemake does not pass on to the jobs it submits.
if workflow.remote_exec and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", 1)

include: "workflow/rules/paths.smk"
include: "workflow/rules/common.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/student.smk"
include: "workflow/rules/compressors.smk"
include: "workflow/rules/video.smk"
include: "workflow/rules/figures.smk"


rule all:
    """For every sequence source of `sources`: the teacher over its grid (every level of the source, even one no
    evaluated T reaches), its metrics and health, per-frame PCA and the per-frame autoencoder at equal memory, and
    (sources whose frames share content) clip PCA, the mean frame and the source's report; Figures 2-3 (the
    paper's source); the students and Figures 4-5; the Transformer and Mamba compressors on each source of
    compressors.sources, with Tables 1-2 and Figure 6 (the paper's source); the video hierarchy's Table 3 and
    reconstruction figure (left out, with a note, when video.root is not on disk)."""
    default_target: True
    input:
        source_grids(SWEEPER),
        "results/metrics/teacher.parquet",
        "results/metrics/pca.parquet",
        "results/metrics/autoencoder.parquet",
        ["results/metrics/clip_pca.parquet"] if EXPERIMENT.moving_sources else [],
        SOURCE_REPORTS,
        TEACHER_FIGURES,
        STUDENT_FIGURES,
        COMPRESSOR_OUTPUTS,
        [] if EXPERIMENT.video.left_out else VIDEO_OUTPUTS,
        TIME_SUMMARY,


rule ablation:
    """Teacher variants compared at each d of `ablation.dims`, beside the per-frame references (config `ablation`)."""
    input:
        ABLATION_OUTPUTS,


rule paper_sweep:
    """The paper variant with the lost values of config `paper_sweep` changed, at its seed and d (method.md 3b)."""
    input:
        PAPER_SWEEP_OUTPUTS,
