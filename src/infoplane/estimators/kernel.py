"""The kernel family: the kernels (``KERNELS``), the ridge R(eps), and the estimators nocco,
nocco_normalized, cka and cka_unbiased (``KernelEstimator``), with the one-call pair API (``nhsic``, ``gram``).

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


Numerics
--------
The engine keeps kernels shifted by constants and by terms u_i + v_j, to which K~, U-centering and
so every estimator are blind: the Gaussian kernel as K - 1 = expm1(-D/(2 s^2)) (full relative
precision when the kernel is nearly constant, the fixed-sigma regime of small activations), the
linear one as F F^T of the centered features F (= K~ exactly). Distances: ``geometry``.

R = K~ (K~ + eps m I)^-1 = I - eps m C^-1 with C = K~ + eps m I, C^-1 from a batched Cholesky
factorization (``ridge``: the route, its cost, its accuracy, the eigh fallback). Traces of
products of symmetric matrices are elementwise sums, tr(AB) = sum_ij A_ij B_ij.

Host syncs: one per Gram stack (finite check from the Gram diagonal; one for all the layers of
a ``LayerStack``), one per factorization stack (which members need the eigh fallback), one for
the median fallback of the median rules, one per one-hot kernel (the classes present, for
its low-rank ridge), and one when the frame is built; none per batch or per
value, and for the kernel estimators none per layer (they score a snapshot's layers as one stack). Everything runs on ``device``
(``"auto"``: CUDA when available, else the CPU); no CUDA is assumed.

The null of this family gathers Z's matrices by the permutations (``null.Permutations.dots``); the
cka_unbiased correction 1^T K^ P L^ P^T 1 needs the row sums of L^ gathered by pi, O(P m).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import cached_property

import torch

from .base import ESTIMATORS, Scores, SettingError
from .geometry import (BANDWIDTHS, KERNELS, Geometry, as_tensor, bdot, check_labels, kernel_key, positive,
                       resolve_device, warn_low_precision_matmul)
from .null import Permutations
from .ridge import low_rank_pays, low_rank_ridge, ridge_matrix
from .settings import KernelSettings, RidgeKernelSettings

#: The kernel family's declared defaults (the paper's protocol), for the one-call pair API.
_DEFAULTS = RidgeKernelSettings.defaults()

# --------------------------------------------------------------------------- kernels


class KernelStack:
    """A (B, m, m) stack of one kernel, prepared for every estimator and cached.

    ``base`` is the kernel up to constants and terms u_i + v_j (see the module docstring); K~, the
    U-centering terms, R(eps), tr(R^2) and the packed references of the null are computed on first
    use, so a kernel compared with many others (X and Y against every layer) is prepared once."""

    def __init__(self, base: torch.Tensor, *, centered: bool = False, sq_bandwidth: torch.Tensor | None = None,
                 features: torch.Tensor | None = None) -> None:
        if base.ndim != 3 or base.shape[1] != base.shape[2]:
            raise ValueError(f"a kernel stack must have shape (B, m, m), got {tuple(base.shape)}")
        self.base = base
        self.features = features  # (B, m, r) centered, K~ = F F^T: the ridge in O(m^2 r) where that pays
        self.batches, self.m = base.shape[0], base.shape[1]
        self.sq_bandwidth = sq_bandwidth
        flat = base.reshape(self.batches, -1)
        self.constant = flat.amax(dim=1) == flat.amin(dim=1)  # every entry equal: K~ = 0 (amax, amin: 2x aminmax)
        self._centered = base if centered else None
        self._ridge: dict[float, torch.Tensor] = {}
        self._ridge_sq: dict[float, torch.Tensor] = {}
        self._packed: dict[tuple, torch.Tensor] = {}
        self._null_dots: dict[tuple, torch.Tensor] = {}
        self._tiled: dict[int, KernelStack] = {}

    def tiled(self, times: int) -> KernelStack:
        """This stack repeated ``times`` times along the batch axis (a reference against a ``LayerStack``
        of that many layers), built once: what it derives comes from this stack's caches, tiled."""
        if times == 1:
            return self
        if times not in self._tiled:
            self._tiled[times] = TiledKernelStack(self, times)
        return self._tiled[times]

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
        return bdot(self.centered, self.centered)

    def ridge(self, epsilon: float) -> torch.Tensor:
        """(B, m, m) R = K~ (K~ + eps m I)^-1 (``ridge_matrix``), once per epsilon."""
        if epsilon not in self._ridge:
            low_rank = self.features is not None and low_rank_pays(self.features.shape[-1], self.m)
            r = low_rank_ridge(self.features, epsilon) if low_rank else None
            self._ridge[epsilon] = ridge_matrix(self.centered, epsilon) if r is None else r
        return self._ridge[epsilon]

    def ridge_sq(self, epsilon: float) -> torch.Tensor:
        """(B,) tr(R^2) = nocco of the kernel with itself, 0 for a constant kernel."""
        if epsilon not in self._ridge_sq:
            r = self.ridge(epsilon)
            self._ridge_sq[epsilon] = torch.where(self.constant, 0.0, bdot(r, r))
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


