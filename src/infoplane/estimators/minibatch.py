"""Minibatch CKA (``cka_minibatch``) for evaluation sets too large for one n x n Gram matrix.

Nguyen, Raghu & Kornblith (2021), "Do wide and deep networks learn the same things?", ICLR:
cut the n samples into k minibatches of b, estimate HSIC on each with Song et al.'s (2012)
unbiased estimator HSIC_u (``kernel.unbiased_numerator``), average over the minibatches, and
take the ratio of the averages,

    CKA_mb(K, L) = mean_i HSIC_u(K_i, L_i) / sqrt(mean_i HSIC_u(K_i, K_i) mean_i HSIC_u(L_i, L_i)),

so that the noise of small minibatches averages out in numerator and denominator separately
(the mean of per-batch CKA ratios, what ``cka_unbiased`` reports, is biased by the ratio's
nonlinearity). Memory is O(b^2) whatever n: ``minibatch_cka`` holds one minibatch's kernels at a
time. With k = 1 it is ``cka_unbiased`` on the full sample.

In the engine (``CkaMinibatch``), the batches are the engine's batches of ``batch_size`` = b; a
batch's value is its share HSIC_u(K_i, L_i) / den with the pooled denominator den (the same for
every batch), so the engine's mean over batches is CKA_mb and ``value_*_std`` the spread of the
per-batch numerators on that scale. The null: permuting Z leaves HSIC_u(L_i, L_i) unchanged, so
only the numerators are gathered (``CkaUnbiased.null_numerators``) and the batch mean of a joint
permutation is CKA_mb of the jointly permuted data. The engine keeps the (B, b, b) stacks of a
layer (memory O(n b)); ``minibatch_cka`` is the O(b^2) path for a single pair.
"""

from __future__ import annotations

import torch

from .base import ESTIMATORS
from .geometry import as_tensor, check_labels, resolve_device, warn_low_precision_matmul
from .kernel import CkaUnbiased, KernelStack, _geometry, check_kernel_setting, unbiased_numerator
from .settings import KernelSettings


class CkaMinibatch(CkaUnbiased):
    """CKA_mb: the batches' unbiased HSICs averaged before the ratio (module docstring)."""

    name = "cka_minibatch"
    stacks_layers = False  # its denominator pools the batches of one layer

    def denominator(self, a: KernelStack, z: KernelStack, setting) -> torch.Tensor:
        """(B,) sqrt(mean_i HSIC_u(K_i, K_i) mean_i HSIC_u(L_i, L_i)), the same for every batch
        (the m(m-3) factors of numerator and denominator cancel)."""
        pooled = (a.unbiased_self.mean() * z.unbiased_self.mean()).sqrt()
        return pooled.expand(a.batches)

    def _finish(self, num, a, z, setting):
        """num / den; 0 only where the pooled denominator is 0 (a batch with a constant kernel has a
        zero numerator by itself and still counts in the mean)."""
        den = self.denominator(a, z, setting)
        shape = (-1, *([1] * (num.ndim - 1)))
        return torch.where((den == 0).reshape(shape), 0.0, num / torch.where(den == 0, 1.0, den).reshape(shape))


ESTIMATORS.register(CkaMinibatch.name)(CkaMinibatch())


@torch.no_grad()
def minibatch_cka(a, b, *, batch_size: int, kernel_a: str = "linear", kernel_b: str = "linear",
                  sigma: float | None = None, bandwidth: str = KernelSettings.defaults()["bandwidth"],
                  num_classes: int | None = None, gram_dtype: torch.dtype | None = None,
                  device: str | torch.device | None = None) -> float:
    """CKA_mb of samples a (n, ...) and b (n, ...) (labels (n,) for ``onehot``) over the
    n // batch_size consecutive minibatches (a trailing partial one dropped), one at a time.

    Memory O(batch_size^2): per minibatch one Geometry and one KernelStack per side, then three
    float64 sums. ``sigma`` is needed by the Gaussian kernel's ``fixed`` and ``median_scaled``
    rules only. Kernels and their numerics: ``kernel``."""
    sigma, _ = check_kernel_setting({"kernel_a": kernel_a, "kernel_b": kernel_b}, sigma, bandwidth)
    ta, tb = as_tensor(a, "a"), as_tensor(b, "b")
    if ta.shape[0] != tb.shape[0]:
        raise ValueError(f"a and b must hold the same samples, got {ta.shape[0]} and {tb.shape[0]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 4:
        raise ValueError(f"batch_size must be an integer >= 4 (HSIC_u needs 4 samples), got {batch_size!r}")
    batches = ta.shape[0] // batch_size
    if batches < 1:
        raise ValueError(f"batch_size={batch_size} exceeds the {ta.shape[0]} samples; lower it")
    for t, name, kernel in ((ta, "a", kernel_a), (tb, "b", kernel_b)):
        if kernel == "onehot":
            check_labels(t, name, num_classes)
    dev = resolve_device(device, ta)
    warn_low_precision_matmul(dev)
    sums = torch.zeros(3, dtype=torch.float64, device=dev)  # sum_i HSIC_u(K, L), (K, K), (L, L) (times m(m-3))
    for i in range(batches):
        part = slice(i * batch_size, (i + 1) * batch_size)
        k, l = (_geometry(t[part], name, dev, gram_dtype).kernel(kern, sigma=sigma, bandwidth=bandwidth,
                                                                  num_classes=num_classes)
                for t, name, kern in ((ta, "a", kernel_a), (tb, "b", kernel_b)))
        sums += torch.cat([unbiased_numerator(k, l), k.unbiased_self, l.unbiased_self])
    num, self_a, self_b = sums.tolist()  # the one host sync
    den = (self_a * self_b) ** 0.5
    return 0.0 if den == 0 else num / den
