"""Claim 5: middle-layer compression goes with better generalization, within each training mode."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..common import compression as peak_minus_last
from ..common import generalization_gap, middle_layers, mode_order, require, unique, whole_network
from ..rule import DESCRIPTIVE, MIN_SEEDS, Bounds, decide, differences_frame, fmt_number, result_row
from .data import METRICS_COLUMNS, comparison_rng, in_layer_groups, used_dependence
from .registry import N_PERMUTATIONS, Options, claim


def compression_and_generalization(dependence: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run and setting: compression = mean over the middle blocks (all but the first and the
    last block) of max over epochs minus last-epoch excess nHSIC(X;Z_l); gap = train - test
    accuracy of the whole network at the last epoch; test = that test accuracy. Columns:
    dataset, arch, setting, mode, seed, compression, gap, test."""
    dep = used_dependence(dependence)
    # middle blocks: `common.middle_layers` of the B blocks + classifier, none when B < 3
    mid = dep[(dep["n_blocks"] >= 3) & in_layer_groups(dep, lambda b: middle_layers(b + 1))]
    per_layer = peak_minus_last(mid.assign(value_xz=mid["dep_xz"]))  # peak - last of the used dependence
    comp = per_layer.groupby(["dataset", "arch", "setting", "mode", "seed"], sort=False)["compression"].mean()
    require(metrics, METRICS_COLUMNS, "metrics")
    unique(whole_network(metrics), ["dataset", "arch", "mode", "seed", "epoch", "split"], "metrics (classifier)")
    acc = generalization_gap(metrics)
    out = comp.reset_index().merge(acc, on=["dataset", "arch", "mode", "seed"], how="left")
    return out[["dataset", "arch", "setting", "mode", "seed", "compression", "gap", "test"]]


