"""The paper's claims as calibrated statistics: one decision rule, one statistic per claim.

Why: a verdict is only worth reading if its error rates are known. Every claim here is a
statistic fixed before any result was seen, computed per seed, and judged by one rule whose
false-"holds" rate under no effect is at most 5 % (tested by simulation in
tests/unit/test_statistics.py; the full write-up with measured rates is docs/claims.md).

Decision rule (decided before looking at any real results)
---------------------------------------------------------
* **Unit of evidence: the seed.** Runs of two modes with the same seed share initialization and
  data order, so mode comparisons use the paired differences d_s = E2E_s - other_s over the
  seeds both modes have (unpaired seeds are dropped and named in the reason).
* **One-sided tests at alpha = 0.05 in each direction.** Claims are directional. "holds" tests
  H0: Delta <= 0 against Delta > 0 in the claimed direction; "fails" tests the opposite
  direction, also at 0.05. The two cannot both reject (their p-values sum to >= 1).
* **Test.** <= 12 paired seeds: the exact sign-flip permutation test of the mean difference
  (all 2^n sign patterns; exact for differences symmetric about their centre, which is what
  exchangeable modes give under no effect). It cannot go below p = 1/2^n one-sided (2/2^n
  two-sided, which is why two-sided tests at 0.05 would need 6 seeds even without
  correction). > 12 seeds: the paired t-test (one-sided p from Student's t with n - 1 df).
* **Interval, consistent with the test.** ci_low and ci_high are one-sided 95 % confidence
  bounds obtained by *inverting the same test* (for the sign-flip test the bounds are order
  statistics of the 2^n - 1 subset means of the differences; for the t-test
  mean -/+ t_{0.95,n-1} s/sqrt(n)). So ci_low > 0 exactly when the uncorrected one-sided
  p <= 0.05; [ci_low, ci_high] is a two-sided 90 % interval. Claim 3's compression uses
  simultaneous bounds matching its Bonferroni test; claim 5 reports a seed bootstrap interval
  (its test is a permutation test). Every verdict also requires the interval on the verdict's
  side of 0, so a verdict never contradicts its interval.
* **Multiplicity: Holm** over the family = the comparisons of one claim part within one
  estimator setting (dataset x arch x compared mode). Estimator settings are alternative
  measurements of the same quantity and are not corrected across; how many settings a claim
  holds under is reported descriptively (`robustness`). Holm runs separately on the
  claimed-direction p-values (for "holds") and on the reverse ones (for "fails"), so each
  verdict's family-wise error rate is <= 0.05.
* **Verdicts.** holds: Holm-corrected p <= 0.05 in the claimed direction (and the interval on
  that side); fails: the same in the opposite direction; underpowered: fewer than 5 paired
  seeds, or so few that the test's smallest attainable p-value exceeds the first Holm level
  alpha/k (k comparisons in the family) -- the message says how many seeds are needed
  (`seeds_needed`: the fewest n with 1/2^n <= alpha/k, at least 5; 13 if that exceeds 12,
  where the t-test takes over); inconclusive: enough seeds, not significant either way, or a
  statistic that cannot be formed; descriptive: rows reported for comparison only (claim 3
  for non-E2E modes, claim 5 per mode), never tested.

Claim statistics: the registry of `infoplane.paper.claims` states each claim and its statistic;
the `claim_*` functions here compute them (claim 3's compression is the one place where the rule's
test is replaced: choosing the peak on the data needs a test that pays for the choice, see
`peak_fall_test`). docs/claims.md says why each matches its claim. Run identity helpers (E2E
modes, mode order, last epochs, whole-network rows, layer groups, compression, generalization
gap) are those of `infoplane.paper.common`: one owner each.

Inputs: the dependence table (one row per run x snapshot epoch x layer x estimator setting)
with at least `dataset, arch, mode, seed, epoch, layer, layer_name, setting, excess_xz,
excess_yz, p_xz, p_yz` (claim 3 also `value_xz_std, n_batches`), where layer is a 0-based int
and the classifier logits are the last layer of each dataset x arch; and the metrics table
with `dataset, arch, mode, seed, epoch, split, layer_name, accuracy` (whole network rows have
layer_name == "classifier"). Dependence is the excess over the permutation null; a value
with permutation p >= 0.05 counts as no dependence (excess 0). Where an estimator has no null by
design (I(X;T) of kde and binning: null, excess and p are NaN although permutations were drawn)
the raw value is used (`used_dependence`, `dependence_basis`); rows measured without any
permutations (`permutations == 0`) have no evidence and give NaN.

Outputs (each `claim_*`, concatenated by `infoplane.paper.claims.evaluate_claims`): `results`, one
row per comparison (RESULT_COLUMNS), and `differences`, one row per comparison x seed
(DIFFERENCE_COLUMNS); `robustness` and `claim_summaries` condense them.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from .common import deep_layers, final_rows, generalization_gap, is_e2e, middle_layers, mode_order
from .common import compression as peak_minus_last
from .common import whole_network

#: One-sided level of every test ("holds" and "fails" each).
ALPHA = 0.05
#: Fewest paired seeds for any verdict (the rule's floor; see `seeds_needed`).
MIN_SEEDS = 5
#: Up to this many seeds the exact sign-flip test is used, above it the paired t-test.
MAX_EXACT_SEEDS = 12
#: A dependence value with permutation p >= NULL_P lies within its null and counts as excess 0.
NULL_P = 0.05
#: Bootstrap replicates and Monte-Carlo permutations (claim 5).
N_BOOTSTRAP = 2000
N_PERMUTATIONS = 4999
#: Setting label of claims that do not depend on the dependence estimator (claim 4).
NO_SETTING = "n/a"

VERDICTS = ("holds", "fails", "inconclusive", "underpowered")
DESCRIPTIVE = "descriptive"
FAMILY = ["claim", "part", "setting"]
COMPARISON = ["claim", "dataset", "arch", "setting", "mode", "reference_mode"]

#: One row per comparison. mean: mean paired difference (mode - reference_mode; claim 3: mean
#: over E2E seeds of the one-sample statistic; claim 5: Fisher-combined Spearman rho);
#: ci_low/ci_high: one-sided 95 % bounds (ci_method says how); effect_size: mean / sd of the
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

DEPENDENCE_COLUMNS = ["dataset", "arch", "mode", "seed", "epoch", "layer", "layer_name", "setting",
                      "excess_xz", "excess_yz", "p_xz", "p_yz"]  # fmt: skip
METRICS_COLUMNS = ["dataset", "arch", "mode", "seed", "epoch", "split", "layer_name", "accuracy"]
PER_SEED_COLUMNS = ["dataset", "arch", "setting", "mode", "seed", "value"]



# ======================================================================================
# the tests: exact sign-flip, t, Holm
# ======================================================================================
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


# ======================================================================================
# result rows and the decision
# ======================================================================================
def _row(**fields) -> dict:
    row = {c: math.nan for c in RESULT_COLUMNS}
    row.update(part="", primary=True, setting=NO_SETTING, mode="", reference_mode="", statistic="",
               direction="greater", n_seeds=0, ci_method="", test="", verdict="", reason="", seeds_needed=0,
               family_size=0)  # fmt: skip
    # internal: preset verdict (not tested), smallest attainable p, seeds_needed kind, gate on "holds"
    row.update(_preset="", _min_p=math.nan, _kind="sign_flip", _hold_gate="", _note="")
    row.update(fields)
    return row


def seeds_text(n: int) -> str:
    """'1 seed', '6 seeds'."""
    return f"{n} seed{'s' * (n != 1)}"


def fmt_number(x: float, digits: int = 3) -> str:
    """A number as short text (`digits` significant digits; nan and -inf / inf spelled out)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def decide(rows: pd.DataFrame | Sequence[dict], alpha: float = ALPHA) -> pd.DataFrame:
    """Holm per family (claim, part, setting), then the verdict and its reason for every row."""
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
    hold_side = low > 0 if greater else high < 0
    fail_side = high < 0 if greater else low > 0
    level = f"alpha = {alpha:g}, Holm over {k} comparison{'s' * (k != 1)}"
    bounds = f"one-sided 95 % bounds [{fmt_number(low)}, {fmt_number(high)}] ({r['ci_method']})"
    if pc <= alpha and hold_side and not r["_hold_gate"]:
        return "holds", (f"mean {fmt_number(r['mean'])} {claimed}: p = {fmt_number(p)}, corrected {fmt_number(pc)} "
                         f"<= {level}; {bounds}")  # fmt: skip
    if prc <= alpha and fail_side:
        return "fails", (f"mean {fmt_number(r['mean'])} {opposite} (against the claim): p = {fmt_number(pr)}, "
                         f"corrected {fmt_number(prc)} <= {level}; {bounds}")  # fmt: skip
    if pc <= alpha and r["_hold_gate"]:
        return "inconclusive", f"significant (corrected p = {fmt_number(pc)}) but {r['_hold_gate']}; {bounds}"
    if pc <= alpha and not hold_side:
        return "inconclusive", f"corrected p = {fmt_number(pc)} <= {alpha:g} but the interval reaches 0: {bounds}"
    min_p = float(r["_min_p"])
    if min_p > alpha / k:
        return "underpowered", (f"{have}: the smallest attainable p-value {fmt_number(min_p)} exceeds the first "
                                f"Holm level {fmt_number(alpha / k)} ({level}); needs >= {need} {unit}")  # fmt: skip
    return "inconclusive", (f"not significant either way: corrected p = {fmt_number(pc)} (claimed), "
                            f"{fmt_number(prc)} (reverse), {level}; {bounds}; {have}")  # fmt: skip


