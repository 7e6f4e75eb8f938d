"""The claims' figure: one per claim (per dataset × arch), drawn from the claim's own declaration
(`Claim.axis`, `limits`, `points`), so a new claim gets its figure with its registration."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..rule import DESCRIPTIVE, NO_SETTING, combine_verdicts, comparison_verdicts, robustness
from ..style import save, wrap
from .registry import CLAIMS, Claim, claim_ids

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
            ax.text((xmin + xmax) / 2, y, wrap(f"no value: {r.reason}", 70), ha="center", va="center", fontsize=6.5,
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


def claim_figure(spec: Claim, results: pd.DataFrame, differences: pd.DataFrame, title: str, path: Path) -> Path:
    """One claim in one dataset × arch: a panel per estimator setting (the headline setting first), a line
    per tested comparison with its points (`spec.points`: per-seed paired differences, or the claim's
    descriptive rows, e.g. claim 5's within-mode ρ), mean ◆ and interval (bounds compatible with Holm;
    ▸ where a bound is infinite), a zero line; verdicts in colour and in the title."""
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
        ax.text(0.5, 0.5, wrap(f"no tested comparison: {why}", 60), ha="center", va="center", fontsize=9)
        ax.set_axis_off()
    keys = ["part", "dataset", "arch", "setting", "mode", "reference_mode"]
    for ax, setting in zip(axes.flat, settings):
        rows = tested[tested["setting"] == setting].sort_values("primary", ascending=False, kind="stable")
        points = []
        for r in rows.itertuples():
            if spec.points == "descriptive" or not len(differences):
                same = results[(results["verdict"] == DESCRIPTIVE) & (results["part"] == r.part)
                               & (results["setting"] == setting)]  # fmt: skip
                points.append(same["mean"].dropna().to_numpy(float) if spec.points == "descriptive" else np.array([]))
                continue
            match = np.ones(len(differences), dtype=bool)
            for key in keys:
                match &= (differences[key] == getattr(r, key)).to_numpy(bool)
            points.append(differences.loc[match, "difference"].dropna().to_numpy(float))
        cell = cells.loc[spec.id, setting] if spec.id in cells.index and setting in cells.columns else ""
        mark = " (headline)" if rows["headline"].astype(bool).any() else ""
        _claim_panel(ax, rows, points, spec.axis, wrap(f"{setting}{mark}: {cell}", 62), spec.limits)
    what = "modes" if spec.points == "descriptive" else "seeds"
    seeds = f"points: {what}; ◆ mean; bar: interval compatible with the Holm decision"
    under = "(no estimator setting involved)" if where[0] == NO_SETTING else f"under {where[0]}"
    fig.suptitle(wrap(f"{title} — {verdict} {under}; {seeds}", 48 * ncols + 30), fontsize=10,
                 color=VERDICT_COLORS.get(verdict, "black"))
    return save(fig, path)


def claim_figures(results: pd.DataFrame, differences: pd.DataFrame, out: Path) -> list[Path]:
    """figures/claims/claim<N>.png for every registered claim, or claim<N>_<dataset>_<arch>.png when
    the results hold several dataset × arch."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    named = results[results["dataset"].astype(str) != ""]
    groups = sorted(set(zip(named["dataset"], named["arch"])))
    written = []
    for name in claim_ids():
        spec: Claim = CLAIMS.get(name)
        title = f"Claim {name}: {spec.title}"
        mine = results[results["claim"] == name]
        diffs = differences[differences["claim"] == name]
        if len(groups) <= 1:
            written.append(claim_figure(spec, mine, diffs, title, out / f"claim{name}.png"))
            continue
        for dataset, arch in groups:
            sub = mine[(mine["dataset"] == dataset) & (mine["arch"] == arch)]
            d = diffs[(diffs["dataset"] == dataset) & (diffs["arch"] == arch)]
            written.append(claim_figure(spec, sub, d, f"{title}, {dataset} / {arch}",
                                        out / f"claim{name}_{dataset}_{arch}.png"))  # fmt: skip
    return written
