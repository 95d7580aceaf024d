# Every function the workflow uses (input functions, flags, target lists), so that the other .smk files hold rules
# only. What the experiment is (grids, variants, roles, checks) is the Snakefile's EXPERIMENT (imfn/experiment/);
# the paths are paths.smk's; this file turns the one into the other.
import os
import shlex
import types

from imfn.experiment.plan import depth
from imfn.flags import optional, render as flags

# --- The sequences a job reads ----------------------------------------------------------------------
def sequence_inputs(w, held_out=True):
    """What `imfn`'s SEQUENCES flags of source ``w.source`` read: the MNIST store, the seed's split and, for a job
    that reads the held-out part, the source's canonical test file if one is configured."""
    inputs = {"mnist": MNIST, "split": SPLIT.format(seed=w.seed)}
    canonical = SOURCES[w.source].canonical_test
    if held_out and canonical is not None:
        inputs["canonical"] = canonical
    return inputs


def training_sequence_inputs(w):
    return sequence_inputs(w, held_out=False)


def sequence_flags(w, held_out=True):
    """`--source --mnist --split [--canonical-test]`: the sequences of :func:`sequence_inputs`."""
    inputs = sequence_inputs(w, held_out)
    return (f"--source {w.source} --mnist {inputs['mnist']} --split {inputs['split']}"
            + optional(" --canonical-test", inputs.get("canonical")))


def training_sequence_flags(w):
    return sequence_flags(w, held_out=False)


def source_list(w, key):
    """A source's dims or T, as space-separated flag values."""
    return " ".join(map(str, getattr(SOURCES[w.source], key)))


# --- Teacher and student inputs ---------------------------------------------------------------------
def bank_path(source, seed, dim, variant, level):
    """Level 0's bank holds frame pairs and is shared by every d and variant; higher banks hold d-dim codes."""
    if int(level) == 0:
        return IMAGE_BANK.format(source=source, seed=seed)
    return LATENT_BANK.format(source=source, seed=seed, dim=dim, variant=variant, level=level)


def sweeper_paths(source, seed, dim, variant, levels):
    return [SWEEPER.format(source=source, seed=seed, dim=dim, variant=variant, level=level) for level in range(levels)]


def lower_levels(w):
    """The checkpoints of the levels below ``w.level``."""
    return sweeper_paths(w.source, w.seed, w.dim, w.variant, int(w.level))


def train_inputs(w):
    """A level trains on its bank; with a depth decoder it also reads the training sequences and the levels below."""
    inputs = {"bank": bank_path(w.source, w.seed, w.dim, w.variant, w.level)}
    if EXPERIMENT.teacher_settings(w.variant)["decoder"]["epochs"] > 0:
        inputs |= training_sequence_inputs(w)
        inputs["lower"] = lower_levels(w)
    return inputs


def decoder_inputs(w):
    """The sequences' flags and `--lower` for a variant with depth decoders (nothing without them)."""
    inputs = train_inputs(w)
    if "lower" not in inputs:
        return ""
    return training_sequence_flags(w) + optional(" --lower", " ".join(inputs["lower"]) or None)


def teacher_for_T(w):
    """The teacher levels a sequence of length T goes through."""
    return sweeper_paths(w.source, w.seed, w.dim, w.variant, depth(int(w.T)))


# --- Target lists (the cells are the experiment's: imfn/experiment/plan.py) ------------------------------
def grid(pattern, source, variants=None, dims=None, seeds=None):
    """``pattern`` over a source's teacher cells (unset: its grid), and over its levels / T when it has those."""
    grid_ = SOURCES[source]
    cells = grid_.level_cells if "{level}" in pattern else grid_.T_cells if "{T}" in pattern else grid_.cells
    return [pattern.format(**c) for c in cells(variants, dims, seeds)]


def source_grids(pattern):
    """:func:`grid` of every source, each at its own grid."""
    return [path for source in SOURCES for path in grid(pattern, source)]


def paper_target(target):
    """Stop before any job when ``target`` (the ablation, the paper sweep) cannot be planned, naming the key."""
    problem = EXPERIMENT.paper_problem(target)
    if problem:
        raise WorkflowError(problem)


