"""Linear-separability probes: split, exactness of the span reduction, accuracies, CLI."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from infoplane import cli, config, contracts, probe
from infoplane.contracts import EvalSet, Run, Snapshot

SETTINGS = config.defaults("probe")


def clusters(n=400, d=20, classes=4, spread=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centers = torch.randn(classes, d, generator=g) * 3
    return centers[y] + spread * torch.randn(n, d, generator=g), y


def test_split_is_fixed_disjoint_and_complete():
    train, test = probe.probe_split(100, 0.5, seed=3)
    again = probe.probe_split(100, 0.5, seed=3)
    assert torch.equal(train, again[0]) and torch.equal(test, again[1])
    assert len(train) == 50 and len(test) == 50
    assert sorted(torch.cat([train, test]).tolist()) == list(range(100))
    other = probe.probe_split(100, 0.5, seed=4)
    assert not torch.equal(train, other[0])
    with pytest.raises(ValueError, match="at least one train"):
        probe.probe_split(1, 0.5)


def test_fit_reaches_the_optimum_of_the_penalized_loss():
    """At the returned weights the autograd gradient of the objective vanishes."""
    x, y = clusters(n=200, d=15, classes=3, spread=3.0)
    x = x.double()
    w, b = probe.fit_logistic(x, y, 3, l2=1e-2, max_iter=200, tolerance=1e-8)
    w, b = w.clone().requires_grad_(), b.clone().requires_grad_()
    loss = F.cross_entropy(x @ w + b, y) + 0.5 * 1e-2 * w.pow(2).sum()
    loss.backward()
    assert w.grad.abs().max() < 1e-7 and b.grad.abs().max() < 1e-7
    # a perturbation only increases the loss (convex problem, optimum found)
    with torch.no_grad():
        bumped = F.cross_entropy(x @ (w + 1e-3) + b, y) + 0.5 * 1e-2 * (w + 1e-3).pow(2).sum()
    assert bumped > loss


def test_span_reduction_gives_the_primal_optimum():
    """d > n_train: fitting in span(train features) predicts exactly like the full fit."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 100, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    train, test = x[:20], x[20:]
    l2 = 0.1
    w, b = probe.fit_logistic(train, y[:20], 3, l2, max_iter=500, tolerance=1e-12)
    rtrain, rtest = probe._span_features(train, test)
    assert rtrain.shape[1] <= 20
    rw, rb = probe.fit_logistic(rtrain, y[:20], 3, l2, max_iter=500, tolerance=1e-12)
    full = F.softmax(test @ w + b, dim=1)
    reduced = F.softmax(rtest @ rw + rb, dim=1)
    assert torch.allclose(full, reduced, atol=1e-5)
    # and the same penalized training loss
    loss_full = F.cross_entropy(train @ w + b, y[:20]) + 0.5 * l2 * w.pow(2).sum()
    loss_red = F.cross_entropy(rtrain @ rw + rb, y[:20]) + 0.5 * l2 * rw.pow(2).sum()
    assert loss_full.item() == pytest.approx(loss_red.item(), rel=1e-6)


def test_accuracy_separable_vs_random_labels():
    settings = SETTINGS
    x, y = clusters()
    split = probe.probe_split(len(y))
    train_acc, test_acc = probe.probe_layer(x, y, 4, split, settings)
    assert train_acc == 1.0 and test_acc == 1.0
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    _, chance = probe.probe_layer(x, shuffled, 4, split, settings)
    assert chance < 0.4  # 4 classes: chance is 0.25


def test_standardization_makes_probe_invariant_to_feature_scale_and_shift():
    settings = SETTINGS
    x, y = clusters(spread=2.5)  # overlapping classes: accuracy strictly between chance and 1
    split = probe.probe_split(len(y))
    base = probe.probe_layer(x, y, 4, split, settings)
    scale = torch.linspace(0.01, 100, x.shape[1])
    moved = probe.probe_layer(x * scale + 7.0, y, 4, split, settings)
    assert 0.3 < base[1] < 1.0
    assert moved == pytest.approx(base, abs=1e-9)


