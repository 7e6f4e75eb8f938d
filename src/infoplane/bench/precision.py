"""Does training precision change the science? Two sweeps, one table.

Given the output folders of two sweeps that differ only in `training.precision` (same runs,
same seeds), it prints, for the final epoch, the test accuracy and every layer's nHSIC values
(I(X;Z), I(Y;Z) of each estimator in the dependence table): mean ± standard deviation over
seeds under each precision, the mean of the paired (same-seed) difference, and that difference
in units of the seed-to-seed standard deviation. |diff / seed sd| < 1 means the change of
precision moved the number by less than a change of seed does.

    python -m infoplane.bench.precision --a results_fp32 --b results_bf16 [--labels fp32,bf16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from .. import contracts

RUN = ["dataset", "arch", "mode", "seed"]


def _table(root: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(root / contracts.PATHS["table"].format(table=name))


def final_values(root: Path) -> pd.DataFrame:
    """Long table (dataset, arch, mode, seed, quantity, value) at each run's final epoch."""
    metrics = _table(root, "metrics")
    last = metrics[(metrics.split == "test") & (metrics.layer_name == "classifier")]
    last = last[last.epoch == last.groupby(RUN).epoch.transform("max")]
    rows = [last.assign(quantity="test accuracy", value=last.accuracy)[[*RUN, "quantity", "value"]]]
    dep = _table(root, "dependence")
    dep = dep[dep.epoch == dep.groupby(RUN).epoch.transform("max")]
    for side, label in (("value_xz", "X"), ("value_yz", "Y")):
        part = dep.assign(quantity=dep.estimator + f"({label};" + dep.layer_name + ")", value=dep[side])
        rows.append(part[[*RUN, "quantity", "value"]])
    return pd.concat(rows, ignore_index=True)


def compare(a: pd.DataFrame, b: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    """Per quantity: mean and sd over seeds of each side, paired mean difference (b - a), and
    that difference over the pooled seed sd. Seeds present on one side only are refused."""
    keys = [*RUN, "quantity"]
    merged = a.merge(b, on=keys, suffixes=("_a", "_b"), how="outer", indicator=True)
    if (merged["_merge"] != "both").any():
        missing = merged.loc[merged["_merge"] != "both", keys].head(3).to_dict("records")
        raise ValueError(f"the two sweeps must hold the same runs; unmatched, e.g.: {missing}")
    merged["diff"] = merged.value_b - merged.value_a
    group = merged.groupby(["dataset", "arch", "mode", "quantity"], sort=False)
    out = pd.DataFrame({
        f"{labels[0]} mean": group.value_a.mean(),
        f"{labels[0]} sd": group.value_a.std(),
        f"{labels[1]} mean": group.value_b.mean(),
        f"{labels[1]} sd": group.value_b.std(),
        "seeds": group.seed.nunique(),
        "paired diff": group["diff"].mean(),
    })  # fmt: skip
    pooled = ((out[f"{labels[0]} sd"] ** 2 + out[f"{labels[1]} sd"] ** 2) / 2) ** 0.5
    out["diff / seed sd"] = out["paired diff"] / pooled
    return out.reset_index()


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m infoplane.bench.precision", description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="output folder of the reference sweep")
    parser.add_argument("--b", type=Path, required=True, help="output folder of the other sweep")
    parser.add_argument("--labels", default="fp32,bf16")
    args = parser.parse_args(argv)
    labels = tuple(args.labels.split(","))
    if len(labels) != 2:
        parser.error("--labels takes two names, e.g. fp32,bf16")
    table = compare(final_values(args.a), final_values(args.b), labels)
    print(table.drop(columns=["dataset", "arch", "mode"]).to_markdown(index=False, floatfmt=".4f"))
    return table


if __name__ == "__main__":
    main()
