"""Shared helpers of the paper outputs: the input tables, estimator settings, run statistics.

The three input tables are those of `infoplane.contracts` (metrics, dependence, probes). A
*group* is one nested run identity dataset × arch; within it modes and seeds vary.
Dependence rows are further split by their *estimator setting* (estimator, kernels, σ,
bandwidth, ε, batch size): values of different settings are never mixed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import contracts

RUN = list(contracts.RUN_KEYS)
GROUP = ["dataset", "arch"]
SETTING_COLUMNS = list(contracts.DEPENDENCE_SETTINGS)
#: Reference mode of the layer-wise comparisons.
E2E = "e2e"


def is_e2e(mode: str) -> bool:
    return mode == E2E or mode.startswith(E2E + "-")


def mode_order(modes: Iterable[str]) -> list[str]:
    """End-to-end first, then the other modes alphabetically."""
    modes = sorted(set(modes))
    return [m for m in modes if is_e2e(m)] + [m for m in modes if not is_e2e(m)]


def _fmt_number(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


#: How each setting column appears in a label, in order (kernels are shown as one triple).
_LABEL_PARTS = (("sigma", "σ={}"), ("bandwidth", "bandwidth {}"), ("epsilon", "ε={}"), ("alpha", "α={}"),
                ("width", "width {}"), ("k", "k={}"), ("noise_variance", "s²={}"), ("relative", "relative {}"),
                ("bins", "{} bins"), ("bin_range", "range {}"))


def _setting_parts(row) -> list[str]:
    """The non-empty settings of a row (a key its estimator does not use is NA and left out)."""
    parts = []
    if _fmt_number(row["kernel_x"]):
        parts.append(f"kernels X/Y/Z {row['kernel_x']}/{row['kernel_y']}/{row['kernel_z']}")
    for key, text in _LABEL_PARTS:
        value = _fmt_number(row[key])
        if value and not (key == "bandwidth" and value == "fixed") and not (key == "relative" and value == "False"):
            parts.append(text.format(value))
    return parts


def setting_label(row) -> str:
    """Human label of one estimator setting, e.g. 'nocco; kernels X/Y/Z gaussian/onehot/gaussian; σ=5;
    ε=1e-05; batch m=128' or 'binning; 30 bins; range snapshot; batch m=128' (unit in brackets for MI)."""
    unit = _fmt_number(row["unit"])
    head = f"{row['estimator']} [{unit}]" if unit else str(row["estimator"])
    return "; ".join([head, *_setting_parts(row), f"batch m={_fmt_number(row['batch_size'])}"])


def setting_slug(row) -> str:
    """File-name-safe id of one estimator setting."""
    text = "-".join([str(row["estimator"]), *_setting_parts(row), f"m{_fmt_number(row['batch_size'])}"])
    text = text.replace("kernels X/Y/Z ", "").replace("/", "-").replace("σ=", "s").replace("ε=", "e")
    text = text.replace("α=", "a").replace("s²=", "nv").replace("bandwidth ", "bw")
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text)


def with_settings(dependence: pd.DataFrame) -> pd.DataFrame:
    """The dependence table plus `setting` (label) and `setting_slug` columns."""
    dependence = dependence.copy()
    keys = pd.Series(["|".join(map(str, row)) for row in dependence[SETTING_COLUMNS].itertuples(index=False)],
                     index=dependence.index)
    first = dependence.groupby(keys, sort=False).head(1)
    labels = {k: setting_label(r) for k, (_, r) in zip(keys.loc[first.index], first.iterrows())}
    slugs = {k: setting_slug(r) for k, (_, r) in zip(keys.loc[first.index], first.iterrows())}
    dependence["setting"] = keys.map(labels)
    dependence["setting_slug"] = keys.map(slugs)
    return dependence


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows at each run's last epoch (runs may end at different epochs)."""
    last = table.groupby(RUN)["epoch"].transform("max")
    return table[table["epoch"] == last]


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample std (ddof=1; NaN for one value), count) of the finite values."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan, math.nan, 0
    std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return float(arr.mean()), std, int(arr.size)


