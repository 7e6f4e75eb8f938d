# The paper as outputs: four tables, figures and the claim checks (infoplane.paper).
PAPER = f"{R}/paper"
PAPER_CATEGORY = f"Paper ({config['experiment']})"


localrules:
    paper,


rule paper:
    input:
        metrics=f"{R}/tables/metrics.parquet",
        hsic=f"{R}/tables/hsic.parquet",
        probes=f"{R}/tables/probes.parquet",
    output:
        table1=report(
            f"{PAPER}/table1_accuracy.html",
            caption="../report/table1_accuracy.rst",
            category=PAPER_CATEGORY,
            subcategory="Tables",
        ),
        table2=report(
            f"{PAPER}/table2_separability.html",
            caption="../report/table2_separability.rst",
            category=PAPER_CATEGORY,
            subcategory="Tables",
        ),
        table3=report(
            f"{PAPER}/table3_nhsic.html",
            caption="../report/table3_nhsic.rst",
            category=PAPER_CATEGORY,
            subcategory="Tables",
        ),
        table4=report(
            f"{PAPER}/table4_compression.html",
            caption="../report/table4_compression.rst",
            category=PAPER_CATEGORY,
            subcategory="Tables",
        ),
        claims=report(
            f"{PAPER}/claims.html",
            caption="../report/claims.rst",
            category=PAPER_CATEGORY,
            subcategory="Claims",
        ),
        claims_md=f"{PAPER}/claims.md",
        claims_table=f"{PAPER}/claims.parquet",
        tables=expand(
            f"{PAPER}/{{table}}.{{ext}}",
            table=[
                "table1_accuracy",
                "table2_separability",
                "table3_nhsic",
                "table4_compression",
            ],
            ext=["parquet", "md", "tex"],
        ),
        infoplane=report(
            directory(f"{PAPER}/figures/infoplane"),
            patterns=["{name}.png"],
            caption="../report/paper_infoplane.rst",
            category=PAPER_CATEGORY,
            subcategory="Information plane",
        ),
        nhsic=report(
            directory(f"{PAPER}/figures/nhsic"),
            patterns=["{name}.png"],
            caption="../report/paper_nhsic.rst",
            category=PAPER_CATEGORY,
            subcategory="nHSIC vs epoch",
        ),
        separability=report(
            directory(f"{PAPER}/figures/separability"),
            patterns=["{name}.png"],
            caption="../report/paper_separability.rst",
            category=PAPER_CATEGORY,
            subcategory="Linear separability",
        ),
        compression=report(
            directory(f"{PAPER}/figures/compression"),
            patterns=["{name}.png"],
            caption="../report/paper_compression.rst",
            category=PAPER_CATEGORY,
            subcategory="Compression vs generalization",
        ),
    log:
        f"{R}/logs/paper.log",
    conda:
        "../envs/infoplane.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        experiment=config["experiment"],
        out=lambda wildcards, output: output.claims_md.rsplit("/", 1)[0],
    shell:
        "python -m infoplane.paper --metrics {input.metrics:q} --hsic {input.hsic:q}"
        " --probes {input.probes:q} --experiment {params.experiment:q} --out {params.out:q}"
        " > {log:q} 2>&1"
