"""What the claims read: the dependence and metrics tables, turned into the quantities judged.

Inputs: the dependence table (one row per run x snapshot epoch x layer x estimator setting)
with at least `dataset, arch, mode, seed, epoch, layer, layer_name, setting, excess_xz,
excess_yz, p_xz, p_yz`, where layer is a 0-based int and the classifier logits are the last
layer of each dataset x arch; and the metrics table with `dataset, arch, mode, seed, epoch,
split, layer_name, accuracy` (whole network rows have layer_name == "classifier"). Dependence is
the excess over the permutation null; a value with permutation p >= 0.05 counts as no dependence
(excess 0). Where an estimator has no null by design (I(X;T) of kde and binning: null, excess
and p are NaN although permutations were drawn) the raw value is used (`used_dependence`,
`dependence_basis`); rows measured without any permutations (`permutations == 0`) have no
evidence and give NaN.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from ..common import final_rows, require, unique
from ..rule import ALPHA, DIFFERENCE_COLUMNS, RESULT_COLUMNS, concat_frames, paired_comparison

#: A dependence value with permutation p >= NULL_P lies within its null and counts as excess 0.
NULL_P = 0.05
DEPENDENCE_COLUMNS = ["dataset", "arch", "mode", "seed", "epoch", "layer", "layer_name", "setting",
                      "excess_xz", "excess_yz", "p_xz", "p_yz"]  # fmt: skip
METRICS_COLUMNS = ["dataset", "arch", "mode", "seed", "epoch", "split", "layer_name", "accuracy"]

#: How a dependence value enters the claims (`dependence_basis`).
EXCESS, RAW, NO_EVIDENCE = "excess over the permutation null", "raw value (the estimator has no null)", \
    "none (measured without permutations)"


def bases(frame: pd.DataFrame, axis: str) -> tuple[pd.Series, pd.Series]:
    """(no null by design, no evidence) masks of one axis: the null, excess and p are NaN although
    permutations were drawn (kde / binning I(X;T)), or no permutations were drawn at all."""
    missing = frame[f"p_{axis}"].astype(float).isna() & frame[f"excess_{axis}"].astype(float).isna()
    if "permutations" not in frame:
        return missing, pd.Series(False, index=frame.index)
    drawn = frame["permutations"].astype("float64") > 0
    return missing & drawn, ~drawn


def used_dependence(dependence: pd.DataFrame) -> pd.DataFrame:
    """dependence plus dep_xz / dep_yz: the excess over the null, 0 where the value is within its
    null (permutation p >= NULL_P) -- claims judge dependence beyond chance, never raw values. Two
    exceptions: an estimator without a null by design (I(X;T) of kde and binning, which does not
    involve X) enters with its raw value; a row measured without permutations has no evidence (NaN)."""
    require(dependence, DEPENDENCE_COLUMNS, "dependence")
    unique(dependence, ["dataset", "arch", "mode", "seed", "epoch", "layer", "setting"], "dependence")
    out = dependence.copy()
    for axis in ("xz", "yz"):
        excess = out[f"excess_{axis}"].astype(float)
        used = excess.where(~(out[f"p_{axis}"].astype(float) >= NULL_P), 0.0)
        no_null, no_evidence = bases(out, axis)
        if no_null.any():
            if f"value_{axis}" not in out:
                raise ValueError(f"dependence rows without a null (p_{axis} and excess_{axis} NaN) need their raw "
                                 f"value: the table lacks value_{axis}")  # fmt: skip
            used = used.where(~no_null, out[f"value_{axis}"].astype(float))
        out[f"dep_{axis}"] = used.where(~no_evidence, math.nan)
    out["layer"] = out["layer"].astype("int64")
    # the classifier logits are the last layer of each dataset x arch; blocks are all others
    out["n_blocks"] = out.groupby(["dataset", "arch"])["layer"].transform("max")
    return out


def dependence_basis(dependence: pd.DataFrame) -> pd.DataFrame:
    """Per setting, what the claims use on each axis: columns setting, basis_xz, basis_yz, each
    EXCESS, RAW, NO_EVIDENCE or several of them joined by " / " (rows of one setting that differ)."""
    require(dependence, ["setting", "excess_xz", "excess_yz", "p_xz", "p_yz"], "dependence")
    out = pd.DataFrame({"setting": dependence["setting"].astype(str)})
    for axis in ("xz", "yz"):
        no_null, no_evidence = bases(dependence, axis)
        out[f"basis_{axis}"] = np.where(no_evidence, NO_EVIDENCE, np.where(no_null, RAW, EXCESS))
    return (out.groupby("setting", sort=True).agg(lambda b: " / ".join(sorted(set(b)))).reset_index())


def raw_dependence(dependence: pd.DataFrame) -> pd.DataFrame:
    """The same table with every value taken as it is (excess = value, p = NaN): the claims'
    statistics computed on it are the raw companions of the excess-based ones (reported, never
    deciding). Rows without permutations keep no evidence."""
    require(dependence, ["value_xz", "value_yz"], "dependence")
    out = dependence.copy()
    for axis in ("xz", "yz"):
        out[f"excess_{axis}"] = out[f"value_{axis}"].astype(float)
        out[f"p_{axis}"] = math.nan
    return out


def final(dep: pd.DataFrame) -> pd.DataFrame:
    """Each run's rows at its last epoch, per estimator setting (`common.final_rows` per setting)."""
    if dep.empty:
        return dep
    return pd.concat([final_rows(group) for _, group in dep.groupby("setting", sort=False)])