class TiledKernelStack(KernelStack):
    """``source`` repeated ``times`` times along the batch axis; every derived matrix or number is the
    source's (computed once there) tiled, so L layers share one factorization of X's kernel."""

    def __init__(self, source: KernelStack, times: int) -> None:  # noqa: D107 (no base: lazily tiled)
        self.source, self.times = source, times
        self.batches, self.m = source.batches * times, source.m
        self.sq_bandwidth = None if source.sq_bandwidth is None else self._tile(source.sq_bandwidth)
        self.constant = self._tile(source.constant)
        self._centered = None
        self._ridge, self._ridge_sq, self._packed, self._null_dots, self._tiled = {}, {}, {}, {}, {}

    def _tile(self, t: torch.Tensor) -> torch.Tensor:
        return t.repeat(self.times, *([1] * (t.ndim - 1)))

    @cached_property
    def base(self) -> torch.Tensor:  # type: ignore[override]
        return self._tile(self.source.base)

    @property
    def centered(self) -> torch.Tensor:
        if self._centered is None:
            self._centered = self._tile(self.source.centered)
        return self._centered

    @cached_property
    def hs(self) -> torch.Tensor:
        return self._tile(self.source.hs)

    def ridge(self, epsilon: float) -> torch.Tensor:
        if epsilon not in self._ridge:
            self._ridge[epsilon] = self._tile(self.source.ridge(epsilon))
        return self._ridge[epsilon]

    def ridge_sq(self, epsilon: float) -> torch.Tensor:
        if epsilon not in self._ridge_sq:
            self._ridge_sq[epsilon] = self._tile(self.source.ridge_sq(epsilon))
        return self._ridge_sq[epsilon]

    @cached_property
    def diag(self) -> torch.Tensor:
        return self._tile(self.source.diag)

    @cached_property
    def offdiag_rows(self) -> torch.Tensor:
        return self._tile(self.source.offdiag_rows)

    @cached_property
    def offdiag_total(self) -> torch.Tensor:
        return self._tile(self.source.offdiag_total)

    @cached_property
    def unbiased_self(self) -> torch.Tensor:
        return self._tile(self.source.unbiased_self)

    def packed(self, what: str, epsilon: float | None = None) -> torch.Tensor:
        key = (what, epsilon)
        if key not in self._packed:
            self._packed[key] = self._tile(self.source.packed(what, epsilon))
        return self._packed[key]


def unbiased_numerator(a: KernelStack, b: KernelStack) -> torch.Tensor:
    """(B,) m(m-3) HSIC_u(K, L) = tr(K^ L^) + 1^T K^ 1 1^T L^ 1 / ((m-1)(m-2)) - 2/(m-2) 1^T K^ L^ 1."""
    m = a.m
    trace = bdot(a.base, b.base) - (a.diag * b.diag).sum(dim=1)
    rows = (a.offdiag_rows * b.offdiag_rows).sum(dim=1)
    return trace + a.offdiag_total * b.offdiag_total / ((m - 1) * (m - 2)) - 2.0 / (m - 2) * rows


