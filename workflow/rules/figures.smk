rule figures:
    """Figures 2 and 3 (beside the per-frame autoencoder) and the teacher's level health, from results/metrics alone."""
    localrule: True
    input:
        "results/metrics/teacher.parquet",
        "results/metrics/teacher_health.parquet",
        "results/metrics/autoencoder.parquet",
    output:
        reported(TEACHER_FIGURES, "Teacher"),
    log:
        "logs/figures.log",
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn figures --results results --log {log}"


rule ablation_report:
    """Variant x T ablation table and figure per d of `ablation.dims`, beside the per-frame autoencoder and PCA."""
    localrule: True
    input:
        ablation_inputs,
    output:
        reported(ABLATION_OUTPUTS, "Teacher ablation"),
    log:
        "logs/ablation_report.log",
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn ablation-report --results results --log {log}"


rule paper_sweep_report:
    """The paper variant with its lost values changed (config `paper_sweep`): MSE per T and each level's loss,
    beside the sweep seed's per-frame references."""
    localrule: True
    input:
        unpack(paper_sweep_inputs),
    output:
        table=reported(PAPER_SWEEP_OUTPUTS[0], "Paper variant sweep"),
        figures=reported(PAPER_SWEEP_OUTPUTS[1:], "Paper variant sweep"),
    log:
        "logs/paper_sweep_report.log",
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn paper-sweep-report --sweep {input.sweep} --health {input.health} --autoencoder {input.autoencoders}"
        " --pca {input.pca} --out {output.table} --figure-dir results/figures --log {log}"


rule student_figures:
    """Figures 4 and 5 from results/metrics alone: the students, their teacher, the streaming per-frame references."""
    localrule: True
    input:
        "results/metrics/student.parquet",
        "results/metrics/autoencoder.parquet",
        "results/metrics/pca.parquet",
    output:
        reported(STUDENT_FIGURES, "Student"),
    log:
        "logs/student_figures.log",
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn student-figures --results results --log {log}"


rule source_report:
    """A source whose frames share content: its table per d beside every reference at equal memory (the teacher's
    ratios to the per-frame autoencoder and clip PCA, its growth in T), MSE against T, MSE per position, and one
    held-out clip through every model."""
    input:
        unpack(source_report_inputs),
    output:
        table=reported(SOURCE_TABLE, "Sequence sources", "{source}"),
        figures=reported(SOURCE_FIGURES, "Sequence sources", "{source}"),
    log:
        "logs/{source}/source_report.log",
    threads: config["threads"]["eval"]
    params:
        flags=source_report_flags,
        fit_clips=config["reference"]["clip_pca"]["fit_clips"],
        autoencoder=lambda w, input: optional("--autoencoder", input.autoencoder[0] if input.autoencoder else None),
        compressors=lambda w, input: " ".join(input.compressors),
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn source-report --metrics {input.metrics} {params.flags} --pca {input.pca} {params.autoencoder}"
        " --fit-clips {params.fit_clips} --compressors {params.compressors} --table {output.table}"
        " --figures results/figures --threads {threads} --log {log}"
