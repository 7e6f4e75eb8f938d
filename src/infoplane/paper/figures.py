"""The study's figures: every kind (`KINDS`) and `make_figures`, which draws all but the claims'
and geometry's (style: `paper.style`).

Per dataset × arch × estimator setting, under `figures/<kind>/<dataset>_<arch>_<slug>.png`:

* `infoplane/`: information-plane trajectories, one panel per mode, one line per layer
  (mean over seeds, one marker shape per layer), segments and points coloured by epoch
  (viridis), start (○) and end (the layer's marker outlined in black) marked; grey
  rectangles: the permutation null band of each point on both axes.
* `infoplane_excess/`: the same plane of the excess over the null (value − null mean); the
  null band is centred at 0. A quantity without a null (kde's, binning's I(X; T)) stays raw.
* `dependence/`: dependence on X (top) and on Y (bottom) versus epoch, one panel per mode,
  one line per layer (cividis by depth), mean ± std over seeds as a band; the null mean dashed
  in the layer's colour with its null band.
* `dependence_excess/`: the same of the excess, the null band around 0.
* `compression/`: middle-layer compression versus generalization gap, one point per run.

The null band (`common.null_band`) is null mean ± 2 × `null_*_batch_mean_std`, the spread of the
null's batch mean over the permutations, which the p-value ranks the value in (mean over seeds).

A setting that differs from its estimator's paper-default setting only in σ, ε or the
bandwidth rule is drawn in that estimator's sensitivity figure, not in figures of its own
(a grid of 21 settings would otherwise write 105 files per dataset × arch).

Per dataset × arch, under `figures/<kind>/<dataset>_<arch>[_<estimator>].png`:

* `diagnostics/`, `sensitivity/`: the layer's scale against the kernel's bandwidth, and the
  last-epoch dependence against σ and ε (drawn by `paper.scale_figures`).
* `infoplane_estimators/`: the information plane under every estimator (its paper-default
  setting), one row per estimator, one column per mode, same layers, markers and epoch colours;
  orange rings: a layer whose estimate rises above the previous block's beyond the noise in at
  least half the seeds (the data-processing check, `paper.data_processing`).
* `compression_estimators/`: heat map of `common.compression_summary`, per mode: rows
  estimators, columns layers, colour = relative fall of the dependence on X from its peak.
* `accuracy/`: the whole network's test accuracy versus epoch, one line per mode, ± std band.
* `separability/`: linear-probe test accuracy versus depth at the last epoch, one line per
  mode, ± std error bars; initialization dashed.
* `geometry/`: each layer's class clustering (NC1) and k-NN accuracy against epoch beside its
  information-plane trajectory (drawn by `paper.geometry`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .. import contracts
from . import data_processing
from .common import GROUP, RUN, Inputs, block_quantity_label, compression, compression_summary, final_rows
from .common import generalization_gap, has_null, middle_layers, mode_order, null_band_text, primary_settings
from .common import sensitivity_sweeps, whole_network
from .figure_data import SIGNIFICANCE, _layers, _mean_over_seeds, _seeds_text, evidence_means
from .scale_figures import diagnostics, sensitivity
from .style import EPOCH_CMAP, MARKERS, NULL_ALPHA, NULL_COLOR, NULL_FILL, SEED_ALPHA, categorical, compression_cmap
from .style import depth_colors, save
from .style import wrap as _wrap

#: Every figure kind (the folder figures/<kind>/) and its title in the Snakemake report.
KINDS = {
    "infoplane": "Information plane",
    "infoplane_excess": "Information plane of the excess over the null",
    "dependence": "Dependence vs epoch",
    "dependence_excess": "Excess over the null vs epoch",
    "diagnostics": "Scale diagnostics",
    "sensitivity": "Sensitivity to sigma and epsilon",
    "infoplane_estimators": "Information plane per estimator",
    "compression_estimators": "Compression per estimator",
    "accuracy": "Accuracy vs epoch",
    "separability": "Linear separability",
    "compression": "Compression vs generalization",
    "claims": "Claims",
    "geometry": "Class clustering beside information",
}


def _layer_markers(frame: pd.DataFrame) -> dict:
    return {key: MARKERS[i % len(MARKERS)] for i, key in enumerate(_layers(frame))}


def _epoch_norm(frame: pd.DataFrame):
    epochs = np.sort(frame["epoch"].unique())
    return plt.Normalize(epochs.min(), max(epochs.max(), epochs.min() + 1))


def _null_patches(ax, part: pd.DataFrame, markers: dict) -> None:
    """The null band of every point, opaque light grey so that overlaps do not darken (a rectangle
    where both axes have a null, a bar where one has), and each layer's null mean as a dashed grey
    path with the layer's marker hollow."""
    both = part[part[["x_lo", "x_hi", "y_lo", "y_hi"]].notna().all(axis=1)]
    rects = [Rectangle((r.x_lo, r.y_lo), r.x_hi - r.x_lo, r.y_hi - r.y_lo) for r in both.itertuples()]
    if rects:
        ax.add_collection(PatchCollection(rects, facecolor=NULL_FILL, edgecolor="none", zorder=0))
    only_y = part[part["x_lo"].isna() & part[["y_lo", "y_hi"]].notna().all(axis=1)]
    only_x = part[part["y_lo"].isna() & part[["x_lo", "x_hi"]].notna().all(axis=1)]
    segments = [[(r.x, r.y_lo), (r.x, r.y_hi)] for r in only_y.itertuples()]
    segments += [[(r.x_lo, r.y), (r.x_hi, r.y)] for r in only_x.itertuples()]
    if segments:
        ax.add_collection(LineCollection(segments, colors=NULL_FILL, linewidths=6, zorder=0))
    for key, traj in part.groupby(["layer", "layer_name"], sort=True):
        traj = traj.sort_values("epoch")
        x = (traj["x_lo"] + traj["x_hi"]) / 2 if traj["x_lo"].notna().any() else traj["x"]
        y = (traj["y_lo"] + traj["y_hi"]) / 2 if traj["y_lo"].notna().any() else traj["y"]
        if np.isfinite(x).any() and (traj["x_lo"].notna().any() or traj["y_lo"].notna().any()):
            ax.plot(x, y, color=NULL_COLOR, ls="--", lw=0.7, marker=markers[key], ms=3.5, mfc="none", mew=0.6,
                    zorder=1)  # fmt: skip


