"""Mutual-information estimators of the information-plane literature, batched over evaluation batches.

The information-plane dispute is largely about the estimator (binning shows compression where
kernel estimates do not; Saxe et al. 2018), so infoplane puts three of them beside nHSIC/CKA on
the same activation snapshots. Every estimator takes stacks of B batches of m samples and
returns per-batch values for I(X;Z) and I(Y;Z), plus a permutation null where one means
something. Formulas, settings and weaknesses: docs/estimators.md.

- ``renyi`` (:class:`RenyiEstimator`, bits): matrix-based Renyi alpha-entropy MI
  (Giraldo, Rao & Principe 2015; Yu et al. 2019; Wickstrom et al. 2019).
- ``kde`` (:class:`KDEEstimator`, nats or bits): pairwise-distance (KL) upper bound on the
  entropy of the layer plus Gaussian noise (Kolchinsky & Tracey 2017; Saxe et al. 2018).
- ``binning`` (:class:`BinningEstimator`, bits): discretize every unit into equal bins, one
  symbol per sample (Shwartz-Ziv & Tishby 2017; Saxe et al. 2018).

Engine protocol (one object per estimator, stateless; settings are plain dicts, missing keys
take the defaults in ``DEFAULTS``, unknown keys are refused so that a typo cannot pass silently):

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
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from .hsic import ESTIMATORS, SETTING_KEYS, Scores

# Approximate cap on the float64 elements of the temporaries built at once: 2**25 = 256 MiB.
STACK_BUDGET_ELEMENTS = 2**25

LOG2E = 1.0 / math.log(2.0)


# --------------------------------------------------------------------------- input checks


def _check_stack(data: torch.Tensor, what: str) -> torch.Tensor:
    """A (B, m, d) view of a (B, m, ...) float stack with m >= 2, finite values."""
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"{what} must be a torch tensor of shape (B, m, d), got {type(data).__name__}")
    if data.ndim < 3:
        raise ValueError(
            f"{what} must have shape (B, m, d) (batches, samples, flattened features), "
            f"got shape {tuple(data.shape)}; add the batch axis with .unsqueeze(0)"
        )
    if not data.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor, got dtype {data.dtype}")
    if data.shape[1] < 2:
        raise ValueError(f"{what} needs at least m = 2 samples per batch, got m = {data.shape[1]}")
    flat = data.reshape(data.shape[0], data.shape[1], -1)
    if flat.shape[-1] == 0:
        raise ValueError(f"{what} has no features (shape {tuple(data.shape)})")
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(
            f"{what} contains NaN or Inf values (a diverged run?); estimators need finite inputs"
        )
    return flat


def _check_labels(labels: torch.Tensor) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch tensor of shape (B, m), got {type(labels).__name__}")
    if labels.ndim != 2 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(
            f"labels (role 'y') must be a (B, m) integer tensor, got dtype {labels.dtype} "
            f"and shape {tuple(labels.shape)}"
        )
    if labels.shape[1] < 2:
        raise ValueError(f"labels need at least m = 2 samples per batch, got m = {labels.shape[1]}")
    return labels.to(torch.int64)


def _check_perms(
    perms: torch.Tensor | None, batches: int, m: int, device: torch.device
) -> torch.Tensor | None:
    """None, or (B, P, m) int64 on device where every row is a permutation of 0..m-1."""
    if perms is None:
        return None
    if not isinstance(perms, torch.Tensor) or perms.ndim != 3 or perms.is_floating_point():
        raise ValueError(
            f"perms must be a (B, P, m) int64 tensor of permutations (or None), got "
            f"{getattr(perms, 'dtype', type(perms).__name__)} of shape {tuple(getattr(perms, 'shape', ()))}"
        )
    if perms.shape[0] != batches or perms.shape[2] != m:
        raise ValueError(f"perms has shape {tuple(perms.shape)}; expected (B={batches}, P, m={m})")
    perms = perms.to(device=device, dtype=torch.int64)
    expected = torch.arange(m, device=device)
    if perms.numel() and not bool((perms.sort(dim=-1).values == expected).all()):
        raise ValueError("perms: every row perms[b, p] must be a permutation of 0..m-1")
    return perms


def _check_shapes(z: torch.Tensor, ref_x: _Ref, ref_y: _Ref, estimator: str) -> None:
    if not isinstance(ref_x, _Ref) or ref_x.role != "x" or ref_x.estimator != estimator:
        raise TypeError(f"ref_x must be the result of {estimator}.prepare(data, 'x', setting)")
    if not isinstance(ref_y, _Ref) or ref_y.role != "y" or ref_y.estimator != estimator:
        raise TypeError(f"ref_y must be the result of {estimator}.prepare(labels, 'y', setting)")
    for ref in (ref_x, ref_y):
        if (ref.batches, ref.m) != tuple(z.shape[:2]):
            raise ValueError(
                f"z has B, m = {tuple(z.shape[:2])} but the {ref.role} reference was prepared for "
                f"B, m = {(ref.batches, ref.m)}; prepare and score the same batches"
            )


def _real(value, key: str, estimator: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{estimator}: setting {key!r} must be a finite number, got {value!r}")
    return float(value)


def _integer(value, key: str, estimator: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{estimator}: setting {key!r} must be an integer, got {value!r}")
    return int(value)


def _resolve(setting: Mapping | None, defaults: Mapping, estimator: str) -> dict:
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


# --------------------------------------------------------------------------- shared numerics


@dataclass
class _Ref:
    """What prepare() keeps of X or Y for one estimator (tensors on the data's device)."""

    estimator: str
    role: str
    batches: int
    m: int
    key: tuple
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


def _batch_chunks(batches: int, per_batch_elements: int) -> Iterator[slice]:
    """Slices of the batch axis, each within STACK_BUDGET_ELEMENTS (at least one batch)."""
    step = max(1, STACK_BUDGET_ELEMENTS // max(1, per_batch_elements))
    for start in range(0, batches, step):
        yield slice(start, min(batches, start + step))


def squared_distances(t: torch.Tensor) -> torch.Tensor:
    """(B, m, m) float64 ||t_i - t_j||^2 within each batch of a (B, m, d) stack.

    Samples are centred on their batch mean first (distances do not change, the cancellation in
    ||a||^2 + ||b||^2 - 2 a.b shrinks), then one batched float64 GEMM; clamped at 0, diagonal 0."""
    batches, m, d = t.shape
    out = torch.empty(batches, m, m, dtype=torch.float64, device=t.device)
    for part in _batch_chunks(batches, m * d):
        f = t[part].to(torch.float64)
        f = f - f.mean(dim=1, keepdim=True)
        sq = (f * f).sum(dim=-1)
        g = torch.baddbmm(sq[:, :, None] + sq[:, None, :], f, f.transpose(1, 2), alpha=-2.0)
        out[part] = g.clamp_min_(0.0)
    out.diagonal(dim1=1, dim2=2).zero_()
    return out


def _entropy_of_symbols(symbols: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (bits) of each row's empirical distribution: (..., m) int64 -> (...) float64.

    Sort-based run lengths, batched over all leading axes: H = -sum_s (n_s/m) log2(n_s/m)."""
    lead, m = symbols.shape[:-1], symbols.shape[-1]
    counts = _run_lengths(symbols.reshape(-1, m))
    p = counts / m
    h = -(torch.where(p > 0, p * torch.log2(p.clamp_min(1e-300)), 0.0)).sum(dim=-1)
    return h.reshape(lead)


def _run_lengths(rows: torch.Tensor) -> torch.Tensor:
    """(G, m) int64 -> (G, m) float64: the multiplicities of each row's distinct values, zero-padded."""
    groups, m = rows.shape
    ordered = rows.sort(dim=-1).values
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = starts.cumsum(dim=-1) - 1
    counts = torch.zeros(groups, m, dtype=torch.float64, device=rows.device)
    return counts.scatter_add_(1, run, torch.ones_like(counts))


def _gather_pairs(a: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """(B, m, m) and (B, P, m) -> (B, P, m, m) with out[b, p, i, j] = a[b, perm_i, perm_j]."""
    b_idx = torch.arange(a.shape[0], device=a.device)[:, None, None, None]
    return a[b_idx, perms[:, :, :, None], perms[:, :, None, :]]


def _inverse_permutations(perms: torch.Tensor) -> torch.Tensor:
    """inv[..., perms[..., i]] = i."""
    inv = torch.empty_like(perms)
    return inv.scatter_(-1, perms, torch.arange(perms.shape[-1], device=perms.device).expand_as(perms))


# --------------------------------------------------------------------------- matrix-based Renyi


RENYI_WIDTH_RULES = ("silverman", "knn", "fixed")


def renyi_entropy_from_eigenvalues(eigenvalues: torch.Tensor, alpha: float) -> torch.Tensor:
    """S_alpha = log2(sum_i lambda_i^alpha) / (1 - alpha) over the last axis (Giraldo et al. 2015).

    Eigenvalues of a unit-trace PSD (m, m) matrix. The eigensolver's absolute error is about
    eps * lambda_max, so eigenvalues up to m * eps * lambda_max (the usual numerical-rank
    tolerance) are rounding noise, negative or positive: they are set to 0. Tiny negatives
    would otherwise be NaN under a fractional power, and for alpha < 1 tiny positives would add
    noise^alpha (1e-17^0.5 = 3e-9 each) to the sum."""
    lam = eigenvalues.to(torch.float64)
    tol = lam.shape[-1] * torch.finfo(torch.float64).eps * lam.amax(dim=-1, keepdim=True)
    lam = torch.where(lam > tol, lam, 0.0)
    return torch.log2(lam.pow(alpha).sum(dim=-1)) / (1.0 - alpha)


def matrix_renyi_entropy(a: torch.Tensor, alpha: float) -> torch.Tensor:
    """S_alpha(A) of a (..., m, m) stack of unit-trace PSD matrices, by batched eigvalsh."""
    return renyi_entropy_from_eigenvalues(torch.linalg.eigvalsh(a.to(torch.float64)), alpha)


def normalized_gram(k: torch.Tensor) -> torch.Tensor:
    """A_ij = K_ij / (m sqrt(K_ii K_jj)), so that tr A = 1 (Giraldo et al. 2015)."""
    m = k.shape[-1]
    root = k.diagonal(dim1=-2, dim2=-1).sqrt()
    return k / (m * root[..., :, None] * root[..., None, :])


def _unit_trace(h: torch.Tensor) -> torch.Tensor:
    return h / h.diagonal(dim1=-2, dim2=-1).sum(dim=-1)[..., None, None]


def renyi_width(
    d2: torch.Tensor, dim: int, rule: str, k: int | None = None, sigma: float | None = None
) -> torch.Tensor:
    """(B,) Gaussian kernel width sigma per batch from the (B, m, m) squared distances.

    - ``silverman``: Silverman's (1986, section 4.3.2) normal-reference rule for a d-variate
      Gaussian kernel, sigma = s (4 / ((d + 2) m))^(1 / (d + 4)), with s^2 the mean over the d
      units of their sample variances (ddof 1), s^2 = sum_ij D_ij / (2 m (m - 1) d).
    - ``knn``: the mean over samples of the mean Euclidean distance to their k nearest other
      samples (Wickstrom et al. 2019).
    - ``fixed``: sigma as given.
    """
    batches, m, _ = d2.shape
    if rule == "silverman":
        spread = (d2.sum(dim=(1, 2)) / (2.0 * m * (m - 1) * dim)).sqrt()
        return spread * (4.0 / ((dim + 2.0) * m)) ** (1.0 / (dim + 4.0))
    if rule == "knn":
        off = d2 + torch.diag(torch.full((m,), math.inf, dtype=d2.dtype, device=d2.device))
        nearest = off.topk(k, dim=-1, largest=False).values  # (B, m, k) squared distances
        return nearest.sqrt().mean(dim=(1, 2))
    if rule == "fixed":
        return torch.full((batches,), float(sigma), dtype=torch.float64, device=d2.device)
    raise ValueError(f"renyi: unknown width rule {rule!r}; allowed: {', '.join(RENYI_WIDTH_RULES)}")


def gaussian_gram(d2: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """K_ij = exp(-D_ij / (2 sigma_b^2)) per batch; a zero width (all samples equal, or a k-NN
    width of duplicates) gives its limit: 1 where D_ij = 0, else 0."""
    scale = (2.0 * sigma.to(torch.float64) ** 2)[:, None, None]
    return torch.where(d2 > 0, torch.exp(-d2 / scale), 1.0)


class RenyiEstimator:
    """Matrix-based Renyi alpha-entropy MI, bits (Giraldo, Rao & Principe 2015, "Measures of
    entropy from data using infinitely divisible kernels"; Yu et al. 2019; Wickstrom et al. 2019).

    A = K / (m sqrt(K_ii K_jj)), S_alpha(A) = log2(sum lambda^alpha) / (1 - alpha),
    S_alpha(A, B) = S_alpha(A o B / tr(A o B)), I_alpha = S_alpha(A) + S_alpha(B) - S_alpha(A, B).
    X and Z: Gaussian Gram exp(-||a_i - a_j||^2 / (2 sigma^2)) with the width rule ``width``
    (``renyi_width``) applied to each batch and each variable. Y: the one-hot kernel
    K_ij = [y_i = y_j], whose normalized Gram has the class proportions as eigenvalues, so
    S_alpha(A_Y) is the Renyi entropy of the proportions (used in closed form).
    Null: S(A_X) + S(A_Z) - S(A_X o P A_Z P^T / tr), and the same with A_Y: the marginals are
    permutation invariant, only the joint term is recomputed (a (B*P, m, m) eigvalsh)."""

    name = "renyi"
    unit = "bits"
    DEFAULTS = {"alpha": 1.01, "width": "knn", "k": 10, "sigma": None}
    setting_keys = tuple(DEFAULTS)

    def resolve_setting(self, setting: Mapping | None) -> dict:
        """The setting with defaults filled in, validated."""
        s = _resolve(setting, self.DEFAULTS, self.name)
        s["alpha"] = _real(s["alpha"], "alpha", self.name)
        if s["alpha"] <= 0 or s["alpha"] == 1.0:
            raise ValueError(
                f"renyi: alpha must be > 0 and != 1 (alpha = 1 is the Shannon limit, where "
                f"1/(1 - alpha) diverges), got {s['alpha']!r}; the usual choice is alpha = 1.01"
            )
        if s["width"] not in RENYI_WIDTH_RULES:
            raise ValueError(
                f"renyi: unknown width rule {s['width']!r}; allowed: {', '.join(RENYI_WIDTH_RULES)}"
            )
        s["k"] = _integer(s["k"], "k", self.name)
        if s["k"] < 1:
            raise ValueError(f"renyi: k (nearest neighbours of the knn width) must be >= 1, got {s['k']}")
        if s["width"] == "fixed" and s["sigma"] is None:
            raise ValueError("renyi: width 'fixed' needs the setting sigma (the kernel width, > 0)")
        if s["sigma"] is not None:
            s["sigma"] = _real(s["sigma"], "sigma", self.name)
            if s["sigma"] <= 0:
                raise ValueError(f"renyi: sigma (the fixed kernel width) must be > 0, got {s['sigma']!r}")
        return s

    def unit_for(self, setting: Mapping | None = None) -> str:
        return self.unit

    def used_keys(self, setting: Mapping) -> tuple[str, ...]:
        """The keys a setting uses: sigma only for the fixed width, k only for knn."""
        width = setting.get("width", self.DEFAULTS["width"])
        return ("alpha", "width", *(("k",) if width == "knn" else ()), *(("sigma",) if width == "fixed" else ()))

    def check_setting(self, setting: Mapping) -> None:
        self.resolve_setting(setting)

    def _width_key(self, s: dict) -> tuple:
        if s["width"] == "knn":
            return ("knn", s["k"])
        if s["width"] == "fixed":
            return ("fixed", s["sigma"])
        return ("silverman",)

    def reference_key(self, role: str, setting: Mapping | None) -> tuple:
        """X's reference depends on the width rule only (alpha enters in score); Y's on nothing."""
        s = self.resolve_setting(setting)
        if role == "x":
            return (self.name, "x", *self._width_key(s))
        if role == "y":
            return (self.name, "y")
        raise ValueError(f"role must be 'x' or 'y', got {role!r}")

    def _check_k(self, s: dict, m: int) -> None:
        if s["width"] == "knn" and s["k"] >= m:
            raise ValueError(
                f"renyi: k = {s['k']} nearest neighbours needs k < m = {m} (each sample has m - 1 "
                "others); lower k or use larger batches"
            )

    def _gram(self, t: torch.Tensor, s: dict) -> tuple[torch.Tensor, torch.Tensor]:
        d2 = squared_distances(t)
        sigma = renyi_width(d2, t.shape[-1], s["width"], k=s["k"], sigma=s["sigma"])
        return normalized_gram(gaussian_gram(d2, sigma)), sigma

    def prepare(self, data: torch.Tensor, role: str, setting: Mapping | None) -> _Ref:
        s = self.resolve_setting(setting)
        key = self.reference_key(role, s)
        if role == "x":
            x = _check_stack(data, "renyi: x")
            self._check_k(s, x.shape[1])
            a, sigma = self._gram(x, s)
            lam = torch.linalg.eigvalsh(a)
            return _Ref(
                self.name, "x", x.shape[0], x.shape[1], key, {"gram": a, "eigenvalues": lam, "sigma": sigma}
            )
        y = _check_labels(data)
        m = y.shape[1]
        a = (y[:, :, None] == y[:, None, :]).to(torch.float64) / m
        lam = _run_lengths(y) / m  # the class proportions, zero-padded: the eigenvalues of A_Y
        return _Ref(self.name, "y", y.shape[0], m, key, {"gram": a, "eigenvalues": lam})

    def score(
        self, ref_x: _Ref, ref_y: _Ref, z: torch.Tensor, setting: Mapping | None, perms: torch.Tensor | None
    ) -> Scores:
        s = self.resolve_setting(setting)
        z = _check_stack(z, "renyi: z")
        _check_shapes(z, ref_x, ref_y, self.name)
        if ref_x.key != self.reference_key("x", s):
            raise ValueError(
                f"renyi: ref_x was prepared with {ref_x.key} but score got the width {self._width_key(s)}"
            )
        self._check_k(s, z.shape[1])
        device = z.device
        perms = _check_perms(perms, z.shape[0], z.shape[1], device)
        alpha = s["alpha"]
        ax, ay = ref_x.tensors["gram"].to(device), ref_y.tensors["gram"].to(device)
        hx = renyi_entropy_from_eigenvalues(ref_x.tensors["eigenvalues"].to(device), alpha)
        hy = renyi_entropy_from_eigenvalues(ref_y.tensors["eigenvalues"].to(device), alpha)
        az, sigma_z = self._gram(z, s)
        hz = matrix_renyi_entropy(az, alpha)
        joint = torch.stack([_unit_trace(ax * az), _unit_trace(ay * az)], dim=1)  # (B, 2, m, m)
        hj = matrix_renyi_entropy(joint, alpha)
        scores = Scores(
            value_xz=hx + hz - hj[:, 0],
            value_yz=hy + hz - hj[:, 1],
            null_xz=None,
            null_yz=None,
            extra={"entropy_z": hz, "sigma_z": sigma_z, "sigma_x": ref_x.tensors["sigma"].to(device)},
        )
        if perms is not None:
            hj_null = self._joint_null(ax, ay, az, perms, alpha)  # (B, P, 2)
            scores.null_xz = hx[:, None] + hz[:, None] - hj_null[..., 0]
            scores.null_yz = hy[:, None] + hz[:, None] - hj_null[..., 1]
        return scores

    @staticmethod
    def _joint_null(ax, ay, az, perms, alpha) -> torch.Tensor:
        """(B, P, 2) joint entropies S(A_X o A_Z[perm, perm]) and S(A_Y o A_Z[perm, perm])."""
        batches, n_perm, m = perms.shape
        out = torch.empty(batches, n_perm, 2, dtype=torch.float64, device=az.device)
        # About 6 (B, m, m) float64 temporaries per permutation (gather, products, stack, solver copy).
        step = max(1, STACK_BUDGET_ELEMENTS // (6 * batches * m * m))
        for start in range(0, n_perm, step):
            part = slice(start, min(n_perm, start + step))
            azp = _gather_pairs(az, perms[:, part])  # (B, p, m, m)
            joint = torch.stack([_unit_trace(ax[:, None] * azp), _unit_trace(ay[:, None] * azp)], dim=2)
            out[:, part] = matrix_renyi_entropy(joint, alpha)
        return out


# --------------------------------------------------------------------------- KDE (pairwise distances)


KDE_UNITS = ("nats", "bits")


class KDEEstimator:
    """Pairwise-distance MI of the layer plus Gaussian noise N(0, s^2 I) (Kolchinsky & Tracey
    2017, "Estimating mixture entropy with pairwise distances"; Saxe et al. 2018).

    With D_ij = ||t_i - t_j||^2 and L_i = log((1/m) sum_j exp(-D_ij / (2 s^2))) (log-sum-exp):
    I(T;X) = -(1/m) sum_i L_i; the KL upper bound on the entropy of the noisy layer is
    H(T) = d/2 - (1/m) sum_i [L_i - (d/2) log(2 pi s^2)] = (d/2) log(2 pi e s^2) - mean_i L_i;
    I(T;Y) = H(T) - sum_c p_c H(T | Y = c) with each conditional term the same bound on the m_c
    samples of class c. Since sum_c p_c = 1 the (d/2) log(2 pi e s^2) terms cancel exactly:
    I(T;Y) = (1/m) sum_i [L^{(y_i)}_i - L_i], L^{(c)}_i = log((1/m_c) sum_{j: y_j = c} exp(...)),
    one masked log-sum-exp over the same-class pairs (this form is used; no large constants).

    No null for I(T;X): for a deterministic layer on distinct inputs, I(T;X) = H(T) - H(noise)
    involves X only through "each sample is its own input", so shuffling Z against X leaves it
    exactly unchanged (null_xz = None). I(T;Y) null: the labels re-paired by the permutations."""

    name = "kde"
    unit = "nats"  # the default; ``unit_for(setting)`` gives the unit of a setting
    DEFAULTS = {"noise_variance": 0.1, "relative": False, "unit": "nats"}
    setting_keys = tuple(DEFAULTS)

    def resolve_setting(self, setting: Mapping | None) -> dict:
        s = _resolve(setting, self.DEFAULTS, self.name)
        s["noise_variance"] = _real(s["noise_variance"], "noise_variance", self.name)
        if s["noise_variance"] <= 0:
            raise ValueError(
                f"kde: noise_variance (s^2 of the added Gaussian noise) must be > 0, got "
                f"{s['noise_variance']!r}; Saxe et al. use 0.1"
            )
        if not isinstance(s["relative"], (bool, np.bool_)):
            raise ValueError(f"kde: setting 'relative' must be true or false, got {s['relative']!r}")
        s["relative"] = bool(s["relative"])
        if s["unit"] not in KDE_UNITS:
            raise ValueError(f"kde: unit must be one of {', '.join(KDE_UNITS)}, got {s['unit']!r}")
        return s

    def unit_for(self, setting: Mapping | None = None) -> str:
        return self.resolve_setting(setting)["unit"]

    def check_setting(self, setting: Mapping) -> None:
        self.resolve_setting(setting)

    def reference_key(self, role: str, setting: Mapping | None) -> tuple:
        self.resolve_setting(setting)
        if role not in ("x", "y"):
            raise ValueError(f"role must be 'x' or 'y', got {role!r}")
        return (self.name, role)

    def prepare(self, data: torch.Tensor, role: str, setting: Mapping | None) -> _Ref:
        key = self.reference_key(role, setting)
        if role == "x":  # X enters only as "each sample is a distinct input": keep the shape
            x = _check_stack(data, "kde: x")
            return _Ref(self.name, "x", x.shape[0], x.shape[1], key)
        y = _check_labels(data)
        return _Ref(self.name, "y", y.shape[0], y.shape[1], key, {"labels": y})

    def noise_variance(self, z: torch.Tensor, setting: Mapping | None) -> torch.Tensor:
        """(B,) s^2 per batch: the setting's, or with ``relative`` that times the batch's mean
        squared activation (1/(m d)) sum_i ||t_i||^2 (then the estimate is scale invariant)."""
        return self._noise_variance(_check_stack(z, "kde: z"), self.resolve_setting(setting))

    @staticmethod
    def _noise_variance(z: torch.Tensor, s: dict) -> torch.Tensor:
        if not s["relative"]:
            return torch.full((z.shape[0],), s["noise_variance"], dtype=torch.float64, device=z.device)
        return s["noise_variance"] * _mean_square(z)

    def score(
        self, ref_x: _Ref, ref_y: _Ref, z: torch.Tensor, setting: Mapping | None, perms: torch.Tensor | None
    ) -> Scores:
        s = self.resolve_setting(setting)
        z = _check_stack(z, "kde: z")
        _check_shapes(z, ref_x, ref_y, self.name)
        device = z.device
        batches, m, d = z.shape
        perms = _check_perms(perms, batches, m, device)
        s2 = self._noise_variance(z, s)
        d2 = squared_distances(z)
        # -D / (2 s^2); a zero s^2 (relative noise on an all-zero layer, where D = 0) gives 0.
        logits = torch.where(d2 > 0, -d2 / (2.0 * s2[:, None, None]), 0.0)
        lse_all = torch.logsumexp(logits, dim=-1)  # (B, m)
        log_m = math.log(m)
        i_tx = (log_m - lse_all).mean(dim=-1)
        y = ref_y.tensors["labels"].to(device)
        i_ty = self._label_term(logits, y) - (lse_all - log_m).mean(dim=-1)
        scale = LOG2E if s["unit"] == "bits" else 1.0
        entropy_bound = 0.5 * d * torch.log(2.0 * math.pi * math.e * s2) + i_tx
        scores = Scores(
            value_xz=i_tx * scale,
            value_yz=i_ty * scale,
            null_xz=None,
            null_yz=None,
            extra={"effective_noise_variance": s2, "entropy_bound": entropy_bound * scale},
        )
        if perms is not None:
            # (Y, Z[perm]) pairs y_i with z_perm(i): the same as the labels y[inv] on unpermuted Z.
            y_null = y.gather(1, _inverse_permutations(perms).reshape(batches, -1)).reshape(perms.shape)
            n_perm = perms.shape[1]
            null = torch.empty(batches, n_perm, dtype=torch.float64, device=device)
            step = max(1, STACK_BUDGET_ELEMENTS // (3 * batches * m * m))  # masked logits, exp, mask
            for start in range(0, n_perm, step):
                part = slice(start, min(n_perm, start + step))
                null[:, part] = self._label_term(logits[:, None], y_null[:, part])
            scores.null_yz = (null - (lse_all - log_m).mean(dim=-1)[:, None]) * scale
        return scores

    @staticmethod
    def _label_term(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(1/m) sum_i log((1/m_{y_i}) sum_{j: y_j = y_i} exp(logits_ij)), batched over leading axes."""
        same = labels[..., :, None] == labels[..., None, :]
        lse_same = torch.logsumexp(logits.masked_fill(~same, -math.inf), dim=-1)
        return (lse_same - same.sum(dim=-1).to(torch.float64).log()).mean(dim=-1)


def _mean_square(z: torch.Tensor) -> torch.Tensor:
    """(B,) mean of t^2 over each batch's samples and units, float64, in bounded chunks."""
    out = torch.empty(z.shape[0], dtype=torch.float64, device=z.device)
    for part in _batch_chunks(z.shape[0], z.shape[1] * z.shape[2]):
        out[part] = z[part].to(torch.float64).square().mean(dim=(1, 2))
    return out


# --------------------------------------------------------------------------- binning


BIN_RANGE_RULES = ("snapshot", "run_max")


def binning_range_max(layer_tensors: Iterable[torch.Tensor | np.ndarray]) -> float:
    """The largest activation of one layer over all snapshots of a run: the upper end of Saxe et
    al.'s (2018) [0, max] bin range for ReLU layers (pass it as the setting ``range_max`` with
    ``bin_range="run_max"``)."""
    best = -math.inf
    count = 0
    for t in layer_tensors:
        t = torch.as_tensor(t)
        if t.numel() == 0:
            continue
        if not bool(torch.isfinite(t).all()):
            raise ValueError("binning_range_max: a snapshot holds NaN or Inf activations (a diverged run?)")
        best = max(best, float(t.max()))
        count += 1
    if count == 0:
        raise ValueError(
            "binning_range_max: no activations given (pass the layer's tensor from every snapshot of the run)"
        )
    if best < 0:
        raise ValueError(
            f"binning_range_max: the run's largest activation is {best!r} < 0, so [0, max] is empty; "
            "run_max is for non-negative (ReLU) layers: use bin_range 'snapshot' or a fixed [lo, hi]"
        )
    return best


class BinningEstimator:
    """Binning MI, bits (Shwartz-Ziv & Tishby 2017, "Opening the black box of deep neural networks
    via information"; Saxe et al. 2018, "On the information bottleneck theory of deep learning").

    Every unit is cut into ``bins`` equal bins over [lo, hi] (``bin_range``: "snapshot" = min..max
    of the layer over the whole (B, m, d) stack passed to score; [lo, hi] fixed; "run_max" =
    [0, range_max]); bin index floor((t - lo) / (hi - lo) * bins), values outside [lo, hi] go to
    the edge bins (their share is ``extra["clipped_fraction"]``), t = hi to the last bin; a
    zero-width range puts everything in one bin. A sample's binned vector is one symbol (exact
    row identity, ``torch.unique(dim=0)``). H(T) from the symbol frequencies of each batch; for a
    deterministic layer I(X;T) = H(T) <= log2 m (``extra["saturation_bound"]``);
    I(T;Y) = H(T) - H(T|Y) = H(T) + H(Y) - H(T,Y). No null for I(X;T) (H(T) is invariant to
    shuffling Z against X); I(T;Y) null by re-pairing labels and symbols."""

    name = "binning"
    unit = "bits"
    DEFAULTS = {"bins": 30, "bin_range": "snapshot", "range_max": None}
    setting_keys = tuple(DEFAULTS)

    def resolve_setting(self, setting: Mapping | None) -> dict:
        s = _resolve(setting, self.DEFAULTS, self.name)
        s["bins"] = _integer(s["bins"], "bins", self.name)
        if s["bins"] < 1:
            raise ValueError(
                f"binning: bins (bins per unit) must be >= 1, got {s['bins']}; the papers use 30"
            )
        rng = s["bin_range"]
        if isinstance(rng, str):
            if rng not in BIN_RANGE_RULES:
                raise ValueError(
                    f"binning: bin_range must be 'snapshot', 'run_max' or a pair [lo, hi], got {rng!r}"
                )
        elif isinstance(rng, (list, tuple)) and len(rng) == 2:
            lo, hi = (_real(v, "bin_range", self.name) for v in rng)
            if not lo < hi:
                raise ValueError(f"binning: a fixed bin_range [lo, hi] needs lo < hi, got {list(rng)}")
            s["bin_range"] = (lo, hi)
        else:
            raise ValueError(
                f"binning: bin_range must be 'snapshot', 'run_max' or a pair [lo, hi], got {rng!r}"
            )
        if s["bin_range"] == "run_max":
            if s["range_max"] is None:
                raise ValueError(
                    "binning: bin_range 'run_max' needs the setting range_max (the layer's largest "
                    "activation over the run: binning_range_max(...))"
                )
            s["range_max"] = _real(s["range_max"], "range_max", self.name)
            if s["range_max"] < 0:
                raise ValueError(
                    f"binning: range_max must be >= 0 for the range [0, range_max], got {s['range_max']}"
                )
        elif s["range_max"] is not None:
            raise ValueError(
                "binning: range_max is only used with bin_range 'run_max'; drop it or set bin_range"
            )
        return s

    def used_keys(self, setting: Mapping) -> tuple[str, ...]:
        """range_max only for bin_range run_max (the stage resolves it per layer and run)."""
        return ("bins", "bin_range", *(("range_max",) if setting.get("bin_range") == "run_max" else ()))

    def check_setting(self, setting: Mapping) -> None:
        self.resolve_setting(setting)

    def unit_for(self, setting: Mapping | None = None) -> str:
        return self.unit

    def reference_key(self, role: str, setting: Mapping | None) -> tuple:
        self.resolve_setting(setting)
        if role not in ("x", "y"):
            raise ValueError(f"role must be 'x' or 'y', got {role!r}")
        return (self.name, role)

    def prepare(self, data: torch.Tensor, role: str, setting: Mapping | None) -> _Ref:
        key = self.reference_key(role, setting)
        if role == "x":  # I(X;T) = H(T) for a deterministic layer: X is not needed
            x = _check_stack(data, "binning: x")
            return _Ref(self.name, "x", x.shape[0], x.shape[1], key)
        y = _check_labels(data)
        classes = torch.unique(y, return_inverse=True)[1]  # labels as 0..C-1
        return _Ref(
            self.name, "y", y.shape[0], y.shape[1], key, {"classes": classes, "n_classes": classes.max() + 1}
        )

    def bin_edges_range(self, z: torch.Tensor, setting: Mapping | None) -> tuple[float, float]:
        """The [lo, hi] the setting bins z over."""
        return self._range(z, self.resolve_setting(setting))

    @staticmethod
    def _range(z: torch.Tensor, s: dict) -> tuple[float, float]:
        if s["bin_range"] == "snapshot":
            return float(z.min()), float(z.max())
        if s["bin_range"] == "run_max":
            return 0.0, s["range_max"]
        return s["bin_range"]

    def symbols(self, z: torch.Tensor, setting: Mapping | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, m) int64 symbol ids (equal ids = equal binned vectors) and the (B,) clipped fraction."""
        return self._symbols(_check_stack(z, "binning: z"), self.resolve_setting(setting))

    def _symbols(self, z: torch.Tensor, s: dict) -> tuple[torch.Tensor, torch.Tensor]:
        batches, m, d = z.shape
        lo, hi = self._range(z, s)
        n = s["bins"]
        index_dtype = torch.int16 if n <= 2**15 else torch.int64
        binned = torch.empty(batches, m, d, dtype=index_dtype, device=z.device)
        clipped = torch.empty(batches, dtype=torch.float64, device=z.device)
        for part in _batch_chunks(batches, m * d):
            t = z[part].to(torch.float64)
            clipped[part] = ((t < lo) | (t > hi)).to(torch.float64).mean(dim=(1, 2))
            if hi > lo:
                idx = torch.floor((t - lo) / (hi - lo) * n).clamp_(0, n - 1)
            else:
                idx = torch.zeros_like(t)
            binned[part] = idx.to(index_dtype)
        ids = torch.unique(binned.reshape(batches * m, d), dim=0, return_inverse=True)[1]
        return ids.reshape(batches, m), clipped

    def score(
        self, ref_x: _Ref, ref_y: _Ref, z: torch.Tensor, setting: Mapping | None, perms: torch.Tensor | None
    ) -> Scores:
        s = self.resolve_setting(setting)
        z = _check_stack(z, "binning: z")
        _check_shapes(z, ref_x, ref_y, self.name)
        device = z.device
        batches, m, _ = z.shape
        perms = _check_perms(perms, batches, m, device)
        sym, clipped = self._symbols(z, s)
        classes = ref_y.tensors["classes"].to(device)
        n_classes = int(ref_y.tensors["n_classes"])
        h_t = _entropy_of_symbols(sym)
        h_y = _entropy_of_symbols(classes)
        i_ty = h_t + h_y - _entropy_of_symbols(sym * n_classes + classes)
        scores = Scores(
            value_xz=h_t,
            value_yz=i_ty,
            null_xz=None,
            null_yz=None,
            extra={
                "saturation_bound": torch.full((batches,), math.log2(m), dtype=torch.float64, device=device),
                "n_symbols": (_run_lengths(sym) > 0).sum(dim=-1).to(torch.float64),
                "clipped_fraction": clipped,
            },
        )
        if perms is not None:
            # (Y, Z[perm]): y_i paired with the symbol of z_perm(i).
            joint = (
                sym.gather(1, perms.reshape(batches, -1)).reshape(perms.shape) * n_classes
                + classes[:, None, :]
            )
            scores.null_yz = (h_t + h_y)[:, None] - _entropy_of_symbols(joint)
        return scores


# --------------------------------------------------------------------------- registry and benchmark


MI_ESTIMATORS: dict[str, type] = {
    RenyiEstimator.name: RenyiEstimator,
    KDEEstimator.name: KDEEstimator,
    BinningEstimator.name: BinningEstimator,
}
for _name, _cls in MI_ESTIMATORS.items():
    ESTIMATORS.register(_name)(_cls())
