# Provenance and reporting: the config hash every job records, the time summary. (reported(),
# time_summary_inputs() and benchmark_patterns() are in common.smk.)
import hashlib
import json

# A hash of the effective config (config.yaml + --configfile overrides + --config, after schema
# validation). Set in the environment here, so every job's shell inherits it; cluster jobs
# re-evaluate this Snakefile with the same config and so export the same value. `imfn` records it.
CONFIG_HASH = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
os.environ["IMFN_CONFIG_HASH"] = CONFIG_HASH
# The config files it came from, in the order they apply (config.yaml, then each --configfile; Snakemake lists
# the command line's first), relative to the working directory where they lie below it: the results page names them.
_overrides = [os.path.abspath(f) for f in workflow.overwrite_configfiles or []]
_config_files = [f for f in workflow.configfiles if os.path.abspath(f) not in _overrides] + [
    f for f in workflow.configfiles if os.path.abspath(f) in _overrides]
os.environ["IMFN_CONFIG_FILES"] = os.pathsep.join(
    os.path.relpath(f) if os.path.abspath(f).startswith(os.getcwd() + os.sep) else str(f) for f in _config_files)

# Declared after it is set: Snakemake then checks it exists and passes it on to remote jobs.
envvars:
    "IMFN_CONFIG_HASH",
    "IMFN_CONFIG_FILES",


rule time_summary:
    """Where the pipeline's time went: every benchmark file as one table, and a figure."""
    localrule: True
    input:
        time_summary_inputs,
    output:
        table=report(TIME_SUMMARY[0], caption="../report/time_summary_table.rst", category="Provenance"),
        figure=report(TIME_SUMMARY[1], caption="../report/time_summary.rst", category="Provenance"),
    log:
        "logs/time_summary.log",
    params:
        rules=lambda w: benchmark_patterns(),
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn time-summary --benchmarks benchmarks --rules {params.rules}"
        " --out {output.table} --figure {output.figure} --log {log}"