def _plane_panel(ax, part: pd.DataFrame, markers: dict, norm, cmap) -> None:
    """One information plane: every layer's trajectory over epochs, its null band behind it."""
    _null_patches(ax, part, markers)
    for (layer, name), traj in part.groupby(["layer", "layer_name"], sort=True):
        traj = traj.sort_values("epoch")
        x, y, e = traj["x"].to_numpy(), traj["y"].to_numpy(), traj["epoch"].to_numpy()
        if len(x) > 1:
            segments = np.stack([np.column_stack([x[:-1], y[:-1]]), np.column_stack([x[1:], y[1:]])], axis=1)
            lines = LineCollection(segments, cmap=cmap, norm=norm, linewidths=1.6, zorder=2)
            lines.set_array((e[:-1] + e[1:]) / 2)
            ax.add_collection(lines)
        marker = markers[(layer, name)]
        ax.scatter(x, y, c=e, cmap=cmap, norm=norm, s=16, marker=marker, zorder=3, edgecolors="none")
        ax.scatter(x[:1], y[:1], s=90, facecolors="none", edgecolors="black", marker="o", zorder=4, linewidths=1.1)
        ax.scatter(x[-1:], y[-1:], s=90, c=e[-1:], cmap=cmap, norm=norm, marker=marker, zorder=5,
                   edgecolors="black", linewidths=1.3)  # fmt: skip
    ax.autoscale_view()
    ax.grid(alpha=0.3)


