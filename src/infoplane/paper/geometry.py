"""Geometry beside information: does compression line up with class clustering?

In a deterministic network a binned or noisy "I(X; T)" measures how the samples cluster
(Goldfeld et al., ICML 2019): compression is geometric. The probe stage measures each layer's
class clustering at every snapshot (`nc1` = tr(Σ_W Σ_B⁺)/C, lower = tighter classes) and the
accuracy of a k-nearest-neighbour classifier. Here they meet the information plane:

* `alignment`: per estimator setting × dataset × arch × mode × layer, the compression phase of
  `common.compression_summary` (from the peak of the dependence on X to the last epoch) and what
  the clustering does over the same epochs: `tightens` when NC1 at the last epoch is below NC1
  at the peak epoch in every seed, `loosens` when above in every seed, `mixed` otherwise, `no
  phase` when the peak is the last epoch. A rule fixed before the data: unanimity over seeds,
  the same criterion the dependence figures use for "p ≤ 0.05 in every seed".
* Table 7 (`table_geometry`): the alignment at each estimator's paper-default setting.
* `figures/geometry/<dataset>_<arch>.png`: per mode (columns) the information plane of the
  headline estimator (first row), each layer's NC1 (second row) and k-NN accuracy (third row)
  against epoch, the layer's peak epoch of the dependence on X marked (★) on its NC1 line.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from .common import GROUP, Inputs, block_quantity_label, compression_summary, mode_order, primary_settings
from .figure_data import _layers, _seeds_text, evidence_means
from .figures import _epoch_norm, _layer_markers, _plane_panel
from .render import Display, Section
from .style import EPOCH_CMAP, depth_colors, save
from .style import wrap as _wrap

#: The figure kind (folder figures/geometry/) and its title, registered in `figures.KINDS`.
KIND = "geometry"

_ALIGN_COLUMNS = ["setting", "setting_slug", "estimator", *GROUP, "mode", "layer", "layer_name", "verdict",
                  "relative_fall", "peak_epoch", "last_epoch", "n_seeds", "nc1_first", "nc1_peak", "nc1_last",
                  "knn_peak", "knn_last", "clustering"]  # fmt: skip


def clustering_trend(nc1_peak: pd.Series, nc1_last: pd.Series) -> str:
    """Per-seed NC1 at the peak and the last epoch (aligned by seed) -> tightens / loosens / mixed."""
    pair = pd.concat([nc1_peak, nc1_last], axis=1, keys=["peak", "last"]).dropna()
    if not len(pair):
        return "no value"
    if (pair["last"] < pair["peak"]).all():
        return "tightens"
    if (pair["last"] > pair["peak"]).all():
        return "loosens"
    return "mixed"


def alignment(dependence: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """The compression phase of every setting × run group × layer beside its clustering trend."""
    if not len(dependence) or not len(probes) or probes["nc1"].isna().all():
        return pd.DataFrame(columns=_ALIGN_COLUMNS)
    summary = compression_summary(dependence)
    geometry = probes.set_index([*GROUP, "mode", "layer", "epoch", "seed"])[["nc1", "knn_accuracy"]].sort_index()
    rows = []
    for r in summary.itertuples():
        key = (r.dataset, r.arch, r.mode, r.layer)
        try:
            layer = geometry.loc[key]  # index: epoch, seed
        except KeyError:
            continue
        epochs = sorted(layer.index.get_level_values("epoch").unique())

        def at(epoch, column):
            return layer.loc[epoch, column] if epoch in epochs else pd.Series(dtype=float)

        peak, last = int(r.peak_epoch), int(r.last_epoch)
        if peak < 0:
            clustering = "no value"
        elif peak >= last:
            clustering = "no phase"
        else:
            clustering = clustering_trend(at(peak, "nc1"), at(last, "nc1"))
        rows.append({
            "setting": r.setting, "setting_slug": r.setting_slug, "estimator": r.estimator, "dataset": r.dataset,
            "arch": r.arch, "mode": r.mode, "layer": r.layer, "layer_name": r.layer_name, "verdict": r.verdict,
            "relative_fall": r.relative_fall, "peak_epoch": peak, "last_epoch": last, "n_seeds": r.n_seeds,
            "nc1_first": float(at(epochs[0], "nc1").mean()), "nc1_peak": float(at(peak, "nc1").mean()),
            "nc1_last": float(at(last, "nc1").mean()), "knn_peak": float(at(peak, "knn_accuracy").mean()),
            "knn_last": float(at(last, "knn_accuracy").mean()), "clustering": clustering,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=_ALIGN_COLUMNS)


def _num(value: float, fmt: str = ".3g") -> str:
    return "–" if not np.isfinite(value) else format(value, fmt)


def table_geometry(inputs: Inputs, header: str) -> tuple[pd.DataFrame, Display]:
    """Table 7: per layer and mode, the compression verdict of the dependence on X beside what the
    class clustering NC1 does over the same epochs, at each estimator's paper-default setting, for
    every split measured (Parquet: every setting, a `split` column)."""
    splits = inputs.splits()
    parts = [alignment(one.dependence, one.probes).assign(split=split)
             for split, one in ((s, inputs.for_split(s)) for s in splits)]  # fmt: skip
    tidy = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*_ALIGN_COLUMNS, "split"])
    primaries = primary_settings(inputs.dependence) if len(inputs.dependence) else {}
    shown = tidy[tidy["setting_slug"].isin(primaries.values())]
    sections = []
    for split, estimator in [(sp, e) for sp in splits for e in primaries if e in set(shown["estimator"])]:
        block = shown[(shown["estimator"] == estimator) & (shown["split"] == split)]
        if not len(block):
            continue
        on = f" · {split} split" if len(splits) > 1 else ""
        rows, bold = [], []
        for (dataset, arch), group in block.groupby(GROUP, sort=True):
            for mode in mode_order(group["mode"]):
                for r in group[group["mode"] == mode].sort_values("layer").itertuples():
                    fall = "" if not np.isfinite(r.relative_fall) else f" {r.relative_fall:.0%}"
                    rows.append([dataset, arch, mode, f"{r.layer}: {r.layer_name}", f"{r.verdict}{fall}",
                                 f"{r.peak_epoch} → {r.last_epoch}" if r.peak_epoch >= 0 else "–",
                                 f"{_num(r.nc1_first)} / {_num(r.nc1_peak)} / {_num(r.nc1_last)}",
                                 f"{_num(100 * r.knn_peak, '.1f')} / {_num(100 * r.knn_last, '.1f')}",
                                 r.clustering])  # fmt: skip
                    bold.append([False] * 8 + [r.verdict == "falls" and r.clustering == "tightens"])
        sections.append(Section(["dataset", "arch", "mode", "layer", "dependence on X", "compression phase",
                                 "NC1 first / peak / last", "k-NN % peak / last", "clustering in the phase"],
                                rows, bold, title=f"estimator: {block['setting'].iloc[0]}{on}"))  # fmt: skip
    display = Display(
        "Table 7: compression of the dependence on X beside the class clustering NC1 of the same layer",
        header,
        sections,
        note="Dependence on X: the verdict of Table 5 with the relative fall from its peak. Compression phase: "
        "the peak epoch (of the mean over seeds) to the last epoch. NC1 = tr(Σ_W Σ_B⁺)/C (lower: tighter class "
        "clusters), mean over seeds at the first, the peak and the last epoch; k-NN: nearest-neighbour test "
        "accuracy on the probe's split. Clustering: tightens (NC1 lower at the last epoch than at the peak in "
        "every seed), loosens (higher in every seed), mixed; no phase when the peak is the last epoch. Bold: "
        "compression with tightening clusters.",
    )
    return tidy, display


def _headline(dependence: pd.DataFrame) -> pd.DataFrame:
    """The rows of the first estimator's paper-default setting (ESTIMATOR_ORDER: nocco first)."""
    primaries = primary_settings(dependence)
    return dependence[dependence["setting_slug"] == next(iter(primaries.values()))]


