from infoplane import packing


rule probe:
    input:
        eval_sets=eval_sets(),
        snapshots=snapshots(),
    output:
        path("probe"),
    log:
        path("log", stage="probe", job=RUN),
    benchmark:
        path("benchmark", stage="probe", job=RUN)
    group:
        packing.slurm_group("probe")
    conda:
        "../envs/infoplane.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPU_PER_JOB,
        gpu_mem_mb=packing.gpu_mem_mb("probe", config, GPU_PER_JOB),
    params:
        settings=settings("probe"),
        device=config["device"],
    shell:
        "infoplane probe --eval-set {input.eval_sets:q} --snapshots {input.snapshots:q}"
        " --settings {params.settings:q} --out {output:q}"
        " --device {params.device} --threads {threads} > {log:q} 2>&1"
