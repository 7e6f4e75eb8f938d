# Local on a cluster: downloads need the internet, which compute nodes often lack.
localrules:
    data,


rule data:
    output:
        path("eval_set"),
    log:
        path("log", stage="data", job="{dataset}/{split}"),
    conda:
        "../envs/infoplane.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=settings("data"),
    shell:
        "infoplane data --dataset {wildcards.dataset} --split {wildcards.split}"
        " --settings {params.settings:q}"
        " --out {output:q} > {log:q} 2>&1"
