# The paper as outputs: its tables, figures and the claim checks (infoplane.paper).
from infoplane.paper import figures as paper_figures
from infoplane.paper import tables as paper_tables

PAPER = path("paper")
PAPER_CATEGORY = f"Paper ({config['experiment']})"
PAPER_TABLES = list(paper_tables.TABLES)  # the captions: workflow/report/<table>.rst
# kind -> title; the captions: workflow/report/paper_<kind>.rst
FIGURES = paper_figures.KINDS


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
        claim_differences=f"{PAPER}/claim_differences.parquet",
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