# ======================================================================================
# input checks and shared helpers
# ======================================================================================
def _require(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; it needs {list(columns)} "
                         f"(see the docstring of infoplane.paper.statistics)")  # fmt: skip


def _unique(frame: pd.DataFrame, keys: list[str], name: str) -> None:
    dup = frame.duplicated(keys, keep=False)
    if dup.any():
        example = frame.loc[dup, keys].iloc[0].to_dict()
        raise ValueError(f"{name} table has {int(dup.sum())} rows that repeat the key {keys}, e.g. {example}; "
                         f"aggregate them to one row per key before computing claims")  # fmt: skip


#: How a dependence value enters the claims (`dependence_basis`).
EXCESS, RAW, NO_EVIDENCE = "excess over the permutation null", "raw value (the estimator has no null)", \
    "none (measured without permutations)"


def _bases(frame: pd.DataFrame, axis: str) -> tuple[pd.Series, pd.Series]:
    """(no null by design, no evidence) masks of one axis: the null, excess and p are NaN although
    permutations were drawn (kde / binning I(X;T)), or no permutations were drawn at all."""
    missing = frame[f"p_{axis}"].astype(float).isna() & frame[f"excess_{axis}"].astype(float).isna()
    if "permutations" not in frame:
        return missing, pd.Series(False, index=frame.index)
    drawn = frame["permutations"].astype("float64") > 0
    return missing & drawn, ~drawn


