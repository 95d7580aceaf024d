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
        training=lambda w: flags(variant_settings(w.variant), level=int(w.level)),
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
        previous=lambda w: bank_path(w.seed, w.dim, w.variant, int(w.level) - 1),
        sweeper=lambda w: SWEEPER.format(seed=w.seed, dim=w.dim, variant=w.variant, level=int(w.level) - 1),
    output:
        directory(LATENT_BANK),
    wildcard_constraints:
        level=r"[1-9]\d*",
    log:
        f"{LOGS}/build_bank_L{{level}}.log",
    benchmark:
        f"{BENCHMARKS}/build_bank_L{{level}}.tsv"
    params:
        bank_size=optional("--bank-size", TEACHER["bank_size"]),
        device=DEVICE,
    threads: config["threads"]["bank"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn build-bank --previous-bank {input.previous} --sweeper {input.sweeper} --seed {wildcards.seed}"
        " --dim {wildcards.dim} --level {wildcards.level} {params.bank_size}"
        " {params.device} --threads {threads} --out {output} --log {log}"


rule roundtrip:
    group: GROUP_ROUNDTRIPS
    input:
        sweepers=teacher_for_T,
        mnist=MNIST,
        split=SPLIT,
    output:
        ROUNDTRIP,
    log:
        f"{LOGS}/roundtrip_T{{T}}.log",
    benchmark:
        f"{BENCHMARKS}/roundtrip_T{{T}}.tsv"
    params:
        sequences=config["evaluation"]["sequences"],
        device=DEVICE,
    threads: config["threads"]["eval"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn roundtrip --sweepers {input.sweepers} --mnist {input.mnist} --split {input.split}"
        " --seed {wildcards.seed} --dim {wildcards.dim} --T {wildcards.T} --variant {wildcards.variant}"
        " --sequences {params.sequences} {params.device} --threads {threads} --out {output} --log {log}"


rule pca_roundtrip:
    """Per-frame PCA at equal memory (k = d // T per frame), every d and T of the grid."""
    input:
        mnist=MNIST,
        split=SPLIT,
    output:
        PCA_ROUNDTRIP,
    log:
        "logs/mnist/seed{seed}/pca_roundtrip.log",
    benchmark:
        "benchmarks/mnist/seed{seed}/pca_roundtrip.tsv"
    params:
        dims=" ".join(map(str, DIMS)),
        Ts=" ".join(map(str, TS)),
        sequences=config["evaluation"]["sequences"],
    threads: config["threads"]["eval"]
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn pca-roundtrip --mnist {input.mnist} --split {input.split} --seed {wildcards.seed} --dims {params.dims}"
        " --T {params.Ts} --sequences {params.sequences} --threads {threads} --out {output} --log {log}"


rule frame_autoencoder:
    """The per-frame autoencoder of k numbers (the limit at equal memory), evaluated at every (d, T) with d // T = k."""
    input:
        mnist=MNIST,
        split=SPLIT,
    output:
        model=AUTOENCODER,
        loss=AUTOENCODER_LOSS,
        roundtrip=AUTOENCODER_ROUNDTRIP,
    log:
        "logs/mnist/seed{seed}/autoencoder_k{k}.log",
    benchmark:
        "benchmarks/mnist/seed{seed}/autoencoder_k{k}.tsv"
    params:
        training=flags(config["reference"]["autoencoder"]),
        dims=" ".join(map(str, DIMS)),
        Ts=" ".join(map(str, TS)),
        sequences=config["evaluation"]["sequences"],
        device=DEVICE,
    threads: config["threads"]["train"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn frame-autoencoder --mnist {input.mnist} --split {input.split} --seed {wildcards.seed} --k {wildcards.k}"
        " {params.training} --dims {params.dims} --T {params.Ts} --sequences {params.sequences} {params.device}"
        " --threads {threads} --out {output.model} --loss-out {output.loss} --roundtrip-out {output.roundtrip}"
        " --log {log}"


rule aggregate_metrics:
    """Tidy tables under results/metrics: one per model family."""
    localrule: True
    input:
        metric_inputs,
    output:
        report("results/metrics/{table}.parquet", caption="../report/metrics.rst", category="Metrics (Parquet)"),
    wildcard_constraints:
        table="teacher|teacher_health|teacher_ablation|teacher_ablation_health|paper_sweep|paper_sweep_health|pca|autoencoder|"
        "student|compressors",
    log:
        "logs/metrics/{table}.log",
    params:
        health=lambda w: "--health" if w.table.endswith("health") else "",
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn aggregate {params.health} --out {output} --log {log} {input}"
