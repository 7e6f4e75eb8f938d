"""The known-truth benchmark (`infoplane.bench.truth`): its closed forms, and the answers that
theory fixes for the estimators on its tasks (limits, invariances, monotonicity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infoplane.bench import truth


def _plugin_entropy_bits(rows: torch.Tensor) -> float:
    """Plug-in entropy of the distinct rows of (m, d)."""
    _, counts = torch.unique(rows, dim=0, return_counts=True)
    p = counts.double() / rows.shape[0]
    return float(-(p * p.log2()).sum())


def test_closed_forms():
    assert truth.gaussian_truth([0.0, 0.0]) == 0.0
    assert truth.gaussian_truth([math.sqrt(0.75)] * 3) == pytest.approx(3.0)  # 1 - ρ² = 1/4: 1 bit each
    assert truth.channel_truth(0.0) == pytest.approx(math.log2(10))
    assert truth.channel_truth(0.9) == pytest.approx(0.0, abs=1e-12)  # ε = (C-1)/C: Y independent of Z
    assert truth.binary_entropy(0.5) == 1.0


def test_tasks_have_the_declared_structure():
    task = truth.discrete_task(8, 500, 2, seed=3)
    assert task.side == "xz" and task.truth == 3.0
    for b in range(2):  # Z is an invertible function of X: as many distinct Z as distinct X, paired one to one
        pairs = torch.cat([task.x[b], task.z[b]], dim=1)
        assert len(torch.unique(task.x[b], dim=0)) == len(torch.unique(task.z[b], dim=0)) == len(
            torch.unique(pairs, dim=0)
        )
    channel = truth.channel_task(0.0, 2000, 1, seed=4)
    assert torch.equal(channel.y, truth._deciles(channel.z[..., 0], 10))
    counts = torch.bincount(channel.y.flatten(), minlength=10).double()
    assert counts.min() > 0.5 * counts.mean()  # equiprobable classes (200 expected each)


def test_binning_saturates_at_log2_m_on_distinct_points():
    task = truth.gaussian_task(16, 0.5, 128, 2, seed=0)
    xz, yz = truth.estimate("binning", {}, task.x, task.z, task.y)
    assert np.allclose(xz, math.log2(128), atol=1e-12)
    assert np.allclose(yz, [_plugin_entropy_bits(task.y[b].view(-1, 1)) for b in range(2)], atol=1e-12)


@pytest.mark.parametrize("estimator", ["binning", "kde"])
def test_binning_and_kde_do_not_see_x(estimator):
    """They score I(X;Z) as an entropy of Z alone (Z assumed a function of X): another X gives
    exactly the same value, whatever the true dependence."""
    task = truth.gaussian_task(2, 0.99, 128, 2, seed=1)
    other = torch.randn_like(task.x)
    a, _ = truth.estimate(estimator, {}, task.x, task.z, task.y)
    b, _ = truth.estimate(estimator, {}, other, task.z, task.y)
    assert np.array_equal(a, b)


def test_kernel_estimators_saturate_at_log2_m_as_the_width_vanishes():
    task = truth.gaussian_task(2, 0.5, 64, 1, seed=2)  # distinct points, min distance >> 1e-4
    xz, _ = truth.estimate("kde", {"noise_variance": 1e-8, "unit": "bits"}, task.x, task.z, task.y)
    assert xz[0] == pytest.approx(math.log2(64), abs=1e-9)
    xz, _ = truth.estimate("renyi", {"width": "fixed", "sigma": 1e-4}, task.x, task.z, task.y)
    assert xz[0] == pytest.approx(math.log2(64), abs=1e-6)


@pytest.mark.parametrize("k", [4, 8])
def test_binning_recovers_h_x_of_an_invertibly_mapped_discrete_x(k):
    """Z = tanh(XW/4) and Z = X: every atom its own symbol, so the estimate is exactly the plug-in
    entropy of the atoms drawn (invariant to the invertible map), which cannot exceed log2 K."""
    task = truth.discrete_task(k, 1000, 2, seed=5)
    mapped, _ = truth.estimate("binning", {}, task.x, task.z, task.y)
    identity, _ = truth.estimate("binning", {}, task.x, task.x, task.y)
    plugin = [_plugin_entropy_bits(task.x[b]) for b in range(2)]
    assert np.allclose(mapped, plugin, atol=1e-12) and np.allclose(identity, plugin, atol=1e-12)
    assert (mapped <= math.log2(k) + 1e-12).all()


def test_renyi_grows_with_the_correlation():
    means = []
    for rho in (0.0, 0.5, 0.9, 0.99):
        task = truth.gaussian_task(2, rho, 256, 3, seed=6)
        means.append(truth.estimate("renyi", {}, task.x, task.z, task.y)[0].mean())
    assert all(b > a for a, b in zip(means, means[1:])), means


def test_saturation_point_and_quick_report(capsys):
    assert truth.saturation_point([1, 3, 5, 7], [1.0, 2.9, 3.8, 4.0]) == 5  # 0.9 * 4.0 = 3.6
    truth.main(["--quick"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    plan = truth.QUICK
    tasks = len(plan.gaussian) + len(plan.ks) + len(plan.eps)
    assert len(rows) == len(plan.sizes) * (1 + tasks) + 1 + len(truth.SETTINGS)  # headers + rows
    assert "nan" not in out.lower()
