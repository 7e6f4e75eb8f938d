"""The decision rule of the claims: tests, intervals, Holm, seeds needed, verdicts.

Why one module: a verdict is only worth reading if its error rates are known, and they are known
for this rule alone (calibrated in tests/unit/test_statistics.py; write-up: docs/claims.md). Each
claim (`infoplane.paper.claims`) computes its statistic and hands its rows to `decide`.

* **Unit of evidence: the seed.** Mode comparisons use the paired differences d_s = E2E_s -
  other_s over the seeds both modes have (same initialization and data order).
* **One-sided tests at alpha = 0.05 in each direction.** "holds" tests H0: Delta <= 0 against
  Delta > 0 in the claimed direction; "fails" tests the opposite direction, also at 0.05.
* **Test.** <= 12 paired seeds: the exact sign-flip test of the mean difference; above: the
  paired t-test. A claim may bring its own test (claims 3, 5) with one-sided p-values and
  `Bounds` (level -> one-sided bounds) from inverting that same test.
* **Multiplicity: Holm** over the family = the comparisons of one claim part within one
  estimator setting, run separately on the claimed-direction p-values ("holds") and on the
  reverse ones ("fails").
* **Intervals compatible with Holm** (Strassburger & Bretz 2008; Guilbaud 2008): with R the
  comparisons Holm rejects among k, a rejected comparison gets the bound 0 (the effect lies
  strictly beyond 0) unless all k are rejected, in which case each gets
  max(0, its bound at alpha / k); a comparison not rejected gets its bound at alpha / (k - |R|).
  Boundary, fixed once: a claimed-side bound of exactly 0 means "strictly beyond 0" and occurs
  only for a rejected comparison; a comparison without that verdict whose bound would be 0 or
  beyond reports the first number on the near side of 0 (`BELOW_ZERO` / `ABOVE_ZERO`, printed
  -0 / +0). So "holds" iff the claimed-side bound is on the claimed side of 0 (>= 0 for a
  claimed increase), and "fails" iff the other bound is on the other side. A gate that blocks a
  "holds" (claim 3) withdraws the rejection, so the interval then reaches 0 as well.
* **Verdicts.** holds / fails as above; underpowered: < 5 paired seeds, or the test's smallest
  p exceeds alpha / k (`seeds_needed`); inconclusive: neither, or no statistic; descriptive:
  never tested (intervals the test's own, uncorrected).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache, partial

import numpy as np
import pandas as pd
from scipy import stats

from .common import is_e2e, mode_order, require, unique

#: One-sided level of every test ("holds" and "fails" each).
ALPHA = 0.05
#: Fewest paired seeds for any verdict (the rule's floor; see `seeds_needed`).
MIN_SEEDS = 5
#: Up to this many seeds the exact sign-flip test is used, above it the paired t-test.
MAX_EXACT_SEEDS = 12
#: The claimed-side bound of a comparison without that verdict, when it would otherwise be 0 or
#: beyond: the first number on the near side of 0 (the interval includes 0; printed -0 / +0).
BELOW_ZERO = float(np.nextafter(0.0, -1.0))
ABOVE_ZERO = -BELOW_ZERO
#: Setting label of claims that do not depend on the dependence estimator (claim 4).
NO_SETTING = "n/a"

VERDICTS = ("holds", "fails", "inconclusive", "underpowered")
DESCRIPTIVE = "descriptive"
FAMILY = ["claim", "part", "setting"]
COMPARISON = ["claim", "dataset", "arch", "setting", "mode", "reference_mode"]

#: One row per comparison. mean: mean paired difference (mode - reference_mode; claim 3: mean
#: over E2E seeds of the one-sample statistic; claim 5: Fisher-combined Spearman rho);
#: ci_low/ci_high: one-sided bounds compatible with the Holm decision (module docstring; ci_method
#: says from which test); effect_size: mean / sd of the
#: differences (Cohen's d_z; claim 5: rho); p_value / p_reverse: one-sided p in the claimed /
#: opposite direction; p_corrected / p_reverse_corrected: Holm over the family (family_size
#: comparisons); seeds_needed: fewest paired seeds with which the test could reach a verdict at
#: the corrected level; peak_epoch: claim 3's epoch of the nHSIC(X;Z_L) peak (else NaN).
RESULT_COLUMNS = [
    "claim", "part", "primary", "dataset", "arch", "setting", "mode", "reference_mode", "statistic",
    "direction", "n_seeds", "mean", "ci_low", "ci_high", "ci_method", "effect_size", "p_value",
    "p_reverse", "p_corrected", "p_reverse_corrected", "family_size", "test", "verdict", "reason",
    "seeds_needed", "peak_epoch",
]  # fmt: skip
#: One row per comparison x seed; difference = value - reference (claims 1, 2, 4: the two modes'
#: statistics; claim 3: the series at the peak / at the end (compression), at the end / at the
#: first snapshot (fitting); claim 5: value = middle-layer compression, reference = the gap or
#: the test accuracy, difference NaN).
DIFFERENCE_COLUMNS = [
    "claim", "part", "dataset", "arch", "setting", "mode", "reference_mode", "seed", "value",
    "reference", "difference",
]  # fmt: skip

PER_SEED_COLUMNS = ["dataset", "arch", "setting", "mode", "seed", "value"]
#: Marginal bounds of one comparison: level -> (low, high), one-sided (1 - level) bounds by
#: inverting the comparison's own test; `decide` calls it at the levels Holm needs.
Bounds = Callable[[float], tuple[float, float]]

# ------------------------------ the tests: exact sign-flip, t, Holm
@lru_cache(maxsize=None)
def _subsets(n: int) -> np.ndarray:
    """(2^n - 1, n) 0/1 matrix of every nonempty subset of n seeds (the seeds whose sign flips)."""
    codes = np.arange(1, 2**n, dtype=np.int64)
    out = ((codes[:, None] >> np.arange(n)) & 1).astype(np.float64)
    out.setflags(write=False)
    return out


def _as_batch(differences, name: str = "differences") -> np.ndarray:
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim == 0:
        raise ValueError(f"{name} must be an array of per-seed values (..., n_seeds), got a scalar")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"{name} contain NaN or inf; drop seeds without a value before testing")
    return d


def _exact_limit(n: int) -> None:
    if n > 16:
        raise ValueError(f"the exact sign-flip test enumerates 2^n patterns; n = {n} seeds is too many "
                         f"(use the t-test, as `location_test` does above {MAX_EXACT_SEEDS} seeds)")


def sign_flip_pvalues(differences) -> tuple[np.ndarray, np.ndarray]:
    """Exact one-sided p-values (p_greater, p_less) of the sign-flip test of mean = 0.

    differences: (..., n) -> two arrays of shape (...). p_greater = share of the 2^n sign
    patterns whose sum is >= the observed sum (flipping subset A lowers the sum by 2 sum_A d,
    so that is 1 + #{A nonempty: sum_A d <= 0} over 2^n); ties count as extreme.
    """
    d = _as_batch(differences)
    n = d.shape[-1]
    if n == 0:
        nan = np.full(d.shape[:-1], np.nan)
        return nan, nan.copy()
    _exact_limit(n)
    sums = d @ _subsets(n).T  # (..., 2^n - 1) subset sums
    tol = 1e-12 * np.abs(d).sum(-1, keepdims=True)
    total = 2.0**n
    p_greater = (1 + (sums <= tol).sum(-1)) / total
    p_less = (1 + (sums >= -tol).sum(-1)) / total
    return p_greater, p_less


def sign_flip_bounds(differences, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """One-sided (1 - alpha) confidence bounds (low, high) of the centre, by inverting the test.

    The test of centre delta rejects 'delta' against 'greater' iff 1 + #{A: mean_A d <= delta}
    <= alpha 2^n, so the lower bound is the (K+1)-th smallest of the 2^n - 1 subset means with
    K = floor(alpha 2^n) - 1 (the upper bound mirrors it). K < 0 (n < log2(1/alpha)): no value
    can be excluded, the bounds are -inf / +inf.
    """
    d = _as_batch(differences)
    n = d.shape[-1]
    shape = d.shape[:-1]
    if n == 0:
        return np.full(shape, np.nan), np.full(shape, np.nan)
    _exact_limit(n)
    k = math.floor(alpha * 2**n * (1 + 1e-12)) - 1
    if k < 0:
        return np.full(shape, -np.inf), np.full(shape, np.inf)
    subsets = _subsets(n)
    means = np.sort((d @ subsets.T) / subsets.sum(1), axis=-1)
    return means[..., k], means[..., subsets.shape[0] - 1 - k]


def t_pvalues(differences) -> tuple[np.ndarray, np.ndarray]:
    """One-sided p-values (p_greater, p_less) of the one-sample t-test of mean = 0, shape (...).

    Zero spread: p = 0 in the direction of a nonzero mean (1 against it); all zero: p = 1 both.
    """
    d = _as_batch(differences)
    n = d.shape[-1]
    if n < 2:
        nan = np.full(d.shape[:-1], np.nan)
        return nan, nan.copy()
    mean, sd = d.mean(-1), d.std(-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / math.sqrt(n))
    t = np.where(sd > 0, t, np.where(mean > 0, np.inf, np.where(mean < 0, -np.inf, np.nan)))
    p_greater = np.where(np.isnan(t), 1.0, stats.t.sf(t, n - 1))
    p_less = np.where(np.isnan(t), 1.0, stats.t.cdf(t, n - 1))
    return p_greater, p_less


def t_bounds(differences, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """One-sided (1 - alpha) bounds mean -/+ t_{1-alpha, n-1} s / sqrt(n), shape (...)."""
    d = _as_batch(differences)
    n = d.shape[-1]
    if n < 2:
        nan = np.full(d.shape[:-1], np.nan)
        return nan, nan.copy()
    half = stats.t.ppf(1 - alpha, n - 1) * d.std(-1, ddof=1) / math.sqrt(n)
    mean = d.mean(-1)
    return mean - half, mean + half


def location_test(differences, alpha: float = ALPHA) -> dict[str, np.ndarray | str | int]:
    """The rule's test of 'centre of the per-seed values = 0' on a batch (..., n) of experiments.

    Returns n, mean, sd, effect_size (mean / sd), p_greater, p_less, ci_low, ci_high (one-sided
    1 - alpha bounds by inversion), test (its name) and min_p (the smallest attainable p).
    """
    d = _as_batch(differences)
    n = d.shape[-1]
    if n <= MAX_EXACT_SEEDS:
        p_greater, p_less = sign_flip_pvalues(d)
        low, high = sign_flip_bounds(d, alpha)
        test, min_p = f"exact sign-flip ({seeds_text(n)}, {2**n} patterns)", 2.0**-n
    else:
        p_greater, p_less = t_pvalues(d)
        low, high = t_bounds(d, alpha)
        test, min_p = f"paired t-test ({n} seeds, {n - 1} df)", 0.0
    mean = d.mean(-1) if n else np.full(d.shape[:-1], np.nan)
    sd = d.std(-1, ddof=1) if n > 1 else np.full(d.shape[:-1], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = np.where(sd > 0, mean / sd, np.where(mean == 0, 0.0, np.sign(mean) * np.inf))
    if n < 2:
        effect = np.full(d.shape[:-1], np.nan)
    return {"n": n, "mean": mean, "sd": sd, "effect_size": effect, "p_greater": p_greater, "p_less": p_less,
            "ci_low": low, "ci_high": high, "test": test, "min_p": min_p}  # fmt: skip


def location_bounds(differences, level: float = ALPHA) -> tuple[float, float]:
    """One-sided (1 - level) bounds of one comparison's centre by inverting `location_test`'s test
    (sign-flip up to MAX_EXACT_SEEDS seeds, t above): the `Bounds` of a paired comparison."""
    d = _as_batch(differences)
    low, high = sign_flip_bounds(d, level) if d.shape[-1] <= MAX_EXACT_SEEDS else t_bounds(d, level)
    return float(low), float(high)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (same order); NaN entries are not part of the family and stay NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    return _holm_by(p, np.zeros(p.shape, np.int64), np.isfinite(p))


def _holm_by(p: np.ndarray, family: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Holm within each family code, over the rows where `member` is true (others NaN); vectorized:
    sort by (family, p), scale the j-th smallest of k by (k - j), running max within the family."""
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(member)
    if idx.size == 0:
        return out
    fam, pv = np.asarray(family)[idx], p[idx]
    order = np.lexsort((pv, fam))
    fam_sorted = fam[order]
    starts = np.r_[0, np.flatnonzero(np.diff(fam_sorted)) + 1]
    sizes = np.diff(np.r_[starts, fam_sorted.size])
    group = np.repeat(np.arange(starts.size), sizes)
    rank = np.arange(fam_sorted.size) - starts[group]
    scaled = (sizes[group] - rank) * pv[order]
    running = pd.Series(scaled).groupby(group).cummax().to_numpy()
    out[idx[order]] = np.minimum(1.0, running)
    return out


def seeds_needed(family_size: int, alpha: float = ALPHA, kind: str = "sign_flip") -> int:
    """Fewest seeds with which the test can pass the first Holm level alpha / family_size.

    kind "sign_flip": smallest attainable one-sided p is 1/2^n up to MAX_EXACT_SEEDS seeds; above
    that the t-test can reach any level, so the answer is at most MAX_EXACT_SEEDS + 1. kind
    "permutation" (claim 5, seeds per mode): the smallest p of one mode's rank correlation is 1/n!.
    kind "t" (claim 3's compression): any level is reachable. Never below MIN_SEEDS.
    """
    if family_size < 1:
        raise ValueError(f"family_size must be >= 1, got {family_size}")
    level = alpha / family_size
    if kind == "sign_flip":
        n = max(MIN_SEEDS, math.ceil(math.log2(1 / level) - 1e-12))
        return n if n <= MAX_EXACT_SEEDS else MAX_EXACT_SEEDS + 1
    if kind == "t":
        return MIN_SEEDS
    if kind == "permutation":
        n = MIN_SEEDS
        while 1 / math.factorial(n) > level:
            n += 1
        return n
    raise ValueError(f"unknown test kind {kind!r}; expected 'sign_flip', 't' or 'permutation'")


# ------------------------------ result rows and the decision
def result_row(**fields) -> dict:
    row = {c: math.nan for c in RESULT_COLUMNS}
    row.update(part="", primary=True, setting=NO_SETTING, mode="", reference_mode="", statistic="",
               direction="greater", n_seeds=0, ci_method="", test="", verdict="", reason="", seeds_needed=0,
               family_size=0)  # fmt: skip
    # internal: preset verdict (not tested), smallest attainable p, seeds_needed kind, gate on "holds",
    # the marginal bounds (`Bounds`) of the row's own test
    row.update(_preset="", _min_p=math.nan, _kind="sign_flip", _hold_gate="", _note="", _bounds=None)
    row.update(fields)
    return row


def seeds_text(n: int) -> str:
    """'1 seed', '6 seeds'."""
    return f"{n} seed{'s' * (n != 1)}"


def fmt_number(x: float, digits: int = 3) -> str:
    """A number as short text (`digits` significant digits; nan and -inf / inf spelled out;
    BELOW_ZERO / ABOVE_ZERO as -0 / +0)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x in (BELOW_ZERO, ABOVE_ZERO):
        return "-0" if x < 0 else "+0"
    return f"{x:.{digits}g}"


def decide(rows: pd.DataFrame | Sequence[dict], alpha: float = ALPHA) -> pd.DataFrame:
    """Holm per family (claim, part, setting), intervals compatible with it, then the verdict and
    its reason for every row."""
    table = (rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))).copy()
    if table.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    p = table["p_value"].to_numpy(np.float64)
    testable = ((table["_preset"] == "") & (table["n_seeds"] >= MIN_SEEDS)).to_numpy() & np.isfinite(p)
    family = table.groupby(FAMILY, sort=False).ngroup().to_numpy()
    table["p_corrected"] = _holm_by(p, family, testable)
    table["p_reverse_corrected"] = _holm_by(table["p_reverse"].to_numpy(np.float64), family, testable)
    size = pd.Series(testable.astype(np.int64)).groupby(family).transform("sum").to_numpy()
    table["family_size"] = np.where(testable, size, 0)
    _compatible_bounds(table, testable, family, alpha)
    # rows outside the family for lack of seeds would join it once they had enough
    candidate = (table["_preset"] == "").to_numpy()
    potential = pd.Series(candidate.astype(np.int64)).groupby(family).transform("sum").to_numpy()
    k = np.where(testable, size, np.maximum(potential, 1))
    verdicts, reasons, needed = [], [], []
    for r, ok, k_r in zip(table.to_dict("records"), testable, k):
        need = seeds_needed(int(k_r), alpha, r["_kind"])
        if r["_preset"]:
            verdict, reason = r["_preset"], r["reason"]
            need = 0 if verdict == DESCRIPTIVE else need
        else:
            verdict, reason = _verdict(r, bool(ok), int(k_r), need, alpha)
            reason += f"; {r['_note']}" if r["_note"] else ""
        verdicts.append(verdict)
        reasons.append(reason)
        needed.append(need)
    table["verdict"], table["reason"], table["seeds_needed"] = verdicts, reasons, needed
    for col in ("n_seeds", "family_size", "seeds_needed"):
        table[col] = table[col].astype("int64")
    table["primary"] = table["primary"].astype(bool)
    return table[RESULT_COLUMNS].reset_index(drop=True)


def _compatible_bounds(table: pd.DataFrame, testable: np.ndarray, family: np.ndarray, alpha: float) -> None:
    """Replace ci_low / ci_high of every non-descriptive row by bounds compatible with the Holm
    decisions (module docstring): per family, the claimed-side bound from the "holds" Holm, the
    other from the "fails" Holm. Rows outside any family are never rejected: their marginal bounds
    are kept, moved off 0 towards the near side where they reach it."""
    low, high = table["ci_low"].to_numpy(np.float64).copy(), table["ci_high"].to_numpy(np.float64).copy()
    greater = (table["direction"] == "greater").to_numpy()
    blocked = (table["_hold_gate"] != "").to_numpy()
    bounds = table["_bounds"].tolist() if "_bounds" in table else [None] * len(table)
    corrected = {True: table["p_corrected"].to_numpy(np.float64),
                 False: table["p_reverse_corrected"].to_numpy(np.float64)}  # fmt: skip

    def marginal(i: int, level: float) -> tuple[float, float]:
        return bounds[i](level) if callable(bounds[i]) else (math.nan, math.nan)

    for fam in np.unique(family[testable]):
        members = np.flatnonzero(testable & (family == fam))
        k = members.size
        for claimed in (True, False):  # the "holds" family, then the "fails" family
            rejected = corrected[claimed][members] <= alpha
            if claimed:
                rejected &= ~blocked[members]  # a gate withdraws the rejection
            n_rejected = int(rejected.sum())
            for i, rej in zip(members, rejected):
                use_low = bool(greater[i]) == claimed  # the bound on this family's side of 0
                if rej and n_rejected == k:
                    b = marginal(i, alpha / k)[0 if use_low else 1]
                    b = 0.0 if math.isnan(b) else (max(0.0, b) if use_low else min(0.0, b))
                elif rej:
                    b = 0.0
                else:
                    b = marginal(i, alpha / (k - n_rejected))[0 if use_low else 1]
                    b = min(b, BELOW_ZERO) if use_low else max(b, ABOVE_ZERO)
                if use_low:
                    low[i] = b
                else:
                    high[i] = b
    outside = ~testable & (table["_preset"] != DESCRIPTIVE).to_numpy()
    low[outside] = np.where(np.isnan(low[outside]), np.nan, np.minimum(low[outside], BELOW_ZERO))
    high[outside] = np.where(np.isnan(high[outside]), np.nan, np.maximum(high[outside], ABOVE_ZERO))
    table["ci_low"], table["ci_high"] = low, high


def _verdict(r: dict, testable: bool, k: int, need: int, alpha: float) -> tuple[str, str]:
    n, greater = int(r["n_seeds"]), r["direction"] == "greater"
    unit = "seeds per mode" if r["_kind"] == "permutation" else "paired seeds" if r["reference_mode"] else "seeds"
    have = f"{n} {unit.replace('seeds', 'seed') if n == 1 else unit}"
    if not testable:
        if n < MIN_SEEDS:
            return "underpowered", f"{have}; the rule needs >= {need} (no verdict below {MIN_SEEDS})"
        return "inconclusive", "no p-value could be formed"
    p, pr, pc, prc = (float(r[c]) for c in ("p_value", "p_reverse", "p_corrected", "p_reverse_corrected"))
    low, high = float(r["ci_low"]), float(r["ci_high"])
    claimed, opposite = ("> 0", "< 0") if greater else ("< 0", "> 0")
    level = f"alpha = {alpha:g}, Holm over {k} comparison{'s' * (k != 1)}"
    bounds = f"bounds [{fmt_number(low)}, {fmt_number(high)}] compatible with Holm ({r['ci_method']})"
    if pc <= alpha and not r["_hold_gate"]:
        return "holds", (f"mean {fmt_number(r['mean'])} {claimed}: p = {fmt_number(p)}, corrected {fmt_number(pc)} "
                         f"<= {level}; {bounds}")  # fmt: skip
    if prc <= alpha:
        return "fails", (f"mean {fmt_number(r['mean'])} {opposite} (against the claim): p = {fmt_number(pr)}, "
                         f"corrected {fmt_number(prc)} <= {level}; {bounds}")  # fmt: skip
    if pc <= alpha:
        return "inconclusive", f"significant (corrected p = {fmt_number(pc)}) but {r['_hold_gate']}; {bounds}"
    min_p = float(r["_min_p"])
    if min_p > alpha / k:
        return "underpowered", (f"{have}: the smallest attainable p-value {fmt_number(min_p)} exceeds the first "
                                f"Holm level {fmt_number(alpha / k)} ({level}); needs >= {need} {unit}")  # fmt: skip
    return "inconclusive", (f"not significant either way: corrected p = {fmt_number(pc)} (claimed), "
                            f"{fmt_number(prc)} (reverse), {level}; {bounds}; {have}")  # fmt: skip


# ------------------------------ paired comparisons of modes (claims 1, 2, 4)
def paired_comparison(per_seed: pd.DataFrame, *, claim: str, part: str, statistic: str,
                      direction: str = "greater", primary: bool = True,
                      alpha: float = ALPHA) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """E2E mode(s) against every other mode, paired by seed, decided by the rule.

    per_seed: columns dataset, arch, setting, mode, seed, value (one row each; NaN values are
    dropped) and optionally `statistic` (a per-group description). Returns (results,
    differences) as in RESULT_COLUMNS / DIFFERENCE_COLUMNS. All comparisons with the same number
    of paired seeds are tested as one batch.
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    require(per_seed, PER_SEED_COLUMNS, "per-seed")
    unique(per_seed, ["dataset", "arch", "setting", "mode", "seed"], "per-seed")
    group_keys = ["dataset", "arch", "setting"]
    if per_seed.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS), differences_frame([])
    data = per_seed.assign(mode=per_seed["mode"].astype(str), value=per_seed["value"].astype(float))
    if "statistic" not in data:
        data["statistic"] = statistic
    texts = data.groupby(group_keys, sort=True)["statistic"].first().rename("statistic")
    present = data.dropna(subset=["value"])
    e2e = present["mode"].map(is_e2e).to_numpy(bool)
    a, b = present[e2e], present[~e2e]
    ref_modes = b[[*group_keys, "mode"]].drop_duplicates().rename(columns={"mode": "reference_mode"})
    combos = a[[*group_keys, "mode"]].drop_duplicates().merge(ref_modes, on=group_keys)
    combos = combos.merge(texts.reset_index(), on=group_keys).sort_values([*group_keys, "mode", "reference_mode"])
    pairs = a.merge(b.rename(columns={"mode": "reference_mode", "value": "reference"})[
        [*group_keys, "reference_mode", "seed", "reference"]], on=[*group_keys, "seed"])
    comp_keys = [*group_keys, "mode", "reference_mode"]
    pairs = pairs.sort_values([*comp_keys, "seed"]).reset_index(drop=True)
    pairs["difference"] = pairs["value"] - pairs["reference"]
    n_shared = pairs.groupby(comp_keys).size().rename("n_seeds")
    rows = combos.merge(n_shared.reset_index(), on=comp_keys, how="left").fillna({"n_seeds": 0})
    rows = rows_frame(rows, claim=claim, part=part, primary=primary, direction=direction)
    rows["n_seeds"] = rows["n_seeds"].astype("int64")
    # unpaired seeds, named in the reason
    count = present.groupby([*group_keys, "mode"]).size()
    n_a = count.reindex(pd.MultiIndex.from_frame(rows[[*group_keys, "mode"]])).to_numpy()
    n_b = count.reindex(pd.MultiIndex.from_frame(rows[[*group_keys, "reference_mode"]])).to_numpy()
    for i in np.flatnonzero(n_a + n_b > 2 * rows["n_seeds"].to_numpy()):
        r = rows.iloc[i]
        in_group = (present[group_keys] == r[group_keys]).all(axis=1)
        sa = set(present.loc[in_group & (present["mode"] == r["mode"]), "seed"])
        sb = set(present.loc[in_group & (present["mode"] == r["reference_mode"]), "seed"])
        rows.loc[rows.index[i], "_note"] = f"unpaired seeds dropped: {sorted(sa ^ sb)}"
    rows.loc[rows["n_seeds"] == 0, ["_preset", "reason"]] = ["underpowered", "no seed has both modes"]
    # the tests, one batch per number of paired seeds
    comp_id = pd.MultiIndex.from_frame(rows[comp_keys])
    pair_id = comp_id.get_indexer(pd.MultiIndex.from_frame(pairs[comp_keys]))
    n_per_row = rows["n_seeds"].to_numpy(np.int64)
    d = pairs["difference"].to_numpy(np.float64)
    for n in sorted(set(n_per_row[n_per_row > 0])):
        mask = np.isin(pair_id, np.flatnonzero(n_per_row == n))
        block = d[mask].reshape(-1, n)  # pairs are sorted by comparison, then seed
        which = pair_id[mask].reshape(-1, n)[:, 0]
        result = location_test(block, alpha)
        _assign(rows, which, result, direction, ci_method="inverted " + result["test"].split(" (")[0])
        rows.loc[rows.index[which], "_bounds"] = pd.Series([partial(location_bounds, b) for b in block],
                                                           index=rows.index[which], dtype=object)
    # groups without an e2e mode or without another mode
    modes = data.groupby(group_keys, sort=True)["mode"].agg(lambda m: ", ".join(mode_order(m)))
    covered = set(map(tuple, combos[group_keys].itertuples(index=False, name=None)))
    lacking = modes[[key not in covered for key in modes.index]]
    extra = pd.DataFrame([dict(zip(group_keys, key), statistic=texts.loc[key], n_seeds=0, _preset="inconclusive",
                               reason=f"needs an e2e mode and another mode; present: {present_modes}")
                          for key, present_modes in lacking.items()])  # fmt: skip
    if len(extra):
        rows = pd.concat([rows, rows_frame(extra, claim=claim, part=part, primary=primary, direction=direction)],
                         ignore_index=True)  # fmt: skip
    diffs = pairs.assign(claim=claim, part=part)[DIFFERENCE_COLUMNS]
    return decide(rows, alpha), differences_frame(diffs)


