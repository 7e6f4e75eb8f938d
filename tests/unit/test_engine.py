"""Tests of the batched engine ``measure_snapshot``: values against per-batch single pairs, the
gathered permutation null against recomputation, p-value calibration by simulation, excess,
diagnostics against naive NumPy, caching of X/Y preparations, the frame, grids, the estimator
protocol and bad input."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from hsic_reference import ESTIMATOR_NAMES, ref_estimate, ref_gram, ref_median_distance

import infoplane.estimators.engine as engine_module
from infoplane.estimators import (BANDWIDTHS, ESTIMATORS, FRAME_COLUMNS, KERNELS, SETTING_KEYS, Geometry, Permutations,
                                  ReferenceCache, Scores, expand_settings, kernel, measure_snapshot, nhsic, normalize_setting, null)
from infoplane.estimators.settings import Settings, key


PAPER = {"estimator": "nocco", "kernel_x": "gaussian", "kernel_y": "onehot", "kernel_z": "gaussian",
         "sigma": 5.0, "bandwidth": "fixed", "epsilon": 1e-5}


def setting(**kw):
    return {**PAPER, **kw}


def snapshot(n=3 * 24 + 5, seed=10, dtype=torch.float32):
    """Inputs (n, 1, 4, 4), labels (3 classes) and two layers depending on x (float16 storage)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 4, generator=gen, dtype=torch.float64).to(dtype)
    y = torch.randint(0, 3, (n,), generator=gen)
    z1 = torch.tanh(x.reshape(n, -1).double() @ torch.randn(16, 8, generator=gen, dtype=torch.float64)).to(dtype)
    z2 = torch.relu(z1.double() @ torch.randn(8, 5, generator=gen, dtype=torch.float64)
                    + 0.3 * torch.randn(n, 5, generator=gen, dtype=torch.float64)).to(dtype)
    return x, y, z1, z2


KERNEL_SETTINGS = [
    dict(kernel_x="gaussian", kernel_y="onehot", kernel_z="gaussian", bandwidth="fixed", sigma=5.0),
    dict(kernel_x="gaussian", kernel_y="onehot", kernel_z="gaussian", bandwidth="median", sigma=None),
    dict(kernel_x="gaussian", kernel_y="onehot", kernel_z="gaussian", bandwidth="median_scaled", sigma=2.0),
    dict(kernel_x="linear", kernel_y="onehot", kernel_z="linear", bandwidth=None, sigma=None),
    dict(kernel_x="linear", kernel_y="onehot", kernel_z="gaussian", bandwidth="fixed", sigma=1.0),
]


def all_settings():
    return [setting(estimator=e, **k) for e in ESTIMATOR_NAMES for k in KERNEL_SETTINGS]


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_values_equal_per_batch_single_pairs(dtype):
    """Mean and population std over batches of the engine equal a loop of nhsic calls to 1e-10."""
    x, y, z1, z2 = snapshot(dtype=dtype)
    bs = 24
    df = measure_snapshot(x, y, [z1, z2], all_settings(), batch_size=bs, permutations=0, seed=0,
                          layer_names=["fc1", "fc2"], device="auto")
    assert len(df) == 2 * len(all_settings())
    assert (df["n_batches"] == 3).all() and (df["n_samples"] == 72).all()
    for row in df.itertuples():
        z = [z1, z2][row.layer]
        kw = dict(estimator=row.estimator, sigma=5.0 if pd.isna(row.sigma) else row.sigma,
                  bandwidth="fixed" if pd.isna(row.bandwidth) else row.bandwidth,
                  epsilon=1e-5 if pd.isna(row.epsilon) else row.epsilon)
        xz = [nhsic(x[i:i + bs], z[i:i + bs], kernel_a=row.kernel_x, kernel_b=row.kernel_z, **kw)
              for i in range(0, 72, bs)]
        yz = [nhsic(y[i:i + bs], z[i:i + bs], kernel_a="onehot", kernel_b=row.kernel_z, **kw)
              for i in range(0, 72, bs)]
        assert row.value_xz == pytest.approx(np.mean(xz), rel=1e-10)
        assert row.value_yz == pytest.approx(np.mean(yz), rel=1e-10)
        assert row.value_xz_std == pytest.approx(np.std(xz), rel=1e-8, abs=1e-13)
        assert row.value_yz_std == pytest.approx(np.std(yz), rel=1e-8, abs=1e-13)
        assert row.value_xz_std > 0


def test_values_match_the_naive_reference():
    """The engine against the NumPy reference on each batch (float64 data: 1e-8)."""
    x, y, z1, _ = snapshot(n=64, dtype=torch.float64)
    df = measure_snapshot(x, y, [z1], all_settings(), batch_size=32, permutations=0, seed=0)
    for row in df.itertuples():
        bw = "fixed" if pd.isna(row.bandwidth) else row.bandwidth
        sigma = 5.0 if pd.isna(row.sigma) else row.sigma
        want_xz, want_yz = [], []
        for b in range(2):
            rows = slice(32 * b, 32 * (b + 1))
            kz = ref_gram(z1[rows].numpy(), row.kernel_z, sigma=sigma, bandwidth=bw)
            kx = ref_gram(x[rows].numpy(), row.kernel_x, sigma=sigma, bandwidth=bw)
            ky = ref_gram(y[rows].numpy(), "onehot")
            want_xz.append(ref_estimate(row.estimator, kx, kz))
            want_yz.append(ref_estimate(row.estimator, ky, kz))
        assert row.value_xz == pytest.approx(np.mean(want_xz), rel=1e-8)
        assert row.value_yz == pytest.approx(np.mean(want_yz), rel=1e-8)