def _plane_legend(markers: dict, with_null: bool) -> list:
    handles = [
        plt.Line2D([], [], marker=marker, color="0.35", linestyle="", label=f"layer {key[0]}: {key[1]}")
        for key, marker in markers.items()
    ]
    handles += [
        plt.Line2D([], [], marker="o", color="black", markerfacecolor="none", linestyle="", label="start (first epoch)"),
        plt.Line2D([], [], marker="s", color="0.35", markeredgecolor="black", linestyle="", label="end (outlined)"),
    ]
    if with_null:
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor=NULL_FILL, label="null band"))
        handles.append(plt.Line2D([], [], color=NULL_COLOR, ls="--", lw=0.7, marker="o", ms=3.5, mfc="none",
                                  label="null mean (layer's marker, hollow)"))  # fmt: skip
    return handles


def _saturation_line(ax, block: pd.DataFrame) -> None:
    """Binning's ceiling log2 m of I(X; T) (`saturation_bound`), dotted, where the table has it."""
    bound = block["saturation_bound"].dropna() if "saturation_bound" in block else pd.Series(dtype=float)
    if len(bound):
        ax.axvline(float(bound.max()), color="black", ls=":", lw=0.9)
        ax.annotate("log₂ m", (float(bound.max()), 1), xycoords=("data", "axes fraction"), ha="right", va="top",
                    fontsize=7, rotation=90)  # fmt: skip


def infoplane(block: pd.DataFrame, title: str, path: Path, excess: bool = False) -> Path:
    """One panel per mode (columns) and split (rows: test, then train, where measured); x =
    dependence on X, y = on Y (value or excess); colour = epoch; the null band of every point in
    grey. All panels share their axes, so the splits compare at a glance."""
    modes = mode_order(block["mode"])
    splits = [s for s in contracts.SPLITS if s in set(block["split"])]
    mean = evidence_means(block, ["split", "mode", "layer", "layer_name", "epoch"], excess)
    norm, cmap = _epoch_norm(mean), plt.get_cmap(EPOCH_CMAP)
    fig, axes = plt.subplots(len(splits), len(modes), figsize=(5.2 * len(modes) + 1, 4.8 * len(splits)),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")  # fmt: skip
    markers = _layer_markers(mean)
    for row, split in enumerate(splits):
        for ax, mode in zip(axes[row], modes):
            _plane_panel(ax, mean[(mean["mode"] == mode) & (mean["split"] == split)], markers, norm, cmap)
            _saturation_line(ax, block)
            ax.set_title(f"{mode} · {split} split" if len(splits) > 1 else mode)
        axes[row][0].set_ylabel(block_quantity_label(block, "y", excess=excess))
    for ax in axes[-1]:
        ax.set_xlabel(block_quantity_label(block, "x", excess=excess))
    with_null = has_null(block, "x") or has_null(block, "y")
    axes[0][-1].legend(handles=_plane_legend(markers, with_null), loc="best", fontsize=7)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes.ravel().tolist(), label="epoch",
                       shrink=0.9)  # fmt: skip
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    band = f"; light grey: {null_band_text(block)}" if with_null else "; no permutation null in the table"
    fig.suptitle(_wrap(f"{title}; {_seeds_text(block)}{band}", 40 * len(modes) + 20), fontsize=10)
    return save(fig, path)


