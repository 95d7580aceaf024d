rule trajectories:
    """Zero-padded teacher trajectories y_0..y_T (Merkle path updates) for training or evaluation."""
    group: GROUP_TRAJECTORIES
    priority: CHAIN_PRIORITY
    input:
        unpack(sequence_inputs),
        sweepers=teacher_for_T,
    output:
        directory(TRAJECTORIES),
    log:
        f"{LOGS}/trajectories_T{{T}}_{{which}}.log",
    benchmark:
        f"{BENCHMARKS}/trajectories_T{{T}}_{{which}}.tsv"
    params:
        sequences=sequence_flags,
        n=trajectories_n,
        device=DEVICE,
    threads: config["threads"]["student"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn trajectories --sweepers {input.sweepers} {params.sequences}"
        " --part {wildcards.which} --seed {wildcards.seed} --T {wildcards.T} --n {params.n}"
        " {params.device} --threads {threads} --out {output} --log {log}"


rule train_student:
    """One student: the shared budget `student.training` with the settings of `student.variants[student_variant]`."""
    priority: CHAIN_PRIORITY
    input:
        trajectories=lambda w: TRAJECTORIES.format(**w, which="train"),
    output:
        student=STUDENT,
        loss=STUDENT_LOSS,
    log:
        f"{LOGS}/train_student_{{student_variant}}_T{{T}}.log",
    benchmark:
        f"{BENCHMARKS}/train_student_{{student_variant}}_T{{T}}.tsv"
    params:
        training=lambda w: flags(EXPERIMENT.student_settings(w.student_variant)),
        device=DEVICE,
    threads: config["threads"]["student"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn train-student --trajectories {input.trajectories} --seed {wildcards.seed}"
        " --variant {wildcards.student_variant} {params.training} {params.device} --threads {threads}"
        " --out {output.student} --loss-out {output.loss} --log {log}"


rule evaluate_online:
    group: GROUP_ONLINE
    priority: CHAIN_PRIORITY
    input:
        unpack(sequence_inputs),
        sweepers=teacher_for_T,
        student=STUDENT,
        trajectories=lambda w: TRAJECTORIES.format(**w, which="test"),
    output:
        ONLINE,
    log:
        f"{LOGS}/evaluate_online_{{student_variant}}_T{{T}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_online_{{student_variant}}_T{{T}}.tsv"
    params:
        sequences=sequence_flags,
        device=DEVICE,
    threads: config["threads"]["eval"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn evaluate-online --sweepers {input.sweepers} --student {input.student}"
        " --trajectories {input.trajectories} {params.sequences} --seed {wildcards.seed} --T {wildcards.T}"
        " --variant {wildcards.student_variant} --teacher-variant {wildcards.variant}"
        " {params.device} --threads {threads} --out {output} --log {log}"
