rule fetch_mnist:
    localrule: True
    output:
        directory(MNIST),
    log:
        "logs/fetch_mnist.log",
    params:
        origin=config["mnist"]["origin"],
        download_dir=config["mnist"]["download_dir"],
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn fetch-mnist --origin {params.origin} --download-dir {params.download_dir} --out {output} --log {log}"


rule split:
    input:
        MNIST,
    output:
        SPLIT,
    log:
        "logs/mnist/seed{seed}/split.log",
    params:
        test_fraction=config["mnist"]["test_fraction"],
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn split --mnist {input} --seed {wildcards.seed} --test-fraction {params.test_fraction}"
        " --out {output} --log {log}"


rule image_bank:
    """Bank 0: the adjacent frame pairs of the source's training sequences, teacher.zero_padded of them cut."""
    input:
        unpack(training_sequence_inputs),
    output:
        directory(IMAGE_BANK),
    log:
        f"{SOURCE_LOGS}/image_bank.log",
    params:
        sequences=training_sequence_flags,
        zero_padded=TEACHER["zero_padded"],
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn image-bank {params.sequences} --seed {wildcards.seed} --zero-padded {params.zero_padded}"
        " --out {output} --log {log}"
