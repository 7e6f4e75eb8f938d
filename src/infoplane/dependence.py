"""The dependence stage: dependence between every layer Z and the input X / the label Y, on
every snapshot of one run (the estimators of `infoplane.hsic`).

Reads the eval set (inputs X, labels Y) and the run's snapshot files and returns one row per
(epoch, layer, estimator setting) of the `contracts.DEPENDENCE` table, with every estimator
setting recorded next to the values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from . import contracts, hsic

log = logging.getLogger("infoplane")


def measure_snapshot(eval_set: contracts.EvalSet, snapshot: contracts.Snapshot, settings: Mapping,
                     device: torch.device) -> pd.DataFrame:
    """The dependence rows of one snapshot (all layers × estimator settings)."""
    scores = hsic.layer_scores(
        eval_set.x,
        eval_set.y,
        snapshot.layers,
        layer_names=snapshot.layer_names,
        batch_size=settings["batch_size"],
        estimators=settings["estimators"],
        kernel_x=settings["kernel_x"],
        kernel_y=settings["kernel_y"],
        kernel_z=settings["kernel_z"],
        sigma=settings["sigma"],
        epsilon=settings["epsilon"],
        bandwidth=settings["bandwidth"],
        num_classes=eval_set.num_classes,
        device=device,
    )
    scores = scores.rename(columns=lambda c: c.replace("nhsic_", "value_"))
    for key in ("kernel_x", "kernel_y", "kernel_z", "sigma", "bandwidth", "epsilon", "batch_size"):
        scores[key] = settings[key]
    scores["epoch"] = snapshot.epoch
    for key, value in snapshot.run.columns().items():
        scores[key] = value
    return scores


def measure_run(eval_set_path: Path, snapshot_paths: Sequence[Path], settings: Mapping,
                device: torch.device) -> pd.DataFrame:
    """The dependence table of one run: every snapshot, every layer, every estimator setting."""
    eval_set = contracts.read_eval_set(eval_set_path)
    snapshots = contracts.read_snapshots(snapshot_paths, eval_set)
    frames = [measure_snapshot(eval_set, snap, settings, device)
              for snap in tqdm(snapshots, desc="snapshots", mininterval=2.0, disable=False)]
    return contracts.DEPENDENCE.conform(pd.concat(frames, ignore_index=True))
