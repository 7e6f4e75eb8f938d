"""The numbers the figure modules draw, computed in one place for all of them.

`paper.figures`, `paper.scale_figures` and `paper.geometry` each draw from the same per-seed
aggregates: a mean ± std over seeds, the evidence means of a setting (value or excess, its
null band, whether p <= SIGNIFICANCE in every seed), the layers in depth order and the caption
naming the seeds. They live here, below the drawing modules, so that each has one definition
and no drawing module imports another for them (`figures` imports `scale_figures` to call it).
"""

from __future__ import annotations

import pandas as pd

from .common import has_null, null_band, plotted


def _mean_over_seeds(frame: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    agg = frame.groupby(keys)[values].agg(["mean", "std"])
    agg.columns = [f"{v}_{s}" for v, s in agg.columns]
    return agg.reset_index()


def _seeds_text(frame: pd.DataFrame) -> str:
    seeds = sorted(frame["seed"].unique())
    return f"mean over {len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"


#: The level at which the dependence figures mark a value as beyond its permutation null.
SIGNIFICANCE = 0.05


def evidence_means(block: pd.DataFrame, keys: list[str], excess: bool = False) -> pd.DataFrame:
    """Per `keys` (one estimator setting), mean over seeds of the plotted quantity on X and Y
    (`x`, `y`; value or excess), its std over seeds (`x_std`, `y_std`), the mean null band
    (`x_lo`, `x_hi`, `y_lo`, `y_hi`; NaN without a null) and whether p <= SIGNIFICANCE in every
    seed (`x_significant`, `y_significant`: 1.0 / 0.0, NaN without a p-value)."""
    frame = block[[*keys, "seed"]].copy()
    for role in ("x", "y"):
        frame[role] = plotted(block, role, excess=excess)
        band = null_band(block, role, excess=excess and has_null(block, role))
        frame[f"{role}_lo"], frame[f"{role}_hi"] = band["lo"], band["hi"]
        # 1.0 where p <= SIGNIFICANCE, 0.0 where not, NaN without a p-value; min over seeds = every seed
        p = block[f"p_{role}z"]
        frame[f"{role}_significant"] = (p <= SIGNIFICANCE).astype(float).where(p.notna())
    grouped = frame.groupby(keys, sort=True)
    out = grouped[["x", "y", "x_lo", "x_hi", "y_lo", "y_hi"]].mean()
    out[["x_significant", "y_significant"]] = grouped[["x_significant", "y_significant"]].min().to_numpy()
    out[["x_std", "y_std"]] = grouped[["x", "y"]].std().to_numpy()
    return out.reset_index()


def _layers(frame: pd.DataFrame) -> list[tuple[int, str]]:
    return sorted(frame[["layer", "layer_name"]].drop_duplicates().itertuples(index=False, name=None))
