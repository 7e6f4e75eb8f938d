from infoplane import packing


rule train:
    input:
        eval_sets=eval_sets(),
    output:
        snapshots=snapshots(),
        metrics=path("metrics"),
    log:
        path("log", stage="train", job=RUN),
    benchmark:
        path("benchmark", stage="train", job=RUN)
    group:
        packing.slurm_group("train")
    conda:
        "../envs/infoplane.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPU_PER_JOB,
        gpu_mem_mb=packing.gpu_mem_mb("train", config, GPU_PER_JOB),
    params:
        run=run_id,
        settings=settings("train"),
        device=config["device"],
        run_dir=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "infoplane train --run {params.run:q} --eval-set {input.eval_sets:q}"
        " --settings {params.settings:q} --out-dir {params.run_dir:q}"
        " --device {params.device} --threads {threads} > {log:q} 2>&1"
