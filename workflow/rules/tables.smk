localrules:
    tables,


rule tables:
    input:
        metrics=per_run("metrics"),
        dependence=per_run("dependence"),
        probes=per_run("probe"),
    output:
        [path("table", table=name) for name in contracts.TABLES],
    log:
        path("log", stage="tables", job="tables"),
    conda:
        "../envs/infoplane.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
    shell:
        "infoplane tables --metrics {input.metrics:q} --dependence {input.dependence:q}"
        " --probes {input.probes:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
