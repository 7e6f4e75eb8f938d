# Config validation, the run grid, paths and input functions. Logic lives in src/infoplane.
import itertools
import json
import os
import sys

from snakemake.utils import validate

from infoplane import config as ipconfig
from infoplane import contracts

if workflow.is_main_process:
    ipconfig.refuse_repeated_configfile(sys.argv)
# --config values typed by the schema; renamed and unknown keys refused in one line each
ipconfig.prepare(config, command_line=workflow.config_settings.config)
validate(config, "../schemas/config.schema.yaml")
ipconfig.check(config)

R = config["output_root"]
SNAPSHOT_EPOCHS = ipconfig.snapshot_epochs(config)
SPLITS = config["snapshots"]["splits"]
RUNS = [
    contracts.Run(*point)
    for point in itertools.product(
        config["datasets"], config["archs"], config["modes"], config["seeds"]
    )
]
GPU_PER_JOB = ipconfig.gpus_per_job(config)
RUN = contracts.RUN_PATH


wildcard_constraints:
    **contracts.WILDCARDS,


if workflow.is_main_process:
    logger.info(ipconfig.plan_summary(config))


onstart:
    # the executor is known only now: device cuda without a GPU is refused where jobs run here
    ipconfig.refuse_missing_cuda(config, local=workflow.local_exec)


def path(name, **fields):
    """The output `name` of infoplane.contracts.PATHS under the output root; unfilled
    fields stay wildcards."""
    return contracts.pattern(name, R, **fields)


def per_run(name):
    """Output `name` of every run of the grid."""
    return [path(name, run=run) for run in RUNS]


def snapshots():
    """The snapshot files of one run (wildcards), one per split and snapshot epoch."""
    return [path("snapshot", split=s, epoch=e) for s in SPLITS for e in SNAPSHOT_EPOCHS]


def eval_sets():
    """The eval set of every snapshotted split of one data set (wildcard dataset)."""
    return [path("eval_set", split=s) for s in SPLITS]


def settings(stage):
    """The stage's settings as one JSON string: a param, so a change reruns the stage."""
    return json.dumps(ipconfig.stage_settings(config, stage), sort_keys=True)


def run_id(wildcards):
    return RUN.format(**wildcards)


def final_outputs():
    return [
        *[path("table", table=name) for name in contracts.TABLES],
        f"{path('paper')}/claims.md",
    ]