def paper_sweep_grid(pattern):
    """``pattern`` over the paper sweep's variants at its one seed and d."""
    sweep = config["paper_sweep"]
    return grid(pattern, PAPER.name, sweep["variants"], [sweep["dim"]], [sweep["seed"]]) if PAPER else []


def ablation_grid(pattern):
    ablation = config["ablation"]
    return grid(pattern, PAPER.name, ablation["variants"], ablation["dims"]) if PAPER else []


def ablation_inputs(wildcards):
    """The ablation's metrics and the per-frame references beside them (computed for `dims` only)."""
    paper_target("ablation")
    return [f"results/metrics/{name}.parquet" for name in
            ("teacher_ablation", "teacher_ablation_health", "autoencoder", "pca")]


def paper_sweep_inputs(wildcards):
    """The sweep's tables, and the per-frame autoencoders and PCA at its seed and d, one per T (k = d // T)."""
    paper_target("paper_sweep")
    sweep = config["paper_sweep"]
    ks = EXPERIMENT.autoencoder_ks(PAPER.name, [sweep["dim"]])
    return {"sweep": "results/metrics/paper_sweep.parquet", "health": "results/metrics/paper_sweep_health.parquet",
            "autoencoders": [AUTOENCODER_ROUNDTRIP.format(source=PAPER.name, seed=sweep["seed"], k=k) for k in ks],
            "pca": PCA_ROUNDTRIP.format(source=PAPER.name, seed=sweep["seed"])}


