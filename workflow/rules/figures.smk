rule figures:
    input:
        TEACHER_METRICS,
    output:
        TEACHER_FIGURES,
    log:
        "logs/figures.log",
    shell:
        "imfn figures --results results --log {log}"
