"""Claim 1: end-to-end training keeps more input information in the deeper layers."""

from __future__ import annotations

import pandas as pd

from ..common import deep_layers
from .data import final, in_layer_groups, paired_parts, used_dependence
from .registry import Options, claim


def deep_input_dependence(dependence: pd.DataFrame) -> pd.DataFrame:
    """Per run and setting at the run's last epoch: part "deeper_blocks" = mean excess
    nHSIC(X;Z_l) over the deeper half of the blocks (block indices >= B // 2 of B blocks), part
    "classifier" = the logits' excess. Columns: PER_SEED_COLUMNS + part, statistic."""
    dep = final(used_dependence(dependence))
    deep = dep[in_layer_groups(dep, deep_layers)]  # blocks B // 2 .. B - 1 (the classifier is layer B)
    keys = ["dataset", "arch", "setting", "mode", "seed"]
    a = deep.groupby(keys).agg(value=("dep_xz", "mean"), n_blocks=("n_blocks", "first")).reset_index()
    a["part"] = "deeper_blocks"
    a["statistic"] = [f"mean excess nHSIC(X;Z_l) over blocks {b // 2}..{b - 1}, last epoch" for b in a.pop("n_blocks")]
    clf = dep[dep["layer"] == dep["n_blocks"]].groupby(keys)["dep_xz"].mean().rename("value").reset_index()
    clf["part"] = "classifier"
    clf["statistic"] = "excess nHSIC(X;Z) of the classifier logits, last epoch"
    return pd.concat([a, clf], ignore_index=True)


@claim(
    "1",
    title="input information through depth",
    statement="End-to-end (E2E) training propagates input information through depth better than layer-wise "
    "training: nHSIC(X; Z_l) stays higher in deeper layers under E2E.",
    statistic="Per seed, the dependence on X (excess over the permutation null) averaged over the deeper half of "
    "the blocks (block indices >= B // 2 of B blocks) at the last snapshot (primary); the classifier logits' "
    "dependence on X separately (secondary). Paired by seed, E2E − other > 0.",
    mean="mean over seeds of the paired difference E2E − other",
)
def input_information(dependence: pd.DataFrame, metrics: pd.DataFrame | None = None, options: Options = Options()):
    """Claim 1 -> (results, differences): both parts paired by seed, E2E − other > 0."""
    per_seed = deep_input_dependence(dependence)
    return paired_parts(per_seed, "1", {"deeper_blocks": True, "classifier": False}, options.alpha)
