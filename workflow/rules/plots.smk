localrules:
    plot,


rule plot:
    input:
        hsic=f"{R}/tables/hsic.parquet",
        metrics=f"{R}/tables/metrics.parquet",
    output:
        infoplane=report(
            f"{R}/plots/infoplane_{{dataset}}_{{arch}}.png",
            caption="../report/infoplane.rst",
            category="Information plane",
            subcategory="{dataset}",
        ),
        accuracy=report(
            f"{R}/plots/accuracy_{{dataset}}_{{arch}}.png",
            caption="../report/accuracy_curve.rst",
            category="Accuracy",
            subcategory="{dataset}",
        ),
    log:
        f"{R}/logs/plots/{{dataset}}_{{arch}}.log",
    conda:
        "../envs/infoplane.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m infoplane.plots --hsic {input.hsic:q} --metrics {input.metrics:q}"
        " --dataset {wildcards.dataset} --arch {wildcards.arch}"
        " --infoplane {output.infoplane:q} --accuracy {output.accuracy:q} > {log:q} 2>&1"