def test_nocco_ceilings_and_normalized_form():
    """ceiling_zz = nocco(Z;Z), ceiling_xx = nocco(X;X), ceiling_yy = nocco(Y;Y) per batch; nocco_normalized
    = nocco / sqrt(ceiling_xx ceiling_zz) per batch; the other estimators' rows have NaN ceilings."""
    x, y, z1, _ = snapshot(n=48, dtype=torch.float64)
    df = measure_snapshot(x, y, [z1], [PAPER, setting(estimator="nocco_normalized"), setting(estimator="cka")],
                          batch_size=48, permutations=0, seed=0)
    nocco, normalized, cka = (df.iloc[i] for i in range(3))
    assert nocco.ceiling_zz == pytest.approx(nhsic(z1, z1), rel=1e-10)
    assert nocco.ceiling_xx == pytest.approx(nhsic(x, x), rel=1e-10)
    assert nocco.ceiling_yy == pytest.approx(nhsic(y, y, kernel_a="onehot", kernel_b="onehot"), rel=1e-10)
    assert nocco.ceiling_yy == pytest.approx(2.0, rel=0.01)  # 3 classes: about C - 1
    assert normalized.value_xz == pytest.approx(nocco.value_xz / math.sqrt(nocco.ceiling_xx * nocco.ceiling_zz), rel=1e-10)
    assert normalized.value_yz == pytest.approx(nocco.value_yz / math.sqrt(nocco.ceiling_yy * nocco.ceiling_zz), rel=1e-10)
    for row in (normalized, cka):
        assert np.isnan([row.ceiling_zz, row.ceiling_xx, row.ceiling_yy]).all()


def test_constant_layer_scores_zero_with_a_null_of_zeros_and_p_one():
    x, y, _, _ = snapshot(n=32)
    dead = torch.zeros(32, 3, dtype=torch.float16)
    df = measure_snapshot(x, y, {"dead": dead}, [setting(estimator=e) for e in ESTIMATOR_NAMES],
                          batch_size=16, permutations=8, seed=1)
    for col in ("value_xz", "value_yz", "null_xz_mean", "null_xz_std", "excess_xz", "ceiling_zz"):
        assert (df[col].fillna(0.0) == 0.0).all(), col
    assert (df["p_xz"] == 1.0).all() and (df["p_yz"] == 1.0).all()
    assert df["mean_sq_activation"].tolist() == [0.0] * 4


# --------------------------------------------------------------------------- the null


@pytest.mark.parametrize("kernels", KERNEL_SETTINGS, ids=lambda k: f"{k['kernel_x']}-{k['kernel_z']}-{k['bandwidth']}")
@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_gathered_null_equals_recomputation_on_permuted_data(estimator, kernels):
    """Each null value (one batch, one permutation) from the gather equals the estimator recomputed on
    (X, Z[pi]) and (Y, Z[pi]) from scratch: new Gram, centering, factorization. float64 data."""
    x, y, z1, _ = snapshot(n=40, dtype=torch.float64)
    s = normalize_setting(setting(estimator=estimator, **kernels))
    est = ESTIMATORS.get(estimator)
    batches, m, count = 2, 20, 5
    stack = lambda t: t[:40].reshape(batches, m, -1)  # noqa: E731
    perms = Permutations.draw(batches, count, m, seed=3, device=torch.device("cpu"))
    gx, gy, gz = Geometry(stack(x), "x"), Geometry(stack(y), "y"), Geometry(stack(z1), "z")
    scores = est.score(est.prepare(gx, "x", s), est.prepare(gy, "y", s), gz, s, perms)
    assert scores.null_xz.shape == scores.null_yz.shape == (batches, count)
    kw = dict(estimator=estimator, sigma=s["sigma"] or 5.0, bandwidth=s["bandwidth"] or "fixed",
              epsilon=s["epsilon"] or 1e-5)
    for b in range(batches):
        xb, yb, zb = x[b * m:(b + 1) * m], y[b * m:(b + 1) * m], z1[b * m:(b + 1) * m]
        for p in range(count):
            zp = zb[perms.perms[b, p]]
            want_x = nhsic(xb, zp, kernel_a=s["kernel_x"], kernel_b=s["kernel_z"], **kw)
            want_y = nhsic(yb, zp, kernel_a="onehot", kernel_b=s["kernel_z"], **kw)
            assert float(scores.null_xz[b, p]) == pytest.approx(want_x, rel=1e-10, abs=1e-13)
            assert float(scores.null_yz[b, p]) == pytest.approx(want_y, rel=1e-10, abs=1e-13)


def test_null_columns_aggregate_the_per_permutation_values(monkeypatch):
    """null mean/std over all B*P values, excess = value - null mean, p = (1 + #{p: mean_b null_bp >= mean_b
    value_b}) / (1 + P),
    checked against a loop over the permuted batches; the chunked gather (tiny chunks, no index cache)
    gives the same frame."""
    x, y, z1, _ = snapshot(n=60, dtype=torch.float64)
    batches, m, count = 3, 20, 7
    df = measure_snapshot(x, y, [z1], [PAPER], batch_size=m, permutations=count, seed=5)
    perms = Permutations.draw(batches, count, m, seed=5, device=torch.device("cpu")).perms
    values, nulls = [], []
    for b in range(batches):
        xb, zb = x[b * m:(b + 1) * m], z1[b * m:(b + 1) * m]
        values.append(nhsic(xb, zb))
        nulls.append([nhsic(xb, zb[perms[b, p]]) for p in range(count)])
    values, nulls = np.array(values), np.array(nulls)
    row = df.iloc[0]
    assert row.null_xz_mean == pytest.approx(nulls.mean(), rel=1e-10)
    assert row.null_xz_std == pytest.approx(nulls.std(), rel=1e-8)
    assert row.excess_xz == pytest.approx(values.mean() - nulls.mean(), rel=1e-8)
    hits = (nulls.mean(axis=0) >= values.mean()).sum()
    assert row.p_xz == pytest.approx((1 + hits) / (1 + count), rel=1e-12)
    assert row.permutations == count

    monkeypatch.setattr(null, "NULL_CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(null, "NULL_CHUNK_ELEMENTS_CPU", 1)  # one permutation per chunk on every device
    monkeypatch.setattr(null, "NULL_INDEX_CACHE_ELEMENTS", 0)
    chunked = measure_snapshot(x, y, [z1], [PAPER], batch_size=m, permutations=count, seed=5)
    pd.testing.assert_frame_equal(chunked, df, rtol=1e-13)


def test_permutations_are_seeded_uniform_and_independent_per_batch():
    a = Permutations.draw(4, 50, 12, seed=7, device=torch.device("cpu")).perms
    b = Permutations.draw(4, 50, 12, seed=7, device=torch.device("cpu")).perms
    c = Permutations.draw(4, 50, 12, seed=8, device=torch.device("cpu")).perms
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a.sort(dim=-1).values, torch.arange(12).expand(4, 50, 12))
    assert not torch.equal(a[0], a[1])  # one independent set per batch
    # uniform: each sample lands in each position with frequency 1/m (4*50*12 draws per cell count ~ 16.7)
    counts = torch.zeros(12, 12)
    for pos in range(12):
        counts[pos] = torch.bincount(a[..., pos].reshape(-1), minlength=12)
    assert counts.sum() == 4 * 50 * 12 and counts.min() >= 3 and counts.max() <= 35