def _write_run(tmp_path, epochs=(0, 2), n=200):
    x, y = clusters(n=n, d=12, classes=4)
    indices = torch.arange(n) * 3
    eval_path = tmp_path / "eval_set.pt"
    contracts.write_eval_set(eval_path, EvalSet("toy", x.view(n, 1, 3, 4), y, indices, 4))
    for epoch in epochs:
        layers = [x.view(n, 3, 4).half() * (epoch + 1), (x @ torch.ones(12, 2)).float(), torch.randn(n, 4)]
        snap = Snapshot(Run("toy", "mlp", "e2e", 1), epoch, ["b1", "b2", "classifier"], layers, indices)
        contracts.write_snapshot(tmp_path / "snapshots" / contracts.SNAPSHOT_NAME.format(epoch=epoch), snap)
    return eval_path, tmp_path / "snapshots"


def test_cli_on_a_snapshot_folder_writes_the_contract_table(tmp_path):
    eval_path, folder = _write_run(tmp_path, epochs=(10, 0, 2))
    out = tmp_path / "run.parquet"
    args = ["probe", "--eval-set", str(eval_path), "--snapshots", str(folder), "--out", str(out)]
    assert cli.main(args + ["--settings", '{"train_fraction": 0.5, "split_seed": 0, "l2": 0.01, "max_iter": 100, '
                            '"tolerance": 1e-6, "epochs": "all", '
                            '"knn_k": 5}', "--device", "cpu"]) == 0
    table = contracts.PROBES.read(out)
    assert len(table) == 3 * 3
    assert table["epoch"].tolist() == [0, 0, 0, 2, 2, 2, 10, 10, 10]
    assert table["layer"].tolist() == [0, 1, 2] * 3
    assert (table["probe_train_size"] == 100).all() and (table["probe_test_size"] == 100).all()
    assert set(table["mode"]) == {"e2e"} and set(table["seed"]) == {1}
    # the clustered layer is separable; pure noise is near chance (4 classes)
    assert (table.loc[table.layer == 0, "accuracy"] == 1.0).all()
    assert (table.loc[table.layer == 2, "accuracy"] < 0.5).all()


def test_probing_only_the_ends_fits_the_linear_probe_at_the_first_and_the_last_snapshot(tmp_path):
    """`epochs: ends` restricts the linear probe; the geometry is measured at every epoch."""
    eval_path, folder = _write_run(tmp_path, epochs=(10, 0, 2, 4))
    table = probe.probe_run(eval_path, [folder], {**SETTINGS, "epochs": "ends"})
    full = probe.probe_run(eval_path, [folder], SETTINGS)
    assert sorted(table["epoch"].unique()) == [0, 2, 4, 10]
    ends = table["epoch"].isin([0, 10])
    assert table.loc[ends, "accuracy"].notna().all()
    assert table.loc[~ends, ["accuracy", "train_accuracy"]].isna().all().all()
    at_ends = full[full["epoch"].isin([0, 10])].reset_index(drop=True)
    pd.testing.assert_frame_equal(table[ends].reset_index(drop=True), at_ends)
    geometry = ["nc1", "knn_k", "knn_accuracy"]
    pd.testing.assert_frame_equal(table[geometry], full[geometry])
    assert table["nc1"].notna().all() and (table["knn_k"] == SETTINGS["knn_k"]).all()


def test_snapshot_for_another_eval_set_is_refused_by_the_cli(tmp_path, capsys):
    eval_path, folder = _write_run(tmp_path, epochs=(0,))
    other = contracts.read_eval_set(eval_path)
    other.indices = other.indices + 1
    contracts.write_eval_set(eval_path, other)
    out = tmp_path / "run.parquet"
    args = ["probe", "--eval-set", str(eval_path), "--snapshots", str(folder), "--out", str(out), "--device", "cpu"]
    assert cli.main(args) == 1
    assert "its sample indices differ from the eval set's" in capsys.readouterr().err
    assert not out.exists()


# --------------------------------------------------------------------------- geometry: nc1 and k-NN