def used_dependence(dependence: pd.DataFrame) -> pd.DataFrame:
    """dependence plus dep_xz / dep_yz: the excess over the null, 0 where the value is within its
    null (permutation p >= NULL_P) -- claims judge dependence beyond chance, never raw values. Two
    exceptions: an estimator without a null by design (I(X;T) of kde and binning, which does not
    involve X) enters with its raw value; a row measured without permutations has no evidence (NaN)."""
    _require(dependence, DEPENDENCE_COLUMNS, "dependence")
    _unique(dependence, ["dataset", "arch", "mode", "seed", "epoch", "layer", "setting"], "dependence")
    out = dependence.copy()
    for axis in ("xz", "yz"):
        excess = out[f"excess_{axis}"].astype(float)
        used = excess.where(~(out[f"p_{axis}"].astype(float) >= NULL_P), 0.0)
        no_null, no_evidence = _bases(out, axis)
        if no_null.any():
            if f"value_{axis}" not in out:
                raise ValueError(f"dependence rows without a null (p_{axis} and excess_{axis} NaN) need their raw "
                                 f"value: the table lacks value_{axis}")  # fmt: skip
            used = used.where(~no_null, out[f"value_{axis}"].astype(float))
        out[f"dep_{axis}"] = used.where(~no_evidence, math.nan)
    out["layer"] = out["layer"].astype("int64")
    # the classifier logits are the last layer of each dataset x arch; blocks are all others
    out["n_blocks"] = out.groupby(["dataset", "arch"])["layer"].transform("max")
    return out


def dependence_basis(dependence: pd.DataFrame) -> pd.DataFrame:
    """Per setting, what the claims use on each axis: columns setting, basis_xz, basis_yz, each
    EXCESS, RAW, NO_EVIDENCE or several of them joined by " / " (rows of one setting that differ)."""
    _require(dependence, ["setting", "excess_xz", "excess_yz", "p_xz", "p_yz"], "dependence")
    out = pd.DataFrame({"setting": dependence["setting"].astype(str)})
    for axis in ("xz", "yz"):
        no_null, no_evidence = _bases(dependence, axis)
        out[f"basis_{axis}"] = np.where(no_evidence, NO_EVIDENCE, np.where(no_null, RAW, EXCESS))
    return (out.groupby("setting", sort=True).agg(lambda b: " / ".join(sorted(set(b)))).reset_index())


def raw_dependence(dependence: pd.DataFrame) -> pd.DataFrame:
    """The same table with every value taken as it is (excess = value, p = NaN): the claims'
    statistics computed on it are the raw companions of the excess-based ones (reported, never
    deciding). Rows without permutations keep no evidence."""
    _require(dependence, ["value_xz", "value_yz"], "dependence")
    out = dependence.copy()
    for axis in ("xz", "yz"):
        out[f"excess_{axis}"] = out[f"value_{axis}"].astype(float)
        out[f"p_{axis}"] = math.nan
    return out


def _final(dep: pd.DataFrame) -> pd.DataFrame:
    """Each run's rows at its last epoch, per estimator setting (`common.final_rows` per setting)."""
    if dep.empty:
        return dep
    return pd.concat([final_rows(group) for _, group in dep.groupby("setting", sort=False)])


def _in_layer_groups(dep: pd.DataFrame, group) -> np.ndarray:
    """Mask of the rows whose layer is in group(n_blocks) (`common.deep_layers` / `middle_layers`)."""
    allowed = pd.MultiIndex.from_tuples([(int(b), layer) for b in dep["n_blocks"].unique() for layer in group(int(b))],
                                        names=["n_blocks", "layer"])  # fmt: skip
    rows = pd.MultiIndex.from_arrays([dep["n_blocks"].astype("int64"), dep["layer"].astype("int64")])
    return rows.isin(allowed)


def _rng(seed: int, *key) -> np.random.Generator:
    """A generator fixed by the seed and the comparison's identity (stable across processes)."""
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, key)).encode())])


