"""Dependence between representations, inputs and labels, each value with its evidence.

For m samples, each representation is flattened to vectors a_1..a_m in R^d,
D_ij = ||a_i - a_j||^2.

Kernels (``KERNELS``) and bandwidth rules (``BANDWIDTHS``):
  - ``gaussian``: K_ij = exp(-D_ij / (2 s^2)) with the squared bandwidth s^2 from the rule
      ``fixed``          s^2 = sigma^2 d (the paper's rule, sigma = 5),
      ``median``         s^2 = med^2, med = the median of ||a_i - a_j|| over the pairs i < j (mean of
                         the two middle values for an even count; if that median is 0, the median
                         of the positive distances; sigma unused),
      ``median_scaled``  s^2 = (sigma med)^2.
    All samples equal under a median rule (med = 0): the kernel is all ones.
  - ``linear``: K = A A^T.
  - ``onehot``: K_ij = [y_i == y_j], the linear kernel on one-hot label vectors.

With H = I - 11^T/m and K~ = H K H, the estimators (``ESTIMATORS``) are
  - ``nocco`` (the paper's nHSIC, Fukumizu et al. 2008): R = K~ (K~ + eps m I)^-1,
    nHSIC(A; B) = tr(R_A R_B). In [0, m-1]; its scale depends on m and eps, so record them.
  - ``nocco_normalized``: tr(R_A R_B) / sqrt(tr(R_A^2) tr(R_B^2)), in [0, 1] (Cauchy-Schwarz), 1 for
    A = B: the scale-free companion of nocco (tr(R^2), the "ceiling", grows with the soft rank).
  - ``cka``: HSIC_b(K, L) / sqrt(HSIC_b(K, K) HSIC_b(L, L)) with the biased estimator
    HSIC_b(K, L) = tr(K~ L~) / (m-1)^2 (the (m-1)^2 cancels). In [0, 1].
  - ``cka_unbiased``: the same ratio with Song et al.'s (2012) unbiased estimator
    HSIC_u(K, L) = [tr(K^ L^) + 1^T K^ 1 1^T L^ 1 / ((m-1)(m-2)) - 2/(m-2) 1^T K^ L^ 1] / (m(m-3)),
    K^ = K with its diagonal set to 0 (= <U(K), U(L)> / (m(m-3)) with U the U-centering of Szekely
    & Rizzo 2014). Needs m >= 4; may be < 0.
A constant representation (all samples equal, so K~ = 0) scores 0 with every estimator.

The engine: ``measure_snapshot``
--------------------------------
cuts a snapshot's n samples into B = n // m consecutive batches of m (a trailing partial batch is
dropped) and works on (B, m, ...) stacks: batched GEMMs, batched centering, batched Cholesky,
batched traces; no Python loop over batches or samples. It returns one row per (layer, setting)
(``FRAME_COLUMNS``) with the value (mean over batches) and its evidence:
  - the permutation null: the same estimator on (X, Z_pi) and (Y, Z_pi), Z's samples shuffled by
    P permutations per batch (drawn once per call from a CPU ``torch.Generator`` seeded with
    ``seed``, shape (B, P, m), identical on every device, shared by every layer and setting);
    ``null_*_mean`` / ``null_*_std`` over all B P values, ``null_*_batch_mean_std`` the std over the P
    joint permutations of the batch-mean null (the distribution the p-value ranks the value in),
    ``excess_* = value - null mean``, and the
    permutation p-value of the reported value (the mean over batches): with the p-th joint
    permutation (pi_1p, ..., pi_Bp) of the batches, p = (1 + #{p: mean_b null_{b,p} >= mean_b
    value_b}) / (1 + P). Under independence the joint permutations leave the data's distribution
    unchanged, so this is an exact Monte-Carlo permutation test of the statistic that is reported,
    for any B (its smallest value is 1/(1 + P)). A null within 1e-12 (relative) of the value counts
    as >= (exact ties, e.g. an invariant permutation, are kept exact under rounding). (Pooling the
    per-batch counts instead, (1 + sum_b #{pi: null_{b,pi} >= value_b}) / (1 + P B), is exact only
    for B = 1: for B > 1 its null distribution piles up around 1/2 -- the mean of B independent
    uniform ranks -- so p < 0.05 almost never happens under independence: a test with 4 batches
    found it in 0 of 60 independent pairs instead of about 5%.)
  - for nocco: ``ceiling_zz`` = tr(R_Z^2) (nocco(Z;Z)), ``ceiling_xx``, ``ceiling_yy`` likewise.
  - scale diagnostics per layer: ``mean_sq_activation`` (mean of z^2), ``median_distance`` =
    median ||z_i - z_j|| / sqrt(d), ``bandwidth_ratio`` = median(D_ij) / (2 s^2) for a Gaussian Z
    kernel: << 1 means the kernel is in its near-linear regime, where nocco counts directions.
  Per-batch numbers are averaged over batches; ``*_std`` are population stds (ddof=0).
  Setting keys an estimator does not use are NaN/None in its row; ``unit`` is "" for this family.

The null without recomputation: permuting Z's samples permutes rows and columns of K_Z, K~_Z, K^_Z
and R_Z (H, the diagonal and the ridge commute with permutations), so a null value is
sum_ij A_ij M_{pi_i pi_j} for the reference's matrix A and Z's matrix M: a gather of M's upper
triangle at (pi_i, pi_j) (symmetry halves the work; the packed reference carries the factor 2
off the diagonal) and a batched dot, O(P m^2), no factorization. The cka_unbiased correction
1^T K^ P L^ P^T 1 needs the row sums of L^ gathered by pi, O(P m).

Settings and grids: a setting is a dict {"estimator", "kernel_x", "kernel_y", "kernel_z", "sigma",
"bandwidth", "epsilon"} (plus an estimator's own keys); ``expand_settings`` turns the config's
measurement section (lists allowed) into the distinct settings.

Estimator protocol (how another estimator plugs into the same engine, null, excess and p-value)
-------------------------------------------------------------------------------------------------
An estimator is an object registered in ``ESTIMATORS`` with
  ``name: str``, ``unit: str`` ("" | "bits" | "nats"; a callable(setting) or a "unit" setting key
      wins where the unit is configurable), ``setting_keys: tuple[str, ...]`` (the setting keys it
      may use; keys outside ``SETTING_KEYS`` become extra columns at the end of the frame),
  optional ``used_keys(setting) -> tuple`` (the keys this setting really uses; default
      ``setting_keys``), ``check_setting(setting)`` (raise ValueError naming a bad key),
      ``min_samples: int`` (default 2),
  ``reference_key(role, setting) -> Hashable``: role "x" or "y"; equal keys (of one estimator object)
      share one prepare() for the whole call, across layers and settings,
  ``prepare(data, role, setting) -> object``: data is the (B, m, d) stack of flattened inputs
      (role "x", storage dtype) or the (B, m) int64 label stack (role "y"),
  ``score(ref_x, ref_y, z, setting, perms) -> Scores``: z the (B, m, d) flattened layer (storage
      dtype, may be float16: compute in float64 where it matters), perms (B, P, m) int64 (row i of
      the permuted batch is sample perms[b, p, i]) or None; returns per-batch tensors
      ``Scores(value_xz (B,), value_yz (B,), null_xz (B, P) | None, null_yz (B, P) | None,
      extra: dict[str, (B,)])`` (None: no meaningful null; its null columns are NaN).
The engine does the batching, the permutations, caching of references, diagnostics, aggregation
(mean, std, null mean/std, excess, p-value) and the frame; extras other than the ceilings become
columns after ``FRAME_COLUMNS`` (NaN in other estimators' rows). The kernel family sets
``shares_geometry = True``: it receives ``Geometry`` objects (the stack plus its cached Gram
matrices, distances and kernels) instead of raw stacks and a ``Permutations`` object (its
``perms`` tensor plus the cached gather indices) instead of the tensor, so a layer's GEMM is done
once for every kernel setting and the diagnostics, and X's and Y's kernels are shared by all
kernel estimators (they share one reference key).

Numerics
--------
Samples are flattened and the batch's mean sample subtracted (distances do not change, and the
cancellation in ||a||^2 + ||b||^2 - 2 a.b shrinks); pairwise squared distances come from one GEMM,
clamped at 0. The Gaussian kernel's GEMM is float32 where it dominates the cost (d > m and input
not float64), else float64 (``_gemm_dtype``; ``gram_dtype`` overrides); the linear kernel's is
float64. Everything after the GEMM is float64. The engine keeps kernels shifted by constants and
by terms u_i + v_j, to which K~, U-centering and so every estimator are blind: the Gaussian kernel
as K - 1 = expm1(-D/(2 s^2)) (full relative precision when the kernel is nearly constant, the
fixed-sigma regime of small activations), the linear one as F F^T of the centered features F
(= K~ exactly). No m x m x d tensor is built.

R = K~ (K~ + eps m I)^-1 = I - eps m C^-1 with C = K~ + eps m I: one batched Cholesky factorization
C = L L^T (m^3/3 flops) and C^-1 from the factor (LAPACK potri, ``torch.cholesky_inverse``, 2m^3/3
flops, symmetric by construction). This is chosen over the Cholesky solve C R = K~ with m right-hand
sides (2m^3 flops): R is needed in full (for the gathered null, Y and the ceiling), and the
identity R = I - eps m C^-1 gives it at a third of the solve's cost (1 m^3 vs 2.33 m^3 in all). The
accuracy is the solve's: both have a forward error of order cond(C) u in R (cond(C) = (l_max + eps
m) / (eps m)), as C^-1's error, relative to ||C^-1|| = 1/(eps m), is multiplied by eps m
(``ridge_matrix(method="solve")`` keeps the solve; the tests compare both and the eigh form). If
the factorization fails for a batch member (tiny eps), only that member gets R = U diag(l / (l +
eps m)) U^T from the symmetric eigendecomposition K~ = U diag(l) U^T, l clamped at 0. Traces of
products of symmetric matrices are elementwise sums, tr(AB) = sum_ij A_ij B_ij.

Host syncs: one per Gram stack (finite check from the Gram diagonal), one per factorization
stack (which members need the eigh fallback), one for the median fallback of the median rules,
and one when the frame is built; none per batch or per value. Everything runs on ``device``
(``"auto"``: CUDA when available, else the CPU); no CUDA is assumed.
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from infoplane import runtime
from infoplane.registry import Registry

KERNELS: Registry = Registry("kernel")
ESTIMATORS: Registry = Registry("estimator")
BANDWIDTHS: Registry = Registry("bandwidth")

SETTING_KEYS = ("estimator", "kernel_x", "kernel_y", "kernel_z", "sigma", "bandwidth", "epsilon")
FRAME_COLUMNS = (
    "layer", "layer_name", "estimator", "kernel_x", "kernel_y", "kernel_z", "sigma", "bandwidth",
    "epsilon", "unit", "batch_size", "n_samples", "n_batches", "permutations",
    "value_xz", "value_xz_std", "null_xz_mean", "null_xz_std", "null_xz_batch_mean_std", "excess_xz", "p_xz",
    "value_yz", "value_yz_std", "null_yz_mean", "null_yz_std", "null_yz_batch_mean_std", "excess_yz", "p_yz",
    "ceiling_zz", "ceiling_xx", "ceiling_yy", "mean_sq_activation", "median_distance", "bandwidth_ratio",
)
_STRING_COLUMNS = ("layer_name", "estimator", "kernel_x", "kernel_y", "kernel_z", "bandwidth", "unit")
_INT_COLUMNS = ("layer", "batch_size", "n_samples", "n_batches", "permutations")
_EXTRA_COLUMNS = ("ceiling_zz", "ceiling_xx", "ceiling_yy")
TIE_TOLERANCE = 1e-12
# A null chunk gathers at most this many float64 entries at once (plus as many int32 indices).
NULL_CHUNK_ELEMENTS = 1 << 23
# The gather indices of all chunks are kept for the whole call when they total at most this many.
NULL_INDEX_CACHE_ELEMENTS = 1 << 24

# --------------------------------------------------------------------------- inputs


def resolve_device(device: str | torch.device | None, like: torch.Tensor | None = None) -> torch.device:
    """``"auto"``: CUDA if available else CPU; ``None``: the device of ``like`` (CPU without it)."""
    if device is None:
        return like.device if isinstance(like, torch.Tensor) else torch.device("cpu")
    return runtime.resolve_device(str(device))


def _as_tensor(a, name: str) -> torch.Tensor:
    """A torch view of a tensor / NumPy array / sequence, with at least one (sample) axis."""
    if isinstance(a, torch.Tensor):
        t = a
    elif isinstance(a, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(a))
    else:
        try:
            t = torch.as_tensor(np.asarray(a))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a torch tensor or NumPy array, got {type(a).__name__}") from err
    if t.ndim == 0:
        raise ValueError(f"{name} must have a sample axis (shape (m, ...)), got a scalar")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be real numbers or integers, got dtype {t.dtype}")
    return t


def _check_labels(t: torch.Tensor, name: str, num_classes: int | None) -> None:
    if t.ndim != 1 or t.is_floating_point():
        raise ValueError(
            f"{name} must be a 1-D integer label vector (class indices 0..C-1), "
            f"got dtype {t.dtype} and shape {tuple(t.shape)}"
        )
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} has negative labels; labels must be 0..num_classes-1")
    if num_classes is not None and t.numel() and int(t.max()) >= num_classes:
        raise ValueError(f"{name} has label {int(t.max())} >= num_classes={num_classes}")


def _positive(value, key: str) -> float:
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{key} must be a positive number, got {value!r}")
    return float(value)


def _warn_low_precision_matmul(device: torch.device) -> None:
    if device.type == "cuda" and torch.get_float32_matmul_precision() != "highest":
        warnings.warn(
            "float32 matmuls run in reduced precision (TF32/bf16); nHSIC kernels lose about 1e-3 "
            "relative accuracy. Call torch.set_float32_matmul_precision('highest') first.",
            stacklevel=3,
        )


# --------------------------------------------------------------------------- geometry


def _gemm_dtype(dtype: torch.dtype, m: int, d: int) -> torch.dtype:
    """float32 only where the GEMM dominates the cost (d > m, non-float64 input), else float64.

    For d <= m the float64 GEMM costs no more than the O(m^3) float64 solve, and low-dimensional
    (smooth, fast-decaying) kernels are where float32 distances move nocco most (~1e-5)."""
    return torch.float64 if dtype == torch.float64 or d <= m else torch.float32


def _bdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum over all but the first axis of a * b, (B,): one batched BLAS dot, no temporary."""
    n = a.shape[0]
    return torch.bmm(a.reshape(n, 1, -1), b.reshape(n, -1, 1)).reshape(n)


