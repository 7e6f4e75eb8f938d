"""Claim 3: under E2E the last block fits (dependence on Y rises) and then compresses (dependence
on X falls from an interior peak), and the fall is beyond the evaluation batches' noise."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
from scipy import stats

from ..common import fall_standard_error, is_e2e, require
from ..rule import (ALPHA, DESCRIPTIVE, MIN_SEEDS, decide, differences_frame, fill, fmt_number, location_test,
                    result_row, t_bounds, t_pvalues)  # fmt: skip
from .data import DEPENDENCE_COLUMNS, bases, unit_arrays, used_dependence
from .registry import Options, claim


def cross_fitted_fall(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per seed, the fall x[peak] - x[last] with the peak chosen without that seed's data.

    x: (..., n_seeds, n_epochs), n_seeds >= 2, n_epochs >= 3. For seed s the peak is the argmax
    over the interior epochs (not the first, not the last) of the mean of the *other* seeds, so
    under a flat series x_s[peak] and x_s[last] have the same expectation and the fall is
    unbiased (the in-sample maximum of a noisy series is not). Returns (falls (..., n_seeds),
    peak indices (..., n_seeds)).
    """
    x = np.asarray(x, np.float64)
    n, n_epochs = x.shape[-2], x.shape[-1]
    if n < 2 or n_epochs < 3:
        raise ValueError(f"cross-fitting needs >= 2 seeds and >= 3 epochs, got {n} and {n_epochs}")
    others = (x.sum(-2, keepdims=True) - x) / (n - 1)
    peak = np.argmax(others[..., 1:-1], axis=-1) + 1
    at_peak = np.take_along_axis(x, peak[..., None], axis=-1)[..., 0]
    return at_peak - x[..., -1], peak


def peak_fall_bounds(x: np.ndarray, level: float = ALPHA) -> tuple[float, float]:
    """One-sided (1 - level) bounds of theta = max over interior epochs e of mu[e] - mu[last], by
    inverting `peak_fall_test`: low = max_e (mean_e - t_{1-level/m, n-1} s_e / sqrt(n)) (Bonferroni
    over the m interior epochs), high = max_e (mean_e + t_{1-level, n-1} s_e / sqrt(n))."""
    x = np.asarray(x, np.float64)
    d = (x[:, 1:-1] - x[:, -1:]).T  # (m, n): interior epochs relative to the end
    low, _ = t_bounds(d, level / d.shape[0])
    _, high = t_bounds(d, level)
    return float(np.max(low)), float(np.max(high))


