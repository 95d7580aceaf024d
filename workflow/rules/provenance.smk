# Provenance and reporting: the config hash every job records, report() captions, the time summary.
import hashlib
import json
import shlex

# A hash of the effective config (config.yaml + --configfile overrides + --config, after schema
# validation). Set in the environment here, so every job's shell inherits it; cluster jobs
# re-evaluate this Snakefile with the same config and so export the same value. `imfn` records it.
CONFIG_HASH = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
os.environ["IMFN_CONFIG_HASH"] = CONFIG_HASH

TIME_SUMMARY = ["results/metrics/time_summary.parquet", "results/figures/time_summary.png"]


def reported(paths, category, subcategory=None):
    """Mark the PNG figures and Markdown tables among ``paths`` for `snakemake --report`, each with its
    caption workflow/report/<file stem>.rst (the PDFs are the same figures, left out of the report)."""
    def caption(path):  # (a line may not start with `report`: the parser takes it for the directive)
        return f"../report/{os.path.basename(path).rsplit('.', 1)[0]}.rst"

    return [snakemake.io.report(path, caption=caption(path), category=category, subcategory=subcategory)
            if path.endswith((".png", ".md")) else path for path in paths]


def time_summary_inputs(wildcards):
    """Everything else `all` asks for: the summary runs last, once every benchmarked job it covers has run.
    (Benchmark files are read from benchmarks/ when it runs; the inputs only order it and rerun it.)"""
    return [path for path in rules.all.input if path not in TIME_SUMMARY]


def benchmark_patterns():
    """`rule=pattern` for every rule with a benchmark file: how the time summary names each file's rule."""
    return " ".join(shlex.quote(f"{r.name}={snakemake.io.strip_wildcard_constraints(r.benchmark)}")
                    for r in sorted(workflow.rules, key=lambda r: r.name) if isinstance(r.benchmark, str))


rule time_summary:
    """Where the pipeline's time went: every benchmark file as one table, and a figure."""
    input:
        time_summary_inputs,
    output:
        table=report(TIME_SUMMARY[0], caption="../report/time_summary_table.rst", category="Provenance"),
        figure=report(TIME_SUMMARY[1], caption="../report/time_summary.rst", category="Provenance"),
    log:
        "logs/time_summary.log",
    params:
        rules=lambda w: benchmark_patterns(),
    shell:
        "imfn time-summary --benchmarks benchmarks --rules {params.rules}"
        " --out {output.table} --figure {output.figure} --log {log}"
