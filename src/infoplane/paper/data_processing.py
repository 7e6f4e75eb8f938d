"""The data-processing check: does an estimate rise along the chain of blocks?

Along a feed-forward chain X → Z_1 → Z_2 → … every block is a function of the one before, so
the mutual information can only fall: I(X; Z_l) ≥ I(X; Z_{l+1}) and, since Y → X → Z_l,
I(Y; Z_l) ≥ I(Y; Z_{l+1}). An *estimate* that rises from one block to the next beyond its own
noise is a property of the estimator, not of the network (Geiger, IEEE TNNLS 2021). nHSIC
and CKA are not mutual informations: the inequality is not a law for them (a later block can
depend more strongly, in their kernel sense, on X or Y); they are checked and reported the
same way, with `law` False. For kde and binning the estimate is of a noisy or binned copy T_l
of Z_l, and T_l → T_{l+1} is not itself a Markov chain (Z_{l+1} is computed from Z_l, not T_l):
their "I(X; T_l)" can rise with no error in the estimate of that proxy. A violation then says
that the proxy does not behave as the information of the network's chain — Geiger's point.

Which quantity and which noise. The inequality is about the mutual information itself, so the
check reads the value (`value_*`), never the excess over the permutation null (the null differs
per layer). The value is the mean over the snapshot's `n_batches` evaluation batches; its
standard error is SE = value_*_std / √(n_batches − 1) (value_*_std is the population std over
batches). Both layers are measured on the same batches, so their difference is paired, but the
per-batch values are not in the table: the standard error of the difference is bounded by
SE_l + SE_{l+1} (|correlation| ≤ 1), a conservative noise. An increase counts as a violation
when it exceeds `NOISE_SD` times that bound. With a single batch there is no noise estimate:
the pair is `undetermined`, never a violation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import contracts
from .common import GROUP, estimator_order, mode_order
from .render import Display, Section

#: An increase is a violation when larger than this many (bounded) standard errors of the difference.
NOISE_SD = 2.0

_KEYS = ["setting", "estimator", "unit", *contracts.RUN_KEYS, "split", "epoch"]


def check(dependence: pd.DataFrame) -> pd.DataFrame:
    """One row per estimator setting × run × split × snapshot epoch × quantity (xz, yz) × pair of
    consecutive layers (l, l + 1): the `contracts.DATA_PROCESSING` table. `dependence` is the
    dependence table with `setting` labels (`paper.common.with_settings`)."""
    rows = []
    for key, part in dependence.groupby(_KEYS, sort=True, dropna=False):
        part = part.sort_values("layer")
        layers = part["layer"].to_numpy()
        unit = "" if pd.isna(key[2]) else str(key[2])
        for quantity in ("xz", "yz"):
            value = part[f"value_{quantity}"].to_numpy(dtype=float)
            std = part[f"value_{quantity}_std"].to_numpy(dtype=float)
            batches = part["n_batches"].to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                se = np.where(batches > 1, std / np.sqrt(batches - 1), np.nan)
            for i in range(len(part) - 1):
                if layers[i + 1] != layers[i] + 1:  # a gap in the chain: no inequality between them
                    continue
                increase = value[i + 1] - value[i]
                noise = NOISE_SD * (se[i] + se[i + 1])
                determined = bool(np.isfinite(increase) and np.isfinite(noise))
                rows.append({
                    **dict(zip(_KEYS, key)), "unit": unit, "law": unit != "", "quantity": quantity,
                    "layer": int(layers[i]), "layer_name": part["layer_name"].iloc[i],
                    "next_layer": int(layers[i + 1]), "next_layer_name": part["layer_name"].iloc[i + 1],
                    "value": value[i], "next_value": value[i + 1], "increase": increase, "noise": noise,
                    "relative_increase": increase / abs(value[i]) if value[i] != 0 else np.nan,
                    "determined": determined, "violation": determined and increase > noise,
                })  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(contracts.DATA_PROCESSING.columns)) if rows else None
    return contracts.DATA_PROCESSING.conform(frame) if rows else contracts.DATA_PROCESSING.empty()


def summary(checked: pd.DataFrame) -> pd.DataFrame:
    """Per setting × dataset × arch × mode × split × quantity: pairs checked, determined, violations
    and their share, the median and largest violation (increase, and increase / value of layer l)."""
    keys = ["setting", "estimator", "unit", "law", *GROUP, "mode", "split", "quantity"]
    rows = []
    for key, part in checked.groupby(keys, sort=True, dropna=False):
        bad = part[part["violation"]]
        determined = int(part["determined"].sum())
        rows.append({
            **dict(zip(keys, key)), "pairs": len(part), "determined": determined, "violations": len(bad),
            "share": len(bad) / determined if determined else np.nan,
            "median_increase": float(bad["increase"].median()) if len(bad) else np.nan,
            "max_increase": float(bad["increase"].max()) if len(bad) else np.nan,
            "max_relative_increase": float(bad["relative_increase"].max()) if len(bad) else np.nan,
        })  # fmt: skip
    columns = [*keys, "pairs", "determined", "violations", "share", "median_increase", "max_increase",
               "max_relative_increase"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def violation_share(checked: pd.DataFrame) -> pd.DataFrame:
    """Per mode × epoch × later layer (l + 1): the share of seeds in which either quantity rises
    from layer l to l + 1 beyond the noise (what the estimators' information plane marks)."""
    if not len(checked):
        return pd.DataFrame(columns=["mode", "epoch", "layer", "share"])
    per_seed = checked.groupby(["mode", "epoch", "next_layer", "seed"])["violation"].any().reset_index()
    share = per_seed.groupby(["mode", "epoch", "next_layer"])["violation"].mean().reset_index()
    return share.rename(columns={"next_layer": "layer", "violation": "share"})


#: Colour of the rings the estimators' information plane draws around violating points.
VIOLATION_COLOR = "#D55E00"


def ring_violations(ax, mean: pd.DataFrame, rises: pd.DataFrame) -> None:
    """Ring the (mean) point of layer l + 1 at the epochs where, in at least half the seeds, its
    dependence on X or on Y rises above layer l's beyond the noise (`violation_share`); `mean`
    holds the plotted points (epoch, layer, x, y) of one panel."""
    marked = rises[rises["share"] >= 0.5][["epoch", "layer"]]
    points = mean.merge(marked, on=["epoch", "layer"])
    if len(points):
        ax.scatter(points["x"], points["y"], s=150, facecolors="none", edgecolors=VIOLATION_COLOR, linewidths=1.2,
                   zorder=6)  # fmt: skip


def ring_handle():
    """The legend entry of `ring_violations`."""
    from matplotlib.lines import Line2D

    return Line2D([], [], marker="o", ms=11, mfc="none", mec=VIOLATION_COLOR, ls="",
                  label="rises above the block before it (data-processing violation, ≥ half the seeds)")  # fmt: skip


def table_data_processing(inputs, header: str) -> tuple[pd.DataFrame, Display]:
    """Table 6: violations of the data-processing inequality along the chain of blocks, per
    estimator setting (Parquet: every checked pair, `contracts.DATA_PROCESSING`)."""
    checked = check(inputs.dependence)
    table = summary(checked)
    split_order = {s: i for i, s in enumerate(contracts.SPLITS)}
    several = table["split"].nunique() > 1
    sections = []
    order = {e: i for i, e in enumerate(estimator_order(table["estimator"]))}
    for setting, block in sorted(table.groupby("setting", sort=True), key=lambda kv: order[kv[1]["estimator"].iloc[0]]):
        law = bool(block["law"].iloc[0])
        rows, bold = [], []
        for (dataset, arch), group in block.groupby(GROUP, sort=True):
            for mode in mode_order(group["mode"]):
                part = group[group["mode"] == mode]
                part = part.assign(_order=part["split"].map(split_order)).sort_values(["_order", "quantity"])
                for r in part.itertuples():
                    target = "X" if r.quantity == "xz" else "Y"
                    count = f"{r.violations} / {r.determined}" + (f" ({r.share:.0%})" if r.determined else "")
                    if r.pairs > r.determined:
                        count += f"; {r.pairs - r.determined} undetermined"
                    size = "–" if not r.violations else f"{r.median_increase:.3g} / {r.max_increase:.3g}"
                    relative = "–" if not np.isfinite(r.max_relative_increase) else f"{r.max_relative_increase:.0%}"
                    split = [r.split] if several else []
                    rows.append([dataset, arch, mode, *split, f"on {target}", count, size, relative])
                    bold.append([False] * (4 + len(split)) + [law and r.violations > 0, False, False])
        kind = "a mutual information: the inequality is a law" if law else "not a mutual information: no law"
        sections.append(Section(["dataset", "arch", "mode", *(["split"] if several else []), "dependence",
                                 "violations / pairs checked",
                                 "increase: median / max", "max increase / value"], rows, bold,
                                title=f"estimator: {setting} ({kind})"))  # fmt: skip
    display = Display(
        "Table 6: data-processing check: estimates that rise from block l to block l + 1",
        header,
        sections,
        note=f"Pairs: consecutive layers × snapshot epoch × seed. A violation: value(l + 1) − value(l) > "
        f"{NOISE_SD:g} × (SE_l + SE_l+1), SE = value std over batches / √(n_batches − 1) (a bound on the noise "
        "of the paired difference); undetermined: one batch, no noise estimate. For a mutual information a "
        "violation (bold) is an error of the estimator; nHSIC and CKA obey no such law.",
    )
    return checked, display