def geometry_figure(block: pd.DataFrame, probes: pd.DataFrame, title: str, path: Path) -> Path:
    """Columns: modes. Rows: the information plane of `block` (one setting), NC1 vs epoch (log
    axis: geometric mean over seeds), k-NN accuracy vs epoch; one marker per layer in every row,
    the peak epoch of the layer's dependence on X starred on its NC1 line."""
    modes = mode_order(block["mode"])
    mean = evidence_means(block, ["mode", "layer", "layer_name", "epoch"])
    markers, norm, cmap = _layer_markers(block), _epoch_norm(block), plt.get_cmap(EPOCH_CMAP)
    layers = _layers(block)
    colors = dict(zip(layers, depth_colors(len(layers))))
    peaks = compression_summary(block).set_index(["mode", "layer"])["peak_epoch"]
    # NC1 spans decades (log axis): geometric mean and a band of × / ÷ the geometric std over seeds
    logged = probes.assign(nc1=np.log(probes["nc1"].where(probes["nc1"] > 0)))
    geometry = logged.groupby(["mode", "layer", "epoch"])[["nc1", "knn_accuracy"]].agg(["mean", "std"])
    fig, axes = plt.subplots(3, len(modes), figsize=(4.8 * len(modes) + 1.4, 11.5), squeeze=False,
                             sharey="row", layout="constrained")  # fmt: skip
    for c, mode in enumerate(modes):
        _plane_panel(axes[0][c], mean[mean["mode"] == mode], markers, norm, cmap)
        axes[0][c].set_title(mode)
        axes[0][c].set_xlabel(block_quantity_label(block, "x"), fontsize=8)
        for (layer, name) in layers:
            if (mode, layer) not in geometry.index.droplevel("epoch"):
                continue
            part = geometry.loc[(mode, layer)].sort_index()
            e = part.index.to_numpy()
            for row, column in ((1, "nc1"), (2, "knn_accuracy")):
                m, s = part[(column, "mean")].to_numpy(), part[(column, "std")].fillna(0).to_numpy()
                m, lo, hi = (np.exp(m), np.exp(m - s), np.exp(m + s)) if row == 1 else (100 * m, 100 * (m - s),
                                                                                         100 * (m + s))
                ax = axes[row][c]
                ax.plot(e, m, color=colors[(layer, name)], marker=markers[(layer, name)], ms=4, lw=1.5,
                        label=f"{layer}: {name}")  # fmt: skip
                ax.fill_between(e, lo, hi, color=colors[(layer, name)], alpha=0.15, lw=0)
            peak = peaks.get((mode, layer), -1)
            if peak in set(e):
                axes[1][c].scatter([peak], [np.exp(part.loc[peak, ("nc1", "mean")])], marker="*", s=140,
                                   color="black", zorder=5)  # fmt: skip
        axes[1][c].set_yscale("log")
        for row in (1, 2):
            axes[row][c].grid(alpha=0.3)
            axes[row][c].set_xlabel("epoch")
            axes[row][c].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel(block_quantity_label(block, "y"))
    axes[1][0].set_ylabel("NC1 = tr(Σ_W Σ_B⁺)/C (log; lower: tighter classes)", fontsize=9)
    axes[2][0].set_ylabel("k-NN test accuracy (%)")
    handles, _ = axes[1][-1].get_legend_handles_labels()
    peak_label = "peak of the dependence on X (table 5)"
    handles.append(plt.Line2D([], [], marker="*", color="black", ls="", ms=10, label=peak_label))
    axes[1][-1].legend(handles=handles, title="layer", fontsize=7, loc="best")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(), label="epoch", shrink=0.9)
    text = (f"{title}; {_seeds_text(block)}; estimator: {block['setting'].iloc[0]}; NC1: geometric mean, band × / ÷ "
            "its geometric std over seeds; k-NN: mean ± std")
    fig.suptitle(_wrap(text, 45 * len(modes) + 30), fontsize=10)
    return save(fig, path)


def geometry_figures(inputs: Inputs, out: Path) -> list[Path]:
    """figures/geometry/<dataset>_<arch>.png for every dataset × arch with dependence and nc1, on
    the declared split; <dataset>_<arch>_<split>.png on each other split measured."""
    out = Path(out) / KIND
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split in inputs.splits():
        one = inputs.for_split(split)
        dependence, probes = one.dependence, one.probes
        if not len(dependence) or not len(probes) or probes["nc1"].isna().all():
            continue
        suffix, on = ("", "") if split == inputs.declared_split() else (f"_{split}", f", {split} split")
        for (dataset, arch), block in _headline(dependence).groupby(GROUP, sort=True):
            part = probes[(probes["dataset"] == dataset) & (probes["arch"] == arch)]
            if len(part) and part["nc1"].notna().any():
                title = f"Class clustering beside the information plane, {dataset} / {arch}{on}"
                written.append(geometry_figure(block, part, title, out / f"{dataset}_{arch}{suffix}.png"))
    return written