def _rank_pearson(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis (of ranks: Spearman); NaN where one side is constant."""
    rx = rx - rx.mean(-1, keepdims=True)
    ry = ry - ry.mean(-1, keepdims=True)
    denom = np.sqrt((rx**2).sum(-1) * (ry**2).sum(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, (rx * ry).sum(-1) / denom, np.nan)


def _fisher(rhos: Sequence[np.ndarray], ns: Sequence[int]) -> np.ndarray:
    """Fisher-z mean of per-mode rhos weighted by n - 3, back-transformed; |rho| clipped at 1 - 1e-9."""
    weights = np.array([n - 3 for n in ns], np.float64)
    z = np.stack([np.arctanh(np.clip(r, -1 + 1e-9, 1 - 1e-9)) for r in rhos], axis=0)
    return np.tanh(np.tensordot(weights, z, axes=1) / weights.sum())


def stratified_spearman(groups: Sequence[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
                        n_perm: int = N_PERMUTATIONS) -> dict[str, float]:  # fmt: skip
    """Within-group Spearman rho combined over groups (Fisher z, weights n - 3), with its test.

    groups: one (x, y) pair of equal-length arrays per mode (>= 4 values each, neither constant).
    p_greater / p_less: Monte-Carlo permutation test permuting y within each group (exact in
    distribution under 'no association within any group'; p = (1 + #{perm >= obs}) / (1 + n_perm)).
    Pooling the groups instead would mix between-group differences into the correlation.
    """
    ranks = [(stats.rankdata(x), stats.rankdata(y)) for x, y in groups]
    ns = [len(rx) for rx, _ in ranks]
    rho_each = [float(_rank_pearson(rx, ry)) for rx, ry in ranks]
    rho = float(_fisher([np.array(r) for r in rho_each], ns))
    perm = []
    for rx, ry in ranks:
        shuffled = rng.permuted(np.broadcast_to(ry, (n_perm, len(ry))), axis=1)
        perm.append(_rank_pearson(rx[None, :], shuffled))
    null = _fisher(perm, ns)
    tol = 1e-12
    p_greater = (1 + np.sum(null >= rho - tol)) / (1 + n_perm)
    p_less = (1 + np.sum(null <= rho + tol)) / (1 + n_perm)
    min_p = max(1 / math.prod(math.factorial(n) for n in ns), 1 / (1 + n_perm))
    return {"rho": rho, "rho_each": rho_each, "p_greater": float(p_greater), "p_less": float(p_less),
            "min_p": min_p}  # fmt: skip


def sign_bounds(p_greater: float, p_less: float) -> Bounds:
    """The bounds of rho that inverting the permutation test gives: it tests only 'no association',
    so at level a the set is rho > 0 (low bound 0, open) when p_greater <= a, rho < 0 (high bound 0)
    when p_less <= a, else the whole range [-1, 1]. The p-value and the interval are one procedure."""

    def bounds(level: float) -> tuple[float, float]:
        return (0.0 if p_greater <= level else -1.0), (0.0 if p_less <= level else 1.0)

    return bounds


@claim(
    "5",
    title="middle-layer compression and generalization",
    statement="Compression in middle layers goes with better generalization.",
    statistic="Per run, compression = mean over the middle blocks of peak − last dependence on X; within each "
    "mode with >= 5 seeds, Spearman ρ across seeds between compression and the generalization gap (train − test "
    "accuracy), Fisher-combined over modes; claimed ρ < 0 (primary). With test accuracy, ρ > 0 (secondary). "
    "Stratified permutation test; its interval is the sign of ρ the same test establishes.",
    mean="Fisher-combined within-mode Spearman ρ (descriptive rows: ρ within one mode)",
    axis="Spearman ρ (points: within one mode)",
    limits=(-1.08, 1.08),
    points="descriptive",
)
def compression_generalization(dependence: pd.DataFrame, metrics: pd.DataFrame, options: Options = Options()):
    """Claim 5 -> (results, differences): parts "gap" (claimed rho < 0, primary) and "test_accuracy"
    (claimed rho > 0, secondary), each one tested row per dataset x arch x setting over the modes
    with >= MIN_SEEDS complete seeds, plus one descriptive row per mode."""
    runs = compression_and_generalization(dependence, metrics)
    rows, diffs = [], []
    parts = {"gap": ("less", True, "generalization gap (train - test accuracy)"),
             "test_accuracy": ("greater", False, "test accuracy")}  # fmt: skip
    for (dataset, arch, setting), group in runs.groupby(["dataset", "arch", "setting"], sort=True):
        for part, (direction, primary, target) in parts.items():
            ident = dict(claim="5", part=part, primary=primary, dataset=dataset, arch=arch, setting=setting,
                         direction=direction)  # fmt: skip
            target_col = "gap" if part == "gap" else "test"
            data = group.dropna(subset=["compression", target_col])
            text = f"Spearman rho(middle-block compression, {target}) within modes, Fisher-combined"
            groups, used, skipped = [], [], []
            for mode in mode_order(data["mode"]):
                sub = data[data["mode"] == mode].sort_values("seed")
                x, y = sub["compression"].to_numpy(float), sub[target_col].to_numpy(float)
                for s, v, r in zip(sub["seed"], x, y):
                    diffs.append(dict(claim="5", part=part, dataset=dataset, arch=arch, setting=setting, mode=mode,
                                      reference_mode="", seed=s, value=v, reference=r,
                                      difference=math.nan))  # fmt: skip
                constant = np.ptp(x) == 0 or np.ptp(y) == 0 if len(x) else True
                rho_m = math.nan if constant or len(x) < 2 else float(stats.spearmanr(x, y)[0])
                rows.append(result_row(**ident, mode=mode, statistic=f"Spearman rho within {mode}", n_seeds=len(x),
                                 mean=rho_m, effect_size=rho_m, _preset=DESCRIPTIVE,
                                 reason="per-mode correlation, reported for comparison"))  # fmt: skip
                if len(x) >= MIN_SEEDS and not constant:
                    groups.append((x, y))
                    used.append(mode)
                else:
                    skipped.append(f"{mode} ({len(x)} seeds{', constant' if constant and len(x) else ''})")
            row = result_row(**ident, mode="+".join(used) or "none", statistic=text, _kind="permutation",
                       n_seeds=min((len(g[0]) for g in groups), default=0),
                       test="stratified permutation of Fisher-combined Spearman rho")  # fmt: skip
            notes = [f"modes left out: {', '.join(skipped)}"] if skipped else []
            if len(data) >= 3 and np.ptp(data["compression"]) > 0 and np.ptp(data[target_col]) > 0:
                pooled = stats.spearmanr(data["compression"], data[target_col])[0]
                notes.append(f"pooled over modes (not used) rho = {fmt_number(pooled)}")
            row["_note"] = "; ".join(notes)
            if not groups:
                most = max((int((data["mode"] == m).sum()) for m in data["mode"].unique()), default=0)
                if most < MIN_SEEDS:
                    row.update(n_seeds=most, _preset="underpowered",
                               reason=f"no mode has >= {MIN_SEEDS} seeds (most: {most}); needs >= {MIN_SEEDS} "
                                      f"seeds per mode")  # fmt: skip
                else:
                    row.update(n_seeds=most, _preset="inconclusive",
                               reason=f"within every mode with >= {MIN_SEEDS} seeds the compression or the {target} "
                                      f"is constant: no rank correlation")  # fmt: skip
                rows.append(row)
                continue
            res = stratified_spearman(groups, comparison_rng(options.seed, *ident.values()), options.n_perm)
            greater = direction == "greater"
            row.update(mean=res["rho"], effect_size=res["rho"], _min_p=res["min_p"],
                       ci_method="inverted stratified permutation test (the sign of rho)",
                       _bounds=sign_bounds(res["p_greater"], res["p_less"]),
                       p_value=res["p_greater" if greater else "p_less"],
                       p_reverse=res["p_less" if greater else "p_greater"])  # fmt: skip
            row["test"] += f" ({options.n_perm} permutations; seeds per mode {[len(g[0]) for g in groups]})"
            rows.append(row)
    if runs.empty:
        rows.append(result_row(claim="5", part="gap", dataset="", arch="", _preset="inconclusive",
                         reason="no middle blocks (needs >= 3 blocks) or no matching metrics"))  # fmt: skip
    return decide(rows, options.alpha), differences_frame(diffs)

