"""The geometry both estimator families share: input checks, sample stacks, squared distances,
and the kernels and bandwidth rules of the kernel family (registries ``KERNELS``, ``BANDWIDTHS``).

For m samples, each representation is flattened to vectors a_1..a_m in R^d, D_ij = ||a_i - a_j||^2.
Samples are flattened and the batch's mean sample subtracted (distances do not change, and the
cancellation in ||a||^2 + ||b||^2 - 2 a.b shrinks); pairwise squared distances come from one GEMM,
clamped at 0. The kernel family's Gaussian GEMM is float32 where it dominates the cost (d > m and
input not float64), else float64 (``_gemm_dtype``; ``gram_dtype`` overrides); the linear kernel's
is float64; everything after the GEMM is float64. The MI family's ``squared_distances`` is always
float64, in chunks bounded by ``STACK_BUDGET_ELEMENTS``. No m x m x d tensor is built.
A ``LayerStack`` joins the geometries of several layers (same B and m) into one (L B, m, m) stack.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import torch

from infoplane import runtime
from infoplane.registry import Registry

if TYPE_CHECKING:
    from .kernel import KernelStack

KERNELS: Registry = Registry("kernel")
BANDWIDTHS: Registry = Registry("bandwidth")

# Approximate cap on the float64 elements of the MI family's temporaries built at once: 2**25 = 256 MiB.
STACK_BUDGET_ELEMENTS = 2**25

# --------------------------------------------------------------------------- inputs


def resolve_device(device: str | torch.device | None, like: torch.Tensor | None = None) -> torch.device:
    """``"auto"``: CUDA if available else CPU; ``None``: the device of ``like`` (CPU without it)."""
    if device is None:
        return like.device if isinstance(like, torch.Tensor) else torch.device("cpu")
    return runtime.resolve_device(str(device))


def as_tensor(a, name: str) -> torch.Tensor:
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


def check_labels(t: torch.Tensor, name: str, num_classes: int | None) -> None:
    if t.ndim != 1 or t.is_floating_point():
        raise ValueError(
            f"{name} must be a 1-D integer label vector (class indices 0..C-1), "
            f"got dtype {t.dtype} and shape {tuple(t.shape)}"
        )
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} has negative labels; labels must be 0..num_classes-1")
    if num_classes is not None and t.numel() and int(t.max()) >= num_classes:
        raise ValueError(f"{name} has label {int(t.max())} >= num_classes={num_classes}")


def positive(value, key: str) -> float:
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{key} must be a positive number, got {value!r}")
    return float(value)


def warn_low_precision_matmul(device: torch.device) -> None:
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


def bdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum over all but the first axis of a * b, (B,). On a GPU one batched GEMV (one launch, no
    temporary). On the CPU, where a batched GEMV of (1, n) x (n, 1) runs at a third of a dot's speed
    (0.09 ms against 0.04 ms for a (7, 128, 128) stack): a BLAS dot per member of 2**14 elements or
    more (a temporary there would cost more than the loop: 2.3 ms against 24 ms at (7, 1000, 1000)),
    the product's sum for smaller members (0.04 ms against 0.4 ms for the loop at (128, 32, 32))."""
    n = a.shape[0]
    if a.device.type != "cpu":
        return torch.bmm(a.reshape(n, 1, -1), b.reshape(n, -1, 1)).reshape(n)
    if a[0].numel() >= 1 << 14:
        return torch.stack([torch.dot(u.reshape(-1), v.reshape(-1)) for u, v in zip(a, b)])
    return (a * b).reshape(n, -1).sum(dim=1)


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
        self.deferred_checks: list | None = None

    @property
    def device(self) -> torch.device:
        return self.data.device

    @cached_property
    def dims(self) -> torch.Tensor:
        """(B,) float64 the feature count d of each batch's samples (a ``LayerStack`` mixes several)."""
        return torch.full((self.batches,), float(self.dim), dtype=torch.float64, device=self.device)

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

        NaN/Inf anywhere in a sample makes its squared norm non-finite: checked here (one sync), or,
        in a ``LayerStack``, recorded in ``deferred_checks`` and checked once for all its layers."""
        if dtype not in self._inner:
            f, mean = self.features(dtype)
            g = torch.matmul(f, f.mT).to(torch.float64)
            finite = torch.isfinite(g.diagonal(dim1=-2, dim2=-1)).all()
            if self.deferred_checks is not None:
                self.deferred_checks.append((self, dtype, finite))
            elif not bool(finite):
                raise_not_finite(self.name, dtype)
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
        iu = torch.triu_indices(self.m, self.m, offset=1, device=self.device)
        return self.sq_distances()[:, iu[0], iu[1]]

    @cached_property
    def _middle_sq_distances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The two middle order statistics of D over the pairs (equal for an odd count), (B,) each."""
        values = self._pair_values
        n = values.shape[1]
        if n == 0:
            zero = torch.zeros(self.batches, dtype=torch.float64, device=values.device)
            return zero, zero
        # the k = n//2 + 1 smallest (unsorted; one selection pass): hi is their largest, lo the next.
        # Selected on the int64 bit patterns, which order non-negative doubles as their values do
        # (the distances are clamped at +0 and finite): 0.34 ms against 0.48 ms for 7 x 8,128 pairs.
        smallest = values.view(torch.int64).topk(n // 2 + 1, dim=1, largest=False, sorted=False).values
        if n % 2:
            hi = smallest.amax(dim=1).view(torch.float64)
            return hi, hi
        top2 = smallest.topk(2, dim=1).values if smallest.shape[1] > 1 else smallest.expand(-1, 2)
        top2 = top2.view(torch.float64)
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
        key = kernel_key(kernel, sigma, bandwidth)
        if key not in self._kernels:
            self._kernels[key] = KERNELS.get(kernel)(self, sigma=sigma, bandwidth=bandwidth, num_classes=num_classes)
        return self._kernels[key]


def raise_not_finite(name: str, dtype: torch.dtype) -> None:
    raise ValueError(f"{name} contains NaN or Inf values (or values whose squares overflow "
                     f"{dtype}); the estimators need finite inputs")


class LayerStack(Geometry):
    """The ``Geometry`` of L layers with the same (B, m) as one (L B, m, m) stack, layer-major.

    Every layer forms its own Gram matrix (its d and GEMM dtype are its own); what follows the GEMM
    runs once on the stack: squared distances, medians, kernels, centering, the ridge factors, the
    traces and the gathers of the null. Batch member l B + b is batch b of layer l. ``dims`` holds
    each member's d (the fixed bandwidth rule and the diagnostics scale by it)."""

    def __init__(self, layers: Sequence[Geometry]) -> None:
        first = layers[0]
        if any(g.batches != first.batches or g.m != first.m for g in layers):
            raise ValueError("a LayerStack needs layers with the same batches and batch size")
        self.layers = list(layers)
        self.data = first.data[:0]  # device and dtype only: the stack has no single sample tensor
        self.name = ", ".join(g.name for g in layers)
        self.batches, self.m, self.dim = first.batches * len(layers), first.m, None
        self.gram_dtype = first.gram_dtype
        self._inner: dict[torch.dtype, torch.Tensor] = {}
        self._sq_distances: dict[torch.dtype | None, torch.Tensor] = {}
        self._kernels: dict[tuple, KernelStack] = {}
        self.deferred_checks = []
        for g in self.layers:  # their finite checks wait for the stack: one sync for all layers
            g.deferred_checks = self.deferred_checks

    def _check_finite(self) -> None:
        """The layers' pending finite checks in one sync; the first failing layer named."""
        if self.deferred_checks:
            pending, self.deferred_checks[:] = list(self.deferred_checks), []
            flags = torch.stack([finite for _, _, finite in pending])
            if not bool(flags.all()):
                g, dtype, _ = pending[int(flags.to(torch.uint8).argmin())]
                raise_not_finite(g.name, dtype)

    @cached_property
    def dims(self) -> torch.Tensor:
        return torch.cat([g.dims for g in self.layers])

    @property
    def distance_dtype(self) -> torch.dtype:
        raise ValueError("a LayerStack's layers have their own distance dtypes")

    @property
    def labels(self) -> torch.Tensor:
        return torch.cat([g.labels for g in self.layers])

    def features(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        raise ValueError("a LayerStack has no single feature tensor; use its layers' features")

    def inner(self, dtype: torch.dtype) -> torch.Tensor:
        if dtype not in self._inner:
            self._inner[dtype] = torch.cat([g.inner(dtype) for g in self.layers])
            self._check_finite()
        return self._inner[dtype]

    def sq_distances(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(L B, m, m): each layer's distances (at its own GEMM dtype unless ``dtype``), stacked; the
        layers' own copies are dropped once stacked."""
        if dtype not in self._sq_distances:
            parts = []
            for g in self.layers:
                parts.append(g.sq_distances(dtype))
                g._sq_distances.pop(dtype or g.distance_dtype, None)
            self._check_finite()
            self._sq_distances[dtype] = torch.cat(parts)
        return self._sq_distances[dtype]

    @cached_property
    def mean_sq_activation(self) -> torch.Tensor:
        out = torch.cat([g.mean_sq_activation for g in self.layers])
        self._check_finite()
        return out


def kernel_key(kernel: str, sigma: float | None, bandwidth: str | None) -> tuple:
    """What a kernel depends on: (kernel,), plus (bandwidth, sigma where the rule uses it) for Gaussians."""
    if kernel != "gaussian":
        return (kernel,)
    return (kernel, bandwidth, sigma if BANDWIDTHS.meta(bandwidth)["uses_sigma"] else None)


# --------------------------------------------------------------------------- bandwidths


@BANDWIDTHS.register("fixed", uses_sigma=True)
def fixed_bandwidth(geometry: Geometry, sigma: float) -> torch.Tensor:
    """s^2 = sigma^2 d: exp(-D / (2 sigma^2 d)), the paper's rule."""
    return geometry.dims * sigma**2


@BANDWIDTHS.register("median", uses_sigma=False)
def median_bandwidth(geometry: Geometry, sigma: float | None) -> torch.Tensor:
    """s^2 = med^2, med the median pairwise distance of the batch (positive fallback)."""
    return geometry.median_bandwidth.square()


@BANDWIDTHS.register("median_scaled", uses_sigma=True)
def median_scaled_bandwidth(geometry: Geometry, sigma: float) -> torch.Tensor:
    """s^2 = (sigma med)^2."""
    return geometry.median_bandwidth.square() * sigma**2


# --------------------------------------------------------------------------- sample stacks of the MI family


def check_stack(data: torch.Tensor, what: str) -> torch.Tensor:
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


def check_label_stack(labels: torch.Tensor) -> torch.Tensor:
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


def batch_chunks(batches: int, per_batch_elements: int) -> Iterator[slice]:
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
    for part in batch_chunks(batches, m * d):
        f = t[part].to(torch.float64)
        f = f - f.mean(dim=1, keepdim=True)
        sq = (f * f).sum(dim=-1)
        g = torch.baddbmm(sq[:, :, None] + sq[:, None, :], f, f.transpose(1, 2), alpha=-2.0)
        out[part] = g.clamp_min_(0.0)
    out.diagonal(dim1=1, dim2=2).zero_()
    return out


