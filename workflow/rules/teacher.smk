rule train_sweeper:
    input:
        bank=bank_for,
    output:
        sweeper=SWEEPER,
        loss=SWEEPER_LOSS,
    log:
        "logs/mnist/seed{seed}/d{dim}/train_sweeper_L{level}.log",
    benchmark:
        "benchmarks/mnist/seed{seed}/d{dim}/train_sweeper_L{level}.tsv"
    params:
        epochs=lambda w: epochs_for(w.level),
        t=TEACHER,
        sweeper_hidden=optional("--sweeper-hidden", TEACHER["sweeper_hidden"]),
        device=config["device"],
    threads: config["threads"]["train"]
    resources:
        gpu=1,
    shell:
        "imfn train-sweeper --bank {input.bank} --seed {wildcards.seed} --dim {wildcards.dim}"
        " --level {wildcards.level} --epochs {params.epochs} --batch-size {params.t[batch_size]}"
        " --lr {params.t[lr]} --noise-sigma {params.t[noise_sigma]} --norm-penalty {params.t[norm_penalty]}"
        " --codec-hidden {params.t[codec_hidden]} {params.sweeper_hidden}"
        " --device {params.device} --threads {threads}"
        " --out {output.sweeper} --loss-out {output.loss} --log {log}"


rule build_bank:
    input:
        previous=lambda w: bank_path(w.seed, w.dim, int(w.level) - 1),
        sweeper=lambda w: SWEEPER.format(seed=w.seed, dim=w.dim, level=int(w.level) - 1),
    output:
        directory(LATENT_BANK),
    wildcard_constraints:
        level=r"[1-9]\d*",
    log:
        "logs/mnist/seed{seed}/d{dim}/build_bank_L{level}.log",
    benchmark:
        "benchmarks/mnist/seed{seed}/d{dim}/build_bank_L{level}.tsv"
    params:
        bank_size=optional("--bank-size", TEACHER["bank_size"]),
        device=config["device"],
    threads: config["threads"]["bank"]
    resources:
        gpu=1,
    shell:
        "imfn build-bank --previous-bank {input.previous} --sweeper {input.sweeper} --seed {wildcards.seed}"
        " --dim {wildcards.dim} --level {wildcards.level} {params.bank_size}"
        " --device {params.device} --threads {threads} --out {output} --log {log}"


rule roundtrip:
    input:
        sweepers=sweepers_for_T,
        mnist=MNIST,
        split=SPLIT,
    output:
        ROUNDTRIP,
    log:
        "logs/mnist/seed{seed}/d{dim}/roundtrip_T{T}.log",
    benchmark:
        "benchmarks/mnist/seed{seed}/d{dim}/roundtrip_T{T}.tsv"
    params:
        sequences=config["evaluation"]["sequences"],
        device=config["device"],
    threads: config["threads"]["eval"]
    resources:
        gpu=1,
    shell:
        "imfn roundtrip --sweepers {input.sweepers} --mnist {input.mnist} --split {input.split}"
        " --seed {wildcards.seed} --dim {wildcards.dim} --T {wildcards.T} --sequences {params.sequences}"
        " --device {params.device} --threads {threads} --out {output} --log {log}"


rule teacher_metrics:
    input:
        expand(ROUNDTRIP, seed=config["seeds"], dim=config["dims"], T=config["evaluation"]["T"]),
    output:
        TEACHER_METRICS,
    log:
        "logs/metrics/teacher.log",
    shell:
        "imfn aggregate --out {output} --log {log} {input}"
