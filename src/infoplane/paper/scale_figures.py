"""The scale figures: the layer's activation scale against the kernel's bandwidth, and how the
last-epoch dependence moves with σ and ε.

A Gaussian kernel with a fixed bandwidth sees a layer only through D_ij / (2s²): while the
bandwidth ratio median(D) / (2s²) is ≪ 1 the kernel is nearly linear (K ≈ 1 − D / (2s²)), and
as training grows the activations it leaves that regime, so nocco's value and its null rise
with the layer's scale rather than with its dependence (docs/what-nocco-measures.md). The
diagnostics show whether that happened; the sensitivity figures whether a conclusion survives
another σ, ε or bandwidth rule. `paper.figures.make_figures` draws both kinds beside the others.

Per dataset × arch, under `figures/<kind>/<dataset>_<arch>[_<estimator>].png`:

* `diagnostics/`: the layer's scale against epoch: mean squared activation, median pairwise
  distance / √d and the bandwidth ratio median(D) / (2 s²) of the fixed-σ Gaussian kernel, one
  column per mode, one line per layer, log axes where a row spans decades.
* `sensitivity/` (one per estimator with a σ or ε grid): last-epoch value and null band of
  each layer against σ and against ε, one column per mode, one line style per bandwidth rule.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..estimators.settings import SETTINGS
from .common import RUN, Sweep, final_rows, mode_order, null_band_text, primary_settings, quantity_label
from .figure_data import _layers, _mean_over_seeds, _seeds_text, evidence_means
from .style import BANDWIDTH_STYLES, NULL_ALPHA, SEED_ALPHA, depth_colors, save, wants_log
from .style import wrap as _wrap


#: The rows of the diagnostics figure: (column, axis label).
DIAGNOSTICS = (
    ("mean_sq_activation", "mean squared activation"),
    ("median_distance", "median ‖z_i − z_j‖ / √d"),
    ("bandwidth_ratio", "bandwidth ratio median(D) / (2 s²)"),
)


def ratio_setting(group: pd.DataFrame) -> str | None:
    """The setting whose bandwidth ratio the diagnostics figure shows: a Gaussian Z kernel with
    the fixed rule, σ closest to the paper's 5 (nocco first); None without one."""
    rows = group[(group["kernel_z"] == "gaussian") & (group["bandwidth"] == "fixed") & group["bandwidth_ratio"].notna()]
    if not len(rows):
        return None
    table = rows.drop_duplicates("setting_slug")
    primary = set(primary_settings(group).values())
    paper_sigma = SETTINGS.get("nocco").defaults()["sigma"]
    order = table.assign(distance=np.abs(np.log(table["sigma"] / paper_sigma)), other=table["estimator"] != "nocco",
                         secondary=~table["setting_slug"].isin(primary))  # fmt: skip
    return order.sort_values(["distance", "other", "secondary", "setting"]).iloc[0]["setting_slug"]