@KERNELS.register("gaussian")
def gaussian_kernel(geometry: Geometry, *, sigma: float | None, bandwidth: str, **_) -> KernelStack:
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
    dtype = geometry.gram_dtype or torch.float64
    few = geometry.dim is not None and low_rank_pays(geometry.dim, geometry.m) and dtype == torch.float64
    features = geometry.features(dtype)[0] if few else None
    return KernelStack(geometry.inner(dtype), centered=True, features=features)


@KERNELS.register("onehot")
def onehot_kernel(geometry: Geometry, *, num_classes: int | None = None, **_) -> KernelStack:
    """[y_i == y_j]: the linear kernel on one-hot label vectors (num_classes only validates); its
    centered one-hot features (the classes present in the stack) give the ridge in O(m^2 C)."""
    labels = geometry.labels
    classes, codes = torch.unique(labels, return_inverse=True)
    onehot = torch.nn.functional.one_hot(codes, classes.numel()).to(torch.float64)
    return KernelStack((labels[:, :, None] == labels[:, None, :]).to(torch.float64),
                       features=onehot - onehot.mean(dim=1, keepdim=True))


def _geometry(t: torch.Tensor, name: str, device: torch.device, gram_dtype: torch.dtype | None) -> Geometry:
    return Geometry(t.to(device).reshape(1, t.shape[0], -1), name, gram_dtype=gram_dtype)


@torch.no_grad()
def gram(a, kernel: str = _DEFAULTS["kernel_x"], sigma: float = _DEFAULTS["sigma"],
         bandwidth: str = _DEFAULTS["bandwidth"], *,
         num_classes: int | None = None, gram_dtype: torch.dtype | None = None,
         device: str | torch.device | None = None) -> torch.Tensor:
    """The m x m kernel matrix K (float64 torch tensor) of the samples a (m, ...) or labels (m,).

    See the module docstring for the formulas; ``device=None`` keeps a tensor's own device."""
    sigma, _ = check_kernel_setting({"kernel": kernel}, sigma, bandwidth)
    t = as_tensor(a, "a")
    if kernel == "onehot":
        check_labels(t, "the labels", num_classes)
    dev = resolve_device(device, t)
    warn_low_precision_matmul(dev)
    geometry = _geometry(t, "a", dev, gram_dtype)
    stack = geometry.kernel(kernel, sigma=sigma, bandwidth=bandwidth, num_classes=num_classes)
    if kernel == "gaussian":
        return stack.base[0] + 1.0
    if kernel == "linear":  # F F^T + (F mu) 1^T + 1 (F mu)^T + ||mu||^2
        f, mean = geometry.features(gram_dtype or torch.float64)
        fm = (f.double() @ mean.double().mT)[0, :, 0]
        return stack.base[0] + fm[:, None] + fm[None, :] + float(mean.double().square().sum())
    return stack.base[0]


class KernelEstimator:
    """The HSIC family: a ratio num(A, Z) / den(A, Z) of traces of kernel matrices, 0 where a kernel is
    constant (or the denominator is 0). Subclasses say which matrix is dotted and how it is normalized."""

    name = ""
    unit = ""
    shares_geometry = True
    stacks_layers = True  # per-batch numbers only: the layers of a snapshot can run as one LayerStack
    min_samples = 2
    settings: type[KernelSettings] = RidgeKernelSettings  # KernelSettings: no ridge, no epsilon
    matrix = "ridge"  # what KernelStack.packed / null_dots gather

    @property
    def uses_epsilon(self) -> bool:
        return "epsilon" in self.settings.keys()

    def check_setting(self, setting: Mapping) -> dict:
        """The kernel family's checks (``check_kernel_setting``) on the keys this setting uses."""
        used = self.used_keys(setting)
        sigma, epsilon = check_kernel_setting({k: setting[k] for k in ("kernel_x", "kernel_y", "kernel_z")},
                                              setting["sigma"] if "sigma" in used else None,
                                              setting["bandwidth"] if "bandwidth" in used else None,
                                              setting["epsilon"] if "epsilon" in used else None)
        return {**setting, "sigma": sigma, "epsilon": epsilon}

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
        return ("kernel", role, kernel_key(kernel, setting.get("sigma"), setting.get("bandwidth")))

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
        """Per-batch scores of Z; a ``LayerStack`` Z (L B members) is scored against the references tiled."""
        kz = self.kernel_of(z, "z", setting)
        if kz.batches != ref_x.batches:
            times = kz.batches // ref_x.batches
            ref_x, ref_y = ref_x.tiled(times), ref_y.tiled(times)
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
        return bdot(a.ridge(eps), z.ridge(eps))

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
    settings = KernelSettings
    matrix = "centered"

    def numerator(self, a, z, setting):
        return bdot(a.centered, z.centered)

    def denominator(self, a, z, setting):
        return (a.hs * z.hs).sqrt()


