from infoplane import packing


rule dependence:
    input:
        eval_sets=eval_sets(),
        snapshots=snapshots(),
    output:
        path("dependence"),
    log:
        path("log", stage="dependence", job=RUN),
    benchmark:
        path("benchmark", stage="dependence", job=RUN)
    group:
        packing.slurm_group("dependence")
    conda:
        "../envs/infoplane.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPU_PER_JOB,
        gpu_mem_mb=packing.gpu_mem_mb("dependence", config, GPU_PER_JOB),
    params:
        settings=settings("dependence"),
        device=config["device"],
    shell:
        "infoplane dependence --eval-set {input.eval_sets:q} --snapshots {input.snapshots:q}"
        " --settings {params.settings:q} --out {output:q}"
        " --device {params.device} --threads {threads} > {log:q} 2>&1"