def in_layer_groups(dep: pd.DataFrame, group) -> np.ndarray:
    """Mask of the rows whose layer is in group(n_blocks) (`common.deep_layers` / `middle_layers`)."""
    allowed = pd.MultiIndex.from_tuples([(int(b), layer) for b in dep["n_blocks"].unique() for layer in group(int(b))],
                                        names=["n_blocks", "layer"])  # fmt: skip
    rows = pd.MultiIndex.from_arrays([dep["n_blocks"].astype("int64"), dep["layer"].astype("int64")])
    return rows.isin(allowed)


def comparison_rng(seed: int, *key) -> np.random.Generator:
    """A generator fixed by the seed and the comparison's identity (stable across processes)."""
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, key)).encode())])


def unit_arrays(frame: pd.DataFrame, unit_keys: list[str], row_key: str, col_key: str, values: list[str]):
    """Yield (unit key, row labels, column labels, {value: (rows, columns) float array}) for every unit,
    from one unstack of the whole frame (missing cells NaN; all-NaN columns of a unit dropped)."""
    if frame.empty:
        return
    wide = frame.set_index([*unit_keys, row_key, col_key])[values].unstack(col_key).sort_index()
    columns = wide[values[0]].columns.to_numpy()
    arrays = {v: wide[v].to_numpy(np.float64) for v in values}
    units = wide.index.droplevel(row_key)
    codes, uniques = pd.factorize(units)
    starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1, codes.size]
    labels = wide.index.get_level_values(row_key).to_numpy()
    for i in range(starts.size - 1):
        lo, hi = starts[i], starts[i + 1]
        block = {v: a[lo:hi] for v, a in arrays.items()}
        keep = ~np.all(np.isnan(block[values[0]]), axis=0)
        key = uniques[codes[lo]]
        yield (key if isinstance(key, tuple) else (key,)), labels[lo:hi], columns[keep], {
            v: a[:, keep] for v, a in block.items()}


def paired_parts(per_seed: pd.DataFrame, claim: str, parts: dict[str, bool], alpha: float = ALPHA,
                 direction: str = "greater") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each part (name -> primary) of a per-seed frame with a `part` column compared by `paired_comparison`."""
    results, diffs = [], []
    for part, primary in parts.items():
        sub = per_seed[per_seed["part"] == part]
        if sub.empty:
            continue
        r, d = paired_comparison(sub.drop(columns="part"), claim=claim, part=part, statistic=part,
                                 direction=direction, primary=primary, alpha=alpha)  # fmt: skip
        results.append(r)
        diffs.append(d)
    return concat_frames(results, RESULT_COLUMNS), concat_frames(diffs, DIFFERENCE_COLUMNS)