def test_same_seed_same_frame_other_seed_other_null():
    x, y, z1, z2 = snapshot()
    run = lambda seed: measure_snapshot(x, y, [z1, z2], [PAPER, setting(estimator="cka")],  # noqa: E731
                                        batch_size=24, permutations=6, seed=seed)
    first, again, other = run(11), run(11), run(12)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert (first["value_xz"] == other["value_xz"]).all()
    assert (first["null_xz_mean"] != other["null_xz_mean"]).all()


# --------------------------------------------------------------------------- calibration and power


def _independent_p_values(batches: int, pairs: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = 16
    out = []
    for i in range(pairs):
        x = rng.normal(size=(batches * m, 3))
        z = np.tanh(rng.normal(size=(batches * m, 4)))
        y = rng.integers(0, 2, batches * m)
        df = measure_snapshot(x, y, [z], [PAPER], batch_size=m, permutations=count, seed=i)
        out.append(df["p_xz"].iloc[0])
    return np.array(out)


def test_p_value_is_calibrated_on_independent_data():
    """200 independent (X, Z) pairs, one batch, P = 99: P(p < 0.05) = 4/100 under H0, so the observed
    fraction must lie in [0.02, 0.08] (a binomial 200 x 0.04 leaves it there with probability ~0.95)."""
    p = _independent_p_values(batches=1, pairs=200, count=99, seed=20)
    fraction = float((p < 0.05).mean())
    print(f"\nfraction of p < 0.05 on independent data (B=1, P=99, 200 pairs): {fraction:.3f}")
    assert 0.02 <= fraction <= 0.08
    assert 0.3 < float(np.median(p)) < 0.7  # roughly uniform, not piled at one end


def test_p_value_of_the_batch_mean_is_calibrated_with_several_batches():
    """200 independent pairs in 4 batches, P = 99: the p-value of the batch mean is exact for any B,
    so the fraction of p < 0.05 lies in [0.02, 0.08] as for one batch (a pooled count of per-batch
    ranks would give about 0)."""
    p = _independent_p_values(batches=4, pairs=200, count=99, seed=21)
    fraction = float((p < 0.05).mean())
    print(f"\nfraction of p < 0.05 on independent data (B=4, P=99, 200 pairs): {fraction:.3f}")
    assert 0.02 <= fraction <= 0.08
    assert 0.3 < float(np.median(p)) < 0.7


def test_strong_dependence_reaches_the_minimum_p_value():
    """Z = f(X) (and Z depending on the label): p = 1 / (1 + P) for every kernel estimator."""
    rng = np.random.default_rng(22)
    n, m, count = 96, 32, 15
    x = rng.normal(size=(n, 6))
    y = rng.integers(0, 3, n)
    z_of_x = np.tanh(x @ rng.normal(size=(6, 10)))
    z_of_y = rng.normal(size=(3, 10))[y] + 0.2 * rng.normal(size=(n, 10))
    df = measure_snapshot(x, y, {"f(x)": z_of_x, "g(y)": z_of_y}, [setting(estimator=e) for e in ESTIMATOR_NAMES],
                          batch_size=m, permutations=count, seed=3)
    minimum = 1 / (1 + count)
    assert (df.loc[df.layer_name == "f(x)", "p_xz"] == minimum).all()
    assert (df.loc[df.layer_name == "g(y)", "p_yz"] == minimum).all()


def test_excess_of_z_with_itself_is_large_of_an_independent_z_near_zero():
    """The excess is a mean over B batches, so its scale under the null is the standard error null_std / sqrt(B).
    Z = X: the excess is more than 10 standard errors; an independent Z: within 4, while the raw value of
    the biased estimators is far from 0 (cka_unbiased is ~0 there by construction)."""
    rng = np.random.default_rng(23)
    n, m = 128, 32
    x = rng.normal(size=(n, 5))
    y = rng.integers(0, 2, n)
    df = measure_snapshot(x, y, {"same": x, "independent": rng.normal(size=(n, 5))},
                          [setting(estimator=e) for e in ESTIMATOR_NAMES], batch_size=m, permutations=32, seed=4)
    same, indep = df[df.layer_name == "same"], df[df.layer_name == "independent"]
    assert (same["excess_xz"] > 10 * same["null_xz_std"] / math.sqrt(4)).all()
    assert (indep["excess_xz"].abs() < 4 * indep["null_xz_std"] / math.sqrt(4)).all()
    biased = indep[indep.estimator != "cka_unbiased"]
    assert (biased["value_xz"] > 10 * biased["excess_xz"].abs()).all()


# --------------------------------------------------------------------------- diagnostics


def test_diagnostics_against_naive_numpy():
    """mean_sq_activation, median_distance / sqrt(d) and median(D) / (2 s^2) for each bandwidth rule,
    per batch then averaged; NaN bandwidth ratio for a linear Z kernel."""
    rng = np.random.default_rng(24)
    n, m, d = 60, 20, 7
    x = rng.normal(size=(n, 3))
    y = rng.integers(0, 2, n)
    z = np.abs(rng.normal(size=(n, d))) * 3 + 1
    settings = [setting(), setting(bandwidth="median", sigma=None), setting(bandwidth="median_scaled", sigma=0.5),
                setting(kernel_x="linear", kernel_z="linear")]
    df = measure_snapshot(x, y, [z.astype(np.float32)], settings, batch_size=m, permutations=0, seed=0)
    zb = z.astype(np.float32).astype(np.float64).reshape(3, m, d)
    mean_sq = np.mean([np.mean(b**2) for b in zb])
    med = np.array([ref_median_distance(b) for b in zb])
    med_d2 = np.array([np.median(((b[:, None] - b[None]) ** 2).sum(-1)[np.triu_indices(m, 1)]) for b in zb])
    np.testing.assert_allclose(df["mean_sq_activation"], mean_sq, rtol=1e-6)
    np.testing.assert_allclose(df["median_distance"], np.mean(med / np.sqrt(d)), rtol=1e-6)
    want_ratio = [np.mean(med_d2 / (2 * 25.0 * d)), np.mean(med_d2 / (2 * med**2)),
                  np.mean(med_d2 / (2 * 0.25 * med**2))]
    np.testing.assert_allclose(df["bandwidth_ratio"].iloc[:3], want_ratio, rtol=1e-6)
    assert df["bandwidth_ratio"].iloc[1] == pytest.approx(0.5, rel=0.05)  # median rule: about 1/2
    assert np.isnan(df["bandwidth_ratio"].iloc[3])


def test_fixed_bandwidth_ratio_grows_with_activation_scale():
    """The diagnostic that tells scale from dependence: scaling Z by c multiplies mean_sq_activation by
    c^2, the median distance by c and the fixed-sigma ratio by c^2; the median rule's ratio stays put."""
    rng = np.random.default_rng(25)
    x, y, z = rng.normal(size=(40, 3)), rng.integers(0, 2, 40), rng.normal(size=(40, 6))
    settings = [setting(), setting(bandwidth="median", sigma=None)]
    a = measure_snapshot(x, y, [z], settings, batch_size=20, permutations=0, seed=0)
    b = measure_snapshot(x, y, [10 * z], settings, batch_size=20, permutations=0, seed=0)
    assert b.mean_sq_activation.iloc[0] == pytest.approx(100 * a.mean_sq_activation.iloc[0], rel=1e-9)
    assert b.median_distance.iloc[0] == pytest.approx(10 * a.median_distance.iloc[0], rel=1e-9)
    assert b.bandwidth_ratio.iloc[0] == pytest.approx(100 * a.bandwidth_ratio.iloc[0], rel=1e-9)
    assert b.bandwidth_ratio.iloc[1] == pytest.approx(a.bandwidth_ratio.iloc[1], rel=1e-9)


@pytest.mark.parametrize("permutations, per_stack", [(0, 3), (5, 3), (5, 2), (5, 1)])
def test_the_layers_as_one_stack_equal_each_layer_alone(permutations, per_stack, monkeypatch):
    """A snapshot's layers scored as LayerStacks of ``per_stack`` layers (different d, float16 and
    float64, every kernel setting, the null by one gather index) equal each layer measured alone, to
    1e-10 relative; cka_minibatch (its denominator pools one layer's batches) stays per layer. With
    the null split into several layer groups (a tiny NULL_CHUNK_ELEMENTS) the result is the same."""
    monkeypatch.setitem(engine_module.STACK_ELEMENTS, "cpu", per_stack * 3 * 24 * 24)  # B = 3 batches of 24
    x, y, z1, z2 = snapshot(dtype=torch.float64)
    layers = {"a": z1.half(), "b": z2, "c": torch.tanh(x.reshape(len(x), -1)[:, :3])}
    chosen = all_settings() + [setting(estimator="cka_minibatch", kernel_x="linear", kernel_z="linear",
                                       bandwidth=None, sigma=None)]
    kw = dict(batch_size=24, permutations=permutations, seed=3, num_classes=3)
    together = measure_snapshot(x, y, layers, chosen, **kw)
    alone = pd.concat([measure_snapshot(x, y, {n: z}, chosen, **kw).assign(layer=i)
                       for i, (n, z) in enumerate(layers.items())], ignore_index=True)
    numeric = [c for c in together.columns if pd.api.types.is_float_dtype(together[c])]
    pd.testing.assert_frame_equal(together.drop(columns=numeric), alone.drop(columns=numeric))
    np.testing.assert_allclose(together[numeric].to_numpy(), alone[numeric].to_numpy(), rtol=1e-10, atol=1e-13)
    if permutations:
        monkeypatch.setattr(null, "NULL_CHUNK_ELEMENTS", 24 * 300)  # one layer per gather group
        grouped = measure_snapshot(x, y, layers, chosen, **kw)
        np.testing.assert_allclose(grouped[numeric].to_numpy(), together[numeric].to_numpy(), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- caching


def test_x_and_y_preparations_are_built_once_per_batch_stack(monkeypatch):
    """Three layers x (4 estimators, one kernel setting): the X and Y kernels, their R and their
    preparation are built once for the whole stack of batches; the layers' kernel and R once, as one stack."""
    calls = {"gaussian": [], "onehot": [], "ridge": 0, "low_rank_ridge": 0, "prepare": []}
    for name in ("gaussian", "onehot"):
        original = KERNELS.get(name)

        def counted(geometry, _original=original, _name=name, **kw):
            calls[_name].append(geometry.name)
            return _original(geometry, **kw)

        monkeypatch.setitem(KERNELS._entries, name, counted)
    for route, key in [("ridge_matrix", "ridge"), ("low_rank_ridge", "low_rank_ridge")]:
        def counted_ridge(*args, _original=getattr(kernel, route), _key=key, **kw):
            calls[_key] += 1
            return _original(*args, **kw)

        monkeypatch.setattr(kernel, route, counted_ridge)
    original_prepare = kernel.KernelEstimator.prepare

    def counted_prepare(self, data, role, s):
        calls["prepare"].append(role)
        return original_prepare(self, data, role, s)

    monkeypatch.setattr(kernel.KernelEstimator, "prepare", counted_prepare)
    x, y = torch.randn(30, 4), torch.arange(30) % 3
    df = measure_snapshot(x, y, [x, x + 1, x * 3], [setting(estimator=e) for e in ESTIMATOR_NAMES],
                          batch_size=10, permutations=4, seed=0)
    assert len(df) == 12
    assert calls["gaussian"] == ["x", "layer '0', layer '1', layer '2'"]  # the layers as one LayerStack
    assert calls["onehot"] == ["y"]
    assert calls["ridge"] == 1 + 1  # X, then the layers' stack (nocco and nocco_normalized share R)
    assert calls["low_rank_ridge"] == 1  # Y: one-hot labels, R from their 3 class columns
    assert calls["prepare"] == ["x", "y"]  # shared by all four estimators


def test_reference_cache_prepares_x_and_y_once_per_run_and_changes_nothing(monkeypatch):
    """Snapshots of one run share a ReferenceCache: X's and Y's kernels are built on the first call
    only, and every frame equals the uncached call's exactly (values, nulls, p-values)."""
    built = []
    for name in ("gaussian", "linear", "onehot"):
        original = KERNELS.get(name)

        def counted(geometry, _original=original, **kw):
            built.append(geometry.name)
            return _original(geometry, **kw)

        monkeypatch.setitem(KERNELS._entries, name, counted)
    x, y, z1, z2 = snapshot()
    cache = ReferenceCache()
    references_built = []
    for epoch, layers in enumerate([[z1, z2], [z2 * 2, z1], [torch.tanh(z1)]]):
        kw = dict(batch_size=24, permutations=6, seed=epoch, num_classes=3)
        built.clear()
        cached = measure_snapshot(x, y, layers, all_settings(), references=cache, **kw)
        references_built.append(sorted(b for b in built if b in ("x", "y")))
        pd.testing.assert_frame_equal(cached, measure_snapshot(x, y, layers, all_settings(), **kw))
    # X: Gaussian with 3 bandwidth settings and linear; Y: onehot; on the first snapshot only
    assert references_built == [["x"] * 4 + ["y"], [], []]


def test_reference_cache_rebuilds_when_x_y_or_the_batches_change():
    """A changed x (even in place), y or batch_size is a miss: the frame equals a fresh call's."""
    x, y, z1, z2 = snapshot()
    cache = ReferenceCache()
    kw = dict(permutations=4, seed=1, num_classes=3)
    first = measure_snapshot(x, y, [z1], [PAPER], batch_size=24, references=cache, **kw)
    x.mul_(3.0)  # in place: the cache compares with its own copy
    moved = measure_snapshot(x, y, [z1], [PAPER], batch_size=24, references=cache, **kw)
    pd.testing.assert_frame_equal(moved, measure_snapshot(x, y, [z1], [PAPER], batch_size=24, **kw))
    assert moved.value_xz.iloc[0] != pytest.approx(first.value_xz.iloc[0], rel=1e-6)
    relabelled = (y + 1) % 3
    other_y = measure_snapshot(x, relabelled, [z1], [PAPER], batch_size=24, references=cache, **kw)
    pd.testing.assert_frame_equal(other_y, measure_snapshot(x, relabelled, [z1], [PAPER], batch_size=24, **kw))
    other_m = measure_snapshot(x, relabelled, [z1], [PAPER], batch_size=16, references=cache, **kw)
    pd.testing.assert_frame_equal(other_m, measure_snapshot(x, relabelled, [z1], [PAPER], batch_size=16, **kw))
    assert other_m.n_batches.iloc[0] != other_y.n_batches.iloc[0]


def test_sigma_grid_shares_one_distance_gemm_per_layer(monkeypatch):
    gemms = []
    original = Geometry.inner

    def counted(self, dtype):
        if dtype not in self._inner:
            gemms.append(self.name)
        return original(self, dtype)

    monkeypatch.setattr(Geometry, "inner", counted)
    x, y = torch.randn(40, 30), torch.arange(40) % 2
    grid = expand_settings({"estimators": ["nocco", "cka"], "kernel_x": "gaussian", "kernel_y": "onehot",
                            "kernel_z": "gaussian", "sigma": [5.0, 1.0, 0.5], "bandwidth": ["fixed", "median"],
                            "epsilon": [1e-5, 1e-3]})
    measure_snapshot(x, y, [x[:, :20], x[:, 10:]], grid, batch_size=20, permutations=0, seed=0)
    assert gemms == ["layer '0'", "layer '1'", "x"]  # the layers' stack's diagnostics first, then X's kernels
    # the diagnostics in either order after the distances took the Gram over: still one GEMM
    gemms.clear()
    geometry = Geometry(torch.randn(2, 10, 30), "z")
    geometry.sq_distances()
    geometry.mean_sq_activation, geometry.median_distance  # noqa: B018
    assert gemms == ["z"]


# --------------------------------------------------------------------------- the frame


def test_frame_columns_dtypes_and_unused_keys():
    x, y, z1, z2 = snapshot()
    settings = [PAPER, setting(estimator="cka", bandwidth="median", sigma=None),
                setting(estimator="nocco", kernel_x="linear", kernel_z="linear", bandwidth=None, sigma=None)]
    df = measure_snapshot(x, y, {"conv": z1, "fc": z2}, settings, batch_size=24, permutations=0, seed=0)
    assert tuple(df.columns) == FRAME_COLUMNS
    ints = ("layer", "batch_size", "n_samples", "n_batches", "permutations")
    strings = ("layer_name", "estimator", "kernel_x", "kernel_y", "kernel_z", "bandwidth", "unit")
    lists = ("excess_xz_batches", "excess_yz_batches")  # one (n_batches,) float64 array per row
    for c in df.columns:
        want = "int64" if c in ints else "string" if c in strings else "object" if c in lists else "float64"
        assert str(df[c].dtype) == want, c
    assert df["layer"].tolist() == [0, 0, 0, 1, 1, 1] and df["layer_name"].tolist()[::3] == ["conv", "fc"]
    assert (df["unit"] == "").all()
    cka, linear = df.iloc[1], df.iloc[2]
    assert np.isnan(cka.epsilon) and np.isnan(cka.sigma) and cka.bandwidth == "median"
    assert np.isnan(linear.sigma) and pd.isna(linear.bandwidth) and linear.epsilon == 1e-5
    assert np.isnan(linear.bandwidth_ratio) and not np.isnan(linear.median_distance)
    for c in ("null_xz_mean", "null_xz_std", "excess_xz", "p_xz", "null_yz_mean", "null_yz_std", "excess_yz", "p_yz"):
        assert df[c].isna().all(), c


def test_single_batch_has_zero_std_and_a_copy_of_x_cka_one():
    x = torch.randn(16, 5)
    y = torch.arange(16) % 2
    df = measure_snapshot(x, y, {"copy": x.clone()}, [setting(estimator="cka")], batch_size=16, permutations=3, seed=0)
    assert df["n_batches"].tolist() == [1]
    assert df[["value_xz_std", "value_yz_std"]].eq(0.0).all().all()
    assert df["value_xz"].iloc[0] == pytest.approx(1.0)
    assert df["p_xz"].iloc[0] == pytest.approx(1 / 4)


def test_expand_settings_grid_order_and_deduplication():
    section = {"estimators": ["nocco", "cka", "nocco_normalized"], "kernel_x": "gaussian", "kernel_y": "onehot",
               "kernel_z": "gaussian", "sigma": [5.0, 1.0], "bandwidth": ["fixed", "median", "median_scaled"],
               "epsilon": [1e-5, 1e-3], "batch_size": 128}
    grid = expand_settings(section)
    assert grid[0] == PAPER  # the first value of every list first: the paper's protocol
    nocco = [s for s in grid if s["estimator"] == "nocco"]
    # sigma x bandwidth (median ignores sigma) x epsilon = (2 + 1 + 2) x 2, in the declared key order
    assert len(nocco) == 10
    assert [(s["bandwidth"], s["sigma"], s["epsilon"]) for s in nocco[:6]] == [
        ("fixed", 5.0, 1e-5), ("fixed", 5.0, 1e-3), ("median", None, 1e-5), ("median", None, 1e-3),
        ("median_scaled", 5.0, 1e-5), ("median_scaled", 5.0, 1e-3)]
    assert all(s["sigma"] is None for s in nocco if s["bandwidth"] == "median")
    cka = [s for s in grid if s["estimator"] == "cka"]
    assert len(cka) == 5 and all(s["epsilon"] is None for s in cka)  # epsilon does not multiply cka
    assert len(grid) == 10 + 5 + 10
    assert [s["estimator"] for s in grid] == ["nocco"] * 10 + ["cka"] * 5 + ["nocco_normalized"] * 10
    assert len({tuple(sorted(s.items(), key=str)) for s in grid}) == len(grid)
    assert expand_settings(section) == grid  # deterministic
    assert set(grid[0]) == set(SETTING_KEYS)


def test_expand_settings_linear_kernels_drop_bandwidth_and_sigma():
    grid = expand_settings({"estimators": ["cka_unbiased"], "kernel_x": "linear", "kernel_y": "onehot",
                            "kernel_z": "linear", "sigma": [5.0, 1.0], "bandwidth": ["fixed", "median"],
                            "epsilon": [1e-5]})
    assert grid == [{"estimator": "cka_unbiased", "kernel_x": "linear", "kernel_y": "onehot", "kernel_z": "linear",
                     "sigma": None, "bandwidth": None, "epsilon": None}]


@pytest.mark.parametrize("section,error,match", [
    ({"estimators": []}, ValueError, "non-empty list"),
    ({"estimators": ["mine"]}, KeyError,
     "unknown estimator 'mine'; allowed: binning, cka, cka_minibatch, cka_unbiased, kde, nocco"),
    ({**PAPER, "estimators": ["nocco"], "sigma": [5.0, -1.0]}, ValueError, "sigma must be a positive number, got -1.0"),
    ({**PAPER, "estimators": ["nocco"], "epsilon": []}, ValueError, "epsilon is an empty list"),
    ({**PAPER, "estimators": ["nocco"], "bandwidth": "silverman"}, ValueError,
     "bandwidth='silverman': unknown bandwidth rule; allowed: fixed, median, median_scaled"),
    ({**PAPER, "estimators": ["nocco"], "kernel_z": "rbf"}, KeyError, "kernel_z='rbf': unknown kernel"),
    ({**PAPER, "estimators": ["nocco"], "epsilon": None}, ValueError, "lacks epsilon"),
    ({**PAPER, "estimators": ["nocco"], "epsilon": True}, ValueError, "epsilon must be a positive number"),
])
def test_expand_settings_bad_values(section, error, match):
    with pytest.raises(error, match=match):
        expand_settings(section)


# --------------------------------------------------------------------------- the estimator protocol


@dataclass
class _PowerSettings(Settings):
    power: int = key(1, dtype="Int64")


@dataclass
class _CorrelationEstimator:
    """A toy plug-in (raw stacks, no geometry): |corr| of the first coordinates of X and Z, and of Y
    and Z's first coordinate; a null for Y only (as an MI estimator without an X null would), an extra."""

    name: str = "first_corr"
    unit: str = "abs_corr"
    settings = _PowerSettings

    def reference_key(self, role, s):
        return (self.name, role)

    def prepare(self, data, role, s):
        self.prepared = getattr(self, "prepared", []) + [(role, tuple(data.shape), data.dtype)]
        return data.double().reshape(data.shape[0], data.shape[1], -1)[..., 0]

    def score(self, ref_x, ref_y, z, s, perms):
        zf = z.double()[..., 0]

        def corr(a, b):
            a = a - a.mean(-1, keepdim=True)
            b = b - b.mean(-1, keepdim=True)
            return ((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))).abs() ** s["power"]

        null_y = None
        if perms is not None:
            permuted = zf.gather(1, perms.reshape(zf.shape[0], -1)).reshape(perms.shape)
            null_y = corr(ref_y[:, None, :], permuted)
        return Scores(corr(ref_x, zf), corr(ref_y, zf), None, null_y, extra={"z_first_mean": zf.mean(-1)})


def test_a_plug_in_estimator_gets_raw_stacks_the_null_logic_and_extra_columns(monkeypatch):
    toy = _CorrelationEstimator()
    monkeypatch.setitem(ESTIMATORS._entries, toy.name, toy)
    monkeypatch.setitem(ESTIMATORS._meta, toy.name, {})
    rng = np.random.default_rng(26)
    n, m, count = 60, 20, 9
    x = rng.normal(size=(n, 2, 2)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int64)
    z = torch.tensor(x.reshape(n, -1) * 2 + 0.1).half()
    grid = expand_settings({"estimators": ["first_corr", "nocco"], **PAPER, "power": [1, 2]})
    assert [s.get("power") for s in grid] == [1, 2, None]
    df = measure_snapshot(x, y, [z], grid, batch_size=m, permutations=count, seed=2)
    assert list(df.columns) == [*FRAME_COLUMNS, "power", "z_first_mean"]
    assert toy.prepared == [("x", (3, m, 4), torch.float32), ("y", (3, m), torch.int64)]
    toy_rows = df[df.estimator == "first_corr"]
    assert toy_rows["unit"].tolist() == ["abs_corr"] * 2 and toy_rows["power"].tolist() == [1, 2]
    assert toy_rows[["kernel_x", "bandwidth"]].isna().all().all() and toy_rows["sigma"].isna().all()
    assert toy_rows[["null_xz_mean", "excess_xz", "p_xz"]].isna().all().all()  # no X null
    assert (toy_rows["value_xz"] > 0.999).all()  # z is an affine copy of x
    assert (toy_rows["p_yz"] == 1 / (1 + count)).all()
    zb = z.double().numpy().reshape(3, m, 4)[..., 0]
    assert toy_rows["z_first_mean"].iloc[0] == pytest.approx(zb.mean(), rel=1e-12)
    nocco = df[df.estimator == "nocco"].iloc[0]
    assert np.isnan(nocco.z_first_mean) and pd.isna(nocco.power) and nocco.unit == ""


def test_a_plug_in_estimator_with_wrong_shapes_gets_a_clear_error(monkeypatch):
    class Broken(_CorrelationEstimator):
        def score(self, ref_x, ref_y, z, s, perms):
            scores = super().score(ref_x, ref_y, z, s, perms)
            scores.null_yz = scores.null_yz[:, :1]  # (B, 1) instead of (B, P)
            return scores

    toy = Broken()
    monkeypatch.setitem(ESTIMATORS._entries, toy.name, toy)
    monkeypatch.setitem(ESTIMATORS._meta, toy.name, {})
    x = np.random.default_rng(28).normal(size=(40, 3))
    with pytest.raises(ValueError, match=r"first_corr: null_yz has shape \(2, 1\); .* wants \(2, 5\)"):
        measure_snapshot(x, np.arange(40) % 2, [x], [{"estimator": "first_corr", "power": 1}], batch_size=20,
                         permutations=5, seed=0)


# --------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors():
    x = torch.randn(40, 6)
    y = torch.arange(40) % 3
    kw = dict(batch_size=8, permutations=0, seed=0)
    with pytest.raises(ValueError, match=r"batch_size=64 .* number of samples \(40\)"):
        measure_snapshot(x, y, [x], [PAPER], batch_size=64, permutations=0, seed=0)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="layer 'conv2' contains NaN"):
        measure_snapshot(x, y, {"conv1": x, "conv2": bad}, [PAPER], **kw)
    with pytest.raises(ValueError, match="layer 'conv2' contains NaN"):  # one check for the layers' stack
        measure_snapshot(x, y, {"conv1": x, "conv2": bad, "fc": x[:, :2]}, [setting(kernel_z="linear")], **kw)
    with pytest.raises(ValueError, match="^x contains NaN"):
        measure_snapshot(bad, y, [x], [PAPER], **kw)
    with pytest.raises(ValueError, match="layer '0' has 39 samples"):
        measure_snapshot(x, y, [x[:39]], [PAPER], **kw)
    with pytest.raises(ValueError, match="needs at least 4 samples, got batch_size=3"):
        measure_snapshot(x, y, [x], [setting(estimator="cka_unbiased")], batch_size=3, permutations=0, seed=0)
    with pytest.raises(ValueError, match="y must be a 1-D integer label vector"):
        measure_snapshot(x, y.float(), [x], [PAPER], **kw)
    with pytest.raises(ValueError, match="label 3 >= num_classes=3"):
        measure_snapshot(x, torch.arange(40) % 4, [x], [PAPER], num_classes=3, **kw)
    with pytest.raises(ValueError, match="2 names for 1 layers"):
        measure_snapshot(x, y, [x], [PAPER], layer_names=["a", "b"], **kw)
    with pytest.raises(ValueError, match="layers is empty"):
        measure_snapshot(x, y, [], [PAPER], **kw)
    with pytest.raises(ValueError, match="non-empty list of setting dicts"):
        measure_snapshot(x, y, [x], PAPER, **kw)
    with pytest.raises(ValueError, match="lacks epsilon"):
        measure_snapshot(x, y, [x], [{**PAPER, "epsilon": None}], **kw)
    # a key left out takes the estimator's declared default (nocco's are the paper's protocol)
    assert normalize_setting({k: v for k, v in PAPER.items() if k != "epsilon"}) == normalize_setting(PAPER)
    assert normalize_setting({"estimator": "nocco"}) == normalize_setting(PAPER)
    with pytest.raises(KeyError, match="unknown estimator 'mine'"):
        measure_snapshot(x, y, [x], [setting(estimator="mine")], **kw)
    with pytest.raises(ValueError, match="permutations must be an integer >= 0, got -1"):
        measure_snapshot(x, y, [x], [PAPER], batch_size=8, permutations=-1, seed=0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        measure_snapshot(x, y, [x], [PAPER], batch_size=8, permutations=2, seed=1.5)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        measure_snapshot(x, y, [x], [PAPER], batch_size=0, permutations=0, seed=0)


def test_median_bandwidth_with_mostly_coincident_samples_in_a_batch_stack():
    """One batch with more than half of its pairs at distance 0 (positive-median fallback), one with all
    samples equal (kernel of ones: scores 0) and one ordinary batch, in one stack: each as the single pair."""
    rng = np.random.default_rng(27)
    m = 8
    z = np.concatenate([np.concatenate([np.zeros((6, 3)), rng.normal(size=(2, 3))]), np.ones((m, 3)),
                        rng.normal(size=(m, 3))])
    x = rng.normal(size=(3 * m, 4))
    y = rng.integers(0, 2, 3 * m)
    geometry = Geometry(torch.tensor(z).reshape(3, m, 3), "z")
    want = [ref_median_distance(z[:m], positive_fallback=True), 0.0, ref_median_distance(z[2 * m:])]
    np.testing.assert_allclose(geometry.median_bandwidth.numpy(), want, rtol=1e-12)
    s = setting(estimator="cka", bandwidth="median", sigma=None)
    df = measure_snapshot(x, y, [z], [s], batch_size=m, permutations=0, seed=0)
    per_batch = [nhsic(x[b * m:(b + 1) * m], z[b * m:(b + 1) * m], estimator="cka", bandwidth="median")
                 for b in range(3)]
    assert per_batch[1] == 0.0
    assert df["value_xz"].iloc[0] == pytest.approx(np.mean(per_batch), rel=1e-12)
    assert BANDWIDTHS.get("median")(geometry, None).tolist()[1] == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_agrees_with_cpu():
    rng = np.random.default_rng(11)
    x = torch.tensor(rng.normal(size=(256, 64)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 10, 256))
    z = torch.relu(x @ torch.randn(64, 32)).half()
    settings = [setting(estimator=e) for e in ESTIMATOR_NAMES] + [setting(bandwidth="median", sigma=None)]
    kw = dict(batch_size=128, permutations=16, seed=0)
    cpu = measure_snapshot(x, y, [z], settings, device="cpu", **kw)
    gpu = measure_snapshot(x.cuda(), y.cuda(), [z.cuda()], settings, device="cuda", **kw)
    for c in ("value_xz", "value_yz", "null_xz_mean", "null_yz_mean", "ceiling_zz", "median_distance"):
        np.testing.assert_allclose(gpu[c], cpu[c], rtol=1e-6, err_msg=c)
    np.testing.assert_array_equal(gpu["p_xz"], cpu["p_xz"])  # the same permutations on every device


def test_per_batch_excess_columns_against_a_float64_loop(tmp_path):
    """excess_*_batches = value_b - mean_p null_{b,p} per batch in eval-batch order, excess_*_std its
    population std over batches, both checked against a float64 loop of single-pair nHSICs; the
    existing excess_* is the list's mean. The layer's scale differs between batches, so the raw
    value and the null move from batch to batch: the excess's spread is not the value's."""
    x, y, z1, _ = snapshot(n=80, dtype=torch.float64)
    batches, m, count = 4, 20, 6
    scale = torch.tensor([1.0, 3.0, 0.3, 6.0], dtype=torch.float64).repeat_interleave(m)[:, None]
    z = z1 * scale
    df = measure_snapshot(x, y, [z], [PAPER], batch_size=m, permutations=count, seed=9)
    perms = Permutations.draw(batches, count, m, seed=9, device=torch.device("cpu")).perms
    row = df.iloc[0]
    for role, ref, ref_kernel in (("xz", x, "gaussian"), ("yz", y, "onehot")):
        per_batch = []
        for b in range(batches):
            rb, zb = ref[b * m:(b + 1) * m], z[b * m:(b + 1) * m]
            value = nhsic(rb, zb, kernel_a=ref_kernel)
            nulls = [nhsic(rb, zb[perms[b, p]], kernel_a=ref_kernel) for p in range(count)]
            per_batch.append(value - np.mean(nulls))
        got = row[f"excess_{role}_batches"]
        assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (batches,)
        np.testing.assert_allclose(got, per_batch, rtol=1e-9, atol=1e-12)
        assert row[f"excess_{role}_std"] == pytest.approx(np.std(per_batch), rel=1e-8, abs=1e-13)
        assert row[f"excess_{role}"] == pytest.approx(np.mean(got), rel=1e-12, abs=1e-13)
        assert row[f"excess_{role}_std"] != pytest.approx(row[f"value_{role}_std"], rel=0.05)

    # through the table contract and Parquet (list<double>) and back, unchanged
    from infoplane import contracts

    table = df.assign(epoch=0, dataset="d", arch="a", mode="e2e", seed=0)
    written = contracts.DEPENDENCE.write(table, tmp_path / "t.parquet")
    back = contracts.DEPENDENCE.read(tmp_path / "t.parquet")
    import pyarrow.parquet as pq

    assert str(pq.read_schema(tmp_path / "t.parquet").field("excess_xz_batches").type) == "list<element: double>"
    np.testing.assert_array_equal(np.stack(back["excess_xz_batches"]), np.stack(written["excess_xz_batches"]))


KDE = {"estimator": "kde", "noise_variance": 0.1, "relative": False, "unit": "nats"}


def test_per_batch_excess_is_nan_without_a_null():
    """No permutations, or an estimator without a null (kde's I(X;T)): a list of n_batches NaNs."""
    x, y, z1, _ = snapshot(n=60, dtype=torch.float64)
    df = measure_snapshot(x, y, [z1], [PAPER, KDE], batch_size=20, permutations=0, seed=0)
    for col in ("excess_xz_batches", "excess_yz_batches"):
        assert all(len(v) == 3 and np.isnan(v).all() for v in df[col])
    assert df["excess_xz_std"].isna().all()
    kde = measure_snapshot(x, y, [z1], [KDE], batch_size=20, permutations=5, seed=0).iloc[0]
    assert np.isnan(kde["excess_xz_batches"]).all() and len(kde["excess_xz_batches"]) == 3
    assert np.isfinite(kde["excess_yz_batches"]).all() and np.isfinite(kde["excess_yz_std"])
