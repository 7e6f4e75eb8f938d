"""Single-pair tests of the kernel family (infoplane.estimators: gram, nhsic, ridge_matrix): naive float64 NumPy reference,
known values, invariances, bad input, any shape and dtype."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsic_reference import (EPS, ESTIMATOR_NAMES, correlated, ref_center, ref_estimate, ref_gram, ref_median_distance,
                            ref_ridge)

from infoplane.estimators import BANDWIDTHS, ESTIMATORS, KERNELS, gram, nhsic, ridge_matrix
from infoplane.estimators.geometry import _gemm_dtype


KERNEL_PAIRS = [
    ("gaussian", "gaussian", "fixed"),
    ("gaussian", "gaussian", "median"),
    ("gaussian", "gaussian", "median_scaled"),
    ("linear", "linear", "fixed"),
    ("gaussian", "onehot", "fixed"),
    ("linear", "onehot", "fixed"),
    ("onehot", "gaussian", "median"),
]


def test_registries_name_the_options():
    # the kernel family here; the mutual-information estimators register in the same registry
    assert ESTIMATORS.names() == ["binning", "cka", "cka_minibatch", "cka_unbiased", "kde", "nocco", "nocco_normalized",
                                  "renyi"]
    assert KERNELS.names() == ["gaussian", "linear", "onehot"]
    assert BANDWIDTHS.names() == ["fixed", "median", "median_scaled"]
    assert [BANDWIDTHS.meta(b)["uses_sigma"] for b in BANDWIDTHS.names()] == [True, False, True]


@pytest.mark.parametrize("m", [16, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel_a,kernel_b,bandwidth", KERNEL_PAIRS)
@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_matches_naive_reference(estimator, kernel_a, kernel_b, bandwidth, dtype, m):
    a, b, y = correlated(m)
    a, b = a.astype(dtype), b.astype(dtype)
    pick = {"gaussian": None, "linear": None, "onehot": y}
    left = pick[kernel_a] if kernel_a == "onehot" else a
    right = pick[kernel_b] if kernel_b == "onehot" else b
    got = nhsic(left, right, estimator=estimator, kernel_a=kernel_a, kernel_b=kernel_b, bandwidth=bandwidth)
    want = ref_estimate(estimator, ref_gram(left, kernel_a, bandwidth=bandwidth),
                        ref_gram(right, kernel_b, bandwidth=bandwidth))
    assert abs(want) > 1e-3  # dependent data: the comparison is not between two ~zeros
    assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("kernel,bandwidth", [("gaussian", "fixed"), ("gaussian", "median"),
                                              ("gaussian", "median_scaled"), ("linear", "fixed")])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_gram_matches_reference(kernel, bandwidth, dtype):
    a, _, _ = correlated(20, seed=3)
    t = torch.tensor(a).to(dtype)
    got = gram(t, kernel, bandwidth=bandwidth)
    assert got.dtype == torch.float64 and got.shape == (20, 20)
    want = ref_gram(t.double().numpy(), kernel, bandwidth=bandwidth)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-9 * np.abs(want).max())


def test_onehot_gram_and_label_checks():
    y = np.array([0, 2, 2, 1, 0])
    np.testing.assert_array_equal(gram(y, "onehot", num_classes=3).numpy(), ref_gram(y, "onehot"))
    with pytest.raises(ValueError, match="num_classes=2"):
        gram(y, "onehot", num_classes=2)
    with pytest.raises(ValueError, match="negative"):
        gram(np.array([0, -1, 1]), "onehot")
    with pytest.raises(ValueError, match="1-D integer label vector"):
        gram(np.array([0.0, 1.0, 1.0]), "onehot")


def test_median_bandwidth_with_mostly_coincident_samples():
    """More than half the pairs at distance 0: the median of the positive distances is used."""
    rng = np.random.default_rng(5)
    a = np.concatenate([np.zeros((6, 3)), rng.normal(size=(2, 3))])
    np.testing.assert_allclose(gram(a, bandwidth="median").numpy(), ref_gram(a, "gaussian", bandwidth="median"),
                               rtol=1e-10)
    assert np.all(gram(np.ones((5, 3)), bandwidth="median").numpy() == 1.0)
    assert np.all(gram(np.ones((5, 3)), bandwidth="median_scaled", sigma=2.0).numpy() == 1.0)
    assert ref_median_distance(a, positive_fallback=True) > 0 == ref_median_distance(a)


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_symmetric(estimator, kernel):
    a, b, _ = correlated(40, seed=1)
    ab = nhsic(a, b, estimator=estimator, kernel_a=kernel, kernel_b=kernel)
    ba = nhsic(b, a, estimator=estimator, kernel_a=kernel, kernel_b=kernel)
    assert ab == pytest.approx(ba, rel=1e-10)


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("estimator", ["cka", "cka_unbiased", "nocco_normalized"])
def test_cka_of_a_representation_with_itself_is_one(estimator, kernel):
    a, _, _ = correlated(30, seed=2)
    assert nhsic(a, a, estimator=estimator, kernel_a=kernel, kernel_b=kernel) == pytest.approx(1.0, rel=1e-10)


@pytest.mark.parametrize("estimator", ["cka", "cka_unbiased"])
def test_linear_cka_invariant_to_orthogonal_maps_and_isotropic_scaling(estimator):
    a, b, _ = correlated(50, seed=4)
    flat = a.reshape(50, -1)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(24, 24)))
    base = nhsic(flat, b, estimator=estimator, kernel_a="linear", kernel_b="linear")
    moved = nhsic(3.7 * flat @ q, b, estimator=estimator, kernel_a="linear", kernel_b="linear")
    assert moved == pytest.approx(base, rel=1e-9)
    # an anisotropic scaling is not an invariance: the property above is a real check
    skewed = nhsic(flat * np.linspace(0.1, 5, 24), b, estimator=estimator, kernel_a="linear", kernel_b="linear")
    assert abs(skewed - base) > 1e-3


@pytest.mark.parametrize("classes", [2, 5, 10])
def test_nocco_of_balanced_onehot_with_itself(classes):
    """Balanced one-hot K~ has eigenvalue m/C (C-1 times): nocco = (C-1) / (1 + eps C)^2 ~ C-1."""
    y = np.random.default_rng(0).permutation(np.arange(100) % classes)
    got = nhsic(y, y, estimator="nocco", kernel_a="onehot", kernel_b="onehot")
    assert got == pytest.approx((classes - 1) / (1 + EPS * classes) ** 2, rel=1e-10)
    assert got == pytest.approx(classes - 1, rel=1e-3)


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_label_dependent_representation_beats_a_permuted_copy(estimator, kernel):
    rng = np.random.default_rng(6)
    y = np.arange(120) % 4
    z = rng.normal(size=(4, 16))[y] + 0.5 * rng.normal(size=(120, 16))
    real = nhsic(z, y, estimator=estimator, kernel_a=kernel, kernel_b="onehot")
    shuffled = nhsic(z[rng.permutation(120)], y, estimator=estimator, kernel_a=kernel, kernel_b="onehot")
    assert real > 2 * abs(shuffled) and real - shuffled > 0.1 * (1 if estimator != "nocco" else 10)


@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_constant_representation_scores_zero(estimator, kernel):
    a, _, y = correlated(16)
    const = torch.full((16, 5), 0.1, dtype=torch.float16)
    assert nhsic(const, a, estimator=estimator, kernel_a=kernel, kernel_b=kernel) == 0.0
    assert nhsic(y, const, estimator=estimator, kernel_a="onehot", kernel_b=kernel) == 0.0
    assert nhsic(const, const, estimator=estimator, kernel_a=kernel, kernel_b=kernel) == 0.0


@pytest.mark.parametrize("m", [16, 64])  # d = 24: a float32 GEMM for m = 16, float64 for m = 64
def test_input_dtype_does_not_matter(m):
    assert _gemm_dtype(torch.float16, 16, 24) == torch.float32
    assert _gemm_dtype(torch.float32, 64, 24) == _gemm_dtype(torch.float64, 8, 24) == torch.float64
    a, b, _ = correlated(m, seed=7)
    b = np.concatenate([b, b**2, np.sin(b)], axis=1)  # d = 30
    a16, b16 = torch.tensor(a).half(), torch.tensor(b).half()
    for est in ESTIMATOR_NAMES:
        exact = nhsic(a16.double(), b16.double(), estimator=est)
        assert nhsic(a16, b16, estimator=est) == nhsic(a16.float(), b16.float(), estimator=est)
        assert nhsic(a16, b16, estimator=est) == pytest.approx(exact, rel=1e-6)


def test_nocco_bounded_by_m_minus_one_and_approaches_it_for_x_with_itself():
    a, _, _ = correlated(32, seed=8)
    value = nhsic(a, a, estimator="nocco", sigma=0.5, epsilon=1e-8)
    assert 30.0 < value < 31.0 + 1e-9


@pytest.mark.parametrize("epsilon,sigma", [(1e-5, 5.0), (1e-8, 0.5), (1e-3, 5.0)])
def test_ridge_forms_agree(epsilon, sigma):
    """I - eps m C^-1 (potri, the engine's), the Cholesky solve and the eigendecomposition give the
    same R, also where C is ill-conditioned (eps = 1e-8: cond(C) ~ 1e8), and match the naive inverse."""
    a, _, _ = correlated(48, seed=9)
    k = ref_gram(a, "gaussian", sigma=sigma)
    centered = torch.tensor(ref_center(k))
    forms = {method: ridge_matrix(centered, epsilon, method).numpy() for method in ("cholesky", "solve", "eigh")}
    want = ref_ridge(k, epsilon)
    for method, r in forms.items():
        np.testing.assert_allclose(r, want, atol=2e-8 if epsilon == 1e-8 else 1e-10, err_msg=method)
    np.testing.assert_array_equal(forms["cholesky"], forms["cholesky"].T)  # symmetric by construction
    if epsilon == 1e-5:  # the documented accuracy: ~cond(C) u in R
        assert np.abs(forms["cholesky"] - forms["eigh"]).max() < 1e-10


def test_ridge_eigh_fallback_only_for_the_failed_batch_member():
    """Not positive semi-definite: Cholesky fails and the eigendecomposition clamps l < 0 to 0, for that
    batch member only; its neighbour keeps the Cholesky form (and the single-matrix call agrees)."""
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    lam = np.array([-3.0, 0.0, 0.5, 1.0, 2.0, 4.0])
    fake = u @ np.diag(lam) @ u.T
    keep = np.clip(lam, 0, None)
    want_fake = u @ np.diag(keep / (keep + 0.6)) @ u.T
    good = ref_center(ref_gram(rng.normal(size=(6, 3)), "gaussian"))
    stack = torch.tensor(np.stack([good, fake, good]))
    got = ridge_matrix(stack, 0.1, "cholesky").numpy()
    np.testing.assert_allclose(got[1], want_fake, atol=1e-12)
    want_good = good @ np.linalg.inv(good + 0.6 * np.eye(6))
    np.testing.assert_allclose(got[0], want_good, atol=1e-12)
    np.testing.assert_array_equal(got[0], got[2])
    np.testing.assert_allclose(ridge_matrix(torch.tensor(fake), 0.1).numpy(), want_fake, atol=1e-12)
    with pytest.raises(ValueError, match="method must be"):
        ridge_matrix(stack, 0.1, "inverse")


# --------------------------------------------------------------------------- nocco_normalized


def test_nocco_normalized_is_one_for_a_with_itself_and_symmetric():
    a, b, y = correlated(40, seed=12)
    for kernel in ("gaussian", "linear"):
        assert nhsic(a, a, estimator="nocco_normalized", kernel_a=kernel, kernel_b=kernel) == pytest.approx(1.0, rel=1e-12)
    ab = nhsic(a, b, estimator="nocco_normalized")
    assert 0.0 < ab < 1.0
    assert ab == pytest.approx(nhsic(b, a, estimator="nocco_normalized"), rel=1e-12)
    assert nhsic(y, y, estimator="nocco_normalized", kernel_a="onehot", kernel_b="onehot") == pytest.approx(1.0, rel=1e-12)


def test_nocco_normalized_linear_kernel_invariant_to_isotropic_scaling():
    """A linear representation whose centered Gram is c^2 times a projector (orthonormal centered
    columns Q) has R = c^2/(c^2 + eps m) Q Q^T: the factor cancels in the normalized form, exactly,
    while nocco itself moves with c (the scale dependence the normalized form removes)."""
    rng = np.random.default_rng(13)
    m = 40
    raw = rng.normal(size=(m, 5))
    q, _ = np.linalg.qr(raw - raw.mean(axis=0))  # orthonormal columns orthogonal to 1
    other = np.tanh(raw @ rng.normal(size=(5, 8))) + 0.5 * rng.normal(size=(m, 8))
    kw = dict(kernel_a="linear", kernel_b="gaussian", epsilon=1e-2)
    base = nhsic(q, other, estimator="nocco_normalized", **kw)
    for c in (1e-2, 0.3, 10.0):
        assert nhsic(c * q, other, estimator="nocco_normalized", **kw) == pytest.approx(base, rel=1e-10)
    small, large = (nhsic(c * q, other, estimator="nocco", **kw) for c in (0.3, 10.0))
    assert large > 1.5 * small


@pytest.mark.skipif(np.finfo(np.longdouble).eps > 1e-18, reason="needs an extended-precision long double")
@pytest.mark.parametrize("estimator", ["nocco", "cka", "cka_unbiased"])
def test_nearly_constant_gaussian_kernel_keeps_full_precision(estimator):
    """Tiny activations under the fixed bandwidth (the paper's regime at initialization) make K = 1 - O(1e-10):
    the engine works with K - 1 = expm1(-D / 2s^2), so it keeps ~1e-12 against an extended-precision
    reference computed the same shift-free way (centering and U-centering ignore the constant)."""
    rng = np.random.default_rng(14)
    m, d, scale = 48, 20, 1e-4
    a = rng.normal(size=(m, d)) * scale
    b = (np.tanh(a / scale @ rng.normal(size=(d, d)) / 3) + 0.3 * rng.normal(size=(m, d))) * scale
    ld = np.longdouble

    def shifted_kernel(x):
        x = x.astype(ld)
        return np.expm1(-((x[:, None] - x[None]) ** 2).sum(-1) / (ld(2) * ld(25) * d))

    k, l = shifted_kernel(a), shifted_kernel(b)
    h = np.eye(m, dtype=ld) - ld(1) / m
    kc, lc = h @ k @ h, h @ l @ h
    if estimator == "cka":
        want = (kc * lc).sum() / np.sqrt((kc * kc).sum() * (lc * lc).sum())
    elif estimator == "cka_unbiased":
        def ucenter(g):
            g = g - np.diag(np.diag(g))
            r = g.sum(1)
            u = g - (r[:, None] + r[None, :]) / (m - 2) + r.sum() / ((m - 1) * (m - 2))
            return u - np.diag(np.diag(u))

        ku, lu = ucenter(kc), ucenter(lc)
        want = (ku * lu).sum() / np.sqrt((ku * ku).sum() * (lu * lu).sum())
    else:
        eye = np.eye(m, dtype=ld)
        want = np.trace(kc @ np.linalg.inv((kc + ld(EPS * m) * eye).astype(np.float64)).astype(ld)
                        @ lc @ np.linalg.inv((lc + ld(EPS * m) * eye).astype(np.float64)).astype(ld))
    got = nhsic(a, b, estimator=estimator)
    assert got == pytest.approx(float(want), rel=1e-10 if estimator == "nocco" else 1e-12)


# --------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors():
    a, b, y = correlated(8)
    with pytest.raises(ValueError, match="at least 2 samples"):
        nhsic(a[:1], b[:1])
    with pytest.raises(ValueError, match="at least 4 samples"):
        nhsic(a[:3], b[:3], estimator="cka_unbiased")
    nan_a = a.copy()
    nan_a[2, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="^a contains NaN or Inf"):
        nhsic(nan_a, b)
    inf_b = b.copy()
    inf_b[0, 0] = np.inf
    with pytest.raises(ValueError, match="^b contains NaN or Inf"):
        nhsic(a, inf_b)
    with pytest.raises(ValueError, match="same samples"):
        nhsic(a, b[:7])
    with pytest.raises(KeyError, match="allowed: binning, cka, cka_minibatch, cka_unbiased, kde, nocco, "
                                       "nocco_normalized, renyi"):
        nhsic(a, b, estimator="mi")
    with pytest.raises(KeyError, match="allowed: gaussian, linear, onehot"):
        nhsic(a, b, kernel_a="rbf")
    with pytest.raises(ValueError, match="sigma"):
        nhsic(a, b, sigma=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        nhsic(a, b, epsilon=-1.0)
    with pytest.raises(ValueError, match="bandwidth"):
        nhsic(a, b, bandwidth="silverman")


# --------------------------------------------------------------------------- hypothesis


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(4, 24),
    feature_shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    estimator=st.sampled_from(ESTIMATOR_NAMES),
    kernel=st.sampled_from(["gaussian", "linear"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_shape_and_dtype(m, feature_shape, dtype, estimator, kernel, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, *feature_shape)).astype(dtype)
    b = (rng.normal(size=(m, 3)) + a.reshape(m, -1)[:, :1]).astype(dtype)
    value = nhsic(a, b, estimator=estimator, kernel_a=kernel, kernel_b=kernel)
    assert np.isfinite(value)
    assert value == pytest.approx(nhsic(b, a, estimator=estimator, kernel_a=kernel, kernel_b=kernel),
                                  rel=1e-9, abs=1e-12)
    if estimator == "nocco":
        assert -1e-9 <= value <= m - 1 + 1e-9
    elif estimator in ("cka", "nocco_normalized"):
        assert -1e-12 <= value <= 1 + 1e-9
    ref = ref_estimate(estimator, ref_gram(a, kernel), ref_gram(b, kernel))
    exact = nhsic(a, b, estimator=estimator, kernel_a=kernel, kernel_b=kernel, gram_dtype=torch.float64)
    assert exact == pytest.approx(ref, rel=1e-6, abs=1e-9)
    # the default float32 GEMM (d > m only): within the precision documented in the README
    assert value == pytest.approx(ref, rel=2e-5, abs=1e-9)