def deep_layers(num_layers: int) -> list[int]:
    """The deeper half of layers 0..L-1 (classifier included): indices >= L // 2."""
    return list(range(num_layers // 2, num_layers))


def middle_layers(num_layers: int) -> list[int]:
    """Blocks other than the first and the last (classifier excluded); all blocks if < 3."""
    blocks = list(range(num_layers - 1)) or [0]
    return blocks[1:-1] if len(blocks) >= 3 else blocks


def compression(dependence: pd.DataFrame) -> pd.DataFrame:
    """Per run, setting and layer: peak of the dependence on X over epochs minus its final value."""
    keys = [*RUN, "setting", "layer", "layer_name"]
    ordered = dependence.sort_values("epoch")
    grouped = ordered.groupby(keys, sort=False)
    out = grouped.agg(peak=("value_xz", "max"), final=("value_xz", "last")).reset_index()
    out["compression"] = out["peak"] - out["final"]
    return out


def generalization_gap(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run: train minus test accuracy of the whole network at the run's last epoch."""
    final = final_rows(whole_network(metrics))
    wide = final.pivot_table(index=RUN, columns="split", values="accuracy", aggfunc="mean")
    if not {"train", "test"} <= set(wide.columns):
        return pd.DataFrame(columns=[*RUN, "train", "test", "gap"])
    wide = wide.reset_index()
    wide["gap"] = wide["train"] - wide["test"]
    return wide[[*RUN, "train", "test", "gap"]]


def whole_network(metrics: pd.DataFrame) -> pd.DataFrame:
    """The final classifier's rows (the whole network's prediction)."""
    return metrics[metrics["layer_name"] == "classifier"]


@dataclass
class Inputs:
    """The three tables, conformed to their contracts; dependence carries `setting` / `setting_slug`."""

    metrics: pd.DataFrame
    dependence: pd.DataFrame
    probes: pd.DataFrame

    @classmethod
    def from_frames(cls, metrics: pd.DataFrame, dependence: pd.DataFrame, probes: pd.DataFrame) -> Inputs:
        return cls(
            contracts.METRICS.conform(metrics, "metrics"),
            with_settings(contracts.DEPENDENCE.conform(dependence, "dependence")),
            contracts.PROBES.conform(probes, "probes"),
        )

    @classmethod
    def read(cls, tables_dir: str) -> Inputs:
        """The tables in `tables_dir` (results/tables/), each checked against its contract."""
        tables = {name: t.read(contracts.table_file(tables_dir, name)) for name, t in contracts.TABLES.items()}
        return cls.from_frames(tables["metrics"], tables["dependence"], tables["probes"])

    def settings(self) -> list[tuple[str, str]]:
        """(label, slug) of every estimator setting, sorted by label."""
        pairs = self.dependence[["setting", "setting_slug"]].drop_duplicates().sort_values("setting")
        return list(pairs.itertuples(index=False, name=None))

    def seeds(self) -> list[int]:
        frames = [t["seed"] for t in (self.metrics, self.dependence, self.probes) if len(t)]
        return sorted({int(s) for f in frames for s in f}) if frames else []

    def header(self, experiment: str) -> str:
        """One line: experiment, estimator settings, seeds (what a reader needs to judge a table)."""
        settings = "; ".join(f"[{label}]" for label, _ in self.settings()) or "none"
        seeds = self.seeds()
        per_run = self.metrics.groupby([*GROUP, "mode"])["seed"].nunique() if len(self.metrics) else pd.Series()
        counts = sorted(set(per_run.tolist()))
        if not counts:
            count_text = f"{len(seeds)} seed{'s' * (len(seeds) != 1)}"
        elif len(counts) == 1:
            count_text = f"{counts[0]} seed{'s' * (counts[0] != 1)} per cell"
        else:
            count_text = f"{counts[0]}–{counts[-1]} seeds per cell"
        probe = ""
        if len(self.probes):
            sizes = self.probes[["probe_train_size", "probe_test_size"]].drop_duplicates().iloc[0]
            probe = f" · linear probe: {sizes.probe_train_size} train / {sizes.probe_test_size} test samples"
        return (
            f"Experiment `{experiment}` · dependence estimator: {settings} · {count_text} "
            f"(seeds {', '.join(map(str, seeds))}){probe}"
        )
