"""Claim 2: E2E layers differentiate (their information-plane trajectories differ by depth)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..rule import PER_SEED_COLUMNS
from .data import paired_parts, unit_arrays, used_dependence
from .registry import Options, claim


def trajectory_statistics(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(shape differentiation, mean distance) of one run's blocks in the scaled information plane.

    x, y: (n_epochs, n_layers) scaled dependence. Each layer's step sequence is the vector of its
    steps (dx_1..dx_T, dy_1..dy_T) between consecutive snapshots; shape differentiation = mean over
    layer pairs of 1 - cosine similarity of the two step sequences (0: the layers move alike in
    direction and timing, whatever their size or position; 1: unrelated; 2: opposite). Layers that
    never move are left out (their direction is undefined). Mean distance = mean over snapshots
    after the first and over layer pairs of the distance between the layers' points (spread).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"x and y must both be (n_epochs, n_layers), got {x.shape} and {y.shape}")
    n_epochs, n_layers = x.shape
    if n_layers < 2 or n_epochs < 2:
        return math.nan, math.nan
    steps = np.concatenate([np.diff(x, axis=0), np.diff(y, axis=0)], axis=0)  # (2T, L)
    norms = np.linalg.norm(steps, axis=0)
    moving = norms > 1e-9 * max(float(norms.max()), 1e-300)
    shape = math.nan
    if moving.sum() >= 2:
        unit = steps[:, moving] / norms[moving]
        cos = unit.T @ unit
        upper = np.triu_indices(int(moving.sum()), k=1)
        shape = float(np.mean(1.0 - cos[upper]))
    points = np.stack([x[1:], y[1:]], axis=-1)  # (E-1, L, 2)
    dist = np.sqrt(((points[:, :, None, :] - points[:, None, :, :]) ** 2).sum(-1))
    upper = np.triu_indices(n_layers, k=1)
    return shape, float(dist[:, upper[0], upper[1]].mean())


def layer_differentiation(dependence: pd.DataFrame) -> pd.DataFrame:
    """Per run and setting: part "trajectory_shape" and part "mean_distance" of the blocks
    (classifier excluded), each axis scaled by the range of the dependence over all blocks, runs
    and epochs of the dataset x arch x setting. Uses the snapshot epochs at which every block of
    the run has a value; needs >= 3 of them (fewer: NaN). Columns: PER_SEED_COLUMNS + part, statistic."""
    dep = used_dependence(dependence)
    dep = dep[dep["layer"] < dep["n_blocks"]].copy()
    group = dep.groupby(["dataset", "arch", "setting"])
    for axis in ("xz", "yz"):
        spread = (group[f"dep_{axis}"].transform("max") - group[f"dep_{axis}"].transform("min")).to_numpy(float)
        dep[f"scaled_{axis}"] = dep[f"dep_{axis}"] / np.where(spread > 0, spread, 1.0)
    out = []
    keys = ["dataset", "arch", "setting", "mode", "seed"]
    for key, _, _, arr in unit_arrays(dep, keys, "epoch", "layer", ["scaled_xz", "scaled_yz"]):
        complete = ~(np.isnan(arr["scaled_xz"]).any(1) | np.isnan(arr["scaled_yz"]).any(1))
        x, y = arr["scaled_xz"][complete], arr["scaled_yz"][complete]
        shape, dist = trajectory_statistics(x, y) if len(x) >= 3 else (math.nan, math.nan)
        ident = dict(zip(keys, key))
        out.append({**ident, "part": "trajectory_shape", "value": shape,
                    "statistic": "mean over block pairs of 1 - cosine of their step sequences in the "
                                 "range-scaled information plane"})  # fmt: skip
        out.append({**ident, "part": "mean_distance", "value": dist,
                    "statistic": "mean distance between blocks' points in the range-scaled information plane"})
    return pd.DataFrame(out, columns=[*PER_SEED_COLUMNS, "part", "statistic"])


@claim(
    "2",
    title="layer differentiation",
    statement="E2E layers differentiate: their information-plane trajectories differ by depth, while layer-wise "
    "layers behave alike.",
    statistic="Per seed, the mean over block pairs of 1 − cosine similarity of their step sequences (dx, dy) in "
    "the information plane, each axis scaled by its range over the dataset × arch × setting (trajectory shape, "
    "primary); the mean distance between the blocks' points (secondary). Paired by seed, E2E − other > 0.",
    mean="mean over seeds of the paired difference E2E − other",
)
def differentiation(dependence: pd.DataFrame, metrics: pd.DataFrame | None = None, options: Options = Options()):
    """Claim 2 -> (results, differences): both parts paired by seed, E2E − other > 0."""
    per_seed = layer_differentiation(dependence)
    return paired_parts(per_seed, "2", {"trajectory_shape": True, "mean_distance": False}, options.alpha)
