rule hsic:
    input:
        probe=f"{R}/data/{{dataset}}/probe.pt",
        snapshots=[f"{R}/snapshots/{RUN}/epoch{e}.pt" for e in SNAPSHOT_EPOCHS],
    output:
        f"{R}/hsic/{RUN}.parquet",
    log:
        f"{R}/logs/hsic/{RUN}.log",
    benchmark:
        f"{R}/benchmarks/hsic/{RUN}.tsv"
    conda:
        "../envs/infoplane.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPU_PER_JOB,
    params:
        settings=json.dumps(config["hsic"], sort_keys=True),
        device=config["device"],
    shell:
        "python -m infoplane.measure --probe-data {input.probe:q} --snapshots {input.snapshots:q}"
        " --settings {params.settings:q} --dataset {wildcards.dataset} --arch {wildcards.arch}"
        " --mode {wildcards.mode} --seed {wildcards.seed} --device {params.device}"
        " --threads {threads} --out {output:q} > {log:q} 2>&1"