def _unit_arrays(frame: pd.DataFrame, unit_keys: list[str], row_key: str, col_key: str, values: list[str]):
    """Yield (unit key, row labels, column labels, {value: (rows, columns) float array}) for every unit,
    from one unstack of the whole frame (missing cells NaN; all-NaN columns of a unit dropped)."""
    if frame.empty:
        return
    wide = frame.set_index([*unit_keys, row_key, col_key])[values].unstack(col_key).sort_index()
    columns = wide[values[0]].columns.to_numpy()
    arrays = {v: wide[v].to_numpy(np.float64) for v in values}
    units = wide.index.droplevel(row_key)
    codes, uniques = pd.factorize(units)
    starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1, codes.size]
    labels = wide.index.get_level_values(row_key).to_numpy()
    for i in range(starts.size - 1):
        lo, hi = starts[i], starts[i + 1]
        block = {v: a[lo:hi] for v, a in arrays.items()}
        keep = ~np.all(np.isnan(block[values[0]]), axis=0)
        key = uniques[codes[lo]]
        yield (key if isinstance(key, tuple) else (key,)), labels[lo:hi], columns[keep], {
            v: a[:, keep] for v, a in block.items()}


# ======================================================================================
# paired comparisons of modes (claims 1, 2, 4)
# ======================================================================================
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
    _require(per_seed, PER_SEED_COLUMNS, "per-seed")
    _unique(per_seed, ["dataset", "arch", "setting", "mode", "seed"], "per-seed")
    group_keys = ["dataset", "arch", "setting"]
    if per_seed.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS), _differences_frame([])
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
    rows = _rows_frame(rows, claim=claim, part=part, primary=primary, direction=direction)
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
    # groups without an e2e mode or without another mode
    modes = data.groupby(group_keys, sort=True)["mode"].agg(lambda m: ", ".join(mode_order(m)))
    covered = set(map(tuple, combos[group_keys].itertuples(index=False, name=None)))
    lacking = modes[[key not in covered for key in modes.index]]
    extra = pd.DataFrame([dict(zip(group_keys, key), statistic=texts.loc[key], n_seeds=0, _preset="inconclusive",
                               reason=f"needs an e2e mode and another mode; present: {present_modes}")
                          for key, present_modes in lacking.items()])  # fmt: skip
    if len(extra):
        rows = pd.concat([rows, _rows_frame(extra, claim=claim, part=part, primary=primary, direction=direction)],
                         ignore_index=True)  # fmt: skip
    diffs = pairs.assign(claim=claim, part=part)[DIFFERENCE_COLUMNS]
    return decide(rows, alpha), _differences_frame(diffs)


def _rows_frame(frame: pd.DataFrame, **fields) -> pd.DataFrame:
    """Result rows from a frame of identity columns: the defaults of `_row` under `fields` and `frame`."""
    defaults = _row(**fields)
    out = frame.reset_index(drop=True).copy()
    for col, value in defaults.items():
        if col not in out:
            out[col] = value
    return out


def _assign(rows: pd.DataFrame, which: np.ndarray, result: dict, direction: str, ci_method: str) -> None:
    """Write a batched `location_test` result into rows `which` (positions, in batch order)."""
    greater = direction == "greater"
    index = rows.index[which]
    rows.loc[index, "mean"] = result["mean"]
    rows.loc[index, "effect_size"] = result["effect_size"]
    rows.loc[index, "ci_low"] = result["ci_low"]
    rows.loc[index, "ci_high"] = result["ci_high"]
    rows.loc[index, "p_value"] = result["p_greater" if greater else "p_less"]
    rows.loc[index, "p_reverse"] = result["p_less" if greater else "p_greater"]
    rows.loc[index, "test"] = result["test"]
    rows.loc[index, "ci_method"] = ci_method
    rows.loc[index, "_min_p"] = float(result["min_p"])


def _fill(items, result, direction, ci_method) -> None:
    """Write a batched `location_test` result into row dicts (claims 3 and 5 build rows one by one)."""
    greater = direction == "greater"
    for j, (row, _) in enumerate(items):
        row.update(mean=float(result["mean"][j]), effect_size=float(result["effect_size"][j]),
                   ci_low=float(result["ci_low"][j]), ci_high=float(result["ci_high"][j]), test=result["test"],
                   p_value=float(result["p_greater" if greater else "p_less"][j]),
                   p_reverse=float(result["p_less" if greater else "p_greater"][j]),
                   _min_p=float(result["min_p"]), ci_method=ci_method)  # fmt: skip