def rows_frame(frame: pd.DataFrame, **fields) -> pd.DataFrame:
    """Result rows from a frame of identity columns: the defaults of `result_row` under `fields` and `frame`."""
    defaults = result_row(**fields)
    out = frame.reset_index(drop=True).copy()
    for col, value in defaults.items():
        if col not in out:
            out[col] = value
    return out


def _assign(rows: pd.DataFrame, which: np.ndarray, result: dict, direction: str, ci_method: str) -> None:
    """Write a batched `location_test` result into rows `which` (positions, in batch order)."""
    greater = direction == "greater"
    index = rows.index[which]
    for column, key in (("mean", "mean"), ("effect_size", "effect_size"), ("ci_low", "ci_low"), ("ci_high", "ci_high"),
                        ("p_value", "p_greater" if greater else "p_less"),
                        ("p_reverse", "p_less" if greater else "p_greater"), ("test", "test")):  # fmt: skip
        rows.loc[index, column] = result[key]
    rows.loc[index, "ci_method"] = ci_method
    rows.loc[index, "_min_p"] = float(result["min_p"])


def fill(items, result, direction, ci_method) -> None:
    """Write a batched `location_test` result into row dicts (items: (row, differences) pairs; claims
    that build rows one by one), with each row's `Bounds`."""
    greater = direction == "greater"
    for j, (row, d) in enumerate(items):
        row["_bounds"] = partial(location_bounds, np.asarray(d, np.float64))
        row.update(mean=float(result["mean"][j]), effect_size=float(result["effect_size"][j]),
                   ci_low=float(result["ci_low"][j]), ci_high=float(result["ci_high"][j]), test=result["test"],
                   p_value=float(result["p_greater" if greater else "p_less"][j]),
                   p_reverse=float(result["p_less" if greater else "p_greater"][j]),
                   _min_p=float(result["min_p"]), ci_method=ci_method)  # fmt: skip


