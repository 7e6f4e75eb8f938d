"""Measure nHSIC(X;Z_l) and nHSIC(Y;Z_l) on every snapshot of one run.

Reads the probe set (inputs X, labels Y) and the run's snapshot files, and writes one row
per (epoch, layer, estimator) with every estimator setting recorded next to the values.

    python -m infoplane.measure --probe-data results/data/mnist5k/probe.pt \
        --snapshots results/snapshots/.../epoch0.pt ... --settings '{"estimators": ["nocco"], ...}' \
        --dataset mnist5k --arch lenet5 --mode e2e --seed 0 --out results/hsic/.../seed0.parquet
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from . import hsic, io, runtime
from .snapshots import check_matches_probe, run_identity, run_job_parser

log = logging.getLogger("infoplane")

HSIC_COLUMNS = {
    "dataset": "string",
    "arch": "string",
    "mode": "string",
    "seed": "int64",
    "epoch": "int64",
    "layer": "int64",
    "layer_name": "string",
    "estimator": "string",
    "kernel_x": "string",
    "kernel_y": "string",
    "kernel_z": "string",
    "sigma": "float64",
    "bandwidth": "string",
    "epsilon": "float64",
    "batch_size": "int64",
    "n_samples": "int64",
    "n_batches": "int64",
    "nhsic_xz": "float64",
    "nhsic_xz_std": "float64",
    "nhsic_yz": "float64",
    "nhsic_yz_std": "float64",
}


def measure_run(
    probe: Mapping, snapshot_paths: Sequence[Path], settings: Mapping, identity: Mapping, device: torch.device
) -> pd.DataFrame:
    frames = []
    for path in tqdm(snapshot_paths, desc="snapshots", mininterval=2.0, disable=False):
        snap = io.torch_load(path)
        check_matches_probe(snap, probe, path)
        scores = hsic.layer_scores(
            probe["x"],
            probe["y"],
            snap["layers"],
            layer_names=snap["layer_names"],
            batch_size=settings["batch_size"],
            estimators=settings["estimators"],
            kernel_x=settings["kernel_x"],
            kernel_y=settings["kernel_y"],
            kernel_z=settings["kernel_z"],
            sigma=settings["sigma"],
            epsilon=settings["epsilon"],
            bandwidth=settings["bandwidth"],
            num_classes=probe["num_classes"],
            device=device,
        )
        for key in ("kernel_x", "kernel_y", "kernel_z", "sigma", "bandwidth", "epsilon", "batch_size"):
            scores[key] = settings[key]
        scores["epoch"] = snap["epoch"]
        for key, value in identity.items():
            scores[key] = value
        frames.append(scores)
    table = pd.concat(frames, ignore_index=True)
    return table[list(HSIC_COLUMNS)].astype(HSIC_COLUMNS).sort_values(["epoch", "estimator", "layer"], ignore_index=True)


def main(argv: list[str] | None = None) -> None:
    parser = run_job_parser("python -m infoplane.measure", __doc__.split("\n\n")[0])
    parser.add_argument("--settings", required=True, help="JSON of the config's hsic section")
    args = parser.parse_args(argv)
    device = runtime.setup_job(args.threads, args.device)
    table = measure_run(
        io.torch_load(args.probe_data), args.snapshots, json.loads(args.settings), run_identity(args), device
    )
    io.write_parquet(table, args.out)


if __name__ == "__main__":
    main()
