"""Normalized HSIC (nHSIC) between representations, inputs and labels.

For m samples, each representation is flattened to vectors a_1..a_m in R^d.

Kernels (``KERNELS``):
  - ``gaussian``: K_ij = exp(-||a_i - a_j||^2 / (2 sigma^2 d)) with ``bandwidth="fixed"`` (the
    paper's rule, sigma = 5), or K_ij = exp(-||a_i - a_j||^2 / (2 s^2)) with ``bandwidth="median"``,
    s = the median distance ||a_i - a_j|| over the pairs i < j (mean of the two middle values
    for an even count; if that median is 0, the median of the positive distances; ``sigma`` is
    then unused).
  - ``linear``: K = A A^T.
  - ``onehot``: K_ij = [y_i == y_j], the linear kernel on one-hot label vectors.

With H = I - 11^T/m and K~ = H K H, the estimators (``ESTIMATORS``) are
  - ``nocco`` (the paper's nHSIC, Fukumizu et al. 2008): R = K~ (K~ + eps m I)^-1,
    nHSIC(A; B) = tr(R_A R_B). In [0, m-1]; its scale depends on m and eps, so record them.
  - ``cka``: HSIC_b(K, L) / sqrt(HSIC_b(K, K) HSIC_b(L, L)) with the biased estimator
    HSIC_b(K, L) = tr(K~ L~) / (m-1)^2 (the (m-1)^2 cancels). In [0, 1].
  - ``cka_unbiased``: the same ratio with Song et al.'s (2012) unbiased estimator
    HSIC_u(K, L) = [tr(K^ L^) + 1^T K^ 1 1^T L^ 1 / ((m-1)(m-2)) - 2/(m-2) 1^T K^ L^ 1] / (m(m-3)),
    K^ = K with its diagonal set to 0; computed as <U(K), U(L)> / (m(m-3)) with U the
    U-centering (Szekely & Rizzo 2014), which is the same number. Needs m >= 4; may be < 0.
A constant representation (all samples equal, so K~ = 0) scores 0 with every estimator.

Numerics: samples are flattened and the mean sample subtracted (distances do not change, and
the cancellation in ||a||^2 + ||b||^2 - 2 a.b shrinks); pairwise squared distances come from one
GEMM, clamped at 0. The Gaussian kernel's GEMM is float32 where it dominates the cost (d > m and
input not float64), else float64 (``_gemm_dtype``; ``gram_dtype`` overrides); the linear kernel's
is float64 (see ``linear_kernel``). Everything after the GEMM (exp, centering, solves, traces) is
float64. R is a Cholesky solve (K~ + eps m I) R = K~ (R and K~ commute); no inverse is formed and
no m x m x d tensor is built. Traces of products of symmetric matrices are elementwise sums,
tr(AB) = sum_ij A_ij B_ij (the asymmetry left by rounding, ~1e-16 relative, is below every
tolerance here). If the Cholesky factorization fails (tiny eps), R = U diag(l / (l + eps m)) U^T
from the symmetric eigendecomposition K~ = U diag(l) U^T, l clamped at 0.

Everything runs on the device of the input tensors, or on ``device`` (``"auto"``: CUDA when
available, else the CPU). No CUDA is assumed.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from infoplane import runtime
from infoplane.registry import Registry

KERNELS: Registry = Registry("kernel")
ESTIMATORS: Registry = Registry("estimator")
BANDWIDTHS = ("fixed", "median")

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


def _kernel(kernel: str, t: torch.Tensor, name: str, device: torch.device, **opts) -> torch.Tensor:
    """KERNELS[kernel] of t on device; a NaN/Inf in t becomes an error naming the argument."""
    try:
        return KERNELS.get(kernel)(t.to(device), **opts)
    except NonFiniteError as err:
        raise ValueError(f"{name} contains {err}; nHSIC needs finite inputs") from None


def _check_labels(t: torch.Tensor, name: str, num_classes: int | None) -> None:
    if t.ndim != 1 or t.is_floating_point():
        raise ValueError(
            f"the onehot kernel needs {name} to be a 1-D integer label vector, "
            f"got dtype {t.dtype} and shape {tuple(t.shape)}"
        )
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} has negative labels; labels must be 0..num_classes-1")
    if num_classes is not None and t.numel() and int(t.max()) >= num_classes:
        raise ValueError(f"{name} has label {int(t.max())} >= num_classes={num_classes}")


def _check_settings(kernels: Sequence[str], sigma: float, bandwidth: str, epsilon: float | None) -> None:
    for k in kernels:
        KERNELS.get(k)  # KeyError listing the allowed names
    if bandwidth not in BANDWIDTHS:
        raise ValueError(f"bandwidth must be one of {', '.join(BANDWIDTHS)}, got {bandwidth!r}")
    if not (isinstance(sigma, numbers.Real) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    if epsilon is not None and not (isinstance(epsilon, numbers.Real) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")


def _warn_low_precision_matmul(device: torch.device) -> None:
    if device.type == "cuda" and torch.get_float32_matmul_precision() != "highest":
        warnings.warn(
            "float32 matmuls run in reduced precision (TF32/bf16); nHSIC kernels lose about 1e-3 "
            "relative accuracy. Call torch.set_float32_matmul_precision('highest') first.",
            stacklevel=3,
        )


# --------------------------------------------------------------------------- kernels


class NonFiniteError(ValueError):
    """Samples hold NaN/Inf (found for free on the diagonal of the Gram matrix); the callers
    re-raise it naming the argument."""


def _rows_all_equal(flat: torch.Tensor) -> bool:
    """Whether every sample equals the first (exact, in the storage dtype); O(d) for the usual
    case where the first two samples already differ."""
    if flat.shape[0] < 2:
        return True
    if not torch.equal(flat[0], flat[1]):
        return False
    return bool((flat == flat[:1]).all())


def _gemm_dtype(dtype: torch.dtype, m: int, d: int) -> torch.dtype:
    """float32 only where the GEMM dominates the cost (d > m, non-float64 input), else float64.

    For d <= m the float64 GEMM costs no more than the O(m^3) float64 solve, and low-dimensional
    (smooth, fast-decaying) kernels are where float32 distances move nocco most (~1e-5)."""
    return torch.float64 if dtype == torch.float64 or d <= m else torch.float32


def _features(a: torch.Tensor, gram_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, d) samples minus their mean, in the GEMM dtype, and that mean.

    Distances do not change, and the cancellation in ||a||^2 + ||b||^2 - 2 a.b shrinks (a common
    offset, e.g. after a ReLU, goes): measured 10-25x closer to a float64 GEMM than without.
    Identical samples become exact zeros, so that a constant representation gives an exactly
    constant kernel instead of rounding noise. One copy, one reduction, one in-place pass."""
    flat = a.reshape(a.shape[0], -1)
    dtype = gram_dtype or _gemm_dtype(a.dtype, *flat.shape)
    if _rows_all_equal(flat):
        return torch.zeros(flat.shape, dtype=dtype, device=flat.device), flat[:1].to(dtype)
    if flat.dtype == dtype:
        mean = flat.mean(dim=0, keepdim=True)
        return flat - mean, mean
    f = flat.to(dtype)
    mean = f.mean(dim=0, keepdim=True)
    return f.sub_(mean), mean


