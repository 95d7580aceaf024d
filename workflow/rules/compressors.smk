# End-to-end sequence compressors (method.md section 5): Transformer and Mamba, trained end to end at
# T frames -> d numbers on each source of compressors.sources and evaluated on the teacher's held-out sequences;
# Tables 1-2 and Figure 6 (of the paper source).


rule train_compressor:
    input:
        unpack(training_sequence_inputs),
    output:
        model=COMPRESSOR,
        loss=COMPRESSOR_LOSS,
    log:
        f"{COMPRESSOR_LOGS}/train_compressor_{{model}}.log",
    benchmark:
        f"{COMPRESSOR_BENCHMARKS}/train_compressor_{{model}}.tsv"
    params:
        sequences=training_sequence_flags,
        T=lambda w: EXPERIMENT.compressors[w.source].T,
        training=flags(COMPRESSORS["training"]),
        model=lambda w: flags(COMPRESSORS[w.model]),
        device=DEVICE,
        allow_slow_mamba="--allow-slow-mamba" if COMPRESSORS["allow_slow_mamba"] else "",
    threads: config["threads"]["train"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn train-compressor --model {wildcards.model} {params.sequences}"
        " --seed {wildcards.seed} --dim {wildcards.dim} --T {params.T} {params.training} {params.model}"
        " {params.device} {params.allow_slow_mamba} --threads {threads} --out {output.model} --loss-out {output.loss} --log {log}"


rule evaluate_compressor:
    input:
        unpack(sequence_inputs),
        model=COMPRESSOR,
    output:
        COMPRESSOR_ROUNDTRIP,
    log:
        f"{COMPRESSOR_LOGS}/evaluate_compressor_{{model}}.log",
    benchmark:
        f"{COMPRESSOR_BENCHMARKS}/evaluate_compressor_{{model}}.tsv"
    params:
        sequences_flags=sequence_flags,
        sequences=config["evaluation"]["sequences"],
        device=DEVICE,
        allow_slow_mamba="--allow-slow-mamba" if COMPRESSORS["allow_slow_mamba"] else "",
    threads: config["threads"]["eval"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn evaluate-compressor --checkpoint {input.model} {params.sequences_flags}"
        " --seed {wildcards.seed} --sequences {params.sequences} {params.device} {params.allow_slow_mamba}"
        " --threads {threads}"
        " --out {output} --log {log}"


rule paper_param_counts:
    """Parameters of the paper-size teacher, Transformer and Mamba, counted on instantiated modules."""
    localrule: True
    output:
        "results/metrics/param_counts.parquet",
    log:
        "logs/metrics/param_counts.log",
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn paper-param-counts --out {output} --log {log}"


rule compressor_report:
    """Table 1 (teacher vs Transformer vs Mamba vs per-frame PCA), Table 2 (parameters), Figure 6."""
    localrule: True
    input:
        unpack(compressor_report_inputs),
    output:
        table1=reported(COMPRESSOR_REPORT[0], "Compressors"),
        table2=reported(COMPRESSOR_REPORT[1], "Compressors"),
        figure=reported(COMPRESSOR_FIGURES, "Compressors"),
    log:
        "logs/compressor_report.log",
    params:
        teacher_variant=lambda w: PAPER.variant,
        T=lambda w: PAPER_COMPRESSORS.T,
        dim=lambda w: PAPER_COMPRESSORS.dim,
        seed=COMPRESSORS["seeds"][0],
        figures=lambda w, output: os.path.dirname(output.figure[0]),
    threads: config["threads"]["eval"]
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn compressor-report --metrics {input.metrics} --param-counts {input.param_counts}"
        " --teacher-variant {params.teacher_variant} --T {params.T} --dim {params.dim} --sweepers {input.sweepers}"
        " --compressors {input.compressors} --mnist {input.mnist} --split {input.split} --seed {params.seed}"
        " --threads {threads} --table1 {output.table1} --table2 {output.table2} --figures {params.figures} --log {log}"