def diagnostics(group: pd.DataFrame, title: str, path: Path) -> Path:
    """Per mode (columns): the layers' mean squared activation, median distance / √d and (for the
    fixed-σ setting of `ratio_setting`) bandwidth ratio against epoch; mean ± std over seeds."""
    modes = mode_order(group["mode"])
    # the first two are properties of the layer (equal in every setting's rows): one row each
    per_layer = group.drop_duplicates([*RUN, "epoch", "layer"])
    slug = ratio_setting(group)
    frames = {"mean_sq_activation": per_layer, "median_distance": per_layer}
    rows = list(DIAGNOSTICS[:2])
    if slug is not None:
        frames["bandwidth_ratio"] = group[group["setting_slug"] == slug]
        rows.append(DIAGNOSTICS[2])
    layers = _layers(group)
    colors = dict(zip(layers, depth_colors(len(layers))))
    fig, axes = plt.subplots(
        len(rows), len(modes), figsize=(4.6 * len(modes) + 0.6, 2.9 * len(rows) + 0.6), sharex=True, sharey="row",
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for r, (column, label) in enumerate(rows):
        mean = _mean_over_seeds(frames[column], ["mode", "layer", "layer_name", "epoch"], [column])
        log = wants_log(mean[f"{column}_mean"])
        for c, mode in enumerate(modes):
            ax = axes[r][c]
            for key, traj in mean[mean["mode"] == mode].groupby(["layer", "layer_name"], sort=True):
                traj = traj.sort_values("epoch")
                m, s = traj[f"{column}_mean"].to_numpy(), traj[f"{column}_std"].fillna(0).to_numpy()
                ax.plot(traj["epoch"], m, color=colors[key], marker=".", lw=1.5, label=f"{key[0]}: {key[1]}")
                low = np.where(m - s > 0, m - s, m) if log else m - s
                ax.fill_between(traj["epoch"], low, m + s, color=colors[key], alpha=SEED_ALPHA, lw=0)
            if column == "bandwidth_ratio":
                ax.axhline(1.0, color="black", lw=0.8, ls=":")
            if log:
                ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both" if log else "major")
            if r == 0:
                ax.set_title(mode)
            if r == len(rows) - 1:
                ax.set_xlabel("epoch")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if c == 0:
                ax.set_ylabel(label + (" (log)" if log else ""))
    axes[0][-1].legend(title="layer", fontsize=7, loc="best")
    ratio_text = ""
    if slug is not None:
        setting = group.loc[group["setting_slug"] == slug, "setting"].iloc[0]
        ratio_text = f"; bandwidth ratio of [{setting}] (dotted: median D = 2 s²; << 1: near-linear kernel)"
    fig.suptitle(_wrap(f"{title}; {_seeds_text(group)}; band ± std over seeds{ratio_text}", 40 * len(modes) + 30),
                 fontsize=10)  # fmt: skip
    return save(fig, path)


_AXIS_LABEL = {"sigma": "σ of the bandwidth rule", "epsilon": "ε (nocco's ridge)"}


def sensitivity_frame(group: pd.DataFrame, members: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Last-epoch evidence means of the given settings, per mode, layer, bandwidth rule and value
    of `axis` (`at`; NaN: a rule without that parameter, drawn as a level)."""
    part = final_rows(group[group["setting_slug"].isin(set(members["setting_slug"]))])
    part = part.assign(rule=part["bandwidth"].fillna("-"), at=part[axis].fillna(-1.0))
    mean = evidence_means(part, ["mode", "layer", "layer_name", "rule", "at"])
    mean["at"] = mean["at"].where(mean["at"] > 0)
    return mean


def sensitivity(group: pd.DataFrame, sweep: Sweep, title: str, path: Path) -> Path:
    """Rows: against σ (one row per ε of the grid), then against ε (at the default σ), all at the
    last epoch; columns: the dependence on X and on Y of each mode; one colour per layer, one
    line style per bandwidth rule, the null band shaded. A rule without the swept parameter
    (median against σ) is a horizontal level."""
    modes = mode_order(group["mode"])
    unit = group.loc[group["setting_slug"] == sweep.base, "unit"].iloc[0]
    layers = _layers(group)
    colors = dict(zip(layers, depth_colors(len(layers))))
    panels = sweep.panels()
    columns = [(mode, role) for mode in modes for role in ("x", "y")]
    fig, axes = plt.subplots(
        len(panels), len(columns), figsize=(3.7 * len(columns) + 1.8, max(2.9 * len(panels) + 0.9, 4.6)), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    rules_seen: set[str] = set()
    base = sweep.base_row
    for r, (axis, held, members) in enumerate(panels):
        mean = sensitivity_frame(group, members, axis)
        grid = np.sort(mean["at"].dropna().unique())
        held_text = (f"ε = {held:g}" if axis == "sigma" else f"σ = {held:g}") if not math.isnan(held) else ""
        for c, (mode, role) in enumerate(columns):
            ax = axes[r][c]
            part = mean[mean["mode"] == mode]
            for (layer, name, rule), line in part.groupby(["layer", "layer_name", "rule"], sort=True):
                color, style = colors[(layer, name)], BANDWIDTH_STYLES.get(rule, ":")
                rules_seen.add(rule)
                line = line.sort_values("at")
                if line["at"].notna().all():
                    ax.plot(line["at"], line[role], color=color, ls=style, marker=".", lw=1.4)
                    ax.fill_between(line["at"], line[f"{role}_lo"], line[f"{role}_hi"], color=color, alpha=NULL_ALPHA,
                                    lw=0)  # fmt: skip
                else:  # no such parameter: a level across the grid
                    level = line.iloc[0]
                    ax.hlines(level[role], grid[0], grid[-1], color=color, ls=style, lw=1.2)
                    if np.isfinite(level[f"{role}_lo"]):
                        ax.fill_between(grid[[0, -1]], level[f"{role}_lo"], level[f"{role}_hi"], color=color,
                                        alpha=NULL_ALPHA / 2, lw=0)  # fmt: skip
            ax.set_xscale("log")
            if pd.notna(base[axis]):
                ax.axvline(float(base[axis]), color="0.5", lw=0.8, ls=":")
            ax.grid(alpha=0.3, which="both")
            ax.set_xlabel(_AXIS_LABEL[axis] + (f" ({held_text})" if held_text else ""), fontsize=8)
            ax.set_ylabel(quantity_label(sweep.estimator, unit, role), fontsize=8)
            if r == 0:
                ax.set_title(f"{mode}: on {role.upper()}", fontsize=10)
    handles = [plt.Line2D([], [], color=colors[key], lw=2, label=f"layer {key[0]}: {key[1]}") for key in layers]
    handles += [plt.Line2D([], [], color="0.3", ls=BANDWIDTH_STYLES.get(rule, ":"), label=f"bandwidth {rule}")
                for rule in sorted(rules_seen)]  # fmt: skip
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="0.3", alpha=NULL_ALPHA, label="null band"))
    handles.append(plt.Line2D([], [], color="0.5", ls=":", label="default setting"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    text = f"{title}; last epoch, {_seeds_text(group)}; shaded: {null_band_text(group)}"
    fig.suptitle(_wrap(text, 30 * len(columns) + 40), fontsize=10)
    return save(fig, path)
