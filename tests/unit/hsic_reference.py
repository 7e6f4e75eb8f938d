"""Deliberately naive float64 NumPy references for the dependence tests, written straight from
the formulas: broadcast distances, explicit H, explicit inverses, loops where they read clearest."""

from __future__ import annotations

import numpy as np

EPS = 1e-5


def ref_gram(a, kernel, sigma=5.0, bandwidth="fixed"):
    if kernel == "onehot":
        y = np.asarray(a)
        onehot = np.zeros((len(y), y.max() + 1))
        onehot[np.arange(len(y)), y] = 1.0
        return onehot @ onehot.T
    x = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    if kernel == "linear":
        return x @ x.T
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    if bandwidth == "fixed":
        return np.exp(-d2 / (2 * sigma**2 * x.shape[1]))
    s = ref_median_distance(x, positive_fallback=True)
    if bandwidth == "median_scaled":
        s = sigma * s
    return np.exp(-d2 / (2 * s**2))


def ref_median_distance(x, positive_fallback=False):
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    dist = np.sqrt(d2[np.triu_indices(len(x), k=1)])
    s = np.median(dist)
    if s == 0 and positive_fallback:
        s = np.median(dist[dist > 0])
    return s


def ref_center(k):
    m = len(k)
    h = np.eye(m) - np.ones((m, m)) / m
    return h @ k @ h


def ref_ridge(k, eps=EPS):
    m = len(k)
    kc = ref_center(k)
    return kc @ np.linalg.inv(kc + eps * m * np.eye(m))


def ref_hsic_biased(k, l):
    m = len(k)
    return np.trace(ref_center(k) @ ref_center(l)) / (m - 1) ** 2


def ref_hsic_unbiased(k, l):
    m = len(k)
    kh, lh = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(m)
    return (
        np.trace(kh @ lh)
        + (one @ kh @ one) * (one @ lh @ one) / ((m - 1) * (m - 2))
        - 2.0 / (m - 2) * (one @ kh @ lh @ one)
    ) / (m * (m - 3))


def ref_nocco(k, l, eps=EPS):
    return np.trace(ref_ridge(k, eps) @ ref_ridge(l, eps))


def ref_estimate(estimator, k, l, eps=EPS):
    if estimator == "nocco":
        return ref_nocco(k, l, eps)
    if estimator == "nocco_normalized":
        return ref_nocco(k, l, eps) / np.sqrt(ref_nocco(k, k, eps) * ref_nocco(l, l, eps))
    f = ref_hsic_biased if estimator == "cka" else ref_hsic_unbiased
    return f(k, l) / np.sqrt(f(k, k) * f(l, l))


def correlated(m, seed=0):
    """Samples a (m, 2, 3, 4), a dependent representation b (m, 10) and labels from a (4 classes)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, 2, 3, 4))
    flat = a.reshape(m, -1)
    b = np.tanh(flat @ rng.normal(size=(24, 10)) / 3) + 0.3 * rng.normal(size=(m, 10))
    y = (flat[:, 0] > 0).astype(np.int64) + 2 * (flat[:, 1] > 0)
    return a, b, y


ESTIMATOR_NAMES = ["nocco", "nocco_normalized", "cka", "cka_unbiased"]