def _differences_frame(diffs: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(diffs, columns=DIFFERENCE_COLUMNS)
    for col in ("value", "reference", "difference"):
        frame[col] = frame[col].astype("float64")
    return frame


# ======================================================================================
# claim 1: input information through depth
# ======================================================================================
def deep_input_dependence(dependence: pd.DataFrame) -> pd.DataFrame:
    """Per run and setting at the run's last epoch: part "deeper_blocks" = mean excess
    nHSIC(X;Z_l) over the deeper half of the blocks (block indices >= B // 2 of B blocks), part
    "classifier" = the logits' excess. Columns: PER_SEED_COLUMNS + part, statistic."""
    dep = _final(used_dependence(dependence))
    deep = dep[_in_layer_groups(dep, deep_layers)]  # blocks B // 2 .. B - 1 (the classifier is layer B)
    keys = ["dataset", "arch", "setting", "mode", "seed"]
    a = deep.groupby(keys).agg(value=("dep_xz", "mean"), n_blocks=("n_blocks", "first")).reset_index()
    a["part"] = "deeper_blocks"
    a["statistic"] = [f"mean excess nHSIC(X;Z_l) over blocks {b // 2}..{b - 1}, last epoch" for b in a.pop("n_blocks")]
    clf = dep[dep["layer"] == dep["n_blocks"]].groupby(keys)["dep_xz"].mean().rename("value").reset_index()
    clf["part"] = "classifier"
    clf["statistic"] = "excess nHSIC(X;Z) of the classifier logits, last epoch"
    return pd.concat([a, clf], ignore_index=True)


def claim_input_information(dependence: pd.DataFrame, alpha: float = ALPHA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claim 1 -> (results, differences)."""
    per_seed = deep_input_dependence(dependence)
    return _paired_parts(per_seed, "1", {"deeper_blocks": True, "classifier": False}, alpha)


def _paired_parts(per_seed, claim, parts: dict[str, bool], alpha, direction="greater"):
    results, diffs = [], []
    for part, primary in parts.items():
        sub = per_seed[per_seed["part"] == part]
        if sub.empty:
            continue
        r, d = paired_comparison(sub.drop(columns="part"), claim=claim, part=part, statistic=part,
                                 direction=direction, primary=primary, alpha=alpha)  # fmt: skip
        results.append(r)
        diffs.append(d)
    return concat_frames(results, RESULT_COLUMNS), concat_frames(diffs, DIFFERENCE_COLUMNS)


def concat_frames(frames, columns) -> pd.DataFrame:
    """The non-empty frames one below the other (an empty frame with `columns` when none)."""
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


# ======================================================================================
# claim 2: layer differentiation as trajectory shape
# ======================================================================================
def trajectory_statistics(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(shape differentiation, mean distance) of one run's blocks in the scaled information plane.

    x, y: (n_epochs, n_layers) scaled dependence. Each layer's step sequence is the vector of its
    steps (dx_1..dx_T, dy_1..dy_T) between consecutive snapshots; shape differentiation = mean over
    layer pairs of 1 - cosine similarity of the two step sequences (0: the layers move alike in
    direction and timing, whatever their size or position; 1: unrelated; 2: opposite). Layers that
    never move are left out (their direction is undefined). Mean distance = mean over snapshots
    after the first and over layer pairs of the distance between the layers' points (spread).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"x and y must both be (n_epochs, n_layers), got {x.shape} and {y.shape}")
    n_epochs, n_layers = x.shape
    if n_layers < 2 or n_epochs < 2:
        return math.nan, math.nan
    steps = np.concatenate([np.diff(x, axis=0), np.diff(y, axis=0)], axis=0)  # (2T, L)
    norms = np.linalg.norm(steps, axis=0)
    moving = norms > 1e-9 * max(float(norms.max()), 1e-300)
    shape = math.nan
    if moving.sum() >= 2:
        unit = steps[:, moving] / norms[moving]
        cos = unit.T @ unit
        upper = np.triu_indices(int(moving.sum()), k=1)
        shape = float(np.mean(1.0 - cos[upper]))
    points = np.stack([x[1:], y[1:]], axis=-1)  # (E-1, L, 2)
    dist = np.sqrt(((points[:, :, None, :] - points[:, None, :, :]) ** 2).sum(-1))
    upper = np.triu_indices(n_layers, k=1)
    return shape, float(dist[:, upper[0], upper[1]].mean())


def layer_differentiation(dependence: pd.DataFrame) -> pd.DataFrame:
    """Per run and setting: part "trajectory_shape" and part "mean_distance" of the blocks
    (classifier excluded), each axis scaled by the range of the dependence over all blocks, runs
    and epochs of the dataset x arch x setting. Uses the snapshot epochs at which every block of
    the run has a value; needs >= 3 of them (fewer: NaN). Columns: PER_SEED_COLUMNS + part, statistic."""
    dep = used_dependence(dependence)
    dep = dep[dep["layer"] < dep["n_blocks"]].copy()
    group = dep.groupby(["dataset", "arch", "setting"])
    for axis in ("xz", "yz"):
        spread = (group[f"dep_{axis}"].transform("max") - group[f"dep_{axis}"].transform("min")).to_numpy(float)
        dep[f"scaled_{axis}"] = dep[f"dep_{axis}"] / np.where(spread > 0, spread, 1.0)
    out = []
    keys = ["dataset", "arch", "setting", "mode", "seed"]
    for key, _, _, arr in _unit_arrays(dep, keys, "epoch", "layer", ["scaled_xz", "scaled_yz"]):
        complete = ~(np.isnan(arr["scaled_xz"]).any(1) | np.isnan(arr["scaled_yz"]).any(1))
        x, y = arr["scaled_xz"][complete], arr["scaled_yz"][complete]
        shape, dist = trajectory_statistics(x, y) if len(x) >= 3 else (math.nan, math.nan)
        ident = dict(zip(keys, key))
        out.append({**ident, "part": "trajectory_shape", "value": shape,
                    "statistic": "mean over block pairs of 1 - cosine of their step sequences in the "
                                 "range-scaled information plane"})  # fmt: skip
        out.append({**ident, "part": "mean_distance", "value": dist,
                    "statistic": "mean distance between blocks' points in the range-scaled information plane"})
    return pd.DataFrame(out, columns=[*PER_SEED_COLUMNS, "part", "statistic"])


def claim_differentiation(dependence: pd.DataFrame, alpha: float = ALPHA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claim 2 -> (results, differences)."""
    per_seed = layer_differentiation(dependence)
    return _paired_parts(per_seed, "2", {"trajectory_shape": True, "mean_distance": False}, alpha)


# ======================================================================================
# claim 3: information bottleneck of the last block (one-sample, E2E)
# ======================================================================================
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


def peak_fall_test(x: np.ndarray, se: np.ndarray | None = None, alpha: float = ALPHA) -> dict:
    """Test of 'the series has an interior peak above its end value', with the peak chosen on the data.

    x: (n_seeds >= 2, n_epochs >= 3), one series per seed; se: the same shape, batch standard errors.
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
    falls (per seed), batch_se (of the fall at `best`, se averaged over seeds: batch noise shared
    by all seeds is not in the seed spread), test, min_p.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 3:
        raise ValueError(f"x must be (n_seeds >= 2, n_epochs >= 3), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or inf; keep only epochs every seed has")
    n, m = x.shape[0], x.shape[1] - 2
    d = (x[:, 1:-1] - x[:, -1:]).T  # (m, n): interior epochs relative to the end
    p_greater, p_less = t_pvalues(d)
    low, _ = t_bounds(d, alpha / m)
    _, high = t_bounds(d, alpha)
    best = int(np.argmax(low))
    batch_se = 0.0
    if se is not None:
        se_mean = np.nan_to_num(np.asarray(se, np.float64)).mean(0)
        batch_se = float(math.hypot(se_mean[1 + best], se_mean[-1]))
    falls = cross_fitted_fall(x)[0]
    return {"p_greater": float(min(1.0, m * np.min(p_greater))), "p_less": float(np.max(p_less)),
            "ci_low": float(np.max(low)), "ci_high": float(np.max(high)), "m": m, "best": best,
            "peak": int(np.argmax(d.mean(1))), "fall": float(falls.mean()), "falls": falls, "batch_se": batch_se,
            "test": f"one-sided t-tests at {m} interior epochs ({n} seeds), Bonferroni over epochs", "min_p": 0.0}


def claim_bottleneck(dependence: pd.DataFrame, alpha: float = ALPHA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claim 3 -> (results, differences): parts "fitting" and "compression" per E2E mode (tested,
    both primary: the claim needs both) and per other mode (descriptive). Z_L = the last block.
    Needs `value_xz_std` and `n_batches` (batch standard error = std / sqrt(n_batches))."""
    _require(dependence, [*DEPENDENCE_COLUMNS, "value_xz_std", "n_batches"], "dependence")
    dep = used_dependence(dependence)
    last = dep[dep["layer"] == dep["n_blocks"] - 1].copy()
    last["se_xz"] = last["value_xz_std"].astype(float) / np.sqrt(last["n_batches"].astype(float))
    names = last.groupby(["dataset", "arch"])["layer_name"].first()
    blocks = dep.groupby(["dataset", "arch"])["n_blocks"].first()
    rows, diffs = [], []
    keys = ["dataset", "arch", "setting", "mode"]
    for key, seeds, epochs, arr in _unit_arrays(last, keys, "seed", "epoch", ["dep_xz", "dep_yz", "se_xz"]):
        ident = dict(claim="3", **dict(zip(keys, key)))
        r, d = _bottleneck_mode(arr, list(seeds), list(epochs), ident, int(blocks.loc[key[:2]]) - 1,
                                str(names.loc[key[:2]]), alpha)  # fmt: skip
        rows += r
        diffs += d
    for key, group in dep[dep["n_blocks"] == 0].groupby(["dataset", "arch", "setting"]):
        rows.append(_row(claim="3", part="compression", **dict(zip(["dataset", "arch", "setting"], key)),
                         _preset="inconclusive", reason="no block below the classifier"))  # fmt: skip
    return decide(rows, alpha), _differences_frame(diffs)


def _bottleneck_mode(arr, seeds, epochs, ident, last_block, name, alpha):
    texts = {"fitting": f"excess nHSIC(Y;Z_L) last minus first snapshot, Z_L = block {last_block} ({name})",
             "compression": f"excess nHSIC(X;Z_L), interior peak minus last epoch, Z_L = block {last_block} ({name})"}
    base = {part: _row(**ident, part=part, statistic=texts[part]) for part in texts}
    if not is_e2e(ident["mode"]):
        for row in base.values():
            row.update(_preset=DESCRIPTIVE, reason="reported for comparison: claim 3 is about E2E")
    shared = ~(np.isnan(arr["dep_xz"]).any(0) | np.isnan(arr["dep_yz"]).any(0))
    epochs = [e for e, ok in zip(epochs, shared) if ok]
    x, y, se = arr["dep_xz"][:, shared], arr["dep_yz"][:, shared], arr["se_xz"][:, shared]
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
    _fill([(base["fitting"], rise)], fitting, "greater", ci_method="inverted " + fitting["test"].split(" (")[0])
    res = peak_fall_test(x, se, alpha)
    falls = res["falls"]
    sd = float(np.std(falls, ddof=1))
    pooled_peak = int(np.argmax(x.mean(0)))
    z = stats.norm.ppf(1 - alpha)
    comp = base["compression"]
    comp.update(mean=res["fall"], effect_size=res["fall"] / sd if sd > 0 else math.nan, p_value=res["p_greater"],
                p_reverse=res["p_less"], ci_low=res["ci_low"], ci_high=res["ci_high"], test=res["test"],
                ci_method=f"simultaneous t bounds over {res['m']} interior epochs",
                peak_epoch=float(epochs[pooled_peak]), _min_p=res["min_p"], _kind="t",
                _note=(f"peak at epoch {epochs[pooled_peak]} (snapshots {epochs[0]}..{epochs[-1]}), strongest evidence "
                       f"at epoch {epochs[1 + res['best']]}; mean = cross-fitted fall; batch standard error of the "
                       f"fall {fmt_number(res['batch_se'])}"))  # fmt: skip
    if res["fall"] <= z * res["batch_se"]:
        comp["_hold_gate"] = (f"the cross-fitted fall {fmt_number(res['fall'])} does not exceed {z:.3g} x its batch "
                              f"standard error {fmt_number(res['batch_se'])}")  # fmt: skip
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


# ======================================================================================
# claim 4: test accuracy
# ======================================================================================
def final_accuracy(metrics: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Per run: the whole network's accuracy on `split` at the run's last epoch (PER_SEED_COLUMNS)."""
    _require(metrics, METRICS_COLUMNS, "metrics")
    whole = whole_network(metrics)
    whole = whole[whole["split"] == split]
    _unique(whole, ["dataset", "arch", "mode", "seed", "epoch"], f"metrics ({split}, classifier)")
    final = final_rows(whole)
    out = final[["dataset", "arch", "mode", "seed", "accuracy"]].rename(columns={"accuracy": "value"})
    out.insert(2, "setting", NO_SETTING)
    return out.reset_index(drop=True)


def claim_accuracy(metrics: pd.DataFrame, alpha: float = ALPHA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claim 4 -> (results, differences)."""
    return paired_comparison(final_accuracy(metrics), claim="4", part="test_accuracy",
                             statistic="whole-network test accuracy at the last epoch", alpha=alpha)  # fmt: skip


# ======================================================================================
# claim 5: middle-layer compression and generalization, stratified by mode
# ======================================================================================
def compression_and_generalization(dependence: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run and setting: compression = mean over the middle blocks (all but the first and the
    last block) of max over epochs minus last-epoch excess nHSIC(X;Z_l); gap = train - test
    accuracy of the whole network at the last epoch; test = that test accuracy. Columns:
    dataset, arch, setting, mode, seed, compression, gap, test."""
    dep = used_dependence(dependence)
    # middle blocks: `common.middle_layers` of the B blocks + classifier, none when B < 3
    mid = dep[(dep["n_blocks"] >= 3) & _in_layer_groups(dep, lambda b: middle_layers(b + 1))]
    per_layer = peak_minus_last(mid.assign(value_xz=mid["dep_xz"]))  # peak - last of the used dependence
    comp = per_layer.groupby(["dataset", "arch", "setting", "mode", "seed"], sort=False)["compression"].mean()
    _require(metrics, METRICS_COLUMNS, "metrics")
    _unique(whole_network(metrics), ["dataset", "arch", "mode", "seed", "epoch", "split"], "metrics (classifier)")
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
                        n_perm: int = N_PERMUTATIONS, n_boot: int = N_BOOTSTRAP,
                        alpha: float = ALPHA) -> dict[str, float]:  # fmt: skip
    """Within-group Spearman rho combined over groups (Fisher z, weights n - 3), with tests.

    groups: one (x, y) pair of equal-length arrays per mode (>= 4 values each, neither constant).
    p_greater / p_less: Monte-Carlo permutation test permuting y within each group (exact in
    distribution under 'no association within any group'; p = (1 + #{perm >= obs}) / (1 + n_perm)).
    ci_low / ci_high: one-sided (1 - alpha) percentile bounds from resampling seeds within groups.
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
    boot = []
    for x, y in groups:
        idx = rng.integers(0, len(x), size=(n_boot, len(x)))
        x_boot, y_boot = np.asarray(x)[idx], np.asarray(y)[idx]
        boot.append(_rank_pearson(stats.rankdata(x_boot, axis=1), stats.rankdata(y_boot, axis=1)))
    combined = _fisher(boot, ns)
    combined = combined[np.all(np.isfinite(np.stack(boot)), axis=0)]
    low = high = math.nan
    if n_boot > 0 and combined.size >= n_boot // 2:
        low, high = float(np.quantile(combined, alpha)), float(np.quantile(combined, 1 - alpha))
    min_p = max(1 / math.prod(math.factorial(n) for n in ns), 1 / (1 + n_perm))
    return {"rho": rho, "rho_each": rho_each, "p_greater": float(p_greater), "p_less": float(p_less),
            "ci_low": low, "ci_high": high, "min_p": min_p}  # fmt: skip


def claim_compression_generalization(dependence: pd.DataFrame, metrics: pd.DataFrame, alpha: float = ALPHA,
                                     n_perm: int = N_PERMUTATIONS, n_boot: int = N_BOOTSTRAP,
                                     seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
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
                                      reference_mode="", seed=s, value=v, reference=r, difference=math.nan))  # fmt: skip
                constant = np.ptp(x) == 0 or np.ptp(y) == 0 if len(x) else True
                rho_m = math.nan if constant or len(x) < 2 else float(stats.spearmanr(x, y)[0])
                rows.append(_row(**ident, mode=mode, statistic=f"Spearman rho within {mode}", n_seeds=len(x),
                                 mean=rho_m, effect_size=rho_m, _preset=DESCRIPTIVE,
                                 reason="per-mode correlation, reported for comparison"))  # fmt: skip
                if len(x) >= MIN_SEEDS and not constant:
                    groups.append((x, y))
                    used.append(mode)
                else:
                    skipped.append(f"{mode} ({len(x)} seeds{', constant' if constant and len(x) else ''})")
            row = _row(**ident, mode="+".join(used) or "none", statistic=text, _kind="permutation",
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
            res = stratified_spearman(groups, _rng(seed, *ident.values()), n_perm, n_boot, alpha)
            greater = direction == "greater"
            row.update(mean=res["rho"], effect_size=res["rho"], ci_low=res["ci_low"], ci_high=res["ci_high"],
                       ci_method=f"seed bootstrap within modes, percentile ({n_boot})", _min_p=res["min_p"],
                       p_value=res["p_greater" if greater else "p_less"],
                       p_reverse=res["p_less" if greater else "p_greater"])  # fmt: skip
            row["test"] += f" ({n_perm} permutations; seeds per mode {[len(g[0]) for g in groups]})"
            rows.append(row)
    if runs.empty:
        rows.append(_row(claim="5", part="gap", dataset="", arch="", _preset="inconclusive",
                         reason="no middle blocks (needs >= 3 blocks) or no matching metrics"))  # fmt: skip
    return decide(rows, alpha), _differences_frame(diffs)


# ======================================================================================
# robustness, summaries
# ======================================================================================
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
    _require(results, [*COMPARISON, "part", "primary", "verdict", "n_seeds"], "results")
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


def claim_summaries(results: pd.DataFrame, primary_setting: str | None = None) -> pd.DataFrame:
    """One line per claim: verdict under the primary setting, each comparison's effect with its 90 %
    interval (two one-sided 95 % bounds), corrected p and seeds, and how many settings it holds
    under. primary_setting may be omitted when the results hold exactly one estimator setting.
    Columns: claim, verdict, line."""
    settings = sorted(set(results["setting"]) - {NO_SETTING})
    if primary_setting is None:
        if len(settings) > 1:
            raise ValueError(f"results hold {len(settings)} estimator settings; "
                             f"pass primary_setting= one of {settings}")
        primary_setting = settings[0] if settings else NO_SETTING
    elif primary_setting not in settings:
        raise ValueError(f"primary_setting {primary_setting!r} is not in the results; settings: {settings}")
    per = comparison_verdicts(results)
    _, lines = robustness(results)
    out = []
    for claim in sorted(set(results["claim"]), key=lambda c: (len(c), c)):
        sub = results[(results["claim"] == claim) & results["setting"].isin([primary_setting, NO_SETTING])]
        sub = sub[sub["primary"].astype(bool) & (sub["verdict"] != DESCRIPTIVE)]
        mine = per[(per["claim"] == claim) & per["setting"].isin([primary_setting, NO_SETTING])]
        verdict = combine_verdicts(mine["verdict"])
        pieces = []
        for r in sub.itertuples():
            who = f"{r.dataset}/{r.arch} {r.mode}" + (f" vs {r.reference_mode}" if r.reference_mode else "")
            part = f" [{r.part}]" if claim == "3" else ""
            if math.isnan(r.p_corrected):
                p = "corrected p not tested"
            elif r.verdict == "fails":  # the p-value that decided it: the opposite direction's
                p = f"corrected p against the claim {fmt_number(r.p_reverse_corrected, 2)}"
            else:
                p = f"corrected p {fmt_number(r.p_corrected, 2)}"
            pieces.append(f"{who}{part}: {r.verdict}, mean {fmt_number(r.mean)}, 90 % interval "
                          f"[{fmt_number(r.ci_low)}, {fmt_number(r.ci_high)}] (two one-sided 95 % bounds), "
                          f"{p}, {seeds_text(r.n_seeds)}")  # fmt: skip
        across = lines.loc[lines["claim"] == claim, "line"]
        text = f"Claim {claim}: {verdict} -- " + "; ".join(pieces or ["no comparisons"])
        if len(across):
            text += f" | across settings: {across.iloc[0]}"
        out.append({"claim": claim, "verdict": verdict, "line": text})
    return pd.DataFrame(out, columns=["claim", "verdict", "line"])