class Geometry:
    """One (B, m, d) sample stack and what is derived from its pairwise geometry, computed once.

    Gram matrices (per GEMM dtype), squared distances, medians and kernels are cached, so every
    kernel setting and the diagnostics of a layer share one GEMM. ``name`` names the data in errors."""

    def __init__(self, data: torch.Tensor, name: str, *, gram_dtype: torch.dtype | None = None) -> None:
        if data.ndim == 2:
            data = data.unsqueeze(-1)
        self.data = data
        self.name = name
        self.batches, self.m, self.dim = data.shape
        self.gram_dtype = gram_dtype
        self._inner: dict[torch.dtype, torch.Tensor] = {}
        self._sq_distances: dict[torch.dtype, torch.Tensor] = {}
        self._kernels: dict[tuple, KernelStack] = {}
        self._sq_norm_sum: dict[torch.dtype, torch.Tensor] = {}

    @property
    def distance_dtype(self) -> torch.dtype:
        """The GEMM dtype of the distances (Gaussian kernels and diagnostics)."""
        return self.gram_dtype or _gemm_dtype(self.data.dtype, self.m, self.dim)

    @property
    def labels(self) -> torch.Tensor:
        """The (B, m) integer labels this stack holds (the onehot kernel's input)."""
        if self.dim != 1 or self.data.is_floating_point():
            raise ValueError(
                f"the onehot kernel needs {self.name} to be a 1-D integer label vector (class indices), "
                f"got dtype {self.data.dtype} and {self.dim} features per sample"
            )
        return self.data[..., 0]

    def features(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, m, d) samples minus their batch mean, in dtype, and that mean (B, 1, d).

        Distances do not change, and the cancellation in ||a||^2 + ||b||^2 - 2 a.b shrinks (a common
        offset, e.g. after a ReLU, goes): measured 10-25x closer to a float64 GEMM than without."""
        if self.data.dtype == dtype:
            mean = self.data.mean(dim=1, keepdim=True)
            return self.data - mean, mean
        f = self.data.to(dtype)
        mean = f.mean(dim=1, keepdim=True)
        return f.sub_(mean), mean

    def inner(self, dtype: torch.dtype) -> torch.Tensor:
        """(B, m, m) float64 F F^T of the centered features from one batched GEMM in dtype.

        NaN/Inf anywhere in a sample makes its squared norm non-finite: checked here (one sync)."""
        if dtype not in self._inner:
            f, mean = self.features(dtype)
            g = torch.matmul(f, f.mT).to(torch.float64)
            if not bool(torch.isfinite(g.diagonal(dim1=-2, dim2=-1)).all()):
                raise ValueError(f"{self.name} contains NaN or Inf values (or values whose squares overflow "
                                 f"{dtype}); the estimators need finite inputs")
            # sum_i ||a_i||^2 per batch = sum_i ||a_i - mu||^2 + m ||mu||^2, for mean_sq_activation
            self._sq_norm_sum[dtype] = g.diagonal(dim1=-2, dim2=-1).sum(-1) + self.m * mean.double().square().sum((-1, -2))
            self._inner[dtype] = g
        return self._inner[dtype]

    def sq_distances(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(B, m, m) float64 ||a_i - a_j||^2 = n_i + n_j - 2 g_ij, clamped at 0, zero diagonal."""
        dtype = dtype or self.distance_dtype
        if dtype not in self._sq_distances:
            g = self.inner(dtype)
            if dtype != (self.gram_dtype or torch.float64):
                # no linear kernel reads this Gram (it uses float64): overwrite it in place
                d2 = self._inner.pop(dtype)
                n = d2.diagonal(dim1=-2, dim2=-1).clone()
                d2.mul_(-2.0)
            else:
                n = g.diagonal(dim1=-2, dim2=-1)
                d2 = g.mul(-2.0)
            d2.add_(n[:, :, None]).add_(n[:, None, :]).clamp_min_(0.0)
            d2.diagonal(dim1=-2, dim2=-1).zero_()
            self._sq_distances[dtype] = d2
        return self._sq_distances[dtype]

    @cached_property
    def _pair_values(self) -> torch.Tensor:
        """(B, m(m-1)/2) squared distances over the pairs i < j."""
        iu = torch.triu_indices(self.m, self.m, offset=1, device=self.data.device)
        return self.sq_distances()[:, iu[0], iu[1]]

    @cached_property
    def _middle_sq_distances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The two middle order statistics of D over the pairs (equal for an odd count), (B,) each."""
        values = self._pair_values
        n = values.shape[1]
        if n == 0:
            zero = torch.zeros(self.batches, dtype=torch.float64, device=values.device)
            return zero, zero
        # the k = n//2 + 1 smallest (unsorted; one selection pass): hi is their largest, lo the next
        smallest = values.topk(n // 2 + 1, dim=1, largest=False, sorted=False).values
        if n % 2:
            hi = smallest.amax(dim=1)
            return hi, hi
        top2 = smallest.topk(2, dim=1).values if smallest.shape[1] > 1 else smallest.expand(-1, 2)
        return top2[:, 1], top2[:, 0]

    @cached_property
    def median_sq_distance(self) -> torch.Tensor:
        """(B,) median of D_ij over the pairs i < j."""
        lo, hi = self._middle_sq_distances
        return (lo + hi) / 2

    @cached_property
    def median_distance(self) -> torch.Tensor:
        """(B,) median of ||a_i - a_j|| over the pairs i < j (mean of the two middle values)."""
        lo, hi = self._middle_sq_distances
        return (lo.sqrt() + hi.sqrt()) / 2

    @cached_property
    def median_bandwidth(self) -> torch.Tensor:
        """(B,) the median distance, or, where it is 0, the median of the positive distances
        (0 when all samples coincide). One sync to see whether any batch needs the fallback."""
        med = self.median_distance
        zero = med == 0
        if not bool(zero.any()):
            return med
        values = self._pair_values.sort(dim=1).values
        n = values.shape[1]
        n_zero = (values == 0).sum(dim=1)
        n_pos = n - n_zero
        lo = (n_zero + (n_pos - 1).clamp_min(0) // 2).clamp_max(n - 1)
        hi = (n_zero + n_pos // 2).clamp_max(n - 1)
        pos = (values.gather(1, lo[:, None]).sqrt() + values.gather(1, hi[:, None]).sqrt()).squeeze(1) / 2
        pos = torch.where(n_pos > 0, pos, torch.zeros_like(pos))
        return torch.where(zero, pos, med)

    @cached_property
    def mean_sq_activation(self) -> torch.Tensor:
        """(B,) mean of a^2 over the batch's samples and dimensions, from the Gram diagonal and the
        mean sample: sum_i ||a_i||^2 = sum_i ||a_i - mu||^2 + m ||mu||^2 (no pass over the data)."""
        dtype = self.distance_dtype
        if dtype not in self._sq_norm_sum:  # kept when sq_distances has taken over the Gram itself
            self.inner(dtype)
        return self._sq_norm_sum[dtype] / (self.m * self.dim)

    def kernel(self, kernel: str, *, sigma: float | None = None, bandwidth: str | None = None,
               num_classes: int | None = None) -> KernelStack:
        """The KernelStack of this data under a kernel setting, built once per setting."""
        key = _kernel_key(kernel, sigma, bandwidth)
        if key not in self._kernels:
            self._kernels[key] = KERNELS.get(kernel)(self, sigma=sigma, bandwidth=bandwidth, num_classes=num_classes)
        return self._kernels[key]


def _kernel_key(kernel: str, sigma: float | None, bandwidth: str | None) -> tuple:
    """What a kernel depends on: (kernel,), plus (bandwidth, sigma where the rule uses it) for Gaussians."""
    if kernel != "gaussian":
        return (kernel,)
    return (kernel, bandwidth, sigma if BANDWIDTHS.meta(bandwidth)["uses_sigma"] else None)


# --------------------------------------------------------------------------- bandwidths


@BANDWIDTHS.register("fixed", uses_sigma=True)
def fixed_bandwidth(geometry: Geometry, sigma: float) -> torch.Tensor:
    """s^2 = sigma^2 d: exp(-D / (2 sigma^2 d)), the paper's rule."""
    return torch.full((geometry.batches,), sigma**2 * geometry.dim, dtype=torch.float64, device=geometry.data.device)