def trajectories_n(wildcards):
    """Sequences in a trajectory set: `student.train_frames` or `test_frames` frames, T per sequence."""
    return max(1, STUDENT_CONFIG[f"{wildcards.which}_frames"] // int(wildcards.T))


def compressor_report_inputs(wildcards):
    """Tables 1-2 and Figure 6: the metric tables, and the paper source's teacher and compressors at their seed."""
    seed, setting = COMPRESSORS["seeds"][0], PAPER_COMPRESSORS
    return {"metrics": [f"results/metrics/{n}.parquet" for n in ("teacher", "compressors", "autoencoder", "pca")],
            "param_counts": "results/metrics/param_counts.parquet",
            "sweepers": sweeper_paths(PAPER.name, seed, setting.dim, PAPER.variant, depth(setting.T)),
            "compressors": [COMPRESSOR.format(source=PAPER.name, seed=seed, dim=setting.dim, model=m)
                            for m in COMPRESSORS["models"]],
            "mnist": MNIST, "split": SPLIT.format(seed=seed)}  # fmt: skip


def metric_inputs(w):
    """The files one tidy table under results/metrics concatenates (every source's rows, with a source column)."""
    cells = {
        "pca": lambda: (PCA_ROUNDTRIP, EXPERIMENT.seed_cells()),
        "autoencoder": lambda: (AUTOENCODER_ROUNDTRIP, EXPERIMENT.autoencoder_cells()),
        "clip_pca": lambda: (CLIP_PCA, EXPERIMENT.seed_cells(EXPERIMENT.moving_sources)),
        "student": lambda: (ONLINE, EXPERIMENT.student_cells()),
        "compressors": lambda: (COMPRESSOR_ROUNDTRIP, EXPERIMENT.compressor_cells()),
    }
    if w.table in cells:
        pattern, cells_ = cells[w.table]()
        return [pattern.format(**c) for c in cells_]
    return {
        "teacher": lambda: source_grids(ROUNDTRIP),
        "teacher_health": lambda: source_grids(SWEEPER_HEALTH),
        "teacher_ablation": lambda: ablation_grid(ROUNDTRIP),
        "teacher_ablation_health": lambda: ablation_grid(SWEEPER_HEALTH),
        "paper_sweep": lambda: paper_sweep_grid(ROUNDTRIP),
        "paper_sweep_health": lambda: paper_sweep_grid(SWEEPER_HEALTH),
    }[w.table]()


def source_report_inputs(w):
    """The metric tables, and the checkpoints the strip reads: every teacher variant at the source's strip cell (its
    first seed and d), the per-frame autoencoder of k = d // T there, and the compressors trained there."""
    grid_, strip = SOURCES[w.source], SOURCES[w.source].strip
    cell = types.SimpleNamespace(source=w.source, **strip)
    compressor = EXPERIMENT.compressors.get(w.source)
    at_strip = compressor and (compressor.dim, compressor.T) == (cell.dim, cell.T) and cell.seed in COMPRESSORS["seeds"]
    return {
        "metrics": [f"results/metrics/{name}.parquet" for name in ("teacher", "pca", "autoencoder", "clip_pca")]
        + (["results/metrics/compressors.parquet"] if compressor else []),
        "sweepers": [p for c in grid_.cells(dims=[cell.dim], seeds=[cell.seed]) for p in sweeper_paths(**c,
                     levels=depth(cell.T))],  # fmt: skip
        "autoencoder": [AUTOENCODER.format(source=w.source, seed=cell.seed, k=cell.k)] if cell.k else [],
        "pca": [FRAME_PCA.format(source=w.source, seed=cell.seed)],
        "compressors": [COMPRESSOR.format(source=w.source, seed=cell.seed, dim=cell.dim, model=m)
                        for m in COMPRESSORS["models"]] if at_strip else [],
        **sequence_inputs(cell),
    }


def source_report_flags(w):
    grid_, strip = SOURCES[w.source], SOURCES[w.source].strip
    cells = " ".join(CELL.format(**c) for c in grid_.cells(dims=[strip["dim"]], seeds=[strip["seed"]]))
    return (f"{sequence_flags(types.SimpleNamespace(source=w.source, seed=strip['seed']))} --seed {strip['seed']}"
            f" --T {strip['T']} --teachers {cells}")


def video_inputs(wildcards):
    """What video_clips reads: nothing of the pipeline's for footage, the MNIST store and the split of video.seed
    for a sequence source. Asking for the video branch without UCF-101 stops here, before any job."""
    if EXPERIMENT.video.left_out:
        raise WorkflowError(EXPERIMENT.video.left_out)
    if EXPERIMENT.video.sequence_source:
        return {"mnist": MNIST, "split": SPLIT.format(seed=VIDEO["seed"])}
    return {}


def video_dataset_flags(wildcards, input):
    """`imfn video-clips` flags of the dataset: the root (ucf101), or the sequences and how many (a sequence
    source)."""
    if EXPERIMENT.video.sequence_source:
        return (f"--mnist {input.mnist} --split {input.split} --clips {VIDEO['clips']}"
                f" --validation-fraction {VIDEO['validation_fraction']}")
    return optional("--root", VIDEO["root"]) if VIDEO["dataset"] == "ucf101" else ""


def video_levels_up_to(level):
    return [VIDEO_LEVEL.format(level=l) for l in range(int(level))]


# --- Reporting and provenance -----------------------------------------------------------------------
def reported(paths, category, subcategory=None):
    """Mark the PNG figures and Markdown tables among ``paths`` (one path or a list) for `snakemake --report`,
    each with its caption workflow/report/<file stem>.rst, `{source}` read as `source` (the PDFs are the same figures,
    left out of the report)."""
    def caption(path):  # (a line may not start with `report`: the parser takes it for the directive)
        stem = os.path.basename(path).rsplit(".", 1)[0].replace("{source}", "source")  # one caption for every source
        return f"../report/{stem}.rst"

    def mark(path):
        return (snakemake.io.report(path, caption=caption(path), category=category, subcategory=subcategory)
                if path.endswith((".png", ".md")) else path)

    return mark(paths) if isinstance(paths, str) else [mark(path) for path in paths]


def time_summary_inputs(wildcards):
    """Everything else `all` asks for: the summary runs last, once every benchmarked job it covers has run.
    (Benchmark files are read from benchmarks/ when it runs; the inputs only order it and rerun it.)"""
    return [path for path in rules.all.input if path not in TIME_SUMMARY]


def benchmark_patterns():
    """`name=pattern` for each benchmarked step of the workflow, which is how the time summary names a file's step."""
    return " ".join(shlex.quote(f"{r.name}={snakemake.io.strip_wildcard_constraints(r.benchmark)}")
                    for r in sorted(workflow.rules, key=lambda r: r.name) if isinstance(r.benchmark, str))
