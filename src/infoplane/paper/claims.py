"""The paper's claims (METHOD.md) as measurable tests: one registry, one function per claim.

Each claim function takes the checked input tables and returns rows, one per comparison
(dataset × arch × estimator setting × compared mode), each with the statistic, the numbers
behind it and a verdict:

* `holds`        the data support the claim beyond the spread over seeds;
* `fails`        the data contradict it beyond that spread;
* `inconclusive` too few seeds / runs / epochs, a needed mode is absent, or the spreads overlap.

Comparisons over seeds ("A > B"): with mean and sample std over seeds of a per-seed
statistic, the claim holds if mean_A − mean_B > std_A + std_B (the mean ± std bands do
not overlap), fails if mean_A − mean_B < −(std_A + std_B), and is inconclusive otherwise
or with fewer than `MIN_SEEDS` seeds on either side. One-sample tests ("A > τ"): holds if
mean − std > τ, fails if mean + std < τ.

Add a claim with `@claim("6", statement=..., test=...)` on a function `(Inputs) -> list[dict]`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import contracts
from ..registry import Registry
from .render import Display, Section
from .common import (
    GROUP,
    RUN,
    Inputs,
    compression,
    deep_layers,
    final_rows,
    generalization_gap,
    is_e2e,
    mean_std,
    middle_layers,
    mode_order,
    whole_network,
)

#: Fewest seeds per mode for any verdict other than `inconclusive`.
MIN_SEEDS = 2
#: Claim 3: the relative fall of nHSIC(X;Z_L) from its peak that counts as compression.
COMPRESSION_MIN = 0.01
#: Claim 5: |Spearman ρ| needed for a verdict, and the fewest runs to compute it on.
RHO_MIN = 0.5
MIN_RUNS = 4

VERDICTS = ("holds", "fails", "inconclusive")
COLUMNS = list(contracts.CLAIMS.columns)


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    test: str
    evaluate: Callable[[Inputs], list[dict]]

    def __call__(self, inputs: Inputs) -> list[dict]:
        return self.evaluate(inputs)


CLAIMS: Registry = Registry("claim")


def claim(claim_id: str, statement: str, test: str):
    """Register `fn(inputs) -> rows` as the test of one claim."""

    def add(fn):
        CLAIMS.register(claim_id)(Claim(claim_id, statement, test, fn))
        return fn

    return add


def _row(**fields) -> dict:
    row = {c: math.nan for c in COLUMNS}
    row.update({"part": "", "setting": "n/a", "mode": "", "reference_mode": "", "reason": ""})
    row.update(fields)
    return row


def greater(a: Sequence[float], b: Sequence[float]) -> dict:
    """Verdict of 'mean(a) > mean(b)' over seeds, with the numbers."""
    ma, sa, na = mean_std(a)
    mb, sb, nb = mean_std(b)
    out = {"value": ma, "value_std": sa, "n_value": na, "reference": mb, "reference_std": sb, "n_reference": nb}
    if na < MIN_SEEDS or nb < MIN_SEEDS:
        reason = f"needs >= {MIN_SEEDS} seeds per mode, has {na} and {nb}"
        return {**out, "verdict": "inconclusive", "reason": reason}
    diff, spread = ma - mb, sa + sb
    out.update(difference=diff, threshold=spread)
    if diff > spread:
        return {**out, "verdict": "holds", "reason": f"difference {diff:.3g} > seed spread {spread:.3g}"}
    if diff < -spread:
        return {**out, "verdict": "fails", "reason": f"difference {diff:.3g} < -{spread:.3g} (reversed)"}
    reason = f"|difference| {abs(diff):.3g} <= seed spread {spread:.3g} (overlapping)"
    return {**out, "verdict": "inconclusive", "reason": reason}


def above(values: Sequence[float], threshold: float) -> dict:
    """Verdict of 'mean(values) > threshold' over seeds: holds if mean − std > τ, fails if mean + std < τ."""
    m, s, n = mean_std(values)
    out = {"value": m, "value_std": s, "n_value": n, "reference": threshold, "difference": m - threshold}
    if n < MIN_SEEDS:
        return {**out, "verdict": "inconclusive", "reason": f"needs >= {MIN_SEEDS} seeds, has {n}"}
    out["threshold"] = s
    if m - s > threshold:
        return {**out, "verdict": "holds", "reason": f"mean − std = {m - s:.3g} > {threshold:g}"}
    if m + s < threshold:
        return {**out, "verdict": "fails", "reason": f"mean + std = {m + s:.3g} < {threshold:g}"}
    return {**out, "verdict": "inconclusive", "reason": f"{threshold:g} lies within mean ± std ({m:.3g} ± {s:.3g})"}


def versus_e2e(claim_id: str, per_seed: pd.DataFrame, keys: list[str], statistic: str) -> list[dict]:
    """E2E against every other mode: per_seed has keys + mode, seed, value; 'E2E > other'."""
    rows = []
    for key, block in per_seed.groupby(keys, sort=True):
        ident = dict(zip(keys, key))
        modes = mode_order(block["mode"])
        e2e = [m for m in modes if is_e2e(m)]
        others = [m for m in modes if not is_e2e(m)]
        if not e2e or not others:
            reason = f"needs e2e and at least one other mode; present: {', '.join(modes)}"
            rows.append(_row(claim=claim_id, statistic=statistic, verdict="inconclusive", reason=reason, **ident))
            continue
        for ref in e2e:
            for other in others:
                result = greater(block.loc[block["mode"] == ref, "value"], block.loc[block["mode"] == other, "value"])
                rows.append(
                    _row(claim=claim_id, statistic=statistic, mode=ref, reference_mode=other, **ident, **result)
                )
    return rows


def _no_data(claim_id: str, what: str) -> list[dict]:
    return [_row(claim=claim_id, dataset="", arch="", verdict="inconclusive", reason=f"no {what} rows in the input")]


# --------------------------------------------------------------------------------------
@claim(
    "1",
    statement="End-to-end (E2E) training propagates input information through depth better than layer-wise "
    "training: nHSIC(X; Z_l) stays higher in deeper layers under E2E.",
    test="Per seed, the mean of nHSIC(X;Z_l) at the last epoch over the deeper half of the layers "
    "(l >= L//2 of L layers, classifier included); holds if the E2E mean over seeds exceeds the other mode's "
    "by more than the sum of their stds over seeds.",
)
def claim_deep_information(inputs: Inputs) -> list[dict]:
    if inputs.dependence.empty:
        return _no_data("1", "nHSIC")
    final = final_rows(inputs.dependence)
    frames = []
    for (setting, dataset, arch), block in final.groupby(["setting", *GROUP], sort=True):
        deep = deep_layers(int(block["layer"].max()) + 1)
        values = block[block["layer"].isin(deep)].groupby(["mode", "seed"])["value_xz"].mean()
        frame = values.rename("value").reset_index()
        frame[["setting", "dataset", "arch"]] = setting, dataset, arch
        frames.append(frame)
    per_seed = pd.concat(frames, ignore_index=True)
    return versus_e2e("1", per_seed, ["setting", *GROUP], "mean nHSIC(X;Z_l) over the deeper half, last epoch")


def layer_differentiation(block: pd.DataFrame, x_range: float, y_range: float) -> float:
    """Mean over epochs (after initialization) and layer pairs of the distance between layers'
    points in the information plane, axes scaled by x_range and y_range."""
    epochs = sorted(block["epoch"].unique())
    trained = [e for e in epochs if e > 0] or epochs
    part = block[block["epoch"].isin(trained)]
    x = part.pivot_table(index="epoch", columns="layer", values="value_xz").to_numpy() / x_range
    y = part.pivot_table(index="epoch", columns="layer", values="value_yz").to_numpy() / y_range
    if x.shape[1] < 2:
        return math.nan
    points = np.stack([x, y], axis=-1)  # (epochs, layers, 2)
    dist = np.linalg.norm(points[:, :, None, :] - points[:, None, :, :], axis=-1)
    upper = np.triu_indices(x.shape[1], k=1)
    return float(np.nanmean(dist[:, upper[0], upper[1]]))


@claim(
    "2",
    statement="E2E layers differentiate: their information-plane trajectories differ by depth, while layer-wise "
    "layers behave alike.",
    test="Per seed, the layer differentiation D = mean over snapshot epochs (after initialization) and over "
    "all layer pairs of the distance between the layers' points (nHSIC(X;Z), nHSIC(Y;Z)), each axis divided "
    "by its range over all runs of the dataset × arch × estimator; holds if D under E2E exceeds the other "
    "mode's by more than the sum of their stds over seeds.",
)
def claim_differentiation(inputs: Inputs) -> list[dict]:
    if inputs.dependence.empty:
        return _no_data("2", "nHSIC")
    frames = []
    for (setting, dataset, arch), block in inputs.dependence.groupby(["setting", *GROUP], sort=True):
        x_range = float(np.ptp(block["value_xz"])) or 1.0
        y_range = float(np.ptp(block["value_yz"])) or 1.0
        for (mode, seed), run in block.groupby(["mode", "seed"], sort=True):
            value = layer_differentiation(run, x_range, y_range)
            frames.append({"setting": setting, "dataset": dataset, "arch": arch, "mode": mode, "seed": seed, "value": value})
    per_seed = pd.DataFrame(frames)
    return versus_e2e("2", per_seed, ["setting", *GROUP], "layer differentiation D in the scaled information plane")


@claim(
    "3",
    statement="Under E2E the final representation follows the information bottleneck: nHSIC(Y; Z_L) rises, and "
    "late in training nHSIC(X; Z_L) falls (compression).",
    test="Z_L = the last block's output (the representation the classifier reads). Per E2E seed: (a) rise = "
    "nHSIC(Y;Z_L) at the last epoch minus at the first snapshot; holds if mean − std > 0 over seeds; (b) "
    f"relative compression = (max over epochs of nHSIC(X;Z_L) − last value) / max; holds if mean − std > "
    f"{COMPRESSION_MIN:g}. The claim holds if both parts hold, fails if either fails (mean + std below the "
    "threshold); needs >= 3 snapshot epochs.",
)
def claim_bottleneck(inputs: Inputs) -> list[dict]:
    if inputs.dependence.empty:
        return _no_data("3", "nHSIC")
    rows = []
    for (setting, dataset, arch), block in inputs.dependence.groupby(["setting", *GROUP], sort=True):
        ident = {"setting": setting, "dataset": dataset, "arch": arch}
        e2e = [m for m in mode_order(block["mode"]) if is_e2e(m)]
        if not e2e:
            reason = f"needs an e2e mode; present: {', '.join(mode_order(block['mode']))}"
            rows.append(_row(claim="3", statistic="", verdict="inconclusive", reason=reason, **ident))
            continue
        last_block = max(int(block["layer"].max()) - 1, 0)
        for mode in e2e:
            runs = block[(block["mode"] == mode) & (block["layer"] == last_block)]
            rises, falls, n_epochs = [], [], runs.groupby("seed")["epoch"].nunique().min()
            for _, run in runs.sort_values("epoch").groupby("seed"):
                rises.append(run["value_yz"].iloc[-1] - run["value_yz"].iloc[0])
                peak = run["value_xz"].max()
                falls.append((peak - run["value_xz"].iloc[-1]) / peak if peak > 0 else math.nan)
            name = runs["layer_name"].iloc[0] if len(runs) else str(last_block)
            parts = [
                ("a", f"rise of nHSIC(Y;Z_L), Z_L = layer {last_block} ({name})", above(rises, 0.0)),
                ("b", f"relative fall of nHSIC(X;Z_L) from its peak, Z_L = layer {last_block} ({name})",
                 above(falls, COMPRESSION_MIN)),
            ]  # fmt: skip
            for part, statistic, result in parts:
                if n_epochs < 3:
                    result = {**result, "verdict": "inconclusive", "reason": f"needs >= 3 snapshot epochs, has {n_epochs}"}
                rows.append(_row(claim="3", part=part, statistic=statistic, mode=mode, **ident, **result))
    return rows


@claim(
    "4",
    statement="E2E reaches higher test accuracy than layer-wise training of the same network.",
    test="Per seed, the whole network's test accuracy at the last epoch; holds if the E2E mean over seeds exceeds "
    "the other mode's by more than the sum of their stds over seeds.",
)
def claim_accuracy(inputs: Inputs) -> list[dict]:
    test = final_rows(whole_network(inputs.metrics))
    test = test[test["split"] == "test"]
    if test.empty:
        return _no_data("4", "test-accuracy")
    per_seed = test.groupby([*GROUP, "mode", "seed"])["accuracy"].mean().rename("value").reset_index()
    return versus_e2e("4", per_seed, GROUP, "test accuracy at the last epoch")


@claim(
    "5",
    statement="Compression in middle layers goes with better generalization.",
    test="Per run (every mode and seed of a dataset × arch): compression = mean over the middle layers (blocks "
    "other than the first and the last) of max over epochs of nHSIC(X;Z_l) minus its last value; gap = train − "
    f"test accuracy at the last epoch. Spearman ρ(compression, gap) over runs; holds if ρ <= −{RHO_MIN:g}, fails "
    f"if ρ >= {RHO_MIN:g}; needs >= {MIN_RUNS} runs and >= {MIN_SEEDS} seeds per mode.",
)
def claim_compression_generalization(inputs: Inputs) -> list[dict]:
    from scipy.stats import spearmanr

    if inputs.dependence.empty:
        return _no_data("5", "nHSIC")
    comp = compression(inputs.dependence)
    gap = generalization_gap(inputs.metrics)
    rows = []
    for (setting, dataset, arch), block in comp.groupby(["setting", *GROUP], sort=True):
        ident = {"setting": setting, "dataset": dataset, "arch": arch, "mode": "all"}
        middle = middle_layers(int(block["layer"].max()) + 1)
        per_run = block[block["layer"].isin(middle)].groupby(RUN)["compression"].mean().reset_index()
        joined = per_run.merge(gap, on=RUN).dropna(subset=["compression", "gap"])
        statistic = f"Spearman ρ(middle-layer compression, generalization gap); middle layers {middle}"
        result = {"n_value": len(joined), "reference": -RHO_MIN, "threshold": RHO_MIN}
        seeds = joined.groupby("mode")["seed"].nunique()
        if len(joined) < MIN_RUNS or seeds.empty or seeds.min() < MIN_SEEDS:
            reason = f"needs >= {MIN_RUNS} runs and >= {MIN_SEEDS} seeds per mode, has {len(joined)} runs, seeds per mode {seeds.to_dict()}"
            rows.append(_row(claim="5", statistic=statistic, verdict="inconclusive", reason=reason, **ident, **result))
            continue
        rho, p_value = spearmanr(joined["compression"], joined["gap"])
        result["value"] = float(rho)
        if not np.isfinite(rho):
            verdict, reason = "inconclusive", "ρ undefined (constant compression or gap)"
        elif rho <= -RHO_MIN:
            verdict, reason = "holds", f"ρ = {rho:.3f} <= −{RHO_MIN:g} (p = {p_value:.3g}, n = {len(joined)})"
        elif rho >= RHO_MIN:
            verdict, reason = "fails", f"ρ = {rho:.3f} >= {RHO_MIN:g} (p = {p_value:.3g}, n = {len(joined)})"
        else:
            verdict, reason = "inconclusive", f"|ρ| = {abs(rho):.3f} < {RHO_MIN:g} (weak; p = {p_value:.3g}, n = {len(joined)})"
        result["difference"] = float(rho) + RHO_MIN
        rows.append(_row(claim="5", statistic=statistic, verdict=verdict, reason=reason, **ident, **result))
    return rows


# --------------------------------------------------------------------------------------
def evaluate_claims(inputs: Inputs) -> pd.DataFrame:
    """All registered claims -> one table (COLUMNS), claims in registry order."""
    rows = [row for name in claim_ids() for row in CLAIMS.get(name)(inputs)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("n_value", "n_reference"):
        table[col] = table[col].fillna(0)
    return contracts.CLAIMS.conform(table)


def combine(verdicts: Sequence[str]) -> str:
    """Several verdicts -> one: holds if all hold, fails if all fail, else inconclusive."""
    verdicts = list(verdicts)
    if verdicts and all(v == "holds" for v in verdicts):
        return "holds"
    if verdicts and all(v == "fails" for v in verdicts):
        return "fails"
    return "inconclusive"


def overall(table: pd.DataFrame, claim_id: str) -> tuple[str, str]:
    """(verdict, reason) of one claim over all its comparisons. Parts of one comparison
    (claim 3) combine first: holds if all parts hold, fails if any fails."""
    rows = table[table["claim"] == claim_id]
    if rows.empty:
        return "inconclusive", "no comparisons"
    keys = ["dataset", "arch", "setting", "mode", "reference_mode"]
    per_comparison = []
    for _, parts in rows.groupby(keys, sort=False):
        verdicts = set(parts["verdict"])
        per_comparison.append(
            "fails" if "fails" in verdicts else "holds" if verdicts == {"holds"} else "inconclusive"
        )
    counts = ", ".join(f"{v} {per_comparison.count(v)}" for v in VERDICTS)
    reason = f"{counts} (of {len(per_comparison)} comparison{'s' if len(per_comparison) != 1 else ''})"
    return combine(per_comparison), reason


def claim_ids() -> list[str]:
    """Registered claim ids in numeric order."""
    return sorted(CLAIMS.names(), key=lambda name: (len(name), name))


def _num(value: float, std: float = math.nan) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}" if math.isnan(std) else f"{value:.4g} ± {std:.2g}"


def claims_markdown(table: pd.DataFrame, header: str) -> str:
    lines = ["# Claims of the paper, tested on this experiment", "", header, ""]
    lines += [
        "Verdicts: **holds** = supported beyond the spread over seeds, **fails** = contradicted beyond it, "
        "**inconclusive** = too few seeds/runs/epochs, a needed mode missing, or overlapping spreads. "
        "Comparisons over seeds: holds if mean_A − mean_B > std_A + std_B (sample stds over seeds).",
        "",
        "| claim | verdict | comparisons |",
        "|---|---|---|",
    ]
    for name in claim_ids():
        verdict, reason = overall(table, name)
        lines.append(f"| {name} | **{verdict}** | {reason} |")
    lines.append("")
    for name in claim_ids():
        spec: Claim = CLAIMS.get(name)
        verdict, reason = overall(table, name)
        lines += [f"## Claim {name}: {verdict}", "", f"*Claim.* {spec.statement}", "", f"*Test.* {spec.test}", ""]
        rows = table[table["claim"] == name]
        lines.append(
            "| dataset | arch | estimator | part | mode | vs. | statistic | value | reference | difference | "
            "threshold | n | verdict | reason |"
        )
        lines.append("|" + "---|" * 14)
        for r in rows.itertuples():
            n = f"{r.n_value}" + (f" / {r.n_reference}" if r.reference_mode else "")
            cells = [
                r.dataset, r.arch, r.setting, r.part, r.mode, r.reference_mode, r.statistic,
                _num(r.value, r.value_std), _num(r.reference, r.reference_std), _num(r.difference),
                _num(r.threshold), n, f"**{r.verdict}**", r.reason,
            ]  # fmt: skip
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def claims_display(table: pd.DataFrame, header: str) -> Display:
    """The claims as a display table (for the HTML page in the report)."""
    summary = []
    for name in claim_ids():
        verdict, reason = overall(table, name)
        summary.append([name, CLAIMS.get(name).statement, verdict, reason])
    sections = [Section(["claim", "statement", "verdict", "comparisons"], summary, title="Summary")]
    for name in claim_ids():
        spec: Claim = CLAIMS.get(name)
        rows = []
        for r in table[table["claim"] == name].itertuples():
            rows.append(
                [r.dataset, r.arch, r.setting, f"{r.mode} {r.part}".strip(), r.reference_mode, r.statistic,
                 _num(r.value, r.value_std), _num(r.reference, r.reference_std), _num(r.threshold), r.verdict, r.reason]
            )  # fmt: skip
        columns = ["dataset", "arch", "estimator", "mode", "vs.", "statistic", "value", "reference", "threshold",
                   "verdict", "reason"]  # fmt: skip
        sections.append(Section(columns, rows, title=f"Claim {name}: {spec.statement} Test: {spec.test}"))
    return Display("Claims of the paper, tested on this experiment", header, sections)
