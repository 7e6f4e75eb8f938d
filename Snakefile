# infoplane: train a grid of architectures × training modes × seeds, snapshot every layer,
# measure the dependence of every layer on the input and the label, and turn it all into
# tables, figures and claim checks. See README.md.
from snakemake.utils import min_version

from infoplane.config import check_syntax

min_version("9.0")
check_syntax("config.yaml")  # a YAML error with its line, column and reason


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/dependence.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