def nc1_reference(h: torch.Tensor, y: torch.Tensor) -> float:
    """tr(Σ_W Σ_B⁺)/C with the d × d matrices formed, in float64 (the definition, written plainly)."""
    h = h.double().reshape(len(h), -1)
    classes = sorted(set(y.tolist()))
    mu_g = h.mean(0)
    sigma_w = torch.zeros(h.shape[1], h.shape[1], dtype=torch.float64)
    sigma_b = torch.zeros_like(sigma_w)
    for c in classes:
        members = h[y == c]
        mu_c = members.mean(0)
        centred = members - mu_c
        sigma_w += centred.T @ centred
        sigma_b += torch.outer(mu_c - mu_g, mu_c - mu_g)
    sigma_w /= len(h)
    sigma_b /= len(classes)
    return float(torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True)) / len(classes))


@pytest.mark.parametrize("n,d", [(300, 12), (60, 500)])  # d < n and d > n
def test_nc1_matches_the_d_by_d_reference(n, d):
    g = torch.Generator().manual_seed(d)
    y = torch.arange(n) % 5
    y[:7] = 0  # unbalanced classes: the global mean differs from the mean of the class means
    h = torch.randn(5, d, generator=g, dtype=torch.float64)[y] * 2 + torch.randn(n, d, generator=g, dtype=torch.float64)
    h = h + 3.0  # an offset the centring must remove
    assert probe.nc1(h, y) == pytest.approx(nc1_reference(h, y), rel=1e-8)


def test_nc1_known_values_and_invariances():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 4
    centers = torch.randn(4, 30, generator=g, dtype=torch.float64)
    assert probe.nc1(centers[y], y) == pytest.approx(0.0, abs=1e-12)  # perfectly collapsed classes
    h = centers[y] + 0.5 * torch.randn(200, 30, generator=g, dtype=torch.float64)
    value = probe.nc1(h, y)
    assert value > 0
    rotation, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
    assert probe.nc1(3.7 * h @ rotation + 1.0, y) == pytest.approx(value, rel=1e-9)
    # spreading the classes twice as wide quadruples the ratio of variances
    assert probe.nc1(centers[y] + 2 * (h - centers[y]), y) == pytest.approx(4 * value, rel=0.05)
    # permuting the labels destroys the clusters: far more within-class spread per between-class spread
    shuffled = y[torch.randperm(200, generator=g)]
    assert probe.nc1(h, shuffled) > 10 * value
    # conv-shaped features are flattened; one class (no between-class direction) has no value
    assert probe.nc1(h.view(200, 3, 10), y) == pytest.approx(value, rel=1e-12)
    assert math.isnan(probe.nc1(h, torch.zeros(200, dtype=torch.long)))


def knn_reference(train, train_labels, test, k):
    """Brute force: sort every distance in Python, count votes, tie -> the class seen first."""
    out = []
    for row in test.double():
        dist = [(float(((row - t.double()) ** 2).sum()), i) for i, t in enumerate(train)]
        nearest = [train_labels[i].item() for _, i in sorted(dist)[:k]]
        votes = {c: nearest.count(c) for c in nearest}
        best = max(votes.values())
        out.append(next(c for c in nearest if votes[c] == best))
    return torch.tensor(out)


@pytest.mark.parametrize("k", [1, 4, 7])
def test_knn_matches_a_brute_force_reference(k):
    x, y = clusters(n=120, d=6, classes=3, spread=2.5, seed=k)  # overlapping classes: votes disagree
    train, test = x[:70], x[70:]
    got = probe.knn_predict(train, y[:70], test, k)
    assert torch.equal(got, knn_reference(train, y[:70], test, k))


def test_knn_accuracy_separable_vs_random_labels_and_k_capped():
    x, y = clusters(n=200, d=10, classes=4, spread=0.2)
    split = probe.probe_split(200, 0.5, 0)
    assert probe.knn_accuracy(x, y, split, 5) == 1.0
    noise = torch.randn(200, 10, generator=torch.Generator().manual_seed(3))
    assert probe.knn_accuracy(noise, y, split, 5) < 0.45
    # k beyond the training set: every test sample gets the majority class of the training half
    train_majority = torch.bincount(y[split[0]]).argmax()
    expected = (y[split[1]] == train_majority).double().mean().item()
    assert probe.knn_accuracy(x, y, split, 10_000) == pytest.approx(expected)
