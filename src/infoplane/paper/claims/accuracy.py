"""Claim 4: E2E reaches higher test accuracy than layer-wise training of the same network."""

from __future__ import annotations

import pandas as pd

from ..common import final_rows, require, unique, whole_network
from ..rule import NO_SETTING, paired_comparison
from .data import METRICS_COLUMNS
from .registry import Options, claim


def final_accuracy(metrics: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Per run: the whole network's accuracy on `split` at the run's last epoch (PER_SEED_COLUMNS)."""
    require(metrics, METRICS_COLUMNS, "metrics")
    whole = whole_network(metrics)
    whole = whole[whole["split"] == split]
    unique(whole, ["dataset", "arch", "mode", "seed", "epoch"], f"metrics ({split}, classifier)")
    final = final_rows(whole)
    out = final[["dataset", "arch", "mode", "seed", "accuracy"]].rename(columns={"accuracy": "value"})
    out.insert(2, "setting", NO_SETTING)
    return out.reset_index(drop=True)


@claim(
    "4",
    title="test accuracy",
    statement="E2E reaches higher test accuracy than layer-wise training of the same network.",
    statistic="Per seed, the whole network's test accuracy at the last epoch (auxiliary heads never read). "
    "Paired by seed, E2E − other > 0. Does not depend on the dependence estimator (setting n/a).",
    mean="mean over seeds of the paired difference E2E − other (accuracy as a fraction)",
)
def accuracy(dependence: pd.DataFrame | None, metrics: pd.DataFrame, options: Options = Options()):
    """Claim 4 -> (results, differences): paired by seed, E2E − other > 0; reads no dependence."""
    return paired_comparison(final_accuracy(metrics), claim="4", part="test_accuracy", alpha=options.alpha,
                             statistic="whole-network test accuracy at the last epoch")  # fmt: skip