@BANDWIDTHS.register("median", uses_sigma=False)
def median_bandwidth(geometry: Geometry, sigma: float | None) -> torch.Tensor:
    """s^2 = med^2, med the median pairwise distance of the batch (positive fallback)."""
    return geometry.median_bandwidth.square()


@BANDWIDTHS.register("median_scaled", uses_sigma=True)
def median_scaled_bandwidth(geometry: Geometry, sigma: float) -> torch.Tensor:
    """s^2 = (sigma med)^2."""
    return geometry.median_bandwidth.square() * sigma**2


# --------------------------------------------------------------------------- kernels


class KernelStack:
    """A (B, m, m) stack of one kernel, prepared for every estimator and cached.

    ``base`` is the kernel up to constants and terms u_i + v_j (see the module docstring); K~, the
    U-centering terms, R(eps), tr(R^2) and the packed references of the null are computed on first
    use, so a kernel compared with many others (X and Y against every layer) is prepared once."""

    def __init__(self, base: torch.Tensor, *, centered: bool = False, sq_bandwidth: torch.Tensor | None = None) -> None:
        if base.ndim != 3 or base.shape[1] != base.shape[2]:
            raise ValueError(f"a kernel stack must have shape (B, m, m), got {tuple(base.shape)}")
        self.base = base
        self.batches, self.m = base.shape[0], base.shape[1]
        self.sq_bandwidth = sq_bandwidth
        flat = base.reshape(self.batches, -1)
        self.constant = flat.amax(dim=1) == flat.amin(dim=1)  # every entry equal: K~ = 0 (amax, amin: 2x aminmax)
        self._centered = base if centered else None
        self._ridge: dict[float, torch.Tensor] = {}
        self._ridge_sq: dict[float, torch.Tensor] = {}
        self._packed: dict[tuple, torch.Tensor] = {}
        self._null_dots: dict[tuple, torch.Tensor] = {}

    @property
    def centered(self) -> torch.Tensor:
        """K~ = H K H (K symmetric: row means = column means)."""
        if self._centered is None:
            row = self.base.mean(dim=2)
            shifted = row - row.mean(dim=1, keepdim=True) / 2  # r_i - t/2: K~ = K - (r_i - t/2) - (r_j - t/2)
            self._centered = (self.base - shifted[:, :, None]).sub_(shifted[:, None, :])
        return self._centered

    @cached_property
    def hs(self) -> torch.Tensor:
        """(B,) tr(K~ K~)."""
        return _bdot(self.centered, self.centered)

    def ridge(self, epsilon: float) -> torch.Tensor:
        """(B, m, m) R = K~ (K~ + eps m I)^-1 (``ridge_matrix``), once per epsilon."""
        if epsilon not in self._ridge:
            self._ridge[epsilon] = ridge_matrix(self.centered, epsilon)
        return self._ridge[epsilon]

    def ridge_sq(self, epsilon: float) -> torch.Tensor:
        """(B,) tr(R^2) = nocco of the kernel with itself, 0 for a constant kernel."""
        if epsilon not in self._ridge_sq:
            r = self.ridge(epsilon)
            self._ridge_sq[epsilon] = torch.where(self.constant, 0.0, _bdot(r, r))
        return self._ridge_sq[epsilon]

    @cached_property
    def diag(self) -> torch.Tensor:
        return self.base.diagonal(dim1=-2, dim2=-1)

    @cached_property
    def offdiag_rows(self) -> torch.Tensor:
        """(B, m) row sums of K^ (K with a zero diagonal)."""
        return self.base.sum(dim=2) - self.diag

    @cached_property
    def offdiag_total(self) -> torch.Tensor:
        """(B,) 1^T K^ 1."""
        return self.offdiag_rows.sum(dim=1)

    @cached_property
    def unbiased_self(self) -> torch.Tensor:
        """(B,) m(m-3) HSIC_u(K, K) = <U(K), U(K)> >= 0 (clamped: rounding can dip below 0)."""
        return unbiased_numerator(self, self).clamp_min(0.0)

    def packed(self, what: str, epsilon: float | None = None) -> torch.Tensor:
        """(B, T) upper triangle (diagonal included) of ``what`` ("ridge", "centered" or "offdiag":
        K^), off-diagonal entries doubled: sum_t packed_t M_t = sum_ij A_ij M_ij for symmetric M."""
        key = (what, epsilon)
        if key not in self._packed:
            matrix = {"ridge": lambda: self.ridge(epsilon), "centered": lambda: self.centered,
                      "offdiag": lambda: self.base}[what]()
            iu = torch.triu_indices(self.m, self.m, device=matrix.device)
            weight = torch.where(iu[0] == iu[1], 0.0 if what == "offdiag" else 1.0, 2.0).to(matrix.dtype)
            self._packed[key] = matrix[:, iu[0], iu[1]] * weight
        return self._packed[key]

    def null_dots(self, what: str, epsilon: float | None, refs: Sequence[KernelStack],
                  perms: Permutations) -> torch.Tensor:
        """(B, P, len(refs)) sum_ij A_ij M_{pi_i pi_j} of this (Z's) matrix ``what`` gathered by every
        permutation, against each reference's matrix A; cached (nocco and nocco_normalized share it)."""
        key = (what, epsilon, tuple(id(r) for r in refs), id(perms))
        if key not in self._null_dots:
            matrix = {"ridge": lambda: self.ridge(epsilon), "centered": lambda: self.centered,
                      "offdiag": lambda: self.base}[what]()
            packed = torch.stack([r.packed(what, epsilon) for r in refs], dim=1)  # (B, k, T)
            self._null_dots[key] = perms.dots(matrix, packed)
        return self._null_dots[key]


