rule trajectories:
    """Zero-padded teacher trajectories y_0..y_T (Merkle path updates) for training or evaluation."""
    group: GROUP_TRAJECTORIES
    input:
        sweepers=teacher_for_T,
        mnist=MNIST,
        split=SPLIT,
    output:
        directory(TRAJECTORIES),
    log:
        f"{LOGS}/trajectories_T{{T}}_{{which}}.log",
    benchmark:
        f"{BENCHMARKS}/trajectories_T{{T}}_{{which}}.tsv"
    params:
        n=lambda w: STUDENT_CONFIG[f"{w.which}_trajectories"],
        device=DEVICE,
    threads: config["threads"]["student"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn trajectories --sweepers {input.sweepers} --mnist {input.mnist} --split {input.split}"
        " --which {wildcards.which} --seed {wildcards.seed} --T {wildcards.T} --n {params.n}"
        " {params.device} --threads {threads} --out {output} --log {log}"


rule train_student:
    input:
        lambda w: TRAJECTORIES.format(**w, which="train"),
    output:
        student=STUDENT,
        loss=STUDENT_LOSS,
    log:
        f"{LOGS}/train_student_{{schedule}}_T{{T}}.log",
    benchmark:
        f"{BENCHMARKS}/train_student_{{schedule}}_T{{T}}.tsv"
    params:
        training=flags(STUDENT_CONFIG["training"]),
        device=DEVICE,
    threads: config["threads"]["student"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn train-student --trajectories {input} --seed {wildcards.seed} --schedule {wildcards.schedule}"
        " {params.training} {params.device} --threads {threads}"
        " --out {output.student} --loss-out {output.loss} --log {log}"


rule evaluate_online:
    group: GROUP_ONLINE
    input:
        sweepers=teacher_for_T,
        student=STUDENT,
        trajectories=lambda w: TRAJECTORIES.format(**w, which="test"),
        mnist=MNIST,
    output:
        ONLINE,
    log:
        f"{LOGS}/evaluate_online_{{schedule}}_T{{T}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_online_{{schedule}}_T{{T}}.tsv"
    params:
        device=DEVICE,
    threads: config["threads"]["eval"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn evaluate-online --sweepers {input.sweepers} --student {input.student}"
        " --trajectories {input.trajectories} --mnist {input.mnist} --seed {wildcards.seed} --T {wildcards.T}"
        " --schedule {wildcards.schedule} {params.device} --threads {threads} --out {output} --log {log}"
