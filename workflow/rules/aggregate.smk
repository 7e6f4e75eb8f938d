localrules:
    aggregate,


rule aggregate:
    input:
        metrics=run_paths(f"{R}/runs/{RUN}/metrics.parquet"),
        hsic=run_paths(f"{R}/hsic/{RUN}.parquet"),
        probes=run_paths(f"{R}/probes/{RUN}.parquet"),
    output:
        metrics=f"{R}/tables/metrics.parquet",
        hsic=f"{R}/tables/hsic.parquet",
        probes=f"{R}/tables/probes.parquet",
        accuracy=report(
            f"{R}/tables/accuracy.md",
            caption="../report/accuracy.rst",
            category="Tables",
        ),
    log:
        f"{R}/logs/aggregate.log",
    conda:
        "../envs/infoplane.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        experiment=config["experiment"],
    shell:
        "python -m infoplane.aggregate --metrics {input.metrics:q} --hsic {input.hsic:q}"
        " --probes {input.probes:q} --out-probes {output.probes:q}"
        " --experiment {params.experiment:q} --out-metrics {output.metrics:q}"
        " --out-hsic {output.hsic:q} --out-accuracy {output.accuracy:q} > {log:q} 2>&1"
