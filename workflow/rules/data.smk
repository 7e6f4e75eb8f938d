rule prepare_data:
    output:
        f"{R}/data/{{dataset}}/probe.pt",
    log:
        f"{R}/logs/prepare_data/{{dataset}}.log",
    conda:
        "../envs/infoplane.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        root=config["data"]["root"],
        download="--download" if config["data"]["download"] else "",
        probe_size=config["snapshots"]["probe_size"],
    shell:
        "python -m infoplane.prepare --dataset {wildcards.dataset} --root {params.root:q}"
        " {params.download} --probe-size {params.probe_size} --out {output:q} > {log:q} 2>&1"
