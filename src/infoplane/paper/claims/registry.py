"""The claims registry: one decorated function per claim, holding its statement, its statistic and
its figure's axis, evaluated by the one decision rule (`infoplane.paper.rule`).

Add a claim with `@claim("6", title=..., statement=..., statistic=..., mean=..., axis=...)` on a
function `(dependence, metrics, options) -> (results, differences)` that computes the statistic
and hands its rows to `rule.decide` (or `rule.paired_comparison`), in a module of this package
imported by its `__init__`, plus a test (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from ...registry import Registry
from ..rule import ALPHA, DIFFERENCE_COLUMNS, RESULT_COLUMNS, concat_frames

#: Monte-Carlo permutations of claim 5's stratified test.
N_PERMUTATIONS = 4999


@dataclass(frozen=True)
class Options:
    """The tests' settings shared by every claim (defaults: the rule's)."""

    alpha: float = ALPHA
    n_perm: int = N_PERMUTATIONS
    seed: int = 0


Evaluate = Callable[[pd.DataFrame, pd.DataFrame, Options], tuple[pd.DataFrame, pd.DataFrame]]


@dataclass(frozen=True)
class Claim:
    """One claim: id, a short title, the paper's statement, the statistic that decides it, what
    the `mean` column of its rows holds, its evaluation, and its figure: `axis` labels the x axis;
    `limits` fixes it for a bounded statistic (a correlation); `points` says what the dots are:
    "differences" (per-seed rows of the differences table) or "descriptive" (the means of the
    claim's descriptive rows of the same part)."""

    id: str
    title: str
    statement: str
    statistic: str
    mean: str
    evaluate: Evaluate
    axis: str = "paired difference E2E − other, per seed"
    limits: tuple[float, float] | None = None
    points: str = "differences"

    def __call__(self, dependence: pd.DataFrame, metrics: pd.DataFrame,
                 options: Options = Options()) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
        results, differences = self.evaluate(dependence, metrics, options)
        if list(results.columns) != RESULT_COLUMNS or list(differences.columns) != DIFFERENCE_COLUMNS:
            raise ValueError(f"claim {self.id} returned columns {list(results.columns)} / "
                             f"{list(differences.columns)}; a claim returns rule.RESULT_COLUMNS and "
                             f"DIFFERENCE_COLUMNS (use rule.decide)")  # fmt: skip
        return results, differences


CLAIMS: Registry = Registry("claim")


def claim(claim_id: str, *, title: str, statement: str, statistic: str, mean: str, **figure):
    """Register `fn(dependence, metrics, options) -> (results, differences)` as claim `claim_id`
    (`figure`: the optional `axis`, `limits`, `points` of `Claim`); returns fn unchanged."""

    def add(fn: Evaluate) -> Evaluate:
        CLAIMS.register(claim_id)(Claim(claim_id, title, statement, statistic, mean, fn, **figure))
        return fn

    return add


def claim_ids() -> list[str]:
    """Registered claim ids in numeric order."""
    return sorted(CLAIMS.names(), key=lambda name: (len(name), name))


def evaluate_claims(dependence: pd.DataFrame, metrics: pd.DataFrame, options: Options = Options(),
                    claims: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Every registered claim (or those in `claims`) -> (results (rule.RESULT_COLUMNS), differences
    (rule.DIFFERENCE_COLUMNS)), claims in numeric order. Deterministic for a given options.seed
    (claim 5's permutation draws)."""
    parts = [CLAIMS.get(name)(dependence, metrics, options) for name in (claims or claim_ids())]
    return (concat_frames([p[0] for p in parts], RESULT_COLUMNS),
            concat_frames([p[1] for p in parts], DIFFERENCE_COLUMNS))  # fmt: skip