def dependence_vs_epoch(block: pd.DataFrame, title: str, path: Path, excess: bool = False) -> Path:
    """Rows: dependence on X, on Y (value or excess) vs epoch; one panel per mode; one line per
    layer with a ± std band over seeds, its null mean dashed and its null band lightly shaded."""
    modes = mode_order(block["mode"])
    mean = evidence_means(block, ["mode", "layer", "layer_name", "epoch"], excess)
    layers = _layers(mean)
    colors = dict(zip(layers, depth_colors(len(layers))))
    fig, axes = plt.subplots(
        2, len(modes), figsize=(4.8 * len(modes) + 0.6, 6.6), sharex=True, sharey="row", squeeze=False,
        layout="constrained",
    )
    for col, mode in enumerate(modes):
        part = mean[mean["mode"] == mode]
        for row, role in enumerate(("x", "y")):
            ax = axes[row][col]
            nulled = excess and has_null(block, role)
            if nulled:
                ax.axhline(0.0, color="black", lw=0.8)
            for key, traj in part.groupby(["layer", "layer_name"], sort=True):
                traj = traj.sort_values("epoch")
                e, m, s = traj["epoch"], traj[role].to_numpy(), traj[f"{role}_std"].fillna(0).to_numpy()
                ax.plot(e, m, color=colors[key], label=f"{key[0]}: {key[1]}", lw=1.6, zorder=3)
                ax.fill_between(e, m - s, m + s, color=colors[key], alpha=SEED_ALPHA, lw=0, zorder=2)
                significant = traj[f"{role}_significant"].to_numpy(dtype=float)
                if np.isfinite(significant).any():  # filled: p <= SIGNIFICANCE in every seed
                    filled = significant == 1.0
                    ax.scatter(e[filled], m[filled], color=colors[key], s=14, zorder=4)
                    ax.scatter(e[~filled], m[~filled], facecolors="white", edgecolors=colors[key], s=14, zorder=4)
                lo, hi = traj[f"{role}_lo"].to_numpy(), traj[f"{role}_hi"].to_numpy()
                if np.isfinite(lo).any():
                    if not nulled:
                        ax.plot(e, (lo + hi) / 2, color=colors[key], lw=0.9, ls="--", zorder=2)
                    ax.fill_between(e, lo, hi, color=colors[key], alpha=NULL_ALPHA, lw=0, hatch="///", zorder=1)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(block_quantity_label(block, role, excess=excess))
            if row == 0:
                ax.set_title(mode)
            else:
                ax.set_xlabel("epoch")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, _ = axes[0][-1].get_legend_handles_labels()
    if has_null(block, "x") or has_null(block, "y"):
        label = f"p ≤ {SIGNIFICANCE:g} (every seed)"
        handles.append(plt.Line2D([], [], color="0.3", marker="o", ls="", ms=4, label=label))
        handles.append(plt.Line2D([], [], color="0.3", marker="o", mfc="white", ls="", ms=4, label="p larger"))
        if excess:
            handles.append(plt.Line2D([], [], color="black", lw=0.8, label="0 = null mean"))
        else:
            handles.append(plt.Line2D([], [], color="0.3", ls="--", lw=0.9, label="null mean"))
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="0.3", alpha=NULL_ALPHA, hatch="///", label="null band"))
    axes[0][-1].legend(handles=handles, title="layer", fontsize=7, loc="best")
    band = f"; solid band: ± std over seeds; hatched: {null_band_text(block)}"
    fig.suptitle(_wrap(f"{title}; {_seeds_text(block)}{band}", 40 * len(modes) + 20), fontsize=10)
    return save(fig, path)


def _primary_blocks(group: pd.DataFrame, primaries: dict[str, str]) -> list[tuple[str, pd.DataFrame]]:
    return [(est, group[group["setting_slug"] == slug]) for est, slug in primaries.items()
            if (group["setting_slug"] == slug).any()]  # fmt: skip


