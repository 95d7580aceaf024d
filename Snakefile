# IMFN reference pipeline. Paper grid:   snakemake --cores all --resources gpu=4
# CPU-sized run:                          snakemake --cores all --configfile config/quick.yaml
import os

from snakemake.utils import min_version, validate

min_version("9.0")

configfile: os.path.join(workflow.basedir, "config/config.yaml")

include: "workflow/rules/renamed_keys.py"

check_renamed_keys(config)  # before the schema: a renamed key gets a message naming its new name
validate(config, schema="workflow/schemas/config.schema.yaml")

report: "workflow/report/workflow.rst"

# Inside a cluster allocation (a job Snakemake submitted), a group's GPU jobs share the allocation's one GPU,
# one after another: the same pool of 1 the SLURM profile gives each group (`resources: gpu: 1`, local),
# which Snakemake does not pass on to the jobs it submits.
if workflow.remote_exec and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", 1)

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
    (sources other than mnist) clip PCA and the mean frame; Figures 2-3 (mnist); the students and Figures 4-5
    (mnist); the Transformer and Mamba compressors on each source of compressors.sources, with Tables 1-2 and
    Figure 6 (mnist); the video hierarchy's Table 3 and reconstruction figure (left out, with a note, when
    video.root is not on disk)."""
    default_target: True
    input:
        source_grids(SWEEPER),
        "results/metrics/teacher.parquet",
        "results/metrics/pca.parquet",
        "results/metrics/autoencoder.parquet",
        ["results/metrics/clip_pca.parquet"] if CLIP_PCA_SOURCES else [],
        SOURCE_REPORTS,
        TEACHER_FIGURES,
        STUDENT_FIGURES,
        COMPRESSOR_OUTPUTS,
        [] if VIDEO_LEFT_OUT else VIDEO_OUTPUTS,
        TIME_SUMMARY,


rule ablation:
    """Teacher variants compared at each d of `ablation.dims`, beside the per-frame references (config `ablation`)."""
    input:
        ABLATION_OUTPUTS,


rule paper_sweep:
    """The paper variant with the lost values of config `paper_sweep` changed, at its seed and d (method.md 3b)."""
    input:
        PAPER_SWEEP_OUTPUTS,
