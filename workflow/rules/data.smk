rule fetch_mnist:
    localrule: True
    output:
        directory(MNIST),
    log:
        "logs/fetch_mnist.log",
    params:
        source=config["mnist"]["source"],
        download_dir=config["mnist"]["download_dir"],
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn fetch-mnist --source {params.source} --download-dir {params.download_dir} --out {output} --log {log}"


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
    """Bank 0: every training image of the seed's split and teacher.zero_images all-zero images, shuffled."""
    input:
        mnist=MNIST,
        split=SPLIT,
    output:
        directory(IMAGE_BANK),
    log:
        "logs/mnist/seed{seed}/image_bank.log",
    params:
        zero_images=TEACHER["zero_images"],
    conda:
        "../envs/imfn.yaml"
    shell:
        "imfn image-bank --mnist {input.mnist} --split {input.split} --seed {wildcards.seed}"
        " --zero-images {params.zero_images} --out {output} --log {log}"
