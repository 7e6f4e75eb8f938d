"""The MI family's shared protocol pieces: prepared references, setting resolution, symbol entropies.

Mutual-information estimators of the information-plane literature, batched over evaluation batches.

The information-plane dispute is largely about the estimator (binning shows compression where
kernel estimates do not; Saxe et al. 2018), so infoplane puts three of them beside nHSIC/CKA on
the same activation snapshots. Every estimator takes stacks of B batches of m samples and
returns per-batch values for I(X;Z) and I(Y;Z), plus a permutation null where one means
something. Formulas, settings and weaknesses: docs/estimators.md.

- ``renyi`` (``renyi.RenyiEstimator``, bits): matrix-based Renyi alpha-entropy MI
  (Giraldo, Rao & Principe 2015; Yu et al. 2019; Wickstrom et al. 2019).
- ``kde`` (``kde.KDEEstimator``, nats or bits): pairwise-distance (KL) upper bound on the
  entropy of the layer plus Gaussian noise (Kolchinsky & Tracey 2017; Saxe et al. 2018).
- ``binning`` (``binning.BinningEstimator``, bits): discretize every unit into equal bins, one
  symbol per sample (Shwartz-Ziv & Tishby 2017; Saxe et al. 2018).

Engine protocol (one object per estimator, stateless; settings are plain dicts, missing keys
take the defaults of the estimator's ``settings`` (``settings.py``), unknown keys are refused so that a typo cannot pass silently):

- ``reference_key(role, setting) -> tuple``: equal keys may share one ``prepare`` result.
- ``prepare(data, role, setting)``: role ``"x"``: (B, m, d) float inputs; role ``"y"``: (B, m)
  integer labels.
- ``score(ref_x, ref_y, z, setting, perms) -> Scores``: z (B, m, ...) a layer in its storage
  dtype (float16 allowed; all arithmetic here is float64), perms (B, P, m) int64 permutations of
  each batch's samples or None. The null is the same estimate on (X, Z[perm]) and (Y, Z[perm]),
  i.e. row i of the batch pairs x_i / y_i with z_{perm[i]}.

Numerics: pairwise squared distances of the mean-centred samples from one float64 GEMM,
clamped at 0 (no m x m x d tensor); eigenvalues by the batched symmetric eigensolver
``torch.linalg.eigvalsh`` on (B, m, m) and (B*P, m, m) stacks, eigenvalues within the solver's
rounding of 0 (|lambda| <= m eps lambda_max, including the tiny negatives of a PSD matrix) set
to 0; log-sum-exp for the KDE terms; no inverses. Stacks that would
exceed ``STACK_BUDGET_ELEMENTS`` float64 elements are processed in chunks (of batches or of
permutations), only to bound memory. Everything runs on the device of z.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from .base import SETTING_KEYS, Scores
from .geometry import check_stack
from .null import check_perms

LOG2E = 1.0 / math.log(2.0)


@dataclass
class Reference:
    """What prepare() keeps of X or Y for one MI estimator (tensors on the data's device)."""

    estimator: str
    role: str
    batches: int
    m: int
    key: tuple
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


def check_shapes(z: torch.Tensor, ref_x: Reference, ref_y: Reference, estimator: str) -> None:
    if not isinstance(ref_x, Reference) or ref_x.role != "x" or ref_x.estimator != estimator:
        raise TypeError(f"ref_x must be the result of {estimator}.prepare(data, 'x', setting)")
    if not isinstance(ref_y, Reference) or ref_y.role != "y" or ref_y.estimator != estimator:
        raise TypeError(f"ref_y must be the result of {estimator}.prepare(labels, 'y', setting)")
    for ref in (ref_x, ref_y):
        if (ref.batches, ref.m) != tuple(z.shape[:2]):
            raise ValueError(
                f"z has B, m = {tuple(z.shape[:2])} but the {ref.role} reference was prepared for "
                f"B, m = {(ref.batches, ref.m)}; prepare and score the same batches"
            )


def real(value, key: str, estimator: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{estimator}: setting {key!r} must be a finite number, got {value!r}")
    return float(value)


def integer(value, key: str, estimator: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{estimator}: setting {key!r} must be an integer, got {value!r}")
    return int(value)


def resolve(setting: Mapping | None, defaults: Mapping, estimator: str) -> dict:
    """Defaults filled in; the engine's own keys (the estimator's name, kernel keys it leaves None)
    are dropped, any other unknown key is refused."""
    setting = {k: v for k, v in dict(setting or {}).items() if k in defaults or k not in SETTING_KEYS}
    unknown = sorted(set(setting) - set(defaults))
    if unknown:
        raise ValueError(
            f"{estimator}: unknown setting(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(defaults)}"
        )
    return {**defaults, **setting}


def entropy_of_symbols(symbols: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (bits) of each row's empirical distribution: (..., m) int64 -> (...) float64.

    Sort-based run lengths, batched over all leading axes: H = -sum_s (n_s/m) log2(n_s/m)."""
    lead, m = symbols.shape[:-1], symbols.shape[-1]
    counts = run_lengths(symbols.reshape(-1, m))
    p = counts / m
    h = -(torch.where(p > 0, p * torch.log2(p.clamp_min(1e-300)), 0.0)).sum(dim=-1)
    return h.reshape(lead)


def run_lengths(rows: torch.Tensor) -> torch.Tensor:
    """(G, m) int64 -> (G, m) float64: the multiplicities of each row's distinct values, zero-padded."""
    groups, m = rows.shape
    ordered = rows.sort(dim=-1).values
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = starts.cumsum(dim=-1) - 1
    counts = torch.zeros(groups, m, dtype=torch.float64, device=rows.device)
    return counts.scatter_add_(1, run, torch.ones_like(counts))


class MIEstimator:
    """What the MI estimators share: a setting resolved (defaults filled, checked) by the subclass's
    ``resolve_setting``, references keyed by role, and the checked inputs of ``score``."""

    name = ""
    unit = "bits"

    def resolve_setting(self, setting: Mapping | None) -> dict:
        """The setting with the declared defaults filled in (unknown keys refused), checked."""
        return self.check_values(resolve(setting, self.settings.defaults(), self.name))

    def check_values(self, s: dict) -> dict:
        """The estimator's own checks of a resolved setting; returns it normalized."""
        raise NotImplementedError

    def check_setting(self, setting: Mapping) -> None:
        self.resolve_setting(setting)

    def unit_for(self, setting: Mapping | None = None) -> str:
        return self.unit

    def reference_key(self, role: str, setting: Mapping | None) -> tuple:
        """X's and Y's references depend on the role only (the setting enters in score)."""
        self.resolve_setting(setting)
        if role not in ("x", "y"):
            raise ValueError(f"role must be 'x' or 'y', got {role!r}")
        return (self.name, role)

    def score(self, ref_x: Reference, ref_y: Reference, z: torch.Tensor, setting: Mapping | None,
              perms: torch.Tensor | None) -> Scores:
        """The protocol's score: the setting resolved, z checked as a (B, m, d) stack matching the
        references, perms checked; then the estimator's ``score_checked``."""
        s = self.resolve_setting(setting)
        z = check_stack(z, f"{self.name}: z")
        check_shapes(z, ref_x, ref_y, self.name)
        return self.score_checked(ref_x, ref_y, z, s, check_perms(perms, z.shape[0], z.shape[1], z.device))

    def score_checked(self, ref_x: Reference, ref_y: Reference, z: torch.Tensor, s: dict,
                      perms: torch.Tensor | None) -> Scores:
        raise NotImplementedError
