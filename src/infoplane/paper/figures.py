"""The study's figures, the only place any figure is drawn (style: `paper.style`).

Per dataset × arch (× estimator setting for dependence figures), under `figures/<kind>/`:

* `infoplane/`: information-plane trajectories, one panel per mode, one line per layer
  (mean over seeds, one marker shape per layer), segments and points coloured by epoch
  (viridis), start (○) and end (the layer's marker outlined in black) marked.
* `dependence/`: dependence on X (top) and on Y (bottom) versus epoch, one panel per mode,
  one line per layer (cividis by depth), mean ± std over seeds as a band.
* `accuracy/`: the whole network's test accuracy versus epoch, one line per mode, ± std band.
* `separability/`: linear-probe test accuracy versus depth at the last epoch, one line per
  mode, ± std error bars; initialization dashed.
* `compression/`: middle-layer compression versus generalization gap, one point per run.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.ticker import MaxNLocator

from .common import GROUP, RUN, Inputs, compression, final_rows, generalization_gap, middle_layers, mode_order
from .common import whole_network
from .style import EPOCH_CMAP, MARKERS, categorical, depth_colors, save
from .style import wrap as _wrap

KINDS = ("infoplane", "dependence", "accuracy", "separability", "compression")


def _mean_over_seeds(frame: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    agg = frame.groupby(keys)[values].agg(["mean", "std"])
    agg.columns = [f"{v}_{s}" for v, s in agg.columns]
    return agg.reset_index()


def _seeds_text(frame: pd.DataFrame) -> str:
    seeds = sorted(frame["seed"].unique())
    return f"mean over {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"


def infoplane(block: pd.DataFrame, title: str, path: Path) -> Path:
    """One panel per mode; x = nHSIC(X;Z_l), y = nHSIC(Y;Z_l); colour = epoch."""
    modes = mode_order(block["mode"])
    mean = _mean_over_seeds(block, ["mode", "layer", "layer_name", "epoch"], ["value_xz", "value_yz"])
    epochs = np.sort(mean["epoch"].unique())
    norm = plt.Normalize(epochs.min(), max(epochs.max(), epochs.min() + 1))
    cmap = plt.get_cmap(EPOCH_CMAP)
    fig, axes = plt.subplots(
        1, len(modes), figsize=(5.2 * len(modes) + 1, 4.8), sharex=True, sharey=True, squeeze=False, layout="constrained"
    )
    layers = sorted(mean[["layer", "layer_name"]].drop_duplicates().itertuples(index=False, name=None))
    markers = {key: MARKERS[i % len(MARKERS)] for i, key in enumerate(layers)}
    for ax, mode in zip(axes[0], modes):
        part = mean[mean["mode"] == mode]
        for (layer, name), traj in part.groupby(["layer", "layer_name"], sort=True):
            traj = traj.sort_values("epoch")
            x, y, e = traj["value_xz_mean"].to_numpy(), traj["value_yz_mean"].to_numpy(), traj["epoch"].to_numpy()
            if len(x) > 1:
                segments = np.stack([np.column_stack([x[:-1], y[:-1]]), np.column_stack([x[1:], y[1:]])], axis=1)
                lines = LineCollection(segments, cmap=cmap, norm=norm, linewidths=1.6)
                lines.set_array((e[:-1] + e[1:]) / 2)
                ax.add_collection(lines)
            marker = markers[(layer, name)]
            ax.scatter(x, y, c=e, cmap=cmap, norm=norm, s=16, marker=marker, zorder=3, edgecolors="none")
            ax.scatter(x[:1], y[:1], s=90, facecolors="none", edgecolors="black", marker="o", zorder=4, linewidths=1.1)
            ax.scatter(x[-1:], y[-1:], s=90, c=e[-1:], cmap=cmap, norm=norm, marker=marker, zorder=5,
                       edgecolors="black", linewidths=1.3)  # fmt: skip
        ax.set_title(mode)
        ax.set_xlabel("nHSIC(X; Z_l)")
        ax.autoscale_view()
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("nHSIC(Y; Z_l)")
    handles = [
        plt.Line2D([], [], marker=markers[key], color="0.35", linestyle="", label=f"layer {key[0]}: {key[1]}")
        for key in layers
    ]
    handles += [
        plt.Line2D([], [], marker="o", color="black", markerfacecolor="none", linestyle="", label="start (first epoch)"),
        plt.Line2D([], [], marker="s", color="0.35", markeredgecolor="black", linestyle="", label="end (outlined)"),
    ]
    axes[0][-1].legend(handles=handles, loc="best", fontsize=8)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(), label="epoch", shrink=0.9)
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(_wrap(f"{title}; {_seeds_text(block)}", 40 * len(modes) + 20), fontsize=10)
    return save(fig, path)


def dependence_vs_epoch(block: pd.DataFrame, title: str, path: Path) -> Path:
    """Rows nHSIC(X;Z), nHSIC(Y;Z); one panel per mode; one line per layer with a seed band."""
    modes = mode_order(block["mode"])
    mean = _mean_over_seeds(block, ["mode", "layer", "layer_name", "epoch"], ["value_xz", "value_yz"])
    layers = sorted(mean[["layer", "layer_name"]].drop_duplicates().itertuples(index=False, name=None))
    colors = dict(zip(layers, depth_colors(len(layers))))
    fig, axes = plt.subplots(
        2, len(modes), figsize=(4.8 * len(modes), 6.6), sharex=True, sharey="row", squeeze=False,
        layout="constrained",
    )
    for col, mode in enumerate(modes):
        part = mean[mean["mode"] == mode]
        for row, (value, label) in enumerate((("value_xz", "nHSIC(X; Z_l)"), ("value_yz", "nHSIC(Y; Z_l)"))):
            ax = axes[row][col]
            for (layer, name), traj in part.groupby(["layer", "layer_name"], sort=True):
                traj = traj.sort_values("epoch")
                m, s = traj[f"{value}_mean"].to_numpy(), traj[f"{value}_std"].fillna(0).to_numpy()
                ax.plot(traj["epoch"], m, color=colors[(layer, name)], label=f"{layer}: {name}", lw=1.6)
                ax.fill_between(traj["epoch"], m - s, m + s, color=colors[(layer, name)], alpha=0.2, lw=0)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(label)
            if row == 0:
                ax.set_title(mode)
            else:
                ax.set_xlabel("epoch")
    axes[0][-1].legend(title="layer", fontsize=8, loc="best")
    fig.suptitle(_wrap(f"{title}; {_seeds_text(block)}; band: ± std over seeds", 40 * len(modes) + 20), fontsize=10)
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
    dependence = inputs.dependence
    comp = compression(dependence) if len(dependence) else None
    gap = generalization_gap(inputs.metrics)
    for (setting, slug), block in dependence.groupby(["setting", "setting_slug"], sort=True):
        for (dataset, arch), group in block.groupby(GROUP, sort=True):
            stem = f"{dataset}_{arch}_{slug}"
            where = f"{dataset} / {arch}; estimator: {setting}"
            written.append(infoplane(group, f"Information plane, {where}", out / "infoplane" / f"{stem}.png"))
            written.append(
                dependence_vs_epoch(group, f"Dependence vs epoch, {where}", out / "dependence" / f"{stem}.png")
            )
            part = comp[(comp["setting"] == setting) & (comp["dataset"] == dataset) & (comp["arch"] == arch)]
            written.append(
                compression_gap(part, gap, f"Compression vs generalization, {where}", out / "compression" / f"{stem}.png")
            )
    for (dataset, arch), group in inputs.metrics.groupby(GROUP, sort=True):
        title = f"Test accuracy vs epoch, {dataset} / {arch}"
        written.append(accuracy_vs_epoch(group, title, out / "accuracy" / f"{dataset}_{arch}.png"))
    for (dataset, arch), group in inputs.probes.groupby(GROUP, sort=True):
        written.append(
            separability(group, f"Linear separability vs depth, {dataset} / {arch}", out / "separability" / f"{dataset}_{arch}.png")
        )
    return written


# ---------------------------------------------------------------- claims: per-seed paired differences
KINDS = (*KINDS, "claims")

#: Colour of each verdict (Okabe-Ito, colour-blind safe).
VERDICT_COLORS = {"holds": "#009E73", "fails": "#D55E00", "underpowered": "#E69F00", "inconclusive": "#777777",
                  "mixed": "#CC79A7", "descriptive": "#56B4E9"}  # fmt: skip


def _claim_panel(ax, rows: pd.DataFrame, points: list[np.ndarray], xlabel: str, title: str,
                 xlim: tuple[float, float] | None = None) -> None:  # fmt: skip
    """One setting: a line per comparison (y), its seeds as points, its mean (◆) and 90 % interval;
    a comparison without a value says why."""
    finite = [0.0] + [float(v) for p in points for v in p]
    for r in rows.itertuples():
        finite += [float(v) for v in (r.mean, r.ci_low, r.ci_high) if np.isfinite(v)]
    low, high = min(finite), max(finite)
    pad = 0.08 * (high - low) if high > low else max(abs(high), 1.0) * 0.5
    xmin, xmax = xlim or (low - pad, high + pad)
    labels = []
    for y, (r, pts) in enumerate(zip(rows.itertuples(), points)):
        color = VERDICT_COLORS.get(r.verdict, "#777777")
        if len(pts):
            jitter = np.linspace(-0.18, 0.18, len(pts)) if len(pts) > 1 else np.zeros(1)
            ax.scatter(pts, y + jitter, s=18, color=color, alpha=0.75, edgecolors="none", zorder=3)
        if np.isfinite(r.mean):
            lo = r.ci_low if np.isfinite(r.ci_low) else xmin
            hi = r.ci_high if np.isfinite(r.ci_high) else xmax
            if not (np.isnan(r.ci_low) and np.isnan(r.ci_high)):
                ax.hlines(y, lo, hi, color=color, lw=2.6, alpha=0.9, zorder=2)
                for bound, edge, marker in ((r.ci_low, xmin, "<"), (r.ci_high, xmax, ">")):
                    if np.isinf(bound):  # no value can be excluded with so few seeds
                        ax.plot([edge], [y], marker=marker, color=color, ms=7, zorder=2)
            ax.plot([r.mean], [y], marker="D", color="black", ms=6, zorder=4)
        elif not len(pts):
            ax.text((xmin + xmax) / 2, y, _wrap(f"no value: {r.reason}", 70), ha="center", va="center", fontsize=6.5,
                    color="0.3")  # fmt: skip
        who = f"{r.mode} vs {r.reference_mode}" if r.reference_mode else str(r.mode)
        part = f" [{r.part}{'' if r.primary else ', secondary'}]" if r.part else ""
        labels.append(f"{who}{part}\n{r.verdict}, {r.n_seeds} seed{'s' * (r.n_seeds != 1)}")
    ax.axvline(0.0, color="0.25", ls="--", lw=1.0, zorder=1)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    for tick, r in zip(ax.get_yticklabels(), rows.itertuples()):
        tick.set_color(VERDICT_COLORS.get(r.verdict, "black"))
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3, axis="x")


def claim_figure(claim: str, results: pd.DataFrame, differences: pd.DataFrame, title: str, xlabel: str,
                 path: Path) -> Path:  # fmt: skip
    """One claim in one dataset × arch: a panel per estimator setting (the headline setting first), a line
    per tested comparison with its per-seed paired differences (claim 5: the within-mode ρ), mean ◆ and
    90 % interval (two one-sided 95 % bounds; ▸ where a bound is infinite), a zero line; verdicts in colour
    and in the title."""
    from .statistics import DESCRIPTIVE, NO_SETTING, combine_verdicts, comparison_verdicts, robustness

    tested = results[results["verdict"] != DESCRIPTIVE]
    settings = list(dict.fromkeys(tested.sort_values("headline", ascending=False, kind="stable")["setting"]))
    headline = tested[tested["headline"].astype(bool)]
    verdict = combine_verdicts(comparison_verdicts(headline)["verdict"]) if len(headline) else "inconclusive"
    where = sorted(set(headline["setting"]) - {NO_SETTING}) or [NO_SETTING]
    cells = robustness(tested)[0] if len(tested) else pd.DataFrame()
    ncols = min(3, max(1, len(settings)))
    nrows = max(1, -(-len(settings) // ncols))
    per_panel = max([len(tested[tested["setting"] == s]) for s in settings] or [1])
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols + 1.4, (0.55 * per_panel + 1.9) * nrows),
                             squeeze=False, layout="constrained")  # fmt: skip
    for ax in axes.flat[len(settings):]:
        ax.set_visible(False)
    if not settings:
        ax = axes[0][0]
        ax.set_visible(True)
        why = results["reason"].iloc[0] if len(results) else "no rows"
        ax.text(0.5, 0.5, _wrap(f"no tested comparison: {why}", 60), ha="center", va="center", fontsize=9)
        ax.set_axis_off()
    keys = ["part", "dataset", "arch", "setting", "mode", "reference_mode"]
    for ax, setting in zip(axes.flat, settings):
        rows = tested[tested["setting"] == setting].sort_values("primary", ascending=False, kind="stable")
        points = []
        for r in rows.itertuples():
            if claim == "5" or not len(differences):
                same = results[(results["verdict"] == DESCRIPTIVE) & (results["part"] == r.part)
                               & (results["setting"] == setting)]  # fmt: skip
                points.append(same["mean"].dropna().to_numpy(float) if claim == "5" else np.array([]))
                continue
            match = np.ones(len(differences), dtype=bool)
            for key in keys:
                match &= (differences[key] == getattr(r, key)).to_numpy(bool)
            points.append(differences.loc[match, "difference"].dropna().to_numpy(float))
        cell = cells.loc[claim, setting] if claim in cells.index and setting in cells.columns else ""
        mark = " (headline)" if rows["headline"].astype(bool).any() else ""
        xlim = (-1.08, 1.08) if claim == "5" else None  # a rank correlation
        _claim_panel(ax, rows, points, xlabel, _wrap(f"{setting}{mark}: {cell}", 62), xlim)
    seeds = "points: seeds (claim 5: modes); ◆ mean; bar: 90 % interval (two one-sided 95 % bounds)"
    under = "(no estimator setting involved)" if where[0] == NO_SETTING else f"under {where[0]}"
    fig.suptitle(_wrap(f"{title} — {verdict} {under}; {seeds}", 48 * ncols + 30), fontsize=10,
                 color=VERDICT_COLORS.get(verdict, "black"))
    return save(fig, path)


def claim_figures(results: pd.DataFrame, differences: pd.DataFrame, out: Path,
                  labels: dict[str, tuple[str, str]]) -> list[Path]:  # fmt: skip
    """figures/claims/claim<N>.png for every claim in `labels` (claim -> (title, x label)), or
    claim<N>_<dataset>_<arch>.png when the results hold several dataset × arch."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    named = results[results["dataset"].astype(str) != ""]
    groups = sorted(set(zip(named["dataset"], named["arch"])))
    written = []
    for claim, (title, xlabel) in labels.items():
        mine = results[results["claim"] == claim]
        diffs = differences[differences["claim"] == claim]
        if len(groups) <= 1:
            written.append(claim_figure(claim, mine, diffs, title, xlabel, out / f"claim{claim}.png"))
            continue
        for dataset, arch in groups:
            sub = mine[(mine["dataset"] == dataset) & (mine["arch"] == arch)]
            d = diffs[(diffs["dataset"] == dataset) & (diffs["arch"] == arch)]
            written.append(claim_figure(claim, sub, d, f"{title}, {dataset} / {arch}", xlabel,
                                        out / f"claim{claim}_{dataset}_{arch}.png"))  # fmt: skip
    return written
