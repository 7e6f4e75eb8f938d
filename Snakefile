# infoplane: train a grid of architectures × training modes × seeds, snapshot every layer,
# measure normalized HSIC, and aggregate into tables and plots. See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/hsic.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
