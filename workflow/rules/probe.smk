rule probe:
    input:
        probe=f"{R}/data/{{dataset}}/probe.pt",
        snapshots=[f"{R}/snapshots/{RUN}/epoch{e}.pt" for e in SNAPSHOT_EPOCHS],
    output:
        f"{R}/probes/{RUN}.parquet",
    log:
        f"{R}/logs/probe/{RUN}.log",
    benchmark:
        f"{R}/benchmarks/probe/{RUN}.tsv"
    conda:
        "../envs/infoplane.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPU_PER_JOB,
    params:
        settings=json.dumps(config["probes"], sort_keys=True),
        device=config["device"],
    shell:
        "python -m infoplane.probes --probe-data {input.probe:q} --snapshots {input.snapshots:q}"
        " --settings {params.settings:q} --dataset {wildcards.dataset} --arch {wildcards.arch}"
        " --mode {wildcards.mode} --seed {wildcards.seed} --device {params.device}"
        " --threads {threads} --out {output:q} > {log:q} 2>&1"
