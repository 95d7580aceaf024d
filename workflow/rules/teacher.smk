rule train_sweeper:
    group: GROUP_LEVEL
    priority: CHAIN_PRIORITY
    input:
        unpack(train_inputs),
    output:
        sweeper=SWEEPER,
        loss=SWEEPER_LOSS,
        health=SWEEPER_HEALTH,
    log:
        f"{LOGS}/train_sweeper_L{{level}}.log",
    benchmark:
        f"{BENCHMARKS}/train_sweeper_L{{level}}.tsv"
    params:
        training=lambda w: flags(EXPERIMENT.teacher_settings(w.variant), level=int(w.level)),
        health=flags(TEACHER["health"]),
        decoder_inputs=decoder_inputs,
        device=DEVICE,
    threads: config["threads"]["train"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn train-sweeper --bank {input.bank} --seed {wildcards.seed} --dim {wildcards.dim}"
        " --level {wildcards.level} --variant {wildcards.variant} {params.training} {params.health}"
        " {params.decoder_inputs} {params.device} --threads {threads}"
        " --out {output.sweeper} --loss-out {output.loss} --health-out {output.health} --log {log}"


rule build_bank:
    group: GROUP_LEVEL
    priority: CHAIN_PRIORITY
    input:
        unpack(training_sequence_inputs),
        lower=lower_levels,
    output:
        directory(LATENT_BANK),
    wildcard_constraints:
        level=r"[1-9]\d*",
    log:
        f"{LOGS}/build_bank_L{{level}}.log",
    benchmark:
        f"{BENCHMARKS}/build_bank_L{{level}}.tsv"
    params:
        sequences=training_sequence_flags,
        zero_padded=TEACHER["zero_padded"],
        bank_size=optional("--bank-size", TEACHER["bank_size"]),
        bank_frames=optional("--bank-frames", TEACHER["bank_frames"]),
        device=DEVICE,
    threads: config["threads"]["bank"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn build-bank {params.sequences} --lower {input.lower} --seed {wildcards.seed} --dim {wildcards.dim}"
        " --level {wildcards.level} --zero-padded {params.zero_padded} {params.bank_size}"
        " {params.bank_frames} {params.device} --threads {threads} --out {output} --log {log}"


rule roundtrip:
    group: GROUP_ROUNDTRIPS
    input:
        unpack(sequence_inputs),
        sweepers=teacher_for_T,
    output:
        ROUNDTRIP,
    log:
        f"{LOGS}/roundtrip_T{{T}}.log",
    benchmark:
        f"{BENCHMARKS}/roundtrip_T{{T}}.tsv"
    params:
        sequences_flags=sequence_flags,
        sequences=config["evaluation"]["sequences"],
        device=DEVICE,
    threads: config["threads"]["eval"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn roundtrip --sweepers {input.sweepers} {params.sequences_flags}"
        " --seed {wildcards.seed} --dim {wildcards.dim} --T {wildcards.T} --variant {wildcards.variant}"
        " --sequences {params.sequences} {params.device} --threads {threads} --out {output} --log {log}"


rule frame_pca:
    """Per-frame PCA of the source's training frames, fit once: per-frame PCA, the per-frame autoencoders, the mean
    frame and the strip read it."""
    input:
        unpack(training_sequence_inputs),
    output:
        directory(FRAME_PCA),
    log:
        f"{SOURCE_LOGS}/frame_pca.log",
    benchmark:
        f"{SOURCE_BENCHMARKS}/frame_pca.tsv"
    params:
        sequences_flags=training_sequence_flags,
    threads: config["threads"]["eval"]
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn frame-pca {params.sequences_flags} --seed {wildcards.seed} --threads {threads} --out {output}"
        " --log {log}"


rule pca_roundtrip:
    """Per-frame PCA at equal memory (k = d // T per frame), every d and T of the source's grid."""
    input:
        unpack(sequence_inputs),
        pca=FRAME_PCA,
    output:
        PCA_ROUNDTRIP,
    log:
        f"{SOURCE_LOGS}/pca_roundtrip.log",
    benchmark:
        f"{SOURCE_BENCHMARKS}/pca_roundtrip.tsv"
    params:
        sequences_flags=sequence_flags,
        dims=lambda w: source_list(w, "dims"),
        Ts=lambda w: source_list(w, "T"),
        sequences=config["evaluation"]["sequences"],
    threads: config["threads"]["eval"]
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn pca-roundtrip {params.sequences_flags} --pca {input.pca} --seed {wildcards.seed}"
        " --dims {params.dims} --T {params.Ts} --sequences {params.sequences} --threads {threads} --out {output} --log {log}"


rule frame_autoencoder:
    """The per-frame autoencoder of k numbers, evaluated at every (d, T) of the source's grid with d // T = k."""
    input:
        unpack(sequence_inputs),
        pca=FRAME_PCA,
    output:
        model=AUTOENCODER,
        loss=AUTOENCODER_LOSS,
        roundtrip=AUTOENCODER_ROUNDTRIP,
    log:
        f"{SOURCE_LOGS}/autoencoder_k{{k}}.log",
    benchmark:
        f"{SOURCE_BENCHMARKS}/autoencoder_k{{k}}.tsv"
    params:
        sequences_flags=sequence_flags,
        training=flags(config["reference"]["autoencoder"]),
        dims=lambda w: source_list(w, "dims"),
        Ts=lambda w: source_list(w, "T"),
        sequences=config["evaluation"]["sequences"],
        device=DEVICE,
    threads: config["threads"]["train"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn frame-autoencoder {params.sequences_flags} --pca {input.pca} --seed {wildcards.seed}"
        " --k {wildcards.k} {params.training} --dims {params.dims} --T {params.Ts} --sequences {params.sequences} {params.device}"
        " --threads {threads} --out {output.model} --loss-out {output.loss} --roundtrip-out {output.roundtrip}"
        " --log {log}"


rule clip_pca:
    """Clip PCA (the d principal components of whole T-frame clips) and the mean frame, at every (d, T) of the
    source's grid: the best linear code of a sequence whose frames share content."""
    input:
        unpack(sequence_inputs),
        pca=FRAME_PCA,
    output:
        CLIP_PCA,
    log:
        f"{SOURCE_LOGS}/clip_pca.log",
    benchmark:
        f"{SOURCE_BENCHMARKS}/clip_pca.tsv"
    params:
        sequences_flags=sequence_flags,
        dims=lambda w: source_list(w, "dims"),
        Ts=lambda w: source_list(w, "T"),
        sequences=config["evaluation"]["sequences"],
        fit_clips=config["reference"]["clip_pca"]["fit_clips"],
    threads: config["threads"]["eval"]
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn clip-pca {params.sequences_flags} --pca {input.pca} --seed {wildcards.seed} --dims {params.dims}"
        " --T {params.Ts} --sequences {params.sequences} --fit-clips {params.fit_clips} --threads {threads} --out {output} --log {log}"


rule aggregate_metrics:
    """Tidy tables under results/metrics: one per model family, every source's rows in it (a source column)."""
    localrule: True
    input:
        metric_inputs,
    output:
        report("results/metrics/{table}.parquet", caption="../report/metrics.rst", category="Metrics (Parquet)"),
    wildcard_constraints:
        table="teacher|teacher_health|teacher_ablation|teacher_ablation_health|paper_sweep|paper_sweep_health|pca|autoencoder|"
        "clip_pca|student|compressors",
    log:
        "logs/metrics/{table}.log",
    params:
        health=lambda w: "--health" if w.table.endswith("health") else "",
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn aggregate {params.health} --out {output} --log {log} {input}"
