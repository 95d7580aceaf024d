# The paper's baselines (method.md section 5): Transformer and Mamba sequence compressors trained
# end to end at T frames -> d numbers, evaluated on the teacher's held-out sequences; Tables 1-2, Figure 6.
BASELINES = config["baselines"]
BASELINE = "results/mnist/seed{seed}/d{dim}/baseline_{model}.pt"
BASELINE_LOSS = "results/mnist/seed{seed}/d{dim}/baseline_{model}_loss.parquet"
BASELINE_ROUNDTRIP = "results/mnist/seed{seed}/d{dim}/baseline_{model}_roundtrip.parquet"
BASELINE_OUTPUTS = (
    ["results/tables/table1_baselines.md", "results/tables/table2_params.md"]
    + expand("results/figures/fig6_sequence.{ext}", ext=["png", "pdf"])
    if BASELINES["models"]
    else []
)


def _check_baselines():
    if not BASELINES["models"]:
        return
    problems = []
    if not set(BASELINES["seeds"]) <= set(SEEDS):
        problems.append(f"baselines.seeds {BASELINES['seeds']} are not all in seeds {SEEDS} (they use its splits)")
    if BASELINES["dim"] not in DIMS:
        problems.append(f"baselines.dim={BASELINES['dim']} is not one of dims {DIMS}")
    if BASELINES["T"] not in TS:
        problems.append(f"baselines.T={BASELINES['T']} is not one of evaluation.T {TS}")
    if problems:
        raise ValueError("config: " + "; ".join(problems) + " (Table 1 compares them with the teacher there)")


_check_baselines()


def baseline_grid(pattern):
    return [pattern.format(seed=s, dim=BASELINES["dim"], model=m) for s in BASELINES["seeds"] for m in BASELINES["models"]]


def model_flags(w):
    """`imfn train-baseline` flags for the model's size block in the config."""
    size = BASELINES[w.model]
    flags = [f"--layers {size['layers']} --heads {size['heads']} --ffn-mult {size['ffn_mult']}",
             f"--dropout {size['dropout']}", optional("--width", size["width"])]
    if w.model == "mamba":
        flags.append(f"--d-state {size['d_state']} --decoder-layers {size['decoder_layers']}")
    return " ".join(flag for flag in flags if flag)


rule train_baseline:
    input:
        mnist=MNIST,
        split=SPLIT,
    output:
        model=BASELINE,
        loss=BASELINE_LOSS,
    wildcard_constraints:
        model="transformer|mamba",
    log:
        "logs/mnist/seed{seed}/d{dim}/train_baseline_{model}.log",
    benchmark:
        "benchmarks/mnist/seed{seed}/d{dim}/train_baseline_{model}.tsv"
    params:
        b=BASELINES,
        model_flags=model_flags,
        per_epoch=optional("--sequences-per-epoch", BASELINES["sequences_per_epoch"]),
        device=config["device"],
    threads: config["threads"]["train"]
    resources:
        gpu=1,
    shell:
        "imfn train-baseline --model {wildcards.model} --mnist {input.mnist} --split {input.split}"
        " --seed {wildcards.seed} --dim {wildcards.dim} --T {params.b[T]} --epochs {params.b[epochs]} {params.per_epoch}"
        " --batch-size {params.b[batch_size]} --lr {params.b[lr]} --weight-decay {params.b[weight_decay]}"
        " --clip {params.b[clip]} {params.model_flags} --device {params.device} --threads {threads}"
        " --out {output.model} --loss-out {output.loss} --log {log}"


rule evaluate_baseline:
    input:
        model=BASELINE,
        mnist=MNIST,
        split=SPLIT,
    output:
        BASELINE_ROUNDTRIP,
    wildcard_constraints:
        model="transformer|mamba",
    log:
        "logs/mnist/seed{seed}/d{dim}/evaluate_baseline_{model}.log",
    benchmark:
        "benchmarks/mnist/seed{seed}/d{dim}/evaluate_baseline_{model}.tsv"
    params:
        sequences=config["evaluation"]["sequences"],
        device=config["device"],
    threads: config["threads"]["eval"]
    resources:
        gpu=1,
    shell:
        "imfn evaluate-baseline --checkpoint {input.model} --mnist {input.mnist} --split {input.split}"
        " --seed {wildcards.seed} --sequences {params.sequences} --device {params.device} --threads {threads}"
        " --out {output} --log {log}"


rule paper_param_counts:
    """Parameters of the paper-size teacher, Transformer and Mamba, counted on instantiated modules."""
    output:
        "results/metrics/param_counts.parquet",
    log:
        "logs/metrics/param_counts.log",
    shell:
        "imfn paper-param-counts --out {output} --log {log}"


rule baseline_report:
    """Table 1 (teacher vs Transformer vs Mamba vs per-frame PCA), Table 2 (parameters), Figure 6."""
    input:
        metrics=["results/metrics/teacher.parquet", "results/metrics/baselines.parquet", "results/metrics/pca.parquet"],
        param_counts="results/metrics/param_counts.parquet",
        sweepers=lambda w: sweeper_paths(BASELINES["seeds"][0], BASELINES["dim"], VARIANT,
                                         int(math.log2(BASELINES["T"]))),
        baselines=[BASELINE.format(seed=BASELINES["seeds"][0], dim=BASELINES["dim"], model=m)
                   for m in BASELINES["models"]],
        mnist=MNIST,
        split=SPLIT.format(seed=BASELINES["seeds"][0]),
    output:
        reported(BASELINE_OUTPUTS, "Baselines"),
    log:
        "logs/baseline_report.log",
    params:
        seed=BASELINES["seeds"][0],
    threads: config["threads"]["eval"]
    shell:
        "imfn baseline-report --metrics {input.metrics} --param-counts {input.param_counts}"
        " --teacher-variant {VARIANT} --T {BASELINES[T]} --dim {BASELINES[dim]} --sweepers {input.sweepers}"
        " --baselines {input.baselines} --mnist {input.mnist} --split {input.split} --seed {params.seed}"
        " --threads {threads} --table1 results/tables/table1_baselines.md --table2 results/tables/table2_params.md"
        " --figures results/figures --log {log}"
