# The paper as outputs: five tables, figures and the claim checks (infoplane.paper).
PAPER = path("paper")
PAPER_CATEGORY = f"Paper ({config['experiment']})"
PAPER_TABLES = [
    "table1_accuracy",
    "table2_separability",
    "table3_dependence",
    "table4_compression",
    "table5_compression_by_estimator",
]
FIGURES = {
    "infoplane": "Information plane",
    "infoplane_excess": "Information plane of the excess over the null",
    "dependence": "Dependence vs epoch",
    "dependence_excess": "Excess over the null vs epoch",
    "diagnostics": "Scale diagnostics",
    "sensitivity": "Sensitivity to sigma and epsilon",
    "infoplane_estimators": "Information plane per estimator",
    "compression_estimators": "Compression per estimator",
    "accuracy": "Accuracy vs epoch",
    "separability": "Linear separability",
    "compression": "Compression vs generalization",
}


localrules:
    paper,


rule paper:
    input:
        [path("table", table=name) for name in contracts.TABLES],
    output:
        tables=[
            report(
                f"{PAPER}/{name}.html",
                caption=f"../report/{name}.rst",
                category=PAPER_CATEGORY,
                subcategory="Tables",
            )
            for name in PAPER_TABLES
        ],
        claims=report(
            f"{PAPER}/claims.html",
            caption="../report/claims.rst",
            category=PAPER_CATEGORY,
            subcategory="Claims",
        ),
        claims_md=f"{PAPER}/claims.md",
        claims_table=f"{PAPER}/claims.parquet",
        table_files=expand(
            f"{PAPER}/{{table}}.{{ext}}",
            table=PAPER_TABLES,
            ext=["parquet", "md", "tex"],
        ),
        figures=[
            report(
                directory(f"{PAPER}/figures/{kind}"),
                patterns=["{name}.png"],
                caption=f"../report/paper_{kind}.rst",
                category=PAPER_CATEGORY,
                subcategory=title,
            )
            for kind, title in FIGURES.items()
        ],
    log:
        path("log", stage="paper", job="paper"),
    conda:
        "../envs/infoplane.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        experiment=config["experiment"],
        tables=lambda wildcards, input: os.path.dirname(input[0]),
        out_dir=lambda wildcards, output: os.path.dirname(output.claims_md),
    shell:
        "infoplane paper --tables {params.tables:q} --out-dir {params.out_dir:q}"
        " --experiment {params.experiment:q} > {log:q} 2>&1"
