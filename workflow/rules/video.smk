# The video hierarchy (method.md section 6): clip bank, split, one job per level, evaluation, Table 3.
# Paths (workflow/rules/common.smk) carry the dataset (config video.dataset), so a demo run and a UCF-101
# run do not overwrite each other.

rule video_clips:
    """Decode every video once: the uint8 clip bank and the manifest of what was skipped and why."""
    localrule: VIDEO["dataset"] == "demo"  # the demo downloads its footage; UCF-101 is decoded on a node
    input:
        unpack(video_inputs),
    output:
        clips=directory(VIDEO_CLIPS),
        manifest=VIDEO_MANIFEST,
    log:
        f"{VIDEO_LOGS}/video_clips.log",
    benchmark:
        f"{VIDEO_BENCHMARKS}/video_clips.tsv"
    params:
        dataset=VIDEO["dataset"],
        inputs=video_dataset_flags,
        download_dir=VIDEO["download_dir"],
        segment_frames=VIDEO["segment_frames"],
        frame_size=VIDEO["frame_size"],
        clip_frames=VIDEO["clip_frames"],
        seed=VIDEO["seed"],
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn video-clips --dataset {params.dataset} {params.inputs} --download-dir {params.download_dir}"
        " --segment-frames {params.segment_frames} --frame-size {params.frame_size} --clip-frames {params.clip_frames}"
        " --seed {params.seed} --out {output.clips} --manifest-out {output.manifest} --log {log}"


rule video_split:
    input:
        VIDEO_MANIFEST,
    output:
        VIDEO_SPLIT,
    log:
        f"{VIDEO_LOGS}/video_split.log",
    params:
        fraction=VIDEO["validation_fraction"],
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn video-split --manifest {input} --validation-fraction {params.fraction} --out {output} --log {log}"


rule train_video_level:
    """One level of the video hierarchy, the levels below it frozen."""
    input:
        clips=VIDEO_CLIPS,
        split=VIDEO_SPLIT,
        lower=lambda w: video_levels_up_to(w.level),
    output:
        level=VIDEO_LEVEL,
        loss=VIDEO_LEVEL_LOSS,
    log:
        f"{VIDEO_LOGS}/train_video_L{{level}}.log",
    benchmark:
        f"{VIDEO_BENCHMARKS}/train_video_L{{level}}.tsv"
    params:
        training=lambda w: flags(VIDEO["training"], level=int(w.level)),
        frame_size=VIDEO["frame_size"],
        model=flags(VIDEO["model"]),
        seed=VIDEO["seed"],
        device=DEVICE,
    threads: VIDEO["threads"]["train"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn train-video --bank {input.clips} --split {input.split} --lower {input.lower} --seed {params.seed}"
        " --level {wildcards.level} {params.training} --frame-size {params.frame_size} {params.model}"
        " {params.device} --threads {threads}"
        " --out {output.level} --loss-out {output.loss} --log {log}"


rule evaluate_video_level:
    """Validation clips through levels 0..k and back: per-video MSE and PSNR, and clips for the figure."""
    input:
        clips=VIDEO_CLIPS,
        split=VIDEO_SPLIT,
        levels=lambda w: video_levels_up_to(int(w.level) + 1),
    output:
        metrics=VIDEO_EVAL,
        reconstructions=directory(VIDEO_RECONSTRUCTIONS),
    log:
        f"{VIDEO_LOGS}/evaluate_video_L{{level}}.log",
    benchmark:
        f"{VIDEO_BENCHMARKS}/evaluate_video_L{{level}}.tsv"
    params:
        max_videos=optional("--max-videos", VIDEO["evaluation"]["max_videos"]),
        show=VIDEO["evaluation"]["show"],
        device=DEVICE,
    threads: VIDEO["threads"]["eval"]
    resources:
        gpu=1,
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn evaluate-video --levels {input.levels} --bank {input.clips} --split {input.split} {params.max_videos}"
        " --show {params.show} {params.device} --threads {threads}"
        " --out {output.metrics} --reconstructions-out {output.reconstructions} --log {log}"


rule video_pca:
    """Per-frame PCA at each level's memory (memory_tokens x width numbers per 2^(l+1) frames), the reference beside it."""
    input:
        clips=VIDEO_CLIPS,
        split=VIDEO_SPLIT,
    output:
        VIDEO_PCA,
    log:
        f"{VIDEO_LOGS}/video_pca.log",
    benchmark:
        f"{VIDEO_BENCHMARKS}/video_pca.tsv"
    params:
        dim=EXPERIMENT.video.memory,
        max_videos=optional("--max-videos", VIDEO["evaluation"]["max_videos"]),
        levels=EXPERIMENT.video.levels,
    threads: VIDEO["threads"]["eval"]
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn video-pca --bank {input.clips} --split {input.split} --dim {params.dim}"
        " --levels {params.levels} {params.max_videos} --threads {threads} --out {output} --log {log}"


rule video_metrics:
    localrule: True
    input:
        expand(VIDEO_EVAL, level=range(EXPERIMENT.video.levels)),
        VIDEO_PCA,
    output:
        report("results/metrics/video.parquet", caption="../report/video_metrics.rst", category="Metrics (Parquet)"),
    log:
        "logs/metrics/video.log",
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn aggregate --out {output} --log {log} {input}"


rule video_report:
    """Table 3 and the reconstruction figure, from results/ alone (on a sequence source beside that source's tree
    and clip PCA at the same memory and window)."""
    localrule: True
    input:
        "results/metrics/video.parquet",
        expand(VIDEO_RECONSTRUCTIONS, level=range(EXPERIMENT.video.levels)),
        VIDEO_SEQUENCE_REFERENCES,
    output:
        reported(["results/tables/table3_video.md", *VIDEO_FIGURES], "Video"),
    log:
        "logs/video_report.log",
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn video-report --results results --log {log}"


rule video:
    """The video branch alone: Table 3 and its figure (`snakemake video`)."""
    input:
        VIDEO_OUTPUTS,
