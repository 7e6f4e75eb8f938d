"""Tests of infoplane.hsic against a naive float64 NumPy reference and known properties."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infoplane import hsic
from infoplane.hsic import ESTIMATORS, KERNELS, Kernel, gram, layer_scores, nhsic, ridge_matrix

EPS = 1e-5

# --------------------------------------------------------------------------- naive reference
# Written straight from the formulas: broadcasting distances, explicit H, an explicit inverse.


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
    dist = np.sqrt(d2[np.triu_indices(len(x), k=1)])
    s = np.median(dist)
    if s == 0:
        s = np.median(dist[dist > 0])
    return np.exp(-d2 / (2 * s**2))


def ref_center(k):
    m = len(k)
    h = np.eye(m) - np.ones((m, m)) / m
    return h @ k @ h


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
    m = len(k)

    def r(g):
        gc = ref_center(g)
        return gc @ np.linalg.inv(gc + eps * m * np.eye(m))

    return np.trace(r(k) @ r(l))


def ref_estimate(estimator, k, l, eps=EPS):
    if estimator == "nocco":
        return ref_nocco(k, l, eps)
    f = ref_hsic_biased if estimator == "cka" else ref_hsic_unbiased
    return f(k, l) / np.sqrt(f(k, k) * f(l, l))


# --------------------------------------------------------------------------- data


def correlated(m, seed=0):
    """Samples a (m, 2, 3, 4), a dependent representation b (m, 10) and labels from a (4 classes)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, 2, 3, 4))
    flat = a.reshape(m, -1)
    b = np.tanh(flat @ rng.normal(size=(24, 10)) / 3) + 0.3 * rng.normal(size=(m, 10))
    y = (flat[:, 0] > 0).astype(np.int64) + 2 * (flat[:, 1] > 0)
    return a, b, y


ESTIMATOR_NAMES = ["nocco", "cka", "cka_unbiased"]
KERNEL_PAIRS = [
    ("gaussian", "gaussian", "fixed"),
    ("gaussian", "gaussian", "median"),
    ("linear", "linear", "fixed"),
    ("gaussian", "onehot", "fixed"),
    ("linear", "onehot", "fixed"),
    ("onehot", "gaussian", "median"),
]


def test_registries_name_the_options():
    assert ESTIMATORS.names() == ["cka", "cka_unbiased", "nocco"]
    assert KERNELS.names() == ["gaussian", "linear", "onehot"]


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


@pytest.mark.parametrize("kernel,bandwidth", [("gaussian", "fixed"), ("gaussian", "median"), ("linear", "fixed")])
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


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_symmetric(estimator, kernel):
    a, b, _ = correlated(40, seed=1)
    ab = nhsic(a, b, estimator=estimator, kernel_a=kernel, kernel_b=kernel)
    ba = nhsic(b, a, estimator=estimator, kernel_a=kernel, kernel_b=kernel)
    assert ab == pytest.approx(ba, rel=1e-10)


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("estimator", ["cka", "cka_unbiased"])
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
    assert hsic._gemm_dtype(torch.float16, 16, 24) == torch.float32
    assert hsic._gemm_dtype(torch.float32, 64, 24) == hsic._gemm_dtype(torch.float64, 8, 24) == torch.float64
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


def test_ridge_cholesky_and_eigh_agree_and_eigh_is_the_fallback():
    a, _, _ = correlated(48, seed=9)
    centered = Kernel(gram(a)).centered
    np.testing.assert_allclose(ridge_matrix(centered, EPS, "cholesky").numpy(),
                               ridge_matrix(centered, EPS, "eigh").numpy(), atol=1e-9)
    # not positive semi-definite: Cholesky fails, the eigendecomposition clamps l < 0 to 0
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    lam = np.array([-3.0, 0.0, 0.5, 1.0, 2.0, 4.0])
    fake = torch.tensor(u @ np.diag(lam) @ u.T)
    got = ridge_matrix(fake, 0.1, "cholesky").numpy()
    keep = np.clip(lam, 0, None)
    np.testing.assert_allclose(got, u @ np.diag(keep / (keep + 0.6)) @ u.T, atol=1e-12)


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
    with pytest.raises(KeyError, match="allowed: cka, cka_unbiased, nocco"):
        nhsic(a, b, estimator="mi")
    with pytest.raises(KeyError, match="allowed: gaussian, linear, onehot"):
        nhsic(a, b, kernel_a="rbf")
    with pytest.raises(ValueError, match="sigma"):
        nhsic(a, b, sigma=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        nhsic(a, b, epsilon=-1.0)
    with pytest.raises(ValueError, match="bandwidth"):
        nhsic(a, b, bandwidth="silverman")


def test_layer_scores_bad_input():
    x = torch.randn(40, 6)
    y = torch.arange(40) % 3
    with pytest.raises(ValueError, match=r"batch_size=64 .* number of samples \(40\)"):
        layer_scores(x, y, [x], batch_size=64)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="layer 'conv2' contains NaN"):
        layer_scores(x, y, {"conv1": x, "conv2": bad}, batch_size=8)
    with pytest.raises(ValueError, match="layer '0' has 39 samples"):
        layer_scores(x, y, [x[:39]], batch_size=8)
    with pytest.raises(ValueError, match="needs at least 4 samples, got batch_size=3"):
        layer_scores(x, y, [x], batch_size=3, estimators="cka_unbiased")
    with pytest.raises(ValueError, match="y to be a 1-D integer label vector"):
        layer_scores(x, y.float(), [x], batch_size=8)
    with pytest.raises(ValueError, match="2 names for 1 layers"):
        layer_scores(x, y, [x], batch_size=8, layer_names=["a", "b"])