def unbiased_numerator(a: KernelStack, b: KernelStack) -> torch.Tensor:
    """(B,) m(m-3) HSIC_u(K, L) = tr(K^ L^) + 1^T K^ 1 1^T L^ 1 / ((m-1)(m-2)) - 2/(m-2) 1^T K^ L^ 1."""
    m = a.m
    trace = _bdot(a.base, b.base) - (a.diag * b.diag).sum(dim=1)
    rows = (a.offdiag_rows * b.offdiag_rows).sum(dim=1)
    return trace + a.offdiag_total * b.offdiag_total / ((m - 1) * (m - 2)) - 2.0 / (m - 2) * rows


@KERNELS.register("gaussian")
def gaussian_kernel(geometry: Geometry, *, sigma: float | None = 5.0, bandwidth: str = "fixed", **_) -> KernelStack:
    """exp(-D / (2 s^2)) - 1 with s^2 from ``BANDWIDTHS[bandwidth]``; all ones (base 0) where s = 0."""
    sq_bandwidth = BANDWIDTHS.get(bandwidth)(geometry, sigma)
    scale = torch.where(sq_bandwidth > 0, -0.5 / sq_bandwidth, 0.0)
    base = geometry.sq_distances().mul(scale[:, None, None]).expm1_()
    return KernelStack(base, sq_bandwidth=sq_bandwidth)


@KERNELS.register("linear")
def linear_kernel(geometry: Geometry, **_) -> KernelStack:
    """F F^T with F the centered features, = H A A^T H, from a float64 GEMM (unless ``gram_dtype``).

    float64: the linear kernel is not scaled down like the Gaussian one, so for d < m float32
    rounding fills its null space with eigenvalues comparable to eps m and moves nocco ~1e-4."""
    return KernelStack(geometry.inner(geometry.gram_dtype or torch.float64), centered=True)


@KERNELS.register("onehot")
def onehot_kernel(geometry: Geometry, *, num_classes: int | None = None, **_) -> KernelStack:
    """[y_i == y_j]: the linear kernel on one-hot label vectors (num_classes only validates)."""
    labels = geometry.labels
    return KernelStack((labels[:, :, None] == labels[:, None, :]).to(torch.float64))


def _geometry(t: torch.Tensor, name: str, device: torch.device, gram_dtype: torch.dtype | None) -> Geometry:
    return Geometry(t.to(device).reshape(1, t.shape[0], -1), name, gram_dtype=gram_dtype)