def _inner_products(f: torch.Tensor) -> torch.Tensor:
    """f f^T from one GEMM, returned in float64 (symmetric up to rounding).

    NaN/Inf anywhere in f makes its row's squared norm non-finite: checked here, O(m)."""
    g = (f @ f.T).to(torch.float64)
    if not bool(torch.isfinite(g.diagonal()).all()):
        raise NonFiniteError("NaN or Inf values (or values whose squares overflow the GEMM dtype)")
    return g


def squared_distances(f: torch.Tensor) -> torch.Tensor:
    """||f_i - f_j||^2 = ||f_i||^2 + ||f_j||^2 - 2 f_i.f_j (one GEMM), clamped at 0, float64."""
    g = _inner_products(f)
    n = g.diagonal().clone()
    d2 = g.mul_(-2.0).add_(n[:, None] + n[None, :]).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    return d2


def _median_pair_distance(d2: torch.Tensor) -> float:
    """Median of ||a_i - a_j|| over i < j (mean of the two middle values for an even count);
    if it is 0, the median of the positive distances; 0 when all samples coincide."""
    m = d2.shape[0]
    iu = torch.triu_indices(m, m, offset=1, device=d2.device)
    dist = d2[iu[0], iu[1]].sqrt()
    for values in (dist, dist[dist > 0]):
        n = values.numel()
        if n == 0:
            return 0.0
        lo = values.kthvalue((n + 1) // 2).values
        hi = values.kthvalue(n // 2 + 1).values
        med = float((lo + hi) / 2)
        if med > 0:
            return med
    return 0.0


@KERNELS.register("gaussian")
def gaussian_kernel(a: torch.Tensor, *, sigma: float = 5.0, bandwidth: str = "fixed",
                    gram_dtype: torch.dtype | None = None, **_) -> torch.Tensor:
    """exp(-||a_i - a_j||^2 / (2 sigma^2 d)) (fixed) or exp(-||a_i - a_j||^2 / (2 s^2)) (median)."""
    f, _ = _features(a, gram_dtype)
    d2 = squared_distances(f)
    if bandwidth == "fixed":
        scale = 2.0 * sigma**2 * f.shape[1]
    elif bandwidth == "median":
        s = _median_pair_distance(d2)
        if s == 0.0:  # all samples coincide: the kernel is all ones
            return torch.ones_like(d2)
        scale = 2.0 * s**2
    else:
        raise ValueError(f"bandwidth must be one of {', '.join(BANDWIDTHS)}, got {bandwidth!r}")
    return d2.mul_(-1.0 / scale).exp_()


@KERNELS.register("linear")
def linear_kernel(a: torch.Tensor, *, gram_dtype: torch.dtype | None = None, **_) -> torch.Tensor:
    """A A^T, computed as F F^T + (F mu) 1^T + 1 (F mu)^T + ||mu||^2 with F = A - 1 mu^T:
    the GEMM sees centered data (the terms added back in float64 cancel again in centering).

    The GEMM is float64 unless ``gram_dtype`` says otherwise: the linear kernel is not scaled
    down like the Gaussian one, so for d < m float32 rounding fills its null space with
    eigenvalues comparable to eps m and moves nocco by ~1e-4 relative."""
    f, mean = _features(a, gram_dtype or torch.float64)
    g = _inner_products(f)
    mean = mean.double()
    fm = (f.double() @ mean.T).squeeze(1)
    return g.add_(fm[:, None] + fm[None, :]).add_(float((mean**2).sum()))


@KERNELS.register("onehot")
def onehot_kernel(a: torch.Tensor, *, num_classes: int | None = None, **_) -> torch.Tensor:
    """[y_i == y_j]: the linear kernel on one-hot label vectors (num_classes only validates)."""
    _check_labels(a, "the labels", num_classes)
    return (a[:, None] == a[None, :]).double()


@torch.no_grad()
def gram(a, kernel: str = "gaussian", sigma: float = 5.0, bandwidth: str = "fixed", *,
         num_classes: int | None = None, gram_dtype: torch.dtype | None = None,
         device: str | torch.device | None = None) -> torch.Tensor:
    """The m x m kernel matrix (float64 torch tensor) of the samples a (m, ...) or labels (m,).

    See the module docstring for the formulas; ``device=None`` keeps a tensor's own device."""
    _check_settings([kernel], sigma, bandwidth, None)
    t = _as_tensor(a, "a")
    dev = resolve_device(device, t)
    _warn_low_precision_matmul(dev)
    return _kernel(kernel, t, "a", dev, sigma=sigma, bandwidth=bandwidth,
                   num_classes=num_classes, gram_dtype=gram_dtype)


# --------------------------------------------------------------------------- estimators


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """sum_ij a_ij b_ij = tr(a b) for symmetric matrices, in one pass and no m x m temporary."""
    return float(torch.dot(a.reshape(-1), b.reshape(-1)))


class Kernel:
    """One kernel matrix prepared for the estimators.

    K~ = HKH is formed once; the U-centered matrix and R = K~(K~ + eps m I)^-1 are computed on
    first use and cached, so a kernel compared with many others (X and Y in ``layer_scores``)
    is prepared once per batch."""

    def __init__(self, matrix: torch.Tensor) -> None:
        k = matrix.double()
        if k.ndim != 2 or k.shape[0] != k.shape[1]:
            raise ValueError(f"a kernel matrix must be square, got shape {tuple(k.shape)}")
        self.m = k.shape[0]
        self.constant = bool((k == k[0, 0]).all())
        row = k.mean(dim=1)  # K symmetric: row means = column means
        self.centered = (k - row[:, None]).sub_(row[None, :]).add_(row.mean())
        self._ridge: dict[float, torch.Tensor] = {}

    @cached_property
    def hs(self) -> float:
        """tr(K~ K~)."""
        return _dot(self.centered, self.centered)

    @cached_property
    def ucentered(self) -> torch.Tensor:
        """U(K)_ij = K_ij - r_i/(m-2) - r_j/(m-2) + t/((m-1)(m-2)) off the diagonal, 0 on it,
        with r, t the row and total sums of K with a zero diagonal. U is blind to terms
        u_i + v_j, so it is taken of K~ (same result, smaller numbers)."""
        m = self.m
        k = self.centered.clone()
        k.fill_diagonal_(0.0)
        row = k.sum(dim=1)
        u = k - (row[:, None] + row[None, :]) / (m - 2) + row.sum() / ((m - 1) * (m - 2))
        return u.fill_diagonal_(0.0)

    @cached_property
    def uhs(self) -> float:
        """<U(K), U(K)>."""
        return _dot(self.ucentered, self.ucentered)

    def ridge(self, epsilon: float) -> torch.Tensor:
        """R = K~ (K~ + eps m I)^-1, by a Cholesky solve (eigendecomposition if that fails)."""
        if epsilon not in self._ridge:
            self._ridge[epsilon] = ridge_matrix(self.centered, epsilon)
        return self._ridge[epsilon]


def ridge_matrix(centered: torch.Tensor, epsilon: float, method: str = "cholesky") -> torch.Tensor:
    """R = (K~ + eps m I)^-1 K~ (= K~ (K~ + eps m I)^-1), float64, symmetric up to rounding.

    ``cholesky``: one factorization and a two-sided triangular solve; falls back to ``eigh``
    (R = U diag(l/(l + eps m)) U^T, l clamped at 0) if K~ + eps m I is not numerically positive
    definite."""
    m = centered.shape[0]
    shift = epsilon * m
    if method == "cholesky":
        shifted = centered.clone()
        shifted.diagonal().add_(shift)
        factor, info = torch.linalg.cholesky_ex(shifted)
        del shifted
        if int(info) == 0:
            return torch.cholesky_solve(centered, factor)
    elif method != "eigh":
        raise ValueError(f"method must be 'cholesky' or 'eigh', got {method!r}")
    lam, vec = torch.linalg.eigh(centered)
    lam = lam.clamp_min(0.0)
    half = vec * (lam / (lam + shift)).sqrt()
    return half @ half.T


def estimator(name: str, *, min_samples: int = 2) -> Callable:
    """Register ``fn(a: Kernel, b: Kernel, *, epsilon: float) -> float`` as estimator ``name``."""

    def add(fn: Callable) -> Callable:
        fn.min_samples = min_samples
        return ESTIMATORS.register(name)(fn)

    return add


@estimator("nocco")
def nocco(a: Kernel, b: Kernel, *, epsilon: float) -> float:
    """tr(R_A R_B), R = K~(K~ + eps m I)^-1."""
    if a.constant or b.constant:
        return 0.0
    return _dot(a.ridge(epsilon), b.ridge(epsilon))


@estimator("cka")
def cka(a: Kernel, b: Kernel, *, epsilon: float) -> float:
    """tr(K~ L~) / sqrt(tr(K~ K~) tr(L~ L~)); 0 if either kernel is constant."""
    den = math.sqrt(a.hs * b.hs)
    if a.constant or b.constant or den == 0.0:
        return 0.0
    return _dot(a.centered, b.centered) / den


@estimator("cka_unbiased", min_samples=4)
def cka_unbiased(a: Kernel, b: Kernel, *, epsilon: float) -> float:
    """HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L)); 0 if either denominator is 0."""
    if a.constant or b.constant:
        return 0.0
    den = math.sqrt(a.uhs * b.uhs)
    if den == 0.0:
        return 0.0
    return _dot(a.ucentered, b.ucentered) / den


def _check_samples(m: int, estimators: Sequence[str], what: str) -> list[Callable]:
    fns = [ESTIMATORS.get(e) for e in estimators]
    for name, fn in zip(estimators, fns):
        if m < fn.min_samples:
            raise ValueError(f"estimator {name!r} needs at least {fn.min_samples} samples, got {what}={m}")
    return fns


@torch.no_grad()
def nhsic(a, b, *, estimator: str = "nocco", kernel_a: str = "gaussian", kernel_b: str = "gaussian",
          sigma: float = 5.0, epsilon: float = 1e-5, bandwidth: str = "fixed",
          num_classes: int | None = None, gram_dtype: torch.dtype | None = None,
          device: str | torch.device | None = None) -> float:
    """nHSIC(A; B) of samples a (m, ...) and b (m, ...) (labels (m,) for ``onehot``), a float.

    ``device=None`` runs on a's device (CPU for NumPy). Formulas: module docstring."""
    _check_settings([kernel_a, kernel_b], sigma, bandwidth, epsilon)
    ta, tb = _as_tensor(a, "a"), _as_tensor(b, "b")
    if ta.shape[0] != tb.shape[0]:
        raise ValueError(f"a and b must hold the same samples, got {ta.shape[0]} and {tb.shape[0]}")
    (fn,) = _check_samples(ta.shape[0], [estimator], "m")
    dev = resolve_device(device, ta)
    _warn_low_precision_matmul(dev)
    opts = dict(sigma=sigma, bandwidth=bandwidth, num_classes=num_classes, gram_dtype=gram_dtype)
    kernels = []
    for t, name, kernel in ((ta, "a", kernel_a), (tb, "b", kernel_b)):
        if kernel == "onehot":
            _check_labels(t, name, num_classes)
        kernels.append(Kernel(_kernel(kernel, t, name, dev, **opts)))
    return fn(*kernels, epsilon=epsilon)


# --------------------------------------------------------------------------- per-layer scores

SCORE_COLUMNS = ("layer", "layer_name", "estimator", "nhsic_xz", "nhsic_xz_std",
                 "nhsic_yz", "nhsic_yz_std", "n_batches", "n_samples")


def layer_scores(x, y, layers, *, batch_size: int = 128, estimators: str | Sequence[str] = ("nocco",),
                 kernel_x: str = "gaussian", kernel_y: str = "onehot", kernel_z: str = "gaussian",
                 sigma: float = 5.0, epsilon: float = 1e-5, bandwidth: str = "fixed",
                 num_classes: int | None = None, layer_names: Sequence[str] | None = None,
                 device: str | torch.device | None = "auto",
                 gram_dtype: torch.dtype | None = None) -> pd.DataFrame:
    """nHSIC(X; Z_l) and nHSIC(Y; Z_l) for every layer l, mean and std over batches.

    ``layers``: a list (names "0", "1", ... or ``layer_names``) or a dict name -> tensor of
    per-sample representations aligned with ``x`` and the labels ``y`` (float16 is fine).
    The samples are cut into n // batch_size consecutive batches of ``batch_size``; a trailing
    partial batch is dropped (n_samples says how many were used). Per batch, the X and Y kernels
    (and their centered / solved forms) are built once and reused for every layer and estimator.
    std is the population std over batches (ddof=0), 0.0 for a single batch.
    Returns one row per (layer, estimator) with columns ``SCORE_COLUMNS``."""
    ests = [estimators] if isinstance(estimators, str) else list(estimators)
    if not ests:
        raise ValueError("estimators is empty; name at least one of " + ", ".join(ESTIMATORS.names()))
    _check_settings([kernel_x, kernel_y, kernel_z], sigma, bandwidth, epsilon)
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
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    fns = _check_samples(int(batch_size), ests, "batch_size")

    tx, ty = _as_tensor(x, "x"), _as_tensor(y, "y")
    tzs = [_as_tensor(z, f"layer {n!r}") for n, z in zip(names, zs)]
    n = tx.shape[0]
    for t, what in [(ty, "y")] + [(t, f"layer {nm!r}") for nm, t in zip(names, tzs)]:
        if t.shape[0] != n:
            raise ValueError(f"{what} has {t.shape[0]} samples but x has {n}; they must be aligned")
    if n < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the number of samples ({n}); "
                         "lower batch_size or pass more samples")
    for t, what, kernel in [(tx, "x", kernel_x), (ty, "y", kernel_y)]:
        if kernel == "onehot":
            _check_labels(t, what, num_classes)
    if kernel_z == "onehot":
        for nm, t in zip(names, tzs):
            _check_labels(t, f"layer {nm!r}", num_classes)

    dev = resolve_device(device, tx)
    _warn_low_precision_matmul(dev)
    opts = dict(sigma=sigma, bandwidth=bandwidth, num_classes=num_classes, gram_dtype=gram_dtype)
    n_batches = n // batch_size
    xz = np.zeros((len(tzs), len(ests), n_batches))
    yz = np.zeros_like(xz)
    with torch.no_grad():
        for b in range(n_batches):
            rows = slice(b * batch_size, (b + 1) * batch_size)
            kx = Kernel(_kernel(kernel_x, tx[rows], "x", dev, **opts))
            ky = Kernel(_kernel(kernel_y, ty[rows], "y", dev, **opts))
            for li, tz in enumerate(tzs):
                kz = Kernel(_kernel(kernel_z, tz[rows], f"layer {names[li]!r}", dev, **opts))
                for ei, fn in enumerate(fns):
                    xz[li, ei, b] = fn(kx, kz, epsilon=epsilon)
                    yz[li, ei, b] = fn(ky, kz, epsilon=epsilon)
                del kz

    records = []
    for li, name in enumerate(names):
        for ei, est in enumerate(ests):
            records.append((li, name, est, xz[li, ei].mean(), xz[li, ei].std(),
                            yz[li, ei].mean(), yz[li, ei].std(), n_batches, n_batches * batch_size))
    df = pd.DataFrame.from_records(records, columns=list(SCORE_COLUMNS))
    return df.astype({"layer": "int64", "n_batches": "int64", "n_samples": "int64",
                      "nhsic_xz": "float64", "nhsic_xz_std": "float64",
                      "nhsic_yz": "float64", "nhsic_yz_std": "float64"})