def peak_fall_test(x: np.ndarray, alpha: float = ALPHA) -> dict:
    """Test of 'the series has an interior peak above its end value', with the peak chosen on the data.

    x: (n_seeds >= 2, n_epochs >= 3), one series per seed.
    theta = max over the m interior epochs e of mu[e] - mu[last]: how far the highest interior point
    lies above the end. Per interior epoch, the one-sided t-test of the per-seed differences
    x_s[e] - x_s[last]; holds direction: Bonferroni over the m epochs, p = min(1, m min_e p_e), and
    the matching simultaneous lower bound max_e (mean_e - t_{1-alpha/m, n-1} s_e / sqrt(n)) -- so
    the selection of the peak is paid for (the in-sample maximum of a noisy series is biased up).
    Opposite direction (every interior epoch below the end): intersection-union of the per-epoch
    tests, p = max_e p_less[e], upper bound max_e (mean_e + t_{1-alpha, n-1} s_e / sqrt(n)). Valid
    whatever the correlation between epochs; exact for normal seed-to-seed variation. The t-test
    (not the sign-flip test) because the sign-flip test's smallest p, 1/2^n, cannot survive the
    factor m at the usual seed counts.

    Returns p_greater, p_less, ci_low, ci_high, m (interior epochs), best (interior index with the
    highest lower bound), peak (interior index of the pooled maximum), fall (cross-fitted mean fall:
    each seed's peak chosen on the other seeds, an unbiased point estimate under a flat series),
    falls (per seed), test, min_p.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 3:
        raise ValueError(f"x must be (n_seeds >= 2, n_epochs >= 3), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or inf; keep only epochs every seed has")
    n, m = x.shape[0], x.shape[1] - 2
    d = (x[:, 1:-1] - x[:, -1:]).T  # (m, n): interior epochs relative to the end
    p_greater, p_less = t_pvalues(d)
    best = int(np.argmax(t_bounds(d, alpha / m)[0]))  # the epoch whose simultaneous bound is highest
    ci_low, ci_high = peak_fall_bounds(x, alpha)
    falls = cross_fitted_fall(x)[0]
    return {"p_greater": float(min(1.0, m * np.min(p_greater))), "p_less": float(np.max(p_less)),
            "ci_low": ci_low, "ci_high": ci_high, "m": m, "best": best,
            "peak": int(np.argmax(d.mean(1))), "fall": float(falls.mean()), "falls": falls,
            "test": f"one-sided t-tests at {m} interior epochs ({n} seeds), Bonferroni over epochs", "min_p": 0.0}


@claim(
    "3",
    title="information bottleneck of the last block, E2E",
    statement="Under E2E the final representation follows the information bottleneck: nHSIC(Y; Z_L) rises, and "
    "late in training nHSIC(X; Z_L) falls (compression).",
    statistic="Z_L = the last block. Fitting: dependence on Y at the last snapshot minus at the first, > 0. "
    "Compression: the highest interior snapshot of the dependence on X lies above the last one (one-sided t-tests "
    "at every interior snapshot, Bonferroni over them, so choosing the peak is paid for), the pooled peak lies "
    "strictly inside the snapshots, and the cross-fitted fall exceeds 1.645 batch standard errors of the fall "
    "(the spread over evaluation batches of the excess itself, paired over the same batches). Both parts must "
    "hold; other modes are reported descriptively.",
    mean="fitting: mean over seeds of last − first; compression: mean cross-fitted fall (each seed's peak chosen "
    "on the other seeds)",
    axis="per-seed statistic (fitting: last − first; compression: peak − last)",
)
def bottleneck(dependence: pd.DataFrame, metrics: pd.DataFrame | None = None, options: Options = Options()):
    """Claim 3 -> (results, differences): parts "fitting" and "compression" per E2E mode (tested,
    both primary: the claim needs both) and per other mode (descriptive). Z_L = the last block.
    The gate reads `excess_xz_batches` (or `excess_xz_std`; `value_xz_std` where the estimator has
    no null) and `n_batches` (`common.fall_standard_error`)."""
    require(dependence, [*DEPENDENCE_COLUMNS, "n_batches"], "dependence")
    dep = used_dependence(dependence)
    last = dep[dep["layer"] == dep["n_blocks"] - 1].copy()
    no_null, _ = bases(last, "xz")
    last["_quantity"] = np.where(no_null, "value", "excess")
    names = last.groupby(["dataset", "arch"])["layer_name"].first()
    blocks = dep.groupby(["dataset", "arch"])["n_blocks"].first()
    by_run = last.set_index(["dataset", "arch", "setting", "mode", "seed", "epoch"]).sort_index()
    rows, diffs = [], []
    keys = ["dataset", "arch", "setting", "mode"]
    for key, seeds, epochs, arr in unit_arrays(last, keys, "seed", "epoch", ["dep_xz", "dep_yz"]):
        ident = dict(claim="3", **dict(zip(keys, key)))
        r, d = _bottleneck_mode(arr, list(seeds), list(epochs), ident, int(blocks.loc[key[:2]]) - 1,
                                str(names.loc[key[:2]]), by_run, options.alpha)  # fmt: skip
        rows += r
        diffs += d
    for key, group in dep[dep["n_blocks"] == 0].groupby(["dataset", "arch", "setting"]):
        rows.append(result_row(claim="3", part="compression", **dict(zip(["dataset", "arch", "setting"], key)),
                               _preset="inconclusive", reason="no block below the classifier"))  # fmt: skip
    return decide(rows, options.alpha), differences_frame(diffs)


def batch_se(by_run: pd.DataFrame, ident: dict, seeds: list, peak_epoch, last_epoch) -> float:
    """Batch standard error of the fall between two epochs, each seed's paired over its evaluation
    batches (`common.fall_standard_error`), averaged over seeds: batch noise shared by all seeds is
    not in the seed spread, so it is not divided down by the number of seeds. NaN if any is."""
    run = (ident["dataset"], ident["arch"], ident["setting"], ident["mode"])
    ses = []
    for s in seeds:
        peak, last = by_run.loc[(*run, s, peak_epoch)], by_run.loc[(*run, s, last_epoch)]
        ses.append(fall_standard_error(peak, last, str(peak["_quantity"])))
    return float(np.mean(ses))


def _bottleneck_mode(arr, seeds, epochs, ident, last_block, name, by_run, alpha):
    texts = {"fitting": f"excess nHSIC(Y;Z_L) last minus first snapshot, Z_L = block {last_block} ({name})",
             "compression": f"excess nHSIC(X;Z_L), interior peak minus last epoch, Z_L = block {last_block} ({name})"}
    base = {part: result_row(**ident, part=part, statistic=texts[part]) for part in texts}
    if not is_e2e(ident["mode"]):
        for row in base.values():
            row.update(_preset=DESCRIPTIVE, reason="reported for comparison: claim 3 is about E2E")
    shared = ~(np.isnan(arr["dep_xz"]).any(0) | np.isnan(arr["dep_yz"]).any(0))
    epochs = [e for e, ok in zip(epochs, shared) if ok]
    x, y = arr["dep_xz"][:, shared], arr["dep_yz"][:, shared]
    n = len(seeds)
    for row in base.values():
        row["n_seeds"] = n
    if len(epochs) < 3 or n < 2:
        if len(epochs) < 3:  # the statistic cannot be formed, whatever the seeds
            preset, why = "inconclusive", f"needs >= 3 snapshot epochs shared by all seeds, has {len(epochs)}"
        else:
            preset, why = "underpowered", f"{n} seed; the rule needs >= {MIN_SEEDS} (no verdict below {MIN_SEEDS})"
        for row in base.values():
            if row["_preset"]:  # descriptive rows stay descriptive
                row["reason"] += f"; {why}"
            else:
                row.update(_preset=preset, reason=why)
        return list(base.values()), []
    rise = y[:, -1] - y[:, 0]
    fitting = location_test(rise[None, :], alpha)
    fill([(base["fitting"], rise)], fitting, "greater", ci_method="inverted " + fitting["test"].split(" (")[0])
    res = peak_fall_test(x, alpha)
    se = batch_se(by_run, ident, seeds, epochs[1 + res["best"]], epochs[-1])
    falls = res["falls"]
    sd = float(np.std(falls, ddof=1))
    pooled_peak = int(np.argmax(x.mean(0)))
    z = stats.norm.ppf(1 - alpha)
    comp = base["compression"]
    comp.update(mean=res["fall"], effect_size=res["fall"] / sd if sd > 0 else math.nan, p_value=res["p_greater"],
                p_reverse=res["p_less"], ci_low=res["ci_low"], ci_high=res["ci_high"], test=res["test"],
                ci_method=f"simultaneous t bounds over {res['m']} interior epochs",
                _bounds=partial(peak_fall_bounds, x),
                peak_epoch=float(epochs[pooled_peak]), _min_p=res["min_p"], _kind="t",
                _note=(f"peak at epoch {epochs[pooled_peak]} (snapshots {epochs[0]}..{epochs[-1]}), strongest evidence "
                       f"at epoch {epochs[1 + res['best']]}; mean = cross-fitted fall; batch standard error of the "
                       f"fall {fmt_number(se)} (paired over evaluation batches)"))  # fmt: skip
    if math.isnan(se):
        comp["_hold_gate"] = ("the batch standard error of the fall is unknown (the table lacks the per-batch "
                              "excess excess_xz_batches and excess_xz_std): rerun the dependence stage")  # fmt: skip
    elif res["fall"] <= z * se:
        comp["_hold_gate"] = (f"the cross-fitted fall {fmt_number(res['fall'])} does not exceed {z:.3g} x its batch "
                              f"standard error {fmt_number(se)}")  # fmt: skip
    if not 0 < pooled_peak < len(epochs) - 1:
        where = "the first" if pooled_peak == 0 else "the last"
        comp["_hold_gate"] = f"the peak of nHSIC(X;Z_L) is at {where} snapshot (epoch {epochs[pooled_peak]})"
    at_peak = falls + x[:, -1]
    diffs = []
    for part, (value, reference) in {"fitting": (y[:, -1], y[:, 0]), "compression": (at_peak, x[:, -1])}.items():
        for s, v, r in zip(seeds, value, reference):
            diffs.append(dict(claim="3", part=part, dataset=ident["dataset"], arch=ident["arch"],
                              setting=ident["setting"], mode=ident["mode"], reference_mode="", seed=s, value=v,
                              reference=r, difference=v - r))  # fmt: skip
    return list(base.values()), diffs

