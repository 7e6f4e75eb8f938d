"""The study's tables: a tidy numeric frame (Parquet) and a display (md, tex, html).

Cells are mean ± sample std over seeds (std omitted when there is one seed). Every run is
read at its own last epoch. Table 1 and 2 mark the best mode of each row in bold. Table 3
gives every value with its excess over the permutation null; table 5 says, per estimator,
whether each layer's dependence on X falls from its peak (`common.compression_summary`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from .common import COMPRESSION_MIN_FALL, COMPRESSION_NOISE_SD, GROUP, Inputs, compression, compression_summary
from .common import final_rows, generalization_gap, mean_std, mode_order, primary_settings, whole_network
from .data_processing import table_data_processing
from .geometry import table_geometry
from .render import Display, Section


def pm(mean: float, std: float, fmt: Callable[[float], str]) -> str:
    if math.isnan(mean):
        return "–"
    return fmt(mean) if math.isnan(std) else f"{fmt(mean)} ± {fmt(std)}"


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def sig(value: float) -> str:
    return f"{value:.3g}"


def _summarize(frame: pd.DataFrame, keys: list[str], value: str, prefix: str = "") -> pd.DataFrame:
    """Mean, std, n over seeds of `value` per `keys`."""
    rows = []
    for key, part in frame.groupby(keys, sort=True):
        mean, std, n = mean_std(part[value])
        rows.append({**dict(zip(keys, key)), f"{prefix}mean": mean, f"{prefix}std": std, f"{prefix}n_seeds": n})
    columns = [*keys, f"{prefix}mean", f"{prefix}std", f"{prefix}n_seeds"]
    out = pd.DataFrame(rows, columns=columns)
    out[f"{prefix}n_seeds"] = out[f"{prefix}n_seeds"].astype("int64")
    return out


def _best_mask(means: list[float]) -> list[bool]:
    finite = [m for m in means if not math.isnan(m)]
    if len(finite) < 2:
        return [False] * len(means)
    best = max(finite)
    return [not math.isnan(m) and math.isclose(m, best, rel_tol=0, abs_tol=1e-12) for m in means]


def _layer_label(layer: int, name: str) -> str:
    return f"{layer}: {name}"


def table_accuracy(inputs: Inputs, header: str) -> tuple[pd.DataFrame, Display]:
    """Table 1: final test accuracy of the whole network, dataset × arch rows, mode columns."""
    test = final_rows(whole_network(inputs.metrics))
    test = test[test["split"] == "test"]
    tidy = _summarize(test, [*GROUP, "mode"], "accuracy")
    modes = mode_order(tidy["mode"])
    tidy["best"] = False
    rows, bold = [], []
    for (dataset, arch), part in tidy.groupby(GROUP, sort=True):
        cells = {r.mode: r for r in part.itertuples()}
        means = [cells[m].mean if m in cells else math.nan for m in modes]
        mask = _best_mask(means)
        for m, is_best in zip(modes, mask):
            if is_best:
                tidy.loc[cells[m].Index, "best"] = True
        rows.append([dataset, arch] + [pm(cells[m].mean, cells[m].std, pct) if m in cells else "–" for m in modes])
        bold.append([False, False] + mask)
    display = Display(
        "Table 1: Test accuracy (%) of the whole network at the last epoch",
        header,
        [Section(["dataset", "arch", *modes], rows, bold)],
        note="Mean ± std over seeds; best mode of each row in bold.",
    )
    return tidy, display


def table_separability(inputs: Inputs, header: str) -> tuple[pd.DataFrame, Display]:
    """Table 2: linear-probe test accuracy per layer at the last epoch, mode columns."""
    final = final_rows(inputs.probes)
    tidy = _summarize(final, [*GROUP, "layer", "layer_name", "mode"], "accuracy")
    modes = mode_order(tidy["mode"])
    rows, bold = [], []
    for (dataset, arch, layer, name), part in tidy.groupby([*GROUP, "layer", "layer_name"], sort=True):
        cells = {r.mode: r for r in part.itertuples()}
        means = [cells[m].mean if m in cells else math.nan for m in modes]
        rows.append(
            [dataset, arch, _layer_label(layer, name)]
            + [pm(cells[m].mean, cells[m].std, pct) if m in cells else "–" for m in modes]
        )
        bold.append([False] * 3 + _best_mask(means))
    display = Display(
        "Table 2: Linear separability (%): linear-probe test accuracy per layer at the last epoch",
        header,
        [Section(["dataset", "arch", "layer", *modes], rows, bold)],
        note="Mean ± std over seeds; best mode of each row in bold.",
    )
    return tidy, display


def table_dependence(inputs: Inputs, header: str) -> tuple[pd.DataFrame, Display]:
    """Table 3: final dependence of every layer on X and on Y with its excess over the permutation
    null, one section per estimator setting."""
    final = final_rows(inputs.dependence)
    keys = ["setting", *GROUP, "layer", "layer_name", "mode"]
    parts = [_summarize(final, keys, "value_xz", "xz_"), _summarize(final, keys, "value_yz", "yz_"),
             _summarize(final, keys, "excess_xz", "xz_excess_"), _summarize(final, keys, "excess_yz", "yz_excess_")]
    tidy = parts[0].rename(columns={"xz_n_seeds": "n_seeds"})
    for part in parts[1:]:
        tidy = tidy.merge(part.drop(columns=[c for c in part.columns if c.endswith("n_seeds")]), on=keys)
    sections = []
    for setting, block in tidy.groupby("setting", sort=True):
        modes = mode_order(block["mode"])
        first = inputs.dependence[inputs.dependence["setting"] == setting].iloc[0]
        names = [quantity_short(first["estimator"], role) for role in ("x", "y")]
        rows = []
        for (dataset, arch, layer, name), part in block.groupby([*GROUP, "layer", "layer_name"], sort=True):
            cells = {r.mode: r for r in part.itertuples()}
            row = [dataset, arch, _layer_label(layer, name)]
            for m in modes:
                if m not in cells:
                    row += ["–", "–"]
                    continue
                c = cells[m]
                row += [_with_excess(c.xz_mean, c.xz_std, c.xz_excess_mean, c.xz_excess_std),
                        _with_excess(c.yz_mean, c.yz_std, c.yz_excess_mean, c.yz_excess_std)]  # fmt: skip
            rows.append(row)
        columns = ["dataset", "arch", "layer"] + [f"{m} {v}" for m in modes for v in names]
        sections.append(Section(columns, rows, title=f"estimator: {setting}"))
    display = Display(
        "Table 3: dependence of each layer on X and on Y at the last epoch, with its excess over the null",
        header,
        sections,
        note="Mean ± std over seeds; in brackets the excess over the permutation null (value − null mean), "
        "mean ± std over seeds, where the estimator has a null (kde's and binning's I(X;T) have none). "
        "Values depend on the estimator setting (m, ε, σ): compare within a section.",
    )
    return tidy, display


def quantity_short(estimator: str, role: str) -> str:
    """Column name of a quantity in table 3: nHSIC(X;Z), CKA_u(Y;Z), I_α(X;T) ..."""
    from .common import quantity_label

    return quantity_label(estimator, None, role).replace("; ", ";").replace("_l)", ")")


def _with_excess(mean: float, std: float, excess: float, excess_std: float) -> str:
    value = pm(mean, std, sig)
    if math.isnan(excess):
        return value
    return f"{value} [{'+' if excess >= 0 else ''}{pm(excess, excess_std, sig)}]"


def table_compression(inputs: Inputs, header: str) -> tuple[pd.DataFrame, Display]:
    """Table 4: compression (peak − final nHSIC(X;Z_l)) per layer and mode, beside the generalization gap."""
    comp = compression(inputs.dependence)
    keys = ["setting", *GROUP, "layer", "layer_name", "mode"]
    tidy = _summarize(comp, keys, "compression", "compression_")
    gap = _summarize(generalization_gap(inputs.metrics), [*GROUP, "mode"], "gap", "gap_")
    tidy = tidy.merge(gap.drop(columns="gap_n_seeds"), on=[*GROUP, "mode"], how="left")
    tidy = tidy.rename(columns={"compression_n_seeds": "n_seeds"})
    sections = []
    for setting, block in tidy.groupby("setting", sort=True):
        modes = mode_order(block["mode"])
        rows = []
        for (dataset, arch), group in block.groupby(GROUP, sort=True):
            for (layer, name), part in group.groupby(["layer", "layer_name"], sort=True):
                cells = {r.mode: r for r in part.itertuples()}
                rows.append(
                    [dataset, arch, _layer_label(layer, name)]
                    + [pm(cells[m].compression_mean, cells[m].compression_std, sig) if m in cells else "–" for m in modes]
                )
            first = {r.mode: r for r in group.drop_duplicates("mode").itertuples()}
            rows.append(
                [dataset, arch, "gen. gap (train − test, %)"]
                + [pm(first[m].gap_mean, first[m].gap_std, pct) if m in first else "–" for m in modes]
            )
        sections.append(Section(["dataset", "arch", "layer", *modes], rows, title=f"estimator: {setting}"))
    display = Display(
        "Table 4: Compression per layer: max over epochs of nHSIC(X;Z_l) minus its last-epoch value",
        header,
        sections,
        note="Mean ± std over seeds; last row of each dataset/arch: the whole network's generalization gap "
        "(train − test accuracy at the last epoch, percentage points).",
    )
    return tidy, display


def table_compression_by_estimator(inputs: Inputs, header: str) -> tuple[pd.DataFrame, Display]:
    """Table 5: per layer and mode, whether the dependence on X falls from its peak under each
    estimator (its paper-default setting in the display; every setting in the Parquet)."""
    dependence = inputs.dependence
    tidy = compression_summary(dependence)
    primaries = primary_settings(dependence) if len(dependence) else {}
    shown = tidy[tidy["setting_slug"].isin(primaries.values())]
    estimators = [e for e in primaries if e in set(shown["estimator"])]
    sections = []
    for (dataset, arch), block in shown.groupby(GROUP, sort=True):
        rows, bold = [], []
        for mode in mode_order(block["mode"]):
            for (layer, name), part in block[block["mode"] == mode].groupby(["layer", "layer_name"], sort=True):
                cells = {r.estimator: r for r in part.itertuples()}
                row = [dataset, arch, f"{mode} · {_layer_label(layer, name)}"]
                row += [_verdict_cell(cells[e]) if e in cells else "–" for e in estimators]
                rows.append(row)
                bold.append([False] * 3 + [e in cells and cells[e].verdict == "falls" for e in estimators])
        sections.append(Section(["dataset", "arch", "mode · layer", *estimators], rows, bold))
    settings = "; ".join(
        f"{e}: [{dependence.loc[dependence['setting_slug'] == primaries[e], 'setting'].iloc[0]}]" for e in estimators
    )
    display = Display(
        "Table 5: does the dependence on X fall from its peak (compression)? One column per estimator",
        header,
        sections,
        note=f"Quantity: the excess over the permutation null where the estimator has one, else the value (kde's "
        f"and binning's I(X;T)), mean over seeds. falls: (peak − last) ≥ {COMPRESSION_MIN_FALL:.0%} of the peak and "
        f"> {COMPRESSION_NOISE_SD:g} standard errors (over seeds; one seed: over batches); unclear: as large but "
        f"within the noise; the number is (peak − last) / peak. Settings: {settings}.",
    )
    return tidy, display


def _verdict_cell(row) -> str:
    if row.verdict in ("falls", "unclear", "no fall") and not math.isnan(row.relative_fall):
        return f"{row.verdict} {row.relative_fall:.0%}"
    return str(row.verdict)


#: Tables that read every split measured (a `split` column); the others read the declared split.
PER_SPLIT = ("table6_data_processing", "table7_geometry")

TABLES: dict[str, Callable[[Inputs, str], tuple[pd.DataFrame, Display]]] = {
    "table1_accuracy": table_accuracy,
    "table2_separability": table_separability,
    "table3_dependence": table_dependence,
    "table4_compression": table_compression,
    "table5_compression_by_estimator": table_compression_by_estimator,
    "table6_data_processing": table_data_processing,
    "table7_geometry": table_geometry,
}