# --------------------------------------------------------------------------- layer_scores


def test_layer_scores_equals_a_loop_of_nhsic_calls():
    rng = np.random.default_rng(10)
    n, bs = 3 * 24 + 5, 24  # the trailing 5 samples are dropped
    x = torch.tensor(rng.normal(size=(n, 1, 4, 4)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 3, n))
    z1 = torch.tanh(x.reshape(n, -1) @ torch.randn(16, 8)).half()
    z2 = torch.relu(z1.float() @ torch.randn(8, 5)).half()
    ests = ["nocco", "cka", "cka_unbiased"]
    df = layer_scores(x, y, [z1, z2], batch_size=bs, estimators=ests, layer_names=["fc1", "fc2"], device="auto")

    assert list(df.columns) == list(hsic.SCORE_COLUMNS)
    assert len(df) == 2 * len(ests)
    assert {c: str(df[c].dtype) for c in ("layer", "n_batches", "n_samples")} == dict.fromkeys(
        ("layer", "n_batches", "n_samples"), "int64")
    for c in ("nhsic_xz", "nhsic_xz_std", "nhsic_yz", "nhsic_yz_std"):
        assert df[c].dtype == np.float64
    assert (df["n_batches"] == 3).all() and (df["n_samples"] == 72).all()
    assert df["layer"].tolist() == [0, 0, 0, 1, 1, 1] and df["layer_name"].tolist()[::3] == ["fc1", "fc2"]

    for row in df.itertuples():
        z = [z1, z2][row.layer]
        xz = [nhsic(x[i:i + bs], z[i:i + bs], estimator=row.estimator) for i in range(0, 72, bs)]
        yz = [nhsic(y[i:i + bs], z[i:i + bs], estimator=row.estimator, kernel_a="onehot") for i in range(0, 72, bs)]
        assert row.nhsic_xz == pytest.approx(np.mean(xz), rel=1e-12)
        assert row.nhsic_xz_std == pytest.approx(np.std(xz), rel=1e-9)
        assert row.nhsic_yz == pytest.approx(np.mean(yz), rel=1e-12)
        assert row.nhsic_yz_std == pytest.approx(np.std(yz), rel=1e-9)
        assert row.nhsic_xz_std > 0


def test_layer_scores_single_batch_dict_names_and_constant_layer():
    x = torch.randn(16, 5)
    y = torch.arange(16) % 2
    df = layer_scores(x, y, {"conv": x.clone(), "dead": torch.zeros(16, 3, dtype=torch.float16)},
                      batch_size=16, estimators="cka")
    assert df["layer_name"].tolist() == ["conv", "dead"] and df["estimator"].tolist() == ["cka", "cka"]
    assert df["n_batches"].tolist() == [1, 1]
    assert (df[["nhsic_xz_std", "nhsic_yz_std"]] == 0.0).all().all()
    assert df["nhsic_xz"].iloc[0] == pytest.approx(1.0)  # a copy of x
    assert df[["nhsic_xz", "nhsic_yz"]].iloc[1].tolist() == [0.0, 0.0]


def test_layer_scores_builds_x_and_y_kernels_once_per_batch(monkeypatch):
    calls = {"gaussian": 0, "onehot": 0}
    for name in calls:
        original = KERNELS.get(name)

        def counted(t, _original=original, _name=name, **kw):
            calls[_name] += 1
            return _original(t, **kw)

        monkeypatch.setitem(KERNELS._entries, name, counted)
    seen = []

    def spy(a, b, *, epsilon):
        seen.append(a)
        return 0.0

    spy.min_samples = 2
    monkeypatch.setitem(ESTIMATORS._entries, "spy", spy)
    x, y = torch.randn(30, 4), torch.arange(30) % 3
    layer_scores(x, y, [x, x + 1, x * 3], batch_size=10, estimators=["spy", "nocco"])
    assert calls == {"gaussian": 3 * (1 + 3), "onehot": 3}
    # per batch, every layer was compared with the same X and Y Kernel objects
    per_batch = [seen[i * 6:(i + 1) * 6] for i in range(3)]
    for batch in per_batch:
        assert len({id(k) for k in batch}) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_agrees_with_cpu():
    rng = np.random.default_rng(11)
    x = torch.tensor(rng.normal(size=(256, 64)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 10, 256))
    z = torch.relu(x @ torch.randn(64, 32)).half()
    kw = dict(batch_size=128, estimators=ESTIMATOR_NAMES)
    cpu = layer_scores(x, y, [z], device="cpu", **kw)
    gpu = layer_scores(x.cuda(), y.cuda(), [z.cuda()], device="cuda", **kw)
    for c in ("nhsic_xz", "nhsic_yz"):
        np.testing.assert_allclose(gpu[c], cpu[c], rtol=1e-6)


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
    elif estimator == "cka":
        assert -1e-12 <= value <= 1 + 1e-9
    ref = ref_estimate(estimator, ref_gram(a, kernel), ref_gram(b, kernel))
    exact = nhsic(a, b, estimator=estimator, kernel_a=kernel, kernel_b=kernel, gram_dtype=torch.float64)
    assert exact == pytest.approx(ref, rel=1e-6, abs=1e-9)
    # the default float32 GEMM (d > m only): within the precision documented in the README
    assert value == pytest.approx(ref, rel=2e-5, abs=1e-9)


# --------------------------------------------------------------------------- benchmark


def test_benchmark_quick_smoke_run():
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-m", "infoplane.bench.hsic", "--quick"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "gemm_s" in out.stdout and "pair_s" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith(("| 64 | 784 |", "| 128 | 784 |"))]
    assert len(rows) >= 2