def differences_frame(diffs: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(diffs, columns=DIFFERENCE_COLUMNS)
    for col in ("value", "reference", "difference"):
        frame[col] = frame[col].astype("float64")
    return frame


def concat_frames(frames, columns) -> pd.DataFrame:
    """The non-empty frames one below the other (an empty frame with `columns` when none)."""
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

# ------------------------------ robustness, summaries
def combine_verdicts(verdicts: Sequence[str]) -> str:
    """Verdicts of several comparisons (or of the primary parts of one) -> one verdict."""
    v = [x for x in verdicts if x != DESCRIPTIVE]
    if not v:
        return "inconclusive"
    if "fails" in v:
        return "mixed" if "holds" in v else "fails"
    if all(x == "holds" for x in v):
        return "holds"
    if "underpowered" in v and "inconclusive" not in v:
        return "underpowered"
    return "inconclusive"


def comparison_verdicts(results: pd.DataFrame) -> pd.DataFrame:
    """One verdict per comparison from its primary parts (claim 3: fitting and compression must
    both hold; any failing part fails it). Columns: COMPARISON + verdict, n_seeds."""
    require(results, [*COMPARISON, "part", "primary", "verdict", "n_seeds"], "results")
    prim = results[results["primary"].astype(bool) & (results["verdict"] != DESCRIPTIVE)]
    rows = []
    for key, block in prim.groupby(COMPARISON, sort=False):
        verdict = combine_verdicts(block["verdict"])
        if verdict == "mixed":  # within one comparison a failing part contradicts the claim
            verdict = "fails"
        rows.append({**dict(zip(COMPARISON, key)), "verdict": verdict, "n_seeds": int(block["n_seeds"].min())})
    return pd.DataFrame(rows, columns=[*COMPARISON, "verdict", "n_seeds"])


def robustness(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(matrix, lines): matrix = claim x setting of verdicts (holds: every comparison of the claim
    under that setting holds; fails: some fail, none hold; mixed: some hold and some fail;
    underpowered: none decided and some lack seeds; else inconclusive); lines = one row per claim:
    claim, n_settings, holds_under, fails_under, holds_only_under_one (holds under exactly one of
    several settings: not robust), line (e.g. "holds under 2 of 3 settings; fails under 0")."""
    per = comparison_verdicts(results)
    cells = per.groupby(["claim", "setting"], sort=True)["verdict"].agg(combine_verdicts)
    cells = cells.rename("verdict").reset_index()
    matrix = cells.pivot(index="claim", columns="setting", values="verdict")
    lines = []
    for claim, block in cells.groupby("claim", sort=True):
        n, k, j = len(block), int((block["verdict"] == "holds").sum()), int((block["verdict"] == "fails").sum())
        if set(block["setting"]) == {NO_SETTING}:
            line = f"{block['verdict'].iloc[0]} (does not depend on the estimator setting)"
        else:
            line = f"holds under {k} of {n} setting{'s' * (n != 1)}; fails under {j}"
            if n == 1:
                line += " (only one setting measured)"
            elif k == 1:
                line += " (holds only under one setting)"
        lines.append({"claim": claim, "n_settings": n, "holds_under": k, "fails_under": j,
                      "holds_only_under_one": k == 1 and n > 1, "line": line})  # fmt: skip
    return matrix, pd.DataFrame(lines, columns=["claim", "n_settings", "holds_under", "fails_under",
                                                "holds_only_under_one", "line"])  # fmt: skip

