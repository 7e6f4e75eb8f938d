rule train:
    input:
        probe=f"{R}/data/{{dataset}}/probe.pt",
    output:
        snapshots=[f"{R}/snapshots/{RUN}/epoch{e}.pt" for e in SNAPSHOT_EPOCHS],
        metrics=f"{R}/runs/{RUN}/metrics.parquet",
    log:
        f"{R}/logs/train/{RUN}.log",
    benchmark:
        f"{R}/benchmarks/train/{RUN}.tsv"
    conda:
        "../envs/infoplane.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPU_PER_JOB,
    params:
        settings=train_settings(),
        checkpoint_dir=f"{R}/checkpoints/{RUN}",
        snapshot_dir=f"{R}/snapshots/{RUN}",
    shell:
        "python -m infoplane.train --dataset {wildcards.dataset} --arch {wildcards.arch}"
        " --mode {wildcards.mode} --seed {wildcards.seed} --settings {params.settings:q}"
        " --probe-data {input.probe:q} --checkpoint-dir {params.checkpoint_dir:q}"
        " --snapshot-dir {params.snapshot_dir:q} --metrics {output.metrics:q}"
        " --threads {threads} > {log:q} 2>&1"