@torch.no_grad()
def gram(a, kernel: str = "gaussian", sigma: float = 5.0, bandwidth: str = "fixed", *,
         num_classes: int | None = None, gram_dtype: torch.dtype | None = None,
         device: str | torch.device | None = None) -> torch.Tensor:
    """The m x m kernel matrix K (float64 torch tensor) of the samples a (m, ...) or labels (m,).

    See the module docstring for the formulas; ``device=None`` keeps a tensor's own device."""
    _check_kernel_args([kernel], sigma, bandwidth)
    t = _as_tensor(a, "a")
    if kernel == "onehot":
        _check_labels(t, "the labels", num_classes)
    dev = resolve_device(device, t)
    _warn_low_precision_matmul(dev)
    geometry = _geometry(t, "a", dev, gram_dtype)
    stack = geometry.kernel(kernel, sigma=sigma, bandwidth=bandwidth, num_classes=num_classes)
    if kernel == "gaussian":
        return stack.base[0] + 1.0
    if kernel == "linear":  # F F^T + (F mu) 1^T + 1 (F mu)^T + ||mu||^2
        f, mean = geometry.features(gram_dtype or torch.float64)
        fm = (f.double() @ mean.double().mT)[0, :, 0]
        return stack.base[0] + fm[:, None] + fm[None, :] + float(mean.double().square().sum())
    return stack.base[0]


# --------------------------------------------------------------------------- ridge


def ridge_matrix(centered: torch.Tensor, epsilon: float, method: str = "cholesky") -> torch.Tensor:
    """R = K~ (K~ + eps m I)^-1 of a (m, m) or (B, m, m) centered kernel, float64.

    ``cholesky`` (the engine's): batched Cholesky C = K~ + eps m I = L L^T, R = I - eps m C^-1 with
    C^-1 from the factor (potri), 1 m^3 flops in all; ``solve``: the Cholesky solve C R = K~ with m
    right-hand sides, 2.33 m^3; ``eigh``: R = U diag(l / (l + eps m)) U^T, l clamped at 0. For the
    Cholesky methods, batch members whose factorization fails (not numerically positive definite)
    get the eigh form; one sync to find them."""
    if method not in ("cholesky", "solve", "eigh"):
        raise ValueError(f"method must be 'cholesky', 'solve' or 'eigh', got {method!r}")
    single = centered.ndim == 2
    k = centered.unsqueeze(0) if single else centered
    shift = epsilon * k.shape[-1]
    if method == "eigh":
        r = _ridge_eigh(k, shift)
    else:
        shifted = k.clone()
        shifted.diagonal(dim1=-2, dim2=-1).add_(shift)
        factor, info = torch.linalg.cholesky_ex(shifted)
        del shifted
        failed = info != 0
        any_failed = bool(failed.any())
        if any_failed:  # a partial factor must not reach potri / the solve
            eye = torch.eye(k.shape[-1], dtype=factor.dtype, device=factor.device)
            factor = torch.where(failed[:, None, None], eye, factor)
        if method == "solve":
            r = torch.cholesky_solve(k, factor)
        else:
            r = torch.cholesky_inverse(factor).mul_(-shift)
            r.diagonal(dim1=-2, dim2=-1).add_(1.0)
        if r.mT.is_contiguous():  # LAPACK's column-major output: R is symmetric, so R^T is R, row-major
            r = r.mT
        if any_failed:
            idx = failed.nonzero().squeeze(1)
            r[idx] = _ridge_eigh(k[idx], shift)
    return r[0] if single else r


def _ridge_eigh(k: torch.Tensor, shift: float) -> torch.Tensor:
    lam, vec = torch.linalg.eigh(k)
    lam = lam.clamp_min(0.0)
    half = vec * (lam / (lam + shift)).sqrt()[:, None, :]
    return half @ half.mT


# --------------------------------------------------------------------------- permutations


