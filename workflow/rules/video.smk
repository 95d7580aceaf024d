# The video hierarchy (method.md section 6): clip bank, split, one job per level, evaluation, Table 3.
# Paths carry the dataset (config video.dataset), so a demo run and a UCF-101 run do not overwrite each other.
VIDEO = config["video"]
VIDEO_LEVELS = VIDEO["levels"]
VIDEO_DIR = f"results/video/{VIDEO['dataset']}"
VIDEO_CLIPS = VIDEO_DIR + "/clips.zarr"
VIDEO_MANIFEST = VIDEO_DIR + "/manifest.parquet"
VIDEO_SPLIT = VIDEO_DIR + "/split.parquet"
VIDEO_LEVEL = VIDEO_DIR + "/level{level}.pt"
VIDEO_LEVEL_LOSS = VIDEO_DIR + "/level{level}_loss.parquet"
VIDEO_EVAL = VIDEO_DIR + "/eval_L{level}.parquet"
VIDEO_RECONSTRUCTIONS = VIDEO_DIR + "/reconstructions_L{level}.zarr"
VIDEO_LOGS = f"logs/video/{VIDEO['dataset']}"
VIDEO_BENCHMARKS = f"benchmarks/video/{VIDEO['dataset']}"
VIDEO_FIGURES = expand("results/figures/fig_video_reconstructions.{ext}", ext=["png", "pdf"])
VIDEO_OUTPUTS = ["results/metrics/video.parquet", "results/tables/table3_video.md", *VIDEO_FIGURES]


def _check_video_config():
    for key in ("epochs", "videos", "pairs_per_video"):
        if len(VIDEO["training"][key]) != VIDEO_LEVELS:
            raise ValueError(f"config video.training.{key} lists {len(VIDEO['training'][key])} values "
                             f"but video.levels is {VIDEO_LEVELS}")
    if VIDEO["clip_frames"] % 2**VIDEO_LEVELS:
        raise ValueError(f"config video.clip_frames={VIDEO['clip_frames']} must be a multiple of "
                         f"2^video.levels = {2**VIDEO_LEVELS} (the frames one level-{VIDEO_LEVELS - 1} memory holds)")
    if VIDEO["frame_size"] % VIDEO["model"]["patch"]:
        raise ValueError(f"config video.frame_size={VIDEO['frame_size']} is not a multiple of "
                         f"video.model.patch={VIDEO['model']['patch']}")
    if VIDEO["dataset"] == "ucf101" and not VIDEO["root"]:
        raise ValueError("config video.root must name the UCF-101 directory when video.dataset is ucf101")


_check_video_config()


def video_training_flags(w):
    """`imfn train-video` flags for one level: its schedule entry and the shared model and optimizer."""
    level, t, m = int(w.level), VIDEO["training"], VIDEO["model"]
    return " ".join([
        f"--epochs {t['epochs'][level]} --videos {t['videos'][level]} --pairs-per-video {t['pairs_per_video'][level]}",
        f"--batch-size {t['batch_size']} --lr {t['lr']} --norm-penalty {t['norm_penalty']}",
        f"--pixel-weight {t['pixel_weight']} --frame-size {VIDEO['frame_size']} --patch {m['patch']}",
        f"--width {m['width']} --heads {m['heads']} --memory-tokens {m['memory_tokens']}",
        f"--cross-layers {m['cross_layers']} --self-layers {m['self_layers']} --mlp-ratio {m['mlp_ratio']}",
    ])


def video_levels_up_to(level):
    return [VIDEO_LEVEL.format(level=l) for l in range(int(level))]


rule video_clips:
    """Decode every video once: the uint8 clip bank and the manifest of what was skipped and why."""
    output:
        clips=directory(VIDEO_CLIPS),
        manifest=VIDEO_MANIFEST,
    log:
        VIDEO_LOGS + "/video_clips.log",
    benchmark:
        VIDEO_BENCHMARKS + "/video_clips.tsv"
    params:
        dataset=VIDEO["dataset"],
        root=optional("--root", VIDEO["root"]) if VIDEO["dataset"] == "ucf101" else "",
        download_dir=VIDEO["download_dir"],
        segment_frames=VIDEO["segment_frames"],
        frame_size=VIDEO["frame_size"],
        clip_frames=VIDEO["clip_frames"],
        seed=VIDEO["seed"],
    shell:
        "imfn video-clips --dataset {params.dataset} {params.root} --download-dir {params.download_dir}"
        " --segment-frames {params.segment_frames} --frame-size {params.frame_size} --clip-frames {params.clip_frames}"
        " --seed {params.seed} --out {output.clips} --manifest-out {output.manifest} --log {log}"


rule video_split:
    input:
        VIDEO_MANIFEST,
    output:
        VIDEO_SPLIT,
    log:
        VIDEO_LOGS + "/video_split.log",
    params:
        fraction=VIDEO["validation_fraction"],
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
        VIDEO_LOGS + "/train_video_L{level}.log",
    benchmark:
        VIDEO_BENCHMARKS + "/train_video_L{level}.tsv"
    params:
        flags=video_training_flags,
        seed=VIDEO["seed"],
        device=config["device"],
    threads: VIDEO["threads"]["train"]
    resources:
        gpu=1,
    shell:
        "imfn train-video --bank {input.clips} --split {input.split} --lower {input.lower} --seed {params.seed}"
        " --level {wildcards.level} {params.flags} --device {params.device} --threads {threads}"
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
        VIDEO_LOGS + "/evaluate_video_L{level}.log",
    benchmark:
        VIDEO_BENCHMARKS + "/evaluate_video_L{level}.tsv"
    params:
        max_videos=optional("--max-videos", VIDEO["evaluation"]["max_videos"]),
        show=VIDEO["evaluation"]["show"],
        device=config["device"],
    threads: VIDEO["threads"]["eval"]
    resources:
        gpu=1,
    shell:
        "imfn evaluate-video --levels {input.levels} --bank {input.clips} --split {input.split} {params.max_videos}"
        " --show {params.show} --device {params.device} --threads {threads}"
        " --out {output.metrics} --reconstructions-out {output.reconstructions} --log {log}"


rule video_metrics:
    input:
        expand(VIDEO_EVAL, level=range(VIDEO_LEVELS)),
    output:
        report("results/metrics/video.parquet", caption="../report/video_metrics.rst", category="Metrics (Parquet)"),
    log:
        "logs/metrics/video.log",
    shell:
        "imfn aggregate --out {output} --log {log} {input}"


rule video_report:
    """Table 3 and the reconstruction figure, from results/ alone."""
    input:
        "results/metrics/video.parquet",
        expand(VIDEO_RECONSTRUCTIONS, level=range(VIDEO_LEVELS)),
    output:
        reported(["results/tables/table3_video.md", *VIDEO_FIGURES], "Video"),
    log:
        "logs/video_report.log",
    shell:
        "imfn video-report --results results --log {log}"


rule video:
    """The video branch alone: Table 3 and its figure (`snakemake video`)."""
    input:
        VIDEO_OUTPUTS,
