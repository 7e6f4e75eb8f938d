"""Minibatch CKA (``cka_minibatch``, ``minibatch_cka``): against a naive float64 NumPy reference of
Nguyen, Raghu & Kornblith's (2021) formula, the full-sample unbiased CKA for one minibatch, the
engine's per-batch form and its null, and pytorch-cka's minibatch accumulation when installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hsic_reference import ref_gram, ref_hsic_unbiased

from infoplane.estimators import ESTIMATORS, Geometry, Permutations, measure_snapshot, minibatch_cka, nhsic

SETTING = {"estimator": "cka_minibatch", "kernel_x": "linear", "kernel_y": "onehot", "kernel_z": "linear",
           "sigma": None, "bandwidth": None, "epsilon": None}


def data(n=120, d=7, seed=0):
    """X and a Z that depends on X nonlinearly, with batch-to-batch differences in scale (so the mean of
    per-batch ratios and the ratio of means differ), and labels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    scale = np.repeat(rng.uniform(0.3, 3.0, n // 10 + 1), 10)[:n, None]
    z = np.tanh(x @ rng.standard_normal((d, 5))) * scale + 0.5 * rng.standard_normal((n, 5))
    y = rng.integers(0, 3, n)
    return x, z, y


def naive_minibatch_cka(a, b, batch_size, kernel_a="linear", kernel_b="linear", sigma=5.0):
    """The formula, minibatch by minibatch, in float64 NumPy with explicit Gram matrices."""
    xy = xx = yy = 0.0
    for i in range(len(a) // batch_size):
        part = slice(i * batch_size, (i + 1) * batch_size)
        k, l = ref_gram(a[part], kernel_a, sigma=sigma), ref_gram(b[part], kernel_b, sigma=sigma)
        xy += ref_hsic_unbiased(k, l)
        xx += ref_hsic_unbiased(k, k)
        yy += ref_hsic_unbiased(l, l)
    return xy / np.sqrt(xx * yy)


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
@pytest.mark.parametrize("batch_size", [12, 30])
def test_minibatch_cka_matches_the_naive_reference(kernel, batch_size):
    x, z, _ = data()
    got = minibatch_cka(x, z, batch_size=batch_size, kernel_a=kernel, kernel_b=kernel, sigma=1.5)
    want = naive_minibatch_cka(x, z, batch_size, kernel, kernel, sigma=1.5)
    assert abs(want) > 0.05
    assert got == pytest.approx(want, rel=1e-10)
    # the ratio of the means is not the mean of the per-batch ratios (what cka_unbiased averages)
    ratios = [nhsic(x[i:i + batch_size], z[i:i + batch_size], estimator="cka_unbiased", kernel_a=kernel,
                    kernel_b=kernel, sigma=1.5) for i in range(0, len(x) - batch_size + 1, batch_size)]
    assert abs(np.mean(ratios) - got) > 1e-3


def test_one_minibatch_is_the_full_sample_unbiased_cka():
    x, z, _ = data(n=90)
    full = nhsic(x, z, estimator="cka_unbiased", kernel_a="linear", kernel_b="linear")
    assert minibatch_cka(x, z, batch_size=90) == pytest.approx(full, rel=1e-10)
    assert minibatch_cka(x, z, batch_size=60) != pytest.approx(full, rel=1e-6)  # 30 samples dropped


def test_engine_value_is_minibatch_cka_and_its_null_that_of_the_permuted_data():
    x, z, y = data(n=120)
    frame = measure_snapshot(torch.tensor(x), torch.tensor(y), {"z": torch.tensor(z)}, [SETTING], batch_size=24,
                             permutations=5, seed=2, device="cpu", gram_dtype=torch.float64)
    row = frame.iloc[0]
    assert row["value_xz"] == pytest.approx(naive_minibatch_cka(x, z, 24), rel=1e-10)
    assert row["value_yz"] == pytest.approx(naive_minibatch_cka(y, z, 24, "onehot"), rel=1e-10)
    # the per-batch form: each batch's share of the pooled ratio; the joint permutation's batch mean is
    # the minibatch CKA of Z permuted within each batch
    est = ESTIMATORS.get("cka_minibatch")
    batches, m = 5, 24
    stack = lambda t: torch.tensor(t).reshape(batches, m, -1)  # noqa: E731
    perms = Permutations.draw(batches, 4, m, seed=1, device=torch.device("cpu"))
    gx, gy, gz = (Geometry(stack(t), n, gram_dtype=torch.float64) for t, n in ((x, "x"), (y, "y"), (z, "z")))
    scores = est.score(est.prepare(gx, "x", SETTING), est.prepare(gy, "y", SETTING), gz, SETTING, perms)
    assert float(scores.value_xz.mean()) == pytest.approx(row["value_xz"], rel=1e-10)
    assert float(scores.value_xz.std()) > 0
    for p in range(4):
        zp = np.concatenate([z[b * m:(b + 1) * m][perms.perms[b, p].numpy()] for b in range(batches)])
        assert float(scores.null_xz[:, p].mean()) == pytest.approx(naive_minibatch_cka(x, zp, m), rel=1e-10)
        assert float(scores.null_yz[:, p].mean()) == pytest.approx(naive_minibatch_cka(y, zp, m, "onehot"),
                                                                   rel=1e-10)


def test_a_constant_batch_counts_in_the_mean_and_a_constant_layer_scores_zero():
    x, z, _ = data(n=60)
    z[:20] = 1.0  # the first of 3 minibatches is constant: HSIC_u = 0 there, the others still count
    got = minibatch_cka(x, z, batch_size=20)
    assert got == pytest.approx(naive_minibatch_cka(x, z, 20), rel=1e-10) and got > 0.05
    assert minibatch_cka(x, np.ones_like(z), batch_size=20) == 0.0


def test_bad_input_is_refused():
    x, z, _ = data(n=40)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 4"):
        minibatch_cka(x, z, batch_size=3)
    with pytest.raises(ValueError, match="exceeds the 40 samples"):
        minibatch_cka(x, z, batch_size=41)
    with pytest.raises(ValueError, match="same samples"):
        minibatch_cka(x, z[:30], batch_size=10)


def test_pytorch_cka_minibatch_accumulation_agrees():
    """pytorch-cka's (the ``bench`` extra) hsic on each minibatch's Gram matrices, accumulated and
    divided as Nguyen et al. do; skipped where the package is not installed."""
    hsic = pytest.importorskip("cka.hsic").hsic
    x, z, _ = data(n=120)
    sums = np.zeros(3)
    for i in range(0, 120, 30):
        gx = torch.tensor(x[i:i + 30] @ x[i:i + 30].T)[None]
        gz = torch.tensor(z[i:i + 30] @ z[i:i + 30].T)[None]
        xy, xx, yy = hsic(gx, gz)
        sums += [float(xy.reshape(-1)[0]), float(xx.reshape(-1)[0]), float(yy.reshape(-1)[0])]
    assert minibatch_cka(x, z, batch_size=30) == pytest.approx(sums[0] / np.sqrt(sums[1] * sums[2]), rel=1e-8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_minibatch_cka_agrees_on_cuda_and_cpu():
    x, z, _ = data(n=120)
    cpu = minibatch_cka(x, z, batch_size=30)
    gpu = minibatch_cka(torch.tensor(x).cuda(), torch.tensor(z).cuda(), batch_size=30)
    assert gpu == pytest.approx(cpu, rel=1e-10)