class Permutations:
    """P permutations per batch, (B, P, m) int64, and the gathers of the null.

    Row i of a permuted batch is sample perms[b, p, i], so a kernel matrix M of Z becomes
    M_perm[i, j] = M[pi_i, pi_j]."""

    def __init__(self, perms: torch.Tensor) -> None:
        if perms.ndim != 3:
            raise ValueError(f"permutations must have shape (B, P, m), got {tuple(perms.shape)}")
        self.perms = perms
        self.batches, self.count, self.m = perms.shape
        self.triangle = self.m * (self.m + 1) // 2
        self.chunk = max(1, NULL_CHUNK_ELEMENTS // max(1, self.batches * self.triangle))
        self._index_cache: dict[int, torch.Tensor] | None = (
            {} if self.batches * self.count * self.triangle <= NULL_INDEX_CACHE_ELEMENTS else None)

    @classmethod
    def draw(cls, batches: int, count: int, m: int, seed: int, device: torch.device) -> Permutations:
        """Independent uniform permutations per batch from a CPU generator: identical on every device."""
        gen = torch.Generator().manual_seed(int(seed))
        keys = torch.rand((batches, count, m), generator=gen, dtype=torch.float64)
        return cls(keys.argsort(dim=-1).to(device))

    def _index(self, start: int) -> torch.Tensor:
        """Flat indices b m^2 + pi_i m + pi_j of the upper triangle (i <= j) for one chunk of permutations,
        (B * Pc * T,), int32 where B m^2 fits (index_select reads int32 about twice as fast as gather
        reads int64 indices)."""
        if self._index_cache is not None and start in self._index_cache:
            return self._index_cache[start]
        m = self.m
        dtype = torch.int32 if self.batches * m * m < 2**31 else torch.int64
        p = self.perms[:, start:start + self.chunk].to(dtype)
        iu = torch.triu_indices(m, m, device=p.device)
        offset = (torch.arange(self.batches, device=p.device, dtype=dtype) * (m * m))[:, None, None]
        index = (p * m + offset).index_select(2, iu[0]).add_(p.index_select(2, iu[1])).reshape(-1)
        if self._index_cache is not None:
            self._index_cache[start] = index
        return index

    def dots(self, matrix: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        """(B, P, k): sum_{i<=j} packed[b, k, t(i,j)] matrix[b, pi_i, pi_j] for every permutation.

        ``packed`` is (B, k, T); the product is taken as packed @ gathered^T (B, k, Pc), which BLAS runs
        ~2.5x faster than gathered @ packed^T for these shapes (k = 2 columns)."""
        flat = matrix.reshape(-1)
        out = []
        for start in range(0, self.count, self.chunk):
            stop = min(start + self.chunk, self.count)
            gathered = flat.index_select(0, self._index(start)).view(self.batches, stop - start, self.triangle)
            out.append(torch.bmm(packed, gathered.mT))
        return (out[0] if len(out) == 1 else torch.cat(out, dim=2)).mT

    def gather(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, P, m) vectors[b, pi_i] of (B, m) per-sample numbers."""
        return vectors.gather(1, self.perms.reshape(self.batches, -1)).view(self.batches, self.count, self.m)


# --------------------------------------------------------------------------- estimators


@dataclass
class Scores:
    """Per-batch results of one estimator on one layer: values (B,), nulls (B, P) or None, extras (B,)."""

    value_xz: torch.Tensor
    value_yz: torch.Tensor
    null_xz: torch.Tensor | None = None
    null_yz: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


class KernelEstimator:
    """The HSIC family: a ratio num(A, Z) / den(A, Z) of traces of kernel matrices, 0 where a kernel is
    constant (or the denominator is 0). Subclasses say which matrix is dotted and how it is normalized."""

    name = ""
    unit = ""
    shares_geometry = True
    min_samples = 2
    uses_epsilon = True
    matrix = "ridge"  # what KernelStack.packed / null_dots gather

    @property
    def setting_keys(self) -> tuple[str, ...]:
        keys = ("kernel_x", "kernel_y", "kernel_z", "bandwidth", "sigma")
        return keys + ("epsilon",) if self.uses_epsilon else keys

    def used_keys(self, setting: Mapping) -> tuple[str, ...]:
        """Kernels always; bandwidth if a kernel is Gaussian; sigma if that rule uses it; epsilon (ridge)."""
        keys = ["kernel_x", "kernel_y", "kernel_z"]
        if "gaussian" in (setting.get("kernel_x"), setting.get("kernel_y"), setting.get("kernel_z")):
            keys.append("bandwidth")
            bandwidth = setting.get("bandwidth")
            if bandwidth not in BANDWIDTHS or BANDWIDTHS.meta(bandwidth)["uses_sigma"]:
                keys.append("sigma")
        if self.uses_epsilon:
            keys.append("epsilon")
        return tuple(keys)

    def reference_key(self, role: str, setting: Mapping) -> Hashable:
        """Shared by every kernel estimator: the prepared KernelStack caches what each one needs."""
        kernel = setting[f"kernel_{role}"]
        return ("kernel", role, _kernel_key(kernel, setting.get("sigma"), setting.get("bandwidth")))

    @staticmethod
    def kernel_of(geometry: Geometry, role: str, setting: Mapping, num_classes: int | None = None) -> KernelStack:
        return geometry.kernel(setting[f"kernel_{role}"], sigma=setting.get("sigma"),
                               bandwidth=setting.get("bandwidth"), num_classes=num_classes)

    def prepare(self, data: Geometry, role: str, setting: Mapping) -> KernelStack:
        return self.kernel_of(data, role, setting)

    # the family's arithmetic ------------------------------------------------------------------
    def numerator(self, a: KernelStack, z: KernelStack, setting: Mapping) -> torch.Tensor:
        raise NotImplementedError

    def denominator(self, a: KernelStack, z: KernelStack, setting: Mapping) -> torch.Tensor | None:
        return None

    def null_numerators(self, refs: Sequence[KernelStack], z: KernelStack, setting: Mapping,
                        perms: Permutations) -> torch.Tensor:
        """(B, P, len(refs)): the numerator with Z permuted, by gathering Z's matrix."""
        return z.null_dots(self.matrix, self._epsilon(setting), refs, perms)

    def _epsilon(self, setting: Mapping) -> float | None:
        return setting["epsilon"] if self.uses_epsilon else None

    def _finish(self, num: torch.Tensor, a: KernelStack, z: KernelStack, setting: Mapping) -> torch.Tensor:
        """num / den with 0 where a kernel is constant or den = 0; num (B,) or (B, P)."""
        den = self.denominator(a, z, setting)
        dead = a.constant | z.constant
        if den is not None:
            dead = dead | (den == 0)
            num = num / torch.where(den == 0, 1.0, den).reshape(-1, *([1] * (num.ndim - 1)))
        return torch.where(dead.reshape(-1, *([1] * (num.ndim - 1))), 0.0, num)

    def pair(self, a: KernelStack, z: KernelStack, setting: Mapping) -> torch.Tensor:
        """(B,) the estimate between two prepared kernel stacks."""
        return self._finish(self.numerator(a, z, setting), a, z, setting)

    def extras(self, ref_x: KernelStack, ref_y: KernelStack, z: KernelStack, setting: Mapping) -> dict:
        return {}

    def score(self, ref_x: KernelStack, ref_y: KernelStack, z: Geometry, setting: Mapping,
              perms: Permutations | None) -> Scores:
        kz = self.kernel_of(z, "z", setting)
        scores = Scores(self.pair(ref_x, kz, setting), self.pair(ref_y, kz, setting),
                        extra=self.extras(ref_x, ref_y, kz, setting))
        if perms is not None:
            nulls = self.null_numerators([ref_x, ref_y], kz, setting, perms)
            scores.null_xz = self._finish(nulls[..., 0], ref_x, kz, setting)
            scores.null_yz = self._finish(nulls[..., 1], ref_y, kz, setting)
        return scores


class Nocco(KernelEstimator):
    """tr(R_A R_B), R = K~(K~ + eps m I)^-1; rows carry the ceilings tr(R^2) of Z, X and Y."""

    name = "nocco"

    def numerator(self, a, z, setting):
        eps = setting["epsilon"]
        return _bdot(a.ridge(eps), z.ridge(eps))

    def extras(self, ref_x, ref_y, z, setting):
        eps = setting["epsilon"]
        return {"ceiling_zz": z.ridge_sq(eps), "ceiling_xx": ref_x.ridge_sq(eps), "ceiling_yy": ref_y.ridge_sq(eps)}


class NoccoNormalized(Nocco):
    """tr(R_A R_B) / sqrt(tr(R_A^2) tr(R_B^2)) in [0, 1]."""

    name = "nocco_normalized"

    def denominator(self, a, z, setting):
        eps = setting["epsilon"]
        return (a.ridge_sq(eps) * z.ridge_sq(eps)).sqrt()

    def extras(self, ref_x, ref_y, z, setting):
        return {}


class Cka(KernelEstimator):
    """tr(K~ L~) / sqrt(tr(K~ K~) tr(L~ L~))."""

    name = "cka"
    uses_epsilon = False
    matrix = "centered"

    def numerator(self, a, z, setting):
        return _bdot(a.centered, z.centered)

    def denominator(self, a, z, setting):
        return (a.hs * z.hs).sqrt()


class CkaUnbiased(KernelEstimator):
    """HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L)), from the zero-diagonal kernels and row sums."""

    name = "cka_unbiased"
    uses_epsilon = False
    min_samples = 4
    matrix = "offdiag"

    def numerator(self, a, z, setting):
        return unbiased_numerator(a, z)

    def denominator(self, a, z, setting):
        return (a.unbiased_self * z.unbiased_self).sqrt()

    def null_numerators(self, refs, z, setting, perms):
        """tr(K^ P L^ P^T) by the gather; 1^T K^ P L^ P^T 1 = <rows_K, rows_L[pi]> by a vector gather."""
        m = z.m
        traces = z.null_dots("offdiag", None, refs, perms)
        ref_rows = torch.stack([r.offdiag_rows for r in refs], dim=-1)  # (B, m, k)
        rows = torch.bmm(perms.gather(z.offdiag_rows), ref_rows)  # (B, P, k)
        totals = torch.stack([r.offdiag_total for r in refs], dim=-1)[:, None, :] * z.offdiag_total[:, None, None]
        return traces + totals / ((m - 1) * (m - 2)) - 2.0 / (m - 2) * rows


for _estimator in (Nocco(), NoccoNormalized(), Cka(), CkaUnbiased()):
    ESTIMATORS.register(_estimator.name)(_estimator)


# --------------------------------------------------------------------------- settings


def _estimator_used_keys(estimator, setting: Mapping) -> tuple[str, ...]:
    used = getattr(estimator, "used_keys", None)
    return tuple(used(setting)) if used is not None else tuple(estimator.setting_keys)


def _check_kernel_args(kernels: Sequence[str], sigma, bandwidth, epsilon=None) -> None:
    for k in kernels:
        KERNELS.get(k)  # KeyError listing the allowed names
    if "gaussian" in kernels:
        if bandwidth not in BANDWIDTHS:
            raise ValueError(f"bandwidth must be one of {', '.join(BANDWIDTHS.names())}, got {bandwidth!r}")
        if BANDWIDTHS.meta(bandwidth)["uses_sigma"]:
            _positive(sigma, "sigma")
    if epsilon is not None:
        _positive(epsilon, "epsilon")


def normalize_setting(setting: Mapping) -> dict:
    """The setting with every key checked: the keys its estimator uses must be valid, the others
    of ``SETTING_KEYS`` become None. Raises KeyError/ValueError naming the key and what is allowed."""
    if not isinstance(setting, Mapping) or "estimator" not in setting:
        raise ValueError(f"a setting must be a dict with an 'estimator' key, got {setting!r}")
    est = ESTIMATORS.get(setting["estimator"])
    for key in ("kernel_x", "kernel_y", "kernel_z"):
        if key in est.setting_keys and setting.get(key) not in KERNELS:
            raise KeyError(f"setting {key}={setting.get(key)!r}: unknown kernel; allowed: {', '.join(KERNELS.names())}")
    if "bandwidth" in _estimator_used_keys(est, setting) and setting.get("bandwidth") not in BANDWIDTHS:
        raise ValueError(f"setting bandwidth={setting.get('bandwidth')!r}: unknown bandwidth rule; "
                         f"allowed: {', '.join(BANDWIDTHS.names())}")
    used = _estimator_used_keys(est, setting)
    missing = [k for k in used if setting.get(k) is None]
    if missing:
        raise ValueError(f"setting for estimator {setting['estimator']!r} lacks {', '.join(missing)}")
    out = {"estimator": setting["estimator"]}
    for key in SETTING_KEYS[1:]:
        out[key] = setting[key] if key in used else None
    for key in ("sigma", "epsilon"):
        if out[key] is not None:
            out[key] = _positive(out[key], key)
    for key in used:
        if key not in SETTING_KEYS:
            out[key] = setting[key]
    check = getattr(est, "check_setting", None)
    if check is not None:
        check(out)
    return out


def expand_settings(section: Mapping) -> list[dict]:
    """The distinct settings of a measurement section: ``estimators: [...]`` and, for each key an
    estimator uses, a value or a list (``sigma``, ``epsilon``, ``bandwidth``, kernels, an estimator's
    own keys). Every combination is its own setting, over the keys a setting uses only (cka does
    not multiply by the epsilon list; sigma does not multiply ``median``). Order: estimators as
    listed, then the product in each estimator's key order with the first value of every list
    first, so the first setting of each estimator takes every list's first value."""
    if not isinstance(section, Mapping):
        raise ValueError(f"the measurement section must be a mapping, got {type(section).__name__}")
    names = section.get("estimators")
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError("the measurement section needs 'estimators': a non-empty list; allowed: "
                         + ", ".join(ESTIMATORS.names()))
    out: list[dict] = []
    seen: set = set()
    for name in names:
        est = ESTIMATORS.get(name)
        keys = list(est.setting_keys)
        lists = []
        for key in keys:
            value = section.get(key)
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            if not values:
                raise ValueError(f"measurement {key} is an empty list; give at least one value")
            lists.append(values)
        for combo in itertools.product(*lists):
            raw = {"estimator": name, **dict(zip(keys, combo))}
            setting = normalize_setting(raw)
            ident = tuple(sorted((k, repr(v)) for k, v in setting.items()))
            if ident not in seen:
                seen.add(ident)
                out.append(setting)
    return out


# --------------------------------------------------------------------------- the engine


def _layer_list(layers, layer_names) -> tuple[list[str], list]:
    if isinstance(layers, Mapping):
        names, zs = [str(k) for k in layers], list(layers.values())
    else:
        zs = list(layers)
        names = [str(i) for i in range(len(zs))]
    if layer_names is not None:
        if len(layer_names) != len(zs):
            raise ValueError(f"layer_names has {len(layer_names)} names for {len(zs)} layers")
        names = [str(n) for n in layer_names]
    if not zs:
        raise ValueError("layers is empty; pass at least one representation")
    return names, zs


def _unit(est, setting: Mapping) -> str:
    if setting.get("unit") is not None:
        return str(setting["unit"])
    unit = est.unit
    return str(unit(setting) if callable(unit) else unit)


@torch.no_grad()
def measure_snapshot(x, y, layers, settings: Sequence[Mapping], *, batch_size: int, permutations: int, seed: int,
                     num_classes: int | None = None, layer_names: Sequence[str] | None = None,
                     device: str | torch.device | None = "auto",
                     gram_dtype: torch.dtype | None = None) -> pd.DataFrame:
    """Every layer against X and Y under every setting, with its permutation null and diagnostics.

    ``x`` (n, ...) inputs, ``y`` (n,) integer labels, ``layers`` a list (names "0", "1", ... or
    ``layer_names``) or dict name -> (n, ...) representation (float16 allowed), ``settings`` a list
    of setting dicts (``expand_settings``). Batches: n // batch_size consecutive ones, a trailing
    partial batch dropped. ``permutations`` P >= 0 per batch (0: the null columns are NaN), drawn from
    ``seed``. ``gram_dtype`` overrides the GEMM dtype (tests of exactness). Returns one row per
    (layer, setting), layer-major, with ``FRAME_COLUMNS`` (then any columns of other estimators'
    own setting keys and extras)."""
    names, zs = _layer_list(layers, layer_names)
    if not isinstance(settings, Sequence) or isinstance(settings, (str, Mapping)) or not settings:
        raise ValueError("settings must be a non-empty list of setting dicts (see expand_settings)")
    settings = [normalize_setting(s) for s in settings]
    estimators = [ESTIMATORS.get(s["estimator"]) for s in settings]
    if isinstance(batch_size, bool) or not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(permutations, bool) or not (isinstance(permutations, (int, np.integer)) and permutations >= 0):
        raise ValueError(f"permutations must be an integer >= 0, got {permutations!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    batch_size, permutations = int(batch_size), int(permutations)
    for s, est in zip(settings, estimators):
        need = getattr(est, "min_samples", 2)
        if batch_size < need:
            raise ValueError(f"estimator {s['estimator']!r} needs at least {need} samples, got batch_size={batch_size}")

    tx, ty = _as_tensor(x, "x"), _as_tensor(y, "y")
    tzs = [_as_tensor(z, f"layer {n!r}") for n, z in zip(names, zs)]
    n = tx.shape[0]
    for t, what in [(ty, "y")] + [(t, f"layer {nm!r}") for nm, t in zip(names, tzs)]:
        if t.shape[0] != n:
            raise ValueError(f"{what} has {t.shape[0]} samples but x has {n}; they must be aligned")
    if n < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the number of samples ({n}); "
                         "lower batch_size or pass more samples")
    _check_labels(ty, "y", num_classes)
    for s in settings:
        if s["kernel_x"] == "onehot":
            _check_labels(tx, "x", num_classes)
    if any(s["kernel_z"] == "onehot" for s in settings):
        for nm, t in zip(names, tzs):
            _check_labels(t, f"layer {nm!r}", num_classes)

    dev = resolve_device(device, tx)
    _warn_low_precision_matmul(dev)
    batches, m = n // batch_size, batch_size
    used = batches * m

    def stack(t: torch.Tensor) -> torch.Tensor:
        return t[:used].to(dev).reshape(batches, m, -1)

    x_geo = Geometry(stack(tx), "x", gram_dtype=gram_dtype)
    y_geo = Geometry(stack(ty.long()), "y", gram_dtype=gram_dtype)
    perms = Permutations.draw(batches, permutations, m, seed, dev) if permutations else None
    references: dict[Hashable, object] = {}

    def reference(est, role: str, setting: Mapping):
        key = (id(est) if not getattr(est, "shares_geometry", False) else "geometry", est.reference_key(role, setting))
        if key not in references:
            geo = x_geo if role == "x" else y_geo
            data = geo if getattr(est, "shares_geometry", False) else (geo.data if role == "x" else geo.data[..., 0])
            references[key] = est.prepare(data, role, setting)
        return references[key]

    nan = torch.full((batches,), math.nan, dtype=torch.float64, device=dev)
    rows = []
    for li, (name, tz) in enumerate(zip(names, tzs)):
        z_geo = Geometry(stack(tz), f"layer {name!r}", gram_dtype=gram_dtype)
        diag = {"mean_sq_activation": z_geo.mean_sq_activation,
                "median_distance": z_geo.median_distance / math.sqrt(z_geo.dim)}
        for setting, est in zip(settings, estimators):
            shares = getattr(est, "shares_geometry", False)
            scores = est.score(reference(est, "x", setting), reference(est, "y", setting),
                               z_geo if shares else z_geo.data, setting, perms if shares else
                               (perms.perms if perms is not None else None))
            ratio = nan
            if setting.get("kernel_z") == "gaussian":
                sq_bandwidth = BANDWIDTHS.get(setting["bandwidth"])(z_geo, setting["sigma"])
                ratio = z_geo.median_sq_distance / (2.0 * sq_bandwidth)
            rows.append((li, name, setting, est, scores, {**diag, "bandwidth_ratio": ratio}))
        del z_geo
    return _frame(rows, batch_size=m, batches=batches, permutations=permutations, device=dev)


def _frame(rows, *, batch_size: int, batches: int, permutations: int, device: torch.device) -> pd.DataFrame:
    """Aggregate per-batch tensors on the device, move them to the host once, build the frame."""
    count = len(rows)
    nan_b = torch.full((batches,), math.nan, dtype=torch.float64, device=device)
    p = max(permutations, 1)
    nan_bp = torch.full((batches, p), math.nan, dtype=torch.float64, device=device)

    def as64(t: torch.Tensor | None, fill: torch.Tensor, what: str = "") -> torch.Tensor:
        if t is None:
            return fill
        if tuple(t.shape) != tuple(fill.shape):
            raise ValueError(f"{what} has shape {tuple(t.shape)}; the estimator protocol wants "
                             f"{tuple(fill.shape)} (batches{', permutations' if fill.ndim == 2 else ''})")
        return t.to(device=device, dtype=torch.float64)

    extra_names: list[str] = []
    for *_, scores, _ in rows:
        for key in scores.extra:
            if key not in _EXTRA_COLUMNS and key not in extra_names:
                extra_names.append(key)
    per_batch_names = [*_EXTRA_COLUMNS, *extra_names, "mean_sq_activation", "median_distance", "bandwidth_ratio"]

    results = {}
    for role in ("xz", "yz"):
        values = torch.stack([as64(getattr(r[4], f"value_{role}"), nan_b, f"{r[2]['estimator']}: value_{role}")
                              for r in rows])  # (R, B)
        results[f"value_{role}"] = values.mean(dim=1)
        results[f"value_{role}_std"] = values.std(dim=1, correction=0)
        if permutations:
            nulls = torch.stack([as64(getattr(r[4], f"null_{role}"), nan_bp, f"{r[2]['estimator']}: null_{role}")
                                 for r in rows])  # (R, B, P)
            flat = nulls.reshape(count, -1)
            results[f"null_{role}_mean"] = flat.mean(dim=1)
            results[f"null_{role}_std"] = flat.std(dim=1, correction=0)
            joint = nulls.mean(dim=1)  # (R, P): the batch mean under each joint permutation
            results[f"null_{role}_batch_mean_std"] = joint.std(dim=1, correction=0)
            value = results[f"value_{role}"]
            scale = torch.maximum(value.abs(), joint.abs().amax(dim=1))
            hits = (joint >= (value - TIE_TOLERANCE * scale)[:, None]).sum(dim=1).to(torch.float64)
            results[f"p_{role}"] = torch.where(flat.isnan().any(dim=1), math.nan, (1.0 + hits) / (1.0 + permutations))
        else:
            for key in ("null_{}_mean", "null_{}_std", "null_{}_batch_mean_std", "p_{}"):
                results[key.format(role)] = torch.full((count,), math.nan, dtype=torch.float64, device=device)
        results[f"excess_{role}"] = results[f"value_{role}"] - results[f"null_{role}_mean"]
    for key in per_batch_names:
        stacked = torch.stack([as64(r[4].extra.get(key) if key not in r[5] else r[5][key], nan_b,
                                    f"{r[2]['estimator']}: {key}") for r in rows])
        results[key] = stacked.mean(dim=1)
    keys = list(results)
    host = torch.stack([results[k] for k in keys]).cpu().numpy()  # the one transfer
    numbers = dict(zip(keys, host))

    setting_extra: list[str] = []
    for *_, setting, _est, _, _ in rows:
        for key in setting:
            if key not in SETTING_KEYS and key not in FRAME_COLUMNS and key not in setting_extra:
                setting_extra.append(key)
    data: dict[str, list | np.ndarray] = {c: [] for c in FRAME_COLUMNS if c not in numbers}
    for key in setting_extra:
        data[key] = []
    for li, name, setting, est, _scores, _ in rows:
        data["layer"].append(li)
        data["layer_name"].append(name)
        data["estimator"].append(setting["estimator"])
        for key in ("kernel_x", "kernel_y", "kernel_z", "bandwidth"):
            data[key].append(setting.get(key))
        for key in ("sigma", "epsilon"):
            data[key].append(math.nan if setting.get(key) is None else float(setting[key]))
        data["unit"].append(_unit(est, setting))
        data["batch_size"].append(batch_size)
        data["n_samples"].append(batch_size * batches)
        data["n_batches"].append(batches)
        data["permutations"].append(permutations)
        for key in setting_extra:
            data[key].append(setting.get(key))
    columns = [*FRAME_COLUMNS, *setting_extra, *extra_names]
    out: dict[str, object] = {}
    for c in columns:  # each column built in its final dtype (a frame-wide astype costs ~25x more)
        if c in numbers:
            out[c] = numbers[c]
        elif c in _INT_COLUMNS:
            out[c] = np.asarray(data[c], dtype=np.int64)
        elif c in _STRING_COLUMNS:
            out[c] = pd.array(data[c], dtype="string")
        elif c in ("sigma", "epsilon"):
            out[c] = np.asarray(data[c], dtype=np.float64)
        else:
            out[c] = data[c]
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- single pairs


@torch.no_grad()
def nhsic(a, b, *, estimator: str = "nocco", kernel_a: str = "gaussian", kernel_b: str = "gaussian",
          sigma: float = 5.0, epsilon: float = 1e-5, bandwidth: str = "fixed",
          num_classes: int | None = None, gram_dtype: torch.dtype | None = None,
          device: str | torch.device | None = None) -> float:
    """nHSIC(A; B) of samples a (m, ...) and b (m, ...) (labels (m,) for ``onehot``), a float.

    A kernel estimator (``KernelEstimator``) on one batch, by the engine's code. ``device=None``
    runs on a's device (CPU for NumPy). Formulas: module docstring."""
    _check_kernel_args([kernel_a, kernel_b], sigma, bandwidth, epsilon)
    est = ESTIMATORS.get(estimator)
    if not isinstance(est, KernelEstimator):
        raise ValueError(f"nhsic computes the kernel estimators; {estimator!r} is measured by measure_snapshot")
    ta, tb = _as_tensor(a, "a"), _as_tensor(b, "b")
    if ta.shape[0] != tb.shape[0]:
        raise ValueError(f"a and b must hold the same samples, got {ta.shape[0]} and {tb.shape[0]}")
    if ta.shape[0] < est.min_samples:
        raise ValueError(f"estimator {estimator!r} needs at least {est.min_samples} samples, got m={ta.shape[0]}")
    dev = resolve_device(device, ta)
    _warn_low_precision_matmul(dev)
    setting = {"sigma": sigma, "bandwidth": bandwidth, "epsilon": epsilon}
    stacks = []
    for t, name, kernel in ((ta, "a", kernel_a), (tb, "b", kernel_b)):
        if kernel == "onehot":
            _check_labels(t, name, num_classes)
        geometry = _geometry(t, name, dev, gram_dtype)
        stacks.append(geometry.kernel(kernel, sigma=sigma, bandwidth=bandwidth, num_classes=num_classes))
    return float(est.pair(*stacks, setting)[0])


# The mutual-information estimators of the literature register themselves in ESTIMATORS.
from infoplane import mutual_information  # noqa: E402,F401
