# Config validation, the run grid, paths and input functions. Logic lives in src/infoplane.
import json
import itertools

from snakemake.utils import validate

from infoplane import config as ipconfig

validate(config, "../schemas/config.schema.yaml")
ipconfig.check(config)

R = config["output_root"]
SNAPSHOT_EPOCHS = ipconfig.snapshot_epochs(config)
RUNS = list(
    itertools.product(
        config["datasets"], config["archs"], config["modes"], config["seeds"]
    )
)
GPU_PER_JOB = ipconfig.gpus_per_job(config)
RUN = "{dataset}/{arch}/{mode}/seed{seed}"


wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    arch=r"[A-Za-z0-9_]+",
    mode=r"[a-z][a-z0-9_]*(-[a-z][a-z0-9_]*)*",
    seed=r"\d+",


if workflow.is_main_process:
    logger.info(ipconfig.plan_summary(config))


def run_paths(pattern):
    """`pattern` expanded over every run of the grid."""
    return [pattern.format(dataset=d, arch=a, mode=m, seed=s) for d, a, m, s in RUNS]


def train_settings():
    """What a training job needs from the config, as one JSON string (a rerun trigger)."""
    return json.dumps(
        {
            "training": config["training"],
            # not `download`: prepare_data downloads; training never does
            "data": {k: v for k, v in config["data"].items() if k != "download"},
            "device": config["device"],
            "snapshots": {
                "epochs": SNAPSHOT_EPOCHS,
                "dtype": config["snapshots"]["dtype"],
            },
        },
        sort_keys=True,
    )


def final_outputs():
    pairs = sorted({(d, a) for d, a, _, _ in RUNS})
    return [
        f"{R}/tables/metrics.parquet",
        f"{R}/tables/hsic.parquet",
        f"{R}/tables/accuracy.md",
        f"{R}/tables/probes.parquet",
        f"{R}/paper/claims.md",
        *[f"{R}/plots/infoplane_{d}_{a}.png" for d, a in pairs],
        *[f"{R}/plots/accuracy_{d}_{a}.png" for d, a in pairs],
    ]