def infoplane_estimators(group: pd.DataFrame, primaries: dict[str, str], title: str, path: Path) -> Path:
    """One row per estimator (its paper-default setting), one column per mode: the information
    plane of every layer with the same markers, epoch colours and null bands as `infoplane`."""
    blocks = _primary_blocks(group, primaries)
    modes = mode_order(group["mode"])
    norm, cmap = _epoch_norm(group), plt.get_cmap(EPOCH_CMAP)
    markers = _layer_markers(group)
    fig, axes = plt.subplots(
        len(blocks), len(modes), figsize=(4.6 * len(modes) + 2.6, 3.7 * len(blocks) + 0.7), sharex="row",
        sharey="row", squeeze=False, layout="constrained",
    )  # fmt: skip
    for r, (estimator, block) in enumerate(blocks):
        mean = evidence_means(block, ["mode", "layer", "layer_name", "epoch"])
        rises = data_processing.violation_share(data_processing.check(block))
        for c, mode in enumerate(modes):
            ax = axes[r][c]
            _plane_panel(ax, mean[mean["mode"] == mode], markers, norm, cmap)
            data_processing.ring_violations(ax, mean[mean["mode"] == mode], rises[rises["mode"] == mode])
            _saturation_line(ax, block)
            ax.set_xlabel(block_quantity_label(block, "x"), fontsize=8)
            ax.set_title(_wrap(f"{mode} · {block['setting'].iloc[0]}", 60), fontsize=7)
        axes[r][0].set_ylabel(block_quantity_label(block, "y"), fontsize=9)
    handles = [*_plane_legend(markers, True), data_processing.ring_handle()]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=7)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes.ravel().tolist(), label="epoch",
                       shrink=min(0.9, 1.6 / len(blocks)), location="right")  # fmt: skip
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(_wrap(f"{title}; {_seeds_text(group)}; light grey: {null_band_text(group)}", 40 * len(modes) + 40),
                 fontsize=10)  # fmt: skip
    return save(fig, path)


#: How a verdict of `compression_summary` is written in a heat-map cell (before the relative fall).
VERDICT_MARKS = {"falls": "↓", "unclear": "?", "no fall": "", "no excess": "no excess", "no dependence": "none",
                 "too few epochs": "few epochs", "no value": "no value"}  # fmt: skip


def compression_estimators(summary: pd.DataFrame, title: str, path: Path) -> Path:
    """Heat map per mode (panels): rows estimators, columns layers; colour = relative fall of the
    dependence on X from its peak to the last epoch (0..1, clipped); ↓ = falls beyond the noise,
    ? = as large but within it (`common.compression_summary`)."""
    from .common import estimator_order

    modes = mode_order(summary["mode"])
    estimators = estimator_order(summary["estimator"])
    layers = _layers(summary)
    cmap = compression_cmap().with_extremes(bad="0.85")
    fig, axes = plt.subplots(
        1, len(modes), figsize=(0.9 * len(layers) * len(modes) + 3.2, 0.55 * len(estimators) + 2.2), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for ax, mode in zip(axes[0], modes):
        part = summary[summary["mode"] == mode].set_index(["estimator", "layer"])
        grid = np.full((len(estimators), len(layers)), np.nan)
        for i, est in enumerate(estimators):
            for j, (layer, _) in enumerate(layers):
                if (est, layer) not in part.index:
                    continue
                cell = part.loc[(est, layer)]
                value = float(np.clip(cell["relative_fall"], 0, 1)) if np.isfinite(cell["relative_fall"]) else np.nan
                if cell["verdict"] in ("no excess", "no dependence", "too few epochs", "no value"):
                    value = np.nan
                grid[i, j] = value
                mark = VERDICT_MARKS.get(cell["verdict"], cell["verdict"])
                number = f"{cell['relative_fall']:.0%}" if np.isfinite(cell["relative_fall"]) else ""
                text = mark if np.isnan(value) else f"{mark} {number}".strip()
                dark = np.isfinite(value) and value > 0.55
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if dark else "black", fontweight="bold" if cell["verdict"] == "falls" else None)
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(layers)), [f"{l}: {n}" for l, n in layers], rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(estimators)), estimators, fontsize=8)
        ax.set_title(mode)
    fig.colorbar(image, ax=axes[0].tolist(), label="(peak − last) / peak, clipped to [0, 1]", shrink=0.9)
    quantity = "excess over the null where the setting has one, else the value"
    fig.suptitle(_wrap(f"{title}; ↓ falls beyond 2 SE and ≥ 5 % of the peak, ? as large but within the noise; "
                       f"quantity: {quantity}", 50 * len(modes) + 40), fontsize=9)  # fmt: skip
    return save(fig, path)