class CkaUnbiased(KernelEstimator):
    """HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L)), from the zero-diagonal kernels and row sums."""

    name = "cka_unbiased"
    settings = KernelSettings
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


def check_kernel_setting(kernels: Mapping[str, str], sigma, bandwidth,
                         epsilon=None) -> tuple[float | None, float | None]:
    """The kernel family's setting checks, in one place: kernel names (``kernels``: key -> name),
    the bandwidth rule where a kernel is Gaussian, sigma > 0 where that rule uses it, eps > 0 if
    given. Returns sigma and eps as floats (None where unused); raises ``SettingError``."""
    for key, name in kernels.items():
        if name not in KERNELS:
            raise SettingError(key, name, f"unknown kernel; allowed: {', '.join(KERNELS.names())}")
    uses_sigma = False
    if "gaussian" in kernels.values():
        if bandwidth not in BANDWIDTHS:
            raise SettingError("bandwidth", bandwidth, f"unknown bandwidth rule; allowed: {', '.join(BANDWIDTHS.names())}")
        uses_sigma = BANDWIDTHS.meta(bandwidth)["uses_sigma"]
    return (_positive("sigma", sigma) if uses_sigma or sigma is not None else None,
            _positive("epsilon", epsilon) if epsilon is not None else None)


def _positive(key: str, value) -> float:
    try:
        return positive(value, key)
    except ValueError as err:
        raise SettingError(key, value, str(err)) from None


# --------------------------------------------------------------------------- single pairs


@torch.no_grad()
def nhsic(a, b, *, estimator: str = "nocco", kernel_a: str = _DEFAULTS["kernel_x"],
          kernel_b: str = _DEFAULTS["kernel_z"], sigma: float = _DEFAULTS["sigma"],
          epsilon: float = _DEFAULTS["epsilon"], bandwidth: str = _DEFAULTS["bandwidth"],
          num_classes: int | None = None, gram_dtype: torch.dtype | None = None,
          device: str | torch.device | None = None) -> float:
    """nHSIC(A; B) of samples a (m, ...) and b (m, ...) (labels (m,) for ``onehot``), a float.

    A kernel estimator (``KernelEstimator``) on one batch, by the engine's code. ``device=None``
    runs on a's device (CPU for NumPy). Formulas: module docstring."""
    sigma, epsilon = check_kernel_setting({"kernel_a": kernel_a, "kernel_b": kernel_b}, sigma, bandwidth, epsilon)
    est = ESTIMATORS.get(estimator)
    if not isinstance(est, KernelEstimator):
        raise ValueError(f"nhsic computes the kernel estimators; {estimator!r} is measured by measure_snapshot")
    ta, tb = as_tensor(a, "a"), as_tensor(b, "b")
    if ta.shape[0] != tb.shape[0]:
        raise ValueError(f"a and b must hold the same samples, got {ta.shape[0]} and {tb.shape[0]}")
    if ta.shape[0] < est.min_samples:
        raise ValueError(f"estimator {estimator!r} needs at least {est.min_samples} samples, got m={ta.shape[0]}")
    dev = resolve_device(device, ta)
    warn_low_precision_matmul(dev)
    setting = {"sigma": sigma, "bandwidth": bandwidth, "epsilon": epsilon}
    stacks = []
    for t, name, kernel in ((ta, "a", kernel_a), (tb, "b", kernel_b)):
        if kernel == "onehot":
            check_labels(t, name, num_classes)
        geometry = _geometry(t, name, dev, gram_dtype)
        stacks.append(geometry.kernel(kernel, sigma=sigma, bandwidth=bandwidth, num_classes=num_classes))
    return float(est.pair(*stacks, setting)[0])

