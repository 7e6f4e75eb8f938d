"""Tests of the information-plane MI estimators against naive float64 NumPy references written
here from the formulas (docs/estimators.md), known answers, invariances and bad settings."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from infoplane.estimators import geometry
from infoplane.estimators import (
    BinningEstimator,
    KDEEstimator,
    RenyiEstimator,
    Scores,
    binning_range_max,
    matrix_renyi_entropy,
)

RTOL = 1e-8
ATOL = 1e-12

# --------------------------------------------------------------------------- naive references


def naive_sq_dists(t: np.ndarray) -> np.ndarray:
    m = t.shape[0]
    out = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            out[i, j] = np.sum((t[i] - t[j]) ** 2)
    return out


def naive_width(t: np.ndarray, rule: str, k: int | None, sigma: float | None) -> float:
    m, d = t.shape
    if rule == "fixed":
        return sigma
    if rule == "silverman":
        variances = [np.sum((t[:, u] - t[:, u].mean()) ** 2) / (m - 1) for u in range(d)]
        s = math.sqrt(sum(variances) / d)
        return s * (4.0 / ((d + 2) * m)) ** (1.0 / (d + 4))
    per_sample = []
    for i in range(m):
        dists = sorted(math.sqrt(np.sum((t[i] - t[j]) ** 2)) for j in range(m) if j != i)
        per_sample.append(sum(dists[:k]) / k)
    return sum(per_sample) / m


def naive_normalize(k: np.ndarray) -> np.ndarray:
    m = k.shape[0]
    a = np.zeros_like(k)
    for i in range(m):
        for j in range(m):
            a[i, j] = k[i, j] / (m * math.sqrt(k[i, i] * k[j, j]))
    return a


def naive_gauss_gram(t: np.ndarray, sigma: float) -> np.ndarray:
    d2 = naive_sq_dists(t)
    return naive_normalize(np.exp(-d2 / (2 * sigma**2)))


def naive_label_gram(y: np.ndarray) -> np.ndarray:
    m = len(y)
    k = np.array([[1.0 if y[i] == y[j] else 0.0 for j in range(m)] for i in range(m)])
    return naive_normalize(k)


def naive_renyi_entropy(a: np.ndarray, alpha: float) -> float:
    """Eigenvalues at or below the numerical-rank tolerance m * eps * lambda_max count as 0."""
    lam = np.linalg.eigvalsh(a)
    lam = np.where(lam > len(lam) * np.finfo(float).eps * lam.max(), lam, 0.0)
    return math.log2(sum(v**alpha for v in lam)) / (1 - alpha)


def naive_renyi_mi(a: np.ndarray, b: np.ndarray, alpha: float) -> float:
    h = a * b
    h = h / np.trace(h)
    return naive_renyi_entropy(a, alpha) + naive_renyi_entropy(b, alpha) - naive_renyi_entropy(h, alpha)


def naive_renyi(x, y, z, alpha, rule, k=None, sigma=None):
    """(I(X;Z), I(Y;Z)) of one batch."""
    ax = naive_gauss_gram(x, naive_width(x, rule, k, sigma))
    az = naive_gauss_gram(z, naive_width(z, rule, k, sigma))
    ay = naive_label_gram(y)
    return naive_renyi_mi(ax, az, alpha), naive_renyi_mi(ay, az, alpha)


def naive_kde_entropy(t: np.ndarray, s2: float) -> float:
    """Kolchinsky & Tracey (2017), the pairwise-distance (KL) upper bound as Saxe et al. (2018) use it:
    H = d/2 - (1/m) sum_i [log((1/m) sum_j exp(-D_ij/(2 s2))) - (d/2) log(2 pi s2)]."""
    m, d = t.shape
    d2 = naive_sq_dists(t)
    total = 0.0
    for i in range(m):
        inner = math.log(sum(math.exp(-d2[i, j] / (2 * s2)) for j in range(m)) / m)
        total += inner - (d / 2) * math.log(2 * math.pi * s2)
    return d / 2 - total / m


def naive_kde(z, y, s2, relative=False, unit="nats"):
    """(I(T;X), I(T;Y)) of one batch, from the entropy bound and H(T|X) = (d/2) log(2 pi e s2)."""
    m, d = z.shape
    if relative:
        s2 = s2 * np.sum(z**2) / (m * d)
    h = naive_kde_entropy(z, s2)
    i_tx = h - (d / 2) * math.log(2 * math.pi * math.e * s2)
    h_cond = 0.0
    for c in sorted(set(y.tolist())):
        members = z[y == c]
        h_cond += len(members) / m * naive_kde_entropy(members, s2)
    i_ty = h - h_cond
    scale = 1 / math.log(2) if unit == "bits" else 1.0
    return i_tx * scale, i_ty * scale


def naive_shannon_bits(symbols) -> float:
    counts = Counter(symbols)
    n = len(symbols)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def naive_binning(z, y, bins, lo, hi):
    """(I(X;T) = H(T), I(T;Y) = H(T) - sum_c p_c H(T|Y=c)) of one batch, bits."""

    def bin_of(v):
        if hi == lo:
            return 0
        return int(min(max(np.floor((v - lo) / (hi - lo) * bins), 0), bins - 1))

    symbols = [tuple(bin_of(v) for v in row) for row in z]
    h = naive_shannon_bits(symbols)
    h_cond = 0.0
    for c in sorted(set(y.tolist())):
        members = [s for s, label in zip(symbols, y) if label == c]
        h_cond += len(members) / len(symbols) * naive_shannon_bits(members)
    return h, h - h_cond


# --------------------------------------------------------------------------- fixtures


def make_data(batches, m, d_x=6, d_z=4, classes=3, seed=0, z_dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batches, m, d_x, generator=gen, dtype=torch.float64)
    w = torch.randn(d_x, d_z, generator=gen, dtype=torch.float64) / math.sqrt(d_x)
    z = torch.tanh(x @ w + 0.3 * torch.randn(batches, m, d_z, generator=gen, dtype=torch.float64)).to(z_dtype)
    y = torch.randint(0, classes, (batches, m), generator=gen)
    perms = torch.argsort(torch.rand(batches, 3, m, generator=gen), dim=-1)
    return x, y, z, perms


def run(est, x, y, z, setting, perms=None) -> Scores:
    return est.score(est.prepare(x, "x", setting), est.prepare(y, "y", setting), z, setting, perms)


def close(actual: torch.Tensor, expected) -> None:
    np.testing.assert_allclose(actual.numpy(), np.asarray(expected, dtype=np.float64), rtol=RTOL, atol=ATOL)


CASES = [(1, 16), (3, 16), (2, 64)]

# --------------------------------------------------------------------------- agreement with the references


@pytest.mark.parametrize("batches,m", CASES)
@pytest.mark.parametrize(
    "setting",
    [
        {"width": "knn", "k": 5},
        {"width": "silverman", "alpha": 2.0},
        {"width": "fixed", "sigma": 1.3, "alpha": 0.7},
    ],
    ids=["knn", "silverman", "fixed"],
)
def test_renyi_matches_naive_reference_and_null(batches, m, setting):
    x, y, z, perms = make_data(batches, m, seed=m + batches, z_dtype=torch.float16)
    s = RenyiEstimator().resolve_setting(setting)
    got = run(RenyiEstimator(), x, y, z, setting, perms)
    xn, yn, zn = x.numpy(), y.numpy(), z.to(torch.float64).numpy()
    args = (s["alpha"], s["width"], s["k"], s["sigma"])
    want = np.array([naive_renyi(xn[b], yn[b], zn[b], *args) for b in range(batches)])
    close(got.value_xz, want[:, 0])
    close(got.value_yz, want[:, 1])
    pn = perms.numpy()
    null = np.array(
        [
            [naive_renyi(xn[b], yn[b], zn[b][pn[b, p]], *args) for p in range(pn.shape[1])]
            for b in range(batches)
        ]
    )
    close(got.null_xz, null[..., 0])
    close(got.null_yz, null[..., 1])
    close(got.extra["sigma_z"], [naive_width(zn[b], s["width"], s["k"], s["sigma"]) for b in range(batches)])


@pytest.mark.parametrize("batches,m", CASES)
@pytest.mark.parametrize(
    "setting",
    [{}, {"noise_variance": 0.5, "unit": "bits"}, {"noise_variance": 0.2, "relative": True}],
    ids=["saxe", "bits", "relative"],
)
def test_kde_matches_naive_reference_and_null(batches, m, setting):
    x, y, z, perms = make_data(batches, m, seed=10 * m + batches)
    s = KDEEstimator().resolve_setting(setting)
    got = run(KDEEstimator(), x, y, z, setting, perms)
    yn, zn = y.numpy(), z.numpy()
    args = (s["noise_variance"], s["relative"], s["unit"])
    want = np.array([naive_kde(zn[b], yn[b], *args) for b in range(batches)])
    close(got.value_xz, want[:, 0])
    close(got.value_yz, want[:, 1])
    assert got.null_xz is None
    pn = perms.numpy()
    null = np.array(
        [[naive_kde(zn[b][pn[b, p]], yn[b], *args)[1] for p in range(pn.shape[1])] for b in range(batches)]
    )
    close(got.null_yz, null)


@pytest.mark.parametrize("batches,m", CASES)
@pytest.mark.parametrize(
    "setting",
    [{"bins": 3}, {"bins": 4, "bin_range": [-0.5, 0.5]}, {"bins": 30}, {"bins": 5, "bin_range": "run_max"}],
    ids=["snapshot3", "fixed_clipped", "snapshot30", "run_max"],
)
def test_binning_matches_naive_reference_and_null(batches, m, setting):
    x, y, z, perms = make_data(batches, m, d_z=2, seed=100 * m + batches)
    z = torch.relu(z) if setting.get("bin_range") == "run_max" else z
    if setting.get("bin_range") == "run_max":
        setting = {**setting, "range_max": binning_range_max([z, 0.5 * z])}
    got = run(BinningEstimator(), x, y, z, setting, perms)
    yn, zn = y.numpy(), z.numpy()
    rng = setting.get("bin_range", "snapshot")
    if rng == "snapshot":
        lo, hi = zn.min(), zn.max()
    elif rng == "run_max":
        lo, hi = 0.0, setting["range_max"]
    else:
        lo, hi = rng
    want = np.array([naive_binning(zn[b], yn[b], setting["bins"], lo, hi) for b in range(batches)])
    close(got.value_xz, want[:, 0])
    close(got.value_yz, want[:, 1])
    assert got.null_xz is None
    pn = perms.numpy()
    null = np.array(
        [
            [naive_binning(zn[b][pn[b, p]], yn[b], setting["bins"], lo, hi)[1] for p in range(pn.shape[1])]
            for b in range(batches)
        ]
    )
    close(got.null_yz, null)
    close(got.extra["saturation_bound"], [math.log2(m)] * batches)
    clipped = [np.mean((zn[b] < lo) | (zn[b] > hi)) for b in range(batches)]
    close(got.extra["clipped_fraction"], clipped)
    if rng == [-0.5, 0.5]:
        assert float(got.extra["clipped_fraction"].max()) > 0  # the case does exercise clipping


def test_binning_reference_is_not_trivially_saturated():
    """The agreement cases above have symbol collisions, so H(T|Y) is really exercised."""
    _, y, z, _ = make_data(3, 64, d_z=2, seed=300 + 3)
    got = run(BinningEstimator(), torch.zeros(3, 64, 1), y, z, {"bins": 3})
    assert float(got.value_xz.max()) < math.log2(64) - 1
    assert float(got.value_yz.min()) > 0


def test_chunked_paths_agree_with_unchunked(monkeypatch):
    x, y, z, perms = make_data(3, 16, seed=5)
    settings = {RenyiEstimator: {"k": 4}, KDEEstimator: {}, BinningEstimator: {"bins": 4}}
    whole = {cls: run(cls(), x, y, z, s, perms) for cls, s in settings.items()}
    monkeypatch.setattr(geometry, "STACK_BUDGET_ELEMENTS", 50)  # below one batch: one batch / permutation at a time
    for cls, s in settings.items():
        part = run(cls(), x, y, z, s, perms)
        close(part.value_xz, whole[cls].value_xz.numpy())
        close(part.value_yz, whole[cls].value_yz.numpy())
        close(part.null_yz, whole[cls].null_yz.numpy())


# --------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("alpha", [0.5, 1.01, 2.0])
@pytest.mark.parametrize("m", [8, 100])
def test_renyi_entropy_of_scaled_identity_is_log2_m(alpha, m):
    value = matrix_renyi_entropy(torch.eye(m, dtype=torch.float64) / m, alpha)
    assert float(value) == pytest.approx(math.log2(m), rel=1e-12)


def test_renyi_distinct_far_samples_have_entropy_log2_m():
    m = 12
    z = 10.0 * torch.eye(m, dtype=torch.float64)[None]  # distinct, pairwise distance sqrt(200)
    y = torch.arange(m)[None] % 3
    got = run(RenyiEstimator(), z, y, z, {"width": "fixed", "sigma": 0.1})
    assert float(got.extra["entropy_z"]) == pytest.approx(math.log2(m), rel=1e-12)
    assert float(got.value_xz) == pytest.approx(math.log2(m), rel=1e-12)  # I(Z;Z) = S(Z) when A o A/tr = A


@pytest.mark.parametrize("alpha", [0.5, 1.01, 3.0])
def test_renyi_one_hot_label_entropy_is_renyi_entropy_of_proportions(alpha):
    y = torch.tensor([[0, 0, 0, 1, 2, 2, 0, 1, 2, 0, 3, 0]])
    m = y.shape[1]
    p = np.bincount(y[0].numpy()) / m
    expected = math.log2(np.sum(p**alpha)) / (1 - alpha)
    a_y = torch.from_numpy(naive_label_gram(y[0].numpy()))
    assert float(matrix_renyi_entropy(a_y, alpha)) == pytest.approx(expected, rel=1e-12)
    square = a_y * a_y / torch.trace(a_y * a_y)
    torch.testing.assert_close(square, a_y, rtol=0, atol=1e-15)  # so I_alpha(Y;Y) = S_alpha(A_Y)
    # Through the estimator: Z = the one-hot labels, far apart, so A_Z = A_Y and I(Y;Z) = S(A_Y).
    z = 10.0 * torch.nn.functional.one_hot(y, 4).to(torch.float64)
    got = run(RenyiEstimator(), z, y, z, {"width": "fixed", "sigma": 0.1, "alpha": alpha})
    assert float(got.value_yz) == pytest.approx(expected, rel=1e-10)


def test_binning_constant_layer_has_zero_information():
    x, y, _, perms = make_data(2, 16)
    z = torch.full((2, 16, 5), 0.7, dtype=torch.float16)
    got = run(BinningEstimator(), x, y, z, {}, perms)
    assert got.value_xz.tolist() == [0.0, 0.0]
    assert got.value_yz.abs().max() < 1e-15
    assert got.null_yz.abs().max() < 1e-15


@pytest.mark.parametrize("classes", [2, 4, 10])
def test_binning_one_to_one_function_of_balanced_label_gives_log2_c(classes):
    m = 4 * classes
    y = torch.stack(
        [torch.randperm(m, generator=torch.Generator().manual_seed(b)) % classes for b in range(3)]
    )
    z = (y.to(torch.float64) / (classes - 1))[..., None] * torch.tensor([1.0, -2.0])  # (B, m, 2)
    got = run(BinningEstimator(), torch.zeros(3, m, 1), y, z, {})
    close(got.value_yz, [math.log2(classes)] * 3)
    close(got.value_xz, [math.log2(classes)] * 3)


def test_kde_information_vanishes_for_huge_noise_and_reaches_log_m_for_tiny_noise():
    x, y, z, _ = make_data(2, 32, seed=3)
    est = KDEEstimator()
    values = [float(run(est, x, y, z, {"noise_variance": v}).value_xz.max()) for v in (1e2, 1e4, 1e6, 1e10)]
    assert values == sorted(values, reverse=True)
    assert values[-1] < 1e-9
    tiny = run(est, x, y, z, {"noise_variance": 1e-6})  # distinct samples: every kernel term but i = j is 0
    close(tiny.value_xz, [math.log(32)] * 2)


def test_kde_separated_balanced_classes_give_label_entropy():
    y = (torch.arange(24) % 4)[None]
    z = (
        10.0 * torch.nn.functional.one_hot(y, 4)
        + 0.01 * torch.randn(1, 24, 4, generator=torch.Generator().manual_seed(0))
    ).to(torch.float64)
    got = run(KDEEstimator(), z, y, z, {"noise_variance": 1e-3, "unit": "bits"})
    assert float(got.value_yz) == pytest.approx(2.0, abs=1e-9)  # log2 4 bits


# --------------------------------------------------------------------------- invariances


def random_orthogonal(d: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(
        torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    return q * torch.sign(torch.diagonal(r))


@pytest.mark.parametrize(
    "cls,setting",
    [
        (RenyiEstimator, {"width": "knn", "k": 3}),
        (RenyiEstimator, {"width": "silverman"}),
        (RenyiEstimator, {"width": "fixed", "sigma": 0.8}),
        (KDEEstimator, {}),
        (KDEEstimator, {"relative": True}),
    ],
)
def test_kernel_estimators_are_invariant_to_orthogonal_transforms_of_the_layer(cls, setting):
    x, y, z, perms = make_data(2, 24, seed=7)
    base = run(cls(), x, y, z, setting, perms)
    turned = run(cls(), x, y, z @ random_orthogonal(z.shape[-1], 1), setting, perms)
    for name in ("value_xz", "value_yz", "null_yz"):
        torch.testing.assert_close(getattr(turned, name), getattr(base, name), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("width", ["knn", "silverman"])
def test_renyi_data_driven_widths_are_scale_invariant_and_fixed_width_is_not(width):
    """Scaling T by c scales a knn / Silverman width by c, so K and the values do not move;
    a fixed sigma does not follow the scale (documented)."""
    x, y, z, _ = make_data(2, 24, seed=12)
    setting = {"width": width, "k": 4}
    base, scaled = run(RenyiEstimator(), x, y, z, setting), run(RenyiEstimator(), x, y, 5.0 * z, setting)
    torch.testing.assert_close(scaled.value_xz, base.value_xz, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(scaled.value_yz, base.value_yz, rtol=1e-9, atol=1e-12)
    fixed = [run(RenyiEstimator(), x, y, c * z, {"width": "fixed", "sigma": 1.0}) for c in (1.0, 5.0)]
    assert float((fixed[1].extra["entropy_z"] - fixed[0].extra["entropy_z"]).min()) > 0.5


def test_binning_is_invariant_to_permuting_units():
    x, y, z, perms = make_data(3, 32, d_z=3, seed=8)
    base = run(BinningEstimator(), x, y, z, {"bins": 4}, perms)
    shuffled = run(BinningEstimator(), x, y, z[..., [2, 0, 1]], {"bins": 4}, perms)
    for name in ("value_xz", "value_yz", "null_yz"):
        assert torch.equal(getattr(shuffled, name), getattr(base, name))


def test_binning_is_not_invariant_to_rotation():
    """Documented non-invariance: the bins are axis-aligned, so rotating T changes which samples
    share a cell (here a 45 degree turn of a 2-D layer with 4 bins)."""
    x, y, z, _ = make_data(3, 64, d_z=2, seed=9)
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    turn = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    base = run(BinningEstimator(), x, y, z, {"bins": 4})
    turned = run(BinningEstimator(), x, y, z @ turn, {"bins": 4})
    assert float((turned.value_xz - base.value_xz).abs().max()) > 0.1


def test_kde_depends_on_scale_unless_noise_is_relative():
    """Documented: with a fixed s^2, scaling T by c is the same as dividing s^2 by c^2; the
    relative noise (s^2 times the mean squared activation) removes that dependence."""
    x, y, z, _ = make_data(2, 32, seed=11)
    fixed = [run(KDEEstimator(), x, y, c * z, {}) for c in (1.0, 3.0)]
    assert float((fixed[1].value_xz - fixed[0].value_xz).min()) > 0.1
    same_as = run(KDEEstimator(), x, y, z, {"noise_variance": 0.1 / 9})
    close(fixed[1].value_xz, same_as.value_xz.numpy())
    relative = [run(KDEEstimator(), x, y, c * z, {"relative": True}) for c in (1.0, 3.0)]
    torch.testing.assert_close(relative[1].value_xz, relative[0].value_xz, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(relative[1].value_yz, relative[0].value_yz, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- protocol and errors


def test_reference_keys_share_what_can_be_shared():
    est = RenyiEstimator()
    assert est.reference_key("x", {"alpha": 2.0}) == est.reference_key("x", {"alpha": 1.01})
    assert est.reference_key("x", {"width": "knn", "k": 5}) != est.reference_key(
        "x", {"width": "knn", "k": 6}
    )
    assert est.reference_key("y", {"width": "silverman"}) == est.reference_key("y", {"width": "knn"})
    # A reference prepared under one alpha scores correctly under another.
    x, y, z, _ = make_data(2, 16, seed=4)
    rx, ry = est.prepare(x, "x", {"k": 3}), est.prepare(y, "y", {"k": 3})
    shared = est.score(rx, ry, z, {"k": 3, "alpha": 2.0}, None)
    fresh = run(est, x, y, z, {"k": 3, "alpha": 2.0})
    close(shared.value_xz, fresh.value_xz.numpy())
    with pytest.raises(ValueError, match="prepared with"):
        est.score(rx, ry, z, {"k": 4}, None)
    assert KDEEstimator().unit_for({"unit": "bits"}) == "bits" and KDEEstimator().unit == "nats"
    assert RenyiEstimator().unit == BinningEstimator().unit == "bits"


def test_no_permutations_give_no_null():
    x, y, z, _ = make_data(2, 16)
    for cls, s in ((RenyiEstimator, {"k": 3}), (KDEEstimator, {}), (BinningEstimator, {})):
        got = run(cls(), x, y, z, s, None)
        assert got.null_xz is None and got.null_yz is None
        assert got.value_xz.shape == got.value_yz.shape == (2,)


@pytest.mark.parametrize(
    "cls,setting,message",
    [
        (RenyiEstimator, {"alpha": 1}, "alpha = 1 is the Shannon limit"),
        (RenyiEstimator, {"alpha": -0.5}, "alpha must be > 0"),
        (RenyiEstimator, {"width": "scott"}, "unknown width rule 'scott'"),
        (RenyiEstimator, {"width": "fixed"}, "needs the setting sigma"),
        (RenyiEstimator, {"k": 0}, "k .* must be >= 1"),
        (BinningEstimator, {"bins": 0}, "bins .* must be >= 1"),
        (BinningEstimator, {"bins": 2.5}, "'bins' must be an integer"),
        (BinningEstimator, {"bin_range": [1.0, 1.0]}, "needs lo < hi"),
        (BinningEstimator, {"bin_range": "run_max"}, "needs the setting range_max"),
        (BinningEstimator, {"bin_range": "minmax"}, "bin_range must be"),
        (BinningEstimator, {"range_max": 3.0}, "only used with bin_range 'run_max'"),
        (KDEEstimator, {"noise_variance": -0.1}, "noise_variance .* must be > 0"),
        (KDEEstimator, {"unit": "bans"}, "unit must be one of"),
        (KDEEstimator, {"relative": "yes"}, "'relative' must be true or false"),
        (KDEEstimator, {"noise_varience": 0.1}, "unknown setting"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(cls, setting, message):
    with pytest.raises(ValueError, match=message):
        cls().resolve_setting(setting)
    with pytest.raises(ValueError, match=message):
        cls().reference_key("x", setting)


def test_k_not_below_m_is_refused():
    x, y, z, _ = make_data(1, 10)
    with pytest.raises(ValueError, match=r"k = 10 nearest neighbours needs k < m = 10"):
        RenyiEstimator().prepare(x, "x", {"k": 10})
    assert torch.isfinite(run(RenyiEstimator(), x, y, z, {"k": 9}).value_xz).all()  # k = m - 1 is fine


def test_bad_inputs_are_refused_with_a_clear_message():
    x, y, z, perms = make_data(2, 16)
    est = KDEEstimator()
    rx, ry = est.prepare(x, "x", {}), est.prepare(y, "y", {})
    with pytest.raises(ValueError, match="NaN or Inf"):
        est.score(rx, ry, torch.where(z > 0.5, math.nan, z), {}, None)
    with pytest.raises(ValueError, match=r"shape \(B, m, d\)"):
        est.score(rx, ry, z[0], {}, None)
    with pytest.raises(ValueError, match="prepared for"):
        est.score(rx, ry, z[:1], {}, None)
    with pytest.raises(ValueError, match="must be a permutation"):
        est.score(rx, ry, z, {}, torch.zeros_like(perms))
    with pytest.raises(ValueError, match="integer tensor"):
        est.prepare(y.to(torch.float32), "y", {})
    with pytest.raises(TypeError, match="ref_y must be"):
        est.score(rx, rx, z, {}, None)
    with pytest.raises(ValueError, match="role must be"):
        est.reference_key("z", {})


def test_binning_range_max_is_the_run_maximum():
    assert binning_range_max([torch.tensor([0.0, 2.5]), np.array([[1.0, 3.25]])]) == 3.25
    with pytest.raises(ValueError, match="run_max is for non-negative"):
        binning_range_max([torch.tensor([-1.0, -0.5])])
    with pytest.raises(ValueError, match="no activations"):
        binning_range_max([])