def separability(block: pd.DataFrame, title: str, path: Path) -> Path:
    """Probe test accuracy vs depth at the last epoch, one line per mode; initialization dashed."""
    modes = mode_order(block["mode"])
    final = final_rows(block)
    mean = _mean_over_seeds(final, ["mode", "layer", "layer_name"], ["accuracy"])
    colors = dict(zip(modes, categorical(len(modes))))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    for i, mode in enumerate(modes):
        part = mean[mean["mode"] == mode].sort_values("layer")
        ax.errorbar(
            part["layer"], 100 * part["accuracy_mean"], yerr=100 * part["accuracy_std"].fillna(0),
            color=colors[mode], marker=MARKERS[i % len(MARKERS)], capsize=3, lw=1.8, label=f"{mode} (last epoch)",
        )  # fmt: skip
    init = block[block["epoch"] == 0]
    if len(init):
        start = init.groupby("layer")["accuracy"].mean()
        ax.plot(start.index, 100 * start.to_numpy(), color="0.4", ls="--", lw=1.2, label="initialization (epoch 0)")
    names = final[["layer", "layer_name"]].drop_duplicates().sort_values("layer")
    ax.set_xticks(names["layer"], [f"{l}: {n}" for l, n in names.itertuples(index=False)], rotation=30, ha="right")
    ax.set_xlabel("layer (depth)")
    ax.set_ylabel("linear-probe test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(_wrap(f"{title}; {_seeds_text(block)}; bars: ± std", 70), fontsize=10)
    return save(fig, path)


def compression_gap(comp: pd.DataFrame, gap: pd.DataFrame, title: str, path: Path) -> Path:
    """x = mean middle-layer compression of a run, y = its generalization gap; one point per run."""
    from scipy.stats import spearmanr

    middle = middle_layers(int(comp["layer"].max()) + 1)
    per_run = comp[comp["layer"].isin(middle)].groupby(RUN)["compression"].mean().reset_index()
    joined = per_run.merge(gap, on=RUN)
    modes = mode_order(joined["mode"]) if len(joined) else []
    colors = dict(zip(modes, categorical(len(modes))))
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    for i, mode in enumerate(modes):
        part = joined[joined["mode"] == mode]
        ax.scatter(part["compression"], 100 * part["gap"], color=colors[mode], marker=MARKERS[i % len(MARKERS)],
                   s=45, label=mode, edgecolors="black", linewidths=0.4)  # fmt: skip
    rho_text = ""
    if len(joined) >= 3 and joined["compression"].nunique() > 1 and joined["gap"].nunique() > 1:
        rho_text = f"; Spearman ρ = {spearmanr(joined['compression'], joined['gap'])[0]:.2f} (n = {len(joined)} runs)"
    ax.set_xlabel(f"compression: max − last nHSIC(X; Z_l),\nmean over middle layers {middle}")
    ax.set_ylabel("generalization gap: train − test accuracy (pp)")
    ax.grid(alpha=0.3)
    if modes:
        ax.legend(fontsize=8)
    ax.set_title(_wrap(f"{title}{rho_text}", 70), fontsize=10)
    return save(fig, path)


def accuracy_vs_epoch(block: pd.DataFrame, title: str, path: Path) -> Path:
    """The whole network's test accuracy versus epoch, one line per mode, ± std over seeds."""
    test = whole_network(block)
    test = test[test["split"] == "test"]
    modes = mode_order(test["mode"])
    mean = _mean_over_seeds(test, ["mode", "epoch"], ["accuracy"])
    colors = dict(zip(modes, categorical(len(modes))))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    for i, mode in enumerate(modes):
        part = mean[mean["mode"] == mode].sort_values("epoch")
        m, s = 100 * part["accuracy_mean"].to_numpy(), 100 * part["accuracy_std"].fillna(0).to_numpy()
        ax.plot(part["epoch"], m, color=colors[mode], marker=MARKERS[i % len(MARKERS)], ms=3, lw=1.6, label=mode)
        ax.fill_between(part["epoch"], m - s, m + s, color=colors[mode], alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy of the whole network (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(_wrap(f"{title}; {_seeds_text(test)}; band: ± std", 70), fontsize=10)
    return save(fig, path)


def make_figures(inputs: Inputs, out: Path) -> list[Path]:
    """All figures under out/<kind>/; returns the written paths."""
    out = Path(out)
    for kind in KINDS:  # every kind has its folder, even when there is nothing to draw
        (out / kind).mkdir(parents=True, exist_ok=True)
    written = []
    every_split = inputs.dependence  # the information planes draw one panel row per split
    main = inputs.for_split(inputs.declared_split())  # every other figure: the declared split
    dependence = main.dependence
    comp = compression(dependence) if len(dependence) else None
    gap = generalization_gap(inputs.metrics)
    sweeps = sensitivity_sweeps(dependence) if len(dependence) else []
    primaries = primary_settings(dependence) if len(dependence) else {}
    in_sweeps = set().union(*(sweep.shown() - {sweep.base} for sweep in sweeps))
    for (setting, slug), block in dependence.groupby(["setting", "setting_slug"], sort=True):
        if slug in in_sweeps:  # drawn in its estimator's sensitivity figure
            continue
        for (dataset, arch), group in block.groupby(GROUP, sort=True):
            stem = f"{dataset}_{arch}_{slug}.png"
            where = f"{dataset} / {arch}; estimator: {setting}"
            planes = every_split[(every_split["setting_slug"] == slug) & (every_split["dataset"] == dataset)
                                 & (every_split["arch"] == arch)]  # fmt: skip
            for excess, suffix in ((False, ""), (True, "_excess")):
                name = "excess of the " if excess else ""
                written.append(infoplane(planes, f"Information plane ({name}dependence), {where}",
                                         out / f"infoplane{suffix}" / stem, excess=excess))
                written.append(dependence_vs_epoch(group, f"Dependence vs epoch ({name}value), {where}",
                                                   out / f"dependence{suffix}" / stem, excess=excess))
            part = comp[(comp["setting"] == setting) & (comp["dataset"] == dataset) & (comp["arch"] == arch)]
            written.append(
                compression_gap(part, gap, f"Compression vs generalization, {where}", out / "compression" / stem)
            )
    if len(dependence):
        summary = compression_summary(dependence[dependence["setting_slug"].isin(primaries.values())])
    for (dataset, arch), group in dependence.groupby(GROUP, sort=True):
        where = f"{dataset} / {arch}"
        stem = f"{dataset}_{arch}"
        written.append(diagnostics(group, f"Scale diagnostics, {where}", out / "diagnostics" / f"{stem}.png"))
        written.append(infoplane_estimators(group, primaries, f"Information plane per estimator, {where}",
                                            out / "infoplane_estimators" / f"{stem}.png"))  # fmt: skip
        part = summary[(summary["dataset"] == dataset) & (summary["arch"] == arch)]
        if len(part):
            title = f"Compression of the dependence on X per estimator, {where}; {_seeds_text(group)}"
            written.append(compression_estimators(part, title, out / "compression_estimators" / f"{stem}.png"))
        for sweep in sweeps:
            if group["setting_slug"].isin(sweep.shown()).any():
                label = group.loc[group["setting_slug"] == sweep.base, "setting"]
                swept = " and ".join(dict.fromkeys("σ" if axis == "sigma" else "ε" for axis, _, _ in sweep.panels()))
                title = f"Sensitivity of {sweep.estimator} to {swept}, {where}; default setting: {label.iloc[0]}"
                written.append(sensitivity(group, sweep, title, out / "sensitivity" / f"{stem}_{sweep.estimator}.png"))
    for (dataset, arch), group in inputs.metrics.groupby(GROUP, sort=True):
        title = f"Test accuracy vs epoch, {dataset} / {arch}"
        written.append(accuracy_vs_epoch(group, title, out / "accuracy" / f"{dataset}_{arch}.png"))
    for (dataset, arch), group in main.probes.groupby(GROUP, sort=True):
        written.append(
            separability(group, f"Linear separability vs depth, {dataset} / {arch}", out / "separability" / f"{dataset}_{arch}.png")
        )
    return written
