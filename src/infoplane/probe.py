"""Linear separability of each layer: a linear probe fitted on activation snapshots.

For one snapshot (all layers of one run at one epoch) and every layer l:

1. Split the snapshot's samples once into a probe-train and a probe-test part by a fixed
   seeded permutation (`probe_split`): the same split for every run and epoch of a data set,
   because every run snapshots the same eval set in the same order.
2. Flatten Z_l to (n, d) and standardize every feature with the probe-train mean and std
   (constant features become 0).
3. Fit multinomial logistic regression, minimizing
       mean_i CE(W z_i + b, y_i) + (l2 / 2) ||W||²      (bias not penalized)
   by full-batch L-BFGS (`lbfgs`, analytic gradient, on the probe's device) from zero,
   in float64: a convex problem with one optimum, so the result
   does not depend on initialization or batch order.
4. Report accuracy on probe-train and probe-test (the linear separability).

Beside it, the geometry of every layer (Goldfeld et al., ICML 2019: in a deterministic network
a binned or noisy "I(X;T)" measures how the samples cluster), on the raw features (no
standardization: the geometry the next layer sees):

* `nc1`: within-class variability collapse tr(Σ_W Σ_B⁺)/C (Papyan, Han & Donoho, PNAS 2020)
  on the whole eval set (`nc1`, computed without d × d matrices);
* `knn_accuracy`: a k-nearest-neighbour classifier (Euclidean) fitted on the probe-train half
  and scored on the probe-test half (`knn_accuracy`).

Both are cheap, so they are measured at every snapshot epoch even where `epochs: ends`
restricts the (costly) linear probe to the first and the last snapshot; its accuracies are
then NaN at the epochs between.

When d exceeds the probe-train size n_t the fit runs in the span of the training features:
with the thin SVD Z_train = U S^½ Vᵀ (from the n_t × n_t Gram matrix), every optimal W lies
in span(V), and the L2 penalty is rotation invariant, so fitting B on Z_train V = U S^½ and
predicting with Z_test V = Z_test Z_trainᵀ U S^-½ gives exactly the same optimum at a cost
set by n_t, not d.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch.nn import functional as F

from . import contracts

#: Relative eigenvalue cut-off when reducing to the span of the training features.
_RANK_TOL = 1e-9


def probe_split(n: int, train_fraction: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed (train, test) index split of n samples: a seeded permutation, cut at the fraction."""
    n_train = int(round(n * train_fraction))
    if not 1 <= n_train < n:
        raise ValueError(
            f"a probe needs at least one train and one test sample: n={n}, train_fraction={train_fraction}"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return perm[:n_train].sort().values, perm[n_train:].sort().values


def _standardize(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = train.mean(0, keepdim=True)
    std = train.std(0, unbiased=False, keepdim=True)
    scale = torch.where(std > 1e-12, std, torch.ones_like(std))
    return (train - mean) / scale, (test - mean) / scale


def _span_features(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates of train and test features in an orthonormal basis of span(train rows)."""
    gram = train @ train.T
    eigval, eigvec = torch.linalg.eigh(gram)
    keep = eigval > _RANK_TOL * eigval.max().clamp_min(1e-300)
    eigval, eigvec = eigval[keep], eigvec[:, keep]
    root = eigval.sqrt()
    return eigvec * root, (test @ train.T) @ (eigvec / root)


def lbfgs(fun, theta: torch.Tensor, max_iter: int, tolerance: float, history: int = 10) -> torch.Tensor:
    """Minimize a smooth convex `fun(theta) -> (value, gradient)` by L-BFGS.

    Two-loop recursion for the direction, backtracking line search with the Armijo
    condition f(θ + t·p) ≤ f(θ) + 1e-4·t·∇fᵀp. Stops when max|∇f| ≤ tolerance, when the
    relative decrease of f falls below tolerance², or after max_iter iterations. Kept in
    torch (on θ's device) rather than torch.optim.LBFGS, whose first use imports
    torch._dynamo (about 3 s per process) and costs more per iteration on tiny problems.
    """
    value, grad = fun(theta)
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for _ in range(max_iter):
        if grad.abs().max().item() <= tolerance:
            break
        q, alphas = grad.clone(), []
        for s, y, rho in reversed(pairs):
            alpha = rho * s.dot(q)
            q -= alpha * y
            alphas.append(alpha)
        if pairs:
            s, y, _ = pairs[-1]
            q *= s.dot(y) / y.dot(y)
        else:
            q /= max(1.0, grad.abs().sum().item())  # a cautious first step
        for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
            q += s * (alpha - rho * y.dot(q))
        direction = -q
        slope = grad.dot(direction).item()
        if slope >= 0:  # not a descent direction: restart from steepest descent
            pairs.clear()
            direction = -grad / max(1.0, grad.abs().sum().item())
            slope = grad.dot(direction).item()
        step = 1.0
        while True:
            candidate = theta + step * direction
            new_value, new_grad = fun(candidate)
            if new_value <= value + 1e-4 * step * slope or step < 1e-12:
                break
            step *= 0.5
        s, y = candidate - theta, new_grad - grad
        sy = s.dot(y)
        if sy.item() > 1e-12:
            pairs.append((s, y, 1.0 / sy))
            del pairs[:-history]
        decrease = value - new_value
        theta, value, grad = candidate, new_value, new_grad
        if decrease <= tolerance**2 * max(abs(value), 1.0):
            break
    return theta


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, max_iter: int, tolerance: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression (weights (d, C), bias (C,)) by full-batch L-BFGS.

    With P = softmax(xW + b) and one-hot Y, the objective mean CE + (l2/2)||W||² has the
    gradient dW = xᵀ(P − Y)/n + l2·W, db = mean(P − Y) (written out, no autograd).
    """
    n, d = x.shape
    onehot = F.one_hot(y, num_classes).to(x.dtype)

    def objective(theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        weight, bias = theta[: d * num_classes].view(d, num_classes), theta[d * num_classes :]
        logp = torch.log_softmax(x @ weight + bias, dim=1)
        loss = -(onehot * logp).sum() / n + 0.5 * l2 * weight.pow(2).sum()
        residual = (logp.exp() - onehot) / n
        grad = torch.cat([(x.T @ residual + l2 * weight).reshape(-1), residual.sum(0)])
        return loss.item(), grad

    theta = torch.zeros(d * num_classes + num_classes, dtype=x.dtype, device=x.device)
    theta = lbfgs(objective, theta, max_iter, tolerance)
    return theta[: d * num_classes].view(d, num_classes), theta[d * num_classes :]


def nc1(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Within-class variability collapse tr(Σ_W Σ_B⁺)/C of features (n, ...) with labels (n,).

    Σ_W = (1/n) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ, Σ_B = (1/C) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ over the
    C classes present, μ_G the global mean (Papyan et al. 2020). 0 when every sample sits on its
    class mean; invariant to a global rotation, translation and scaling. With W = (H − M_y)/√n
    and B = (M − μ_G)/√C, Σ_W = WᵀW and Σ_B = BᵀB; from the eigendecomposition BBᵀ = U S² Uᵀ
    (C × C, rank r ≤ C − 1) the pseudo-inverse is Σ_B⁺ = V S⁻² Vᵀ with V = Bᵀ U S⁻¹, so
    tr(Σ_W Σ_B⁺) = ||W Bᵀ U S⁻²||²_F: a cost of n·d·C, no d × d matrix. Float64. NaN when all
    class means coincide (Σ_B = 0: no between-class direction to compare with).
    """
    h = features.reshape(features.shape[0], -1).to(torch.float64)
    if not torch.isfinite(h).all():
        raise ValueError("layer features contain NaN or inf; the snapshot is broken (diverged run?)")
    y = torch.as_tensor(labels, device=h.device).long()
    classes, inverse = torch.unique(y, return_inverse=True)
    num = len(classes)
    counts = torch.bincount(inverse, minlength=num).to(h.dtype)
    means = torch.zeros(num, h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, inverse, h) / counts[:, None]
    within = (h - means[inverse]) / h.shape[0] ** 0.5
    between = (means - h.mean(0, keepdim=True)) / num**0.5
    eigval, eigvec = torch.linalg.eigh(between @ between.T)
    scale = eigval.abs().max()
    if num < 2 or scale <= 0:
        return float("nan")
    keep = eigval > _RANK_TOL * scale
    projected = (within @ between.T) @ (eigvec[:, keep] / eigval[keep])
    return float(projected.pow(2).sum().item() / num)


def knn_predict(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, k: int) -> torch.Tensor:
    """Majority vote of the k nearest training samples (Euclidean, float64) for every test row;
    a tie between classes goes to the tied class with the nearest neighbour. k is capped at the
    number of training samples."""
    k = min(int(k), train.shape[0])
    if k < 1:
        raise ValueError(f"k-nearest neighbours needs k >= 1 and a training sample, got k={k}")
    train, test = train.to(torch.float64), test.to(torch.float64)
    dist = (test.pow(2).sum(1, keepdim=True) - 2 * test @ train.T + train.pow(2).sum(1)[None, :]).clamp_min(0)
    order = torch.sort(dist, dim=1, stable=True).indices[:, :k]
    neighbours = train_labels.to(order.device)[order]  # (m, k), nearest first
    num = int(train_labels.max().item()) + 1
    votes = torch.zeros(test.shape[0], num, dtype=torch.float64, device=order.device)
    votes.scatter_add_(1, neighbours, torch.ones_like(neighbours, dtype=torch.float64))
    # rank of each class's nearest neighbour (k where absent) breaks ties between equal votes
    first = torch.full_like(votes, float(k))
    ranks = torch.arange(k, dtype=torch.float64, device=order.device).expand_as(neighbours)
    first.scatter_reduce_(1, neighbours, ranks, reduce="amin")
    return (votes - first / (k + 1)).argmax(1)


def knn_accuracy(
    features: torch.Tensor, labels: torch.Tensor, split: tuple[torch.Tensor, torch.Tensor], k: int
) -> float:
    """Test accuracy of k-NN fitted on split[0] and scored on split[1] (raw features)."""
    x = features.reshape(features.shape[0], -1).to(torch.float64)
    y = torch.as_tensor(labels, device=x.device).long()
    train_idx, test_idx = (i.to(x.device) for i in split)
    predicted = knn_predict(x[train_idx], y[train_idx], x[test_idx], k)
    return (predicted == y[test_idx]).double().mean().item()


def probe_layer(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    split: tuple[torch.Tensor, torch.Tensor],
    settings: Mapping,
) -> tuple[float, float]:
    """(train accuracy, test accuracy) of a linear probe on one layer's features (n, ...)."""
    train_idx, test_idx = split
    device = features.device
    x = features.reshape(features.shape[0], -1).to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError("layer features contain NaN or inf; the snapshot is broken (diverged run?)")
    train_idx, test_idx = train_idx.to(device), test_idx.to(device)
    x_train, x_test = _standardize(x[train_idx], x[test_idx])
    if x_train.shape[1] > x_train.shape[0]:
        x_train, x_test = _span_features(x_train, x_test)
    y = labels.to(device)
    y_train, y_test = y[train_idx], y[test_idx]
    weight, bias = fit_logistic(
        x_train, y_train, num_classes, float(settings["l2"]), int(settings["max_iter"]), float(settings["tolerance"])
    )
    train_acc = ((x_train @ weight + bias).argmax(1) == y_train).double().mean().item()
    test_acc = ((x_test @ weight + bias).argmax(1) == y_test).double().mean().item()
    return train_acc, test_acc


def probe_snapshot(snapshot: contracts.Snapshot, eval_set: contracts.EvalSet, settings: Mapping,
                   device: str | torch.device = "cpu", linear: bool = True) -> pd.DataFrame:
    """Probe every layer of one snapshot; `settings` is the config's `probe` section. Without
    `linear` only the geometry (nc1, knn_accuracy) is measured, the linear-probe accuracies are NaN."""
    labels = torch.as_tensor(eval_set.y).long()
    num_classes = int(eval_set.num_classes)
    split = probe_split(len(labels), settings["train_fraction"], settings["split_seed"])
    k = int(settings["knn_k"])
    rows = []
    for index, (name, z) in enumerate(zip(snapshot.layer_names, snapshot.layers)):
        if z.shape[0] != len(labels):
            raise ValueError(f"layer {name!r} has {z.shape[0]} samples, the eval set has {len(labels)}")
        z = z.to(device)
        train_acc, test_acc = probe_layer(z, labels, num_classes, split, settings) if linear else (math.nan,) * 2
        rows.append(
            {
                **snapshot.run.columns(),
                "split": snapshot.split,
                "epoch": snapshot.epoch,
                "layer": index,
                "layer_name": str(name),
                "probe_train_size": len(split[0]),
                "probe_test_size": len(split[1]),
                "train_accuracy": train_acc,
                "accuracy": test_acc,
                "nc1": nc1(z, labels),
                "knn_k": min(k, len(split[0])),
                "knn_accuracy": knn_accuracy(z, labels, split, k),
            }
        )
    return pd.DataFrame(rows)


def probe_run(eval_set_paths: Path | Sequence[Path], snapshot_paths: Sequence[Path], settings: Mapping,
              device: str | torch.device = "cpu") -> pd.DataFrame:
    """All snapshot epochs of one run, every split -> the run's `contracts.PROBES` table (the linear
    probe at the epochs `settings["epochs"]` selects, the geometry at every one); each snapshot is
    probed on the eval set of its split."""
    paths = [eval_set_paths] if isinstance(eval_set_paths, (str, Path)) else list(eval_set_paths)
    eval_sets = contracts.read_eval_sets(paths)
    files = contracts.snapshot_files(snapshot_paths)
    epochs = sorted({contracts.snapshot_epoch(f) for f in files})
    linear = {epochs[0], epochs[-1]} if settings["epochs"] == "ends" else set(epochs)
    frames = [
        probe_snapshot(snap, eval_sets[snap.split], settings, device, linear=snap.epoch in linear)
        for snap in contracts.read_snapshots(files, eval_sets)
    ]
    return contracts.PROBES.conform(pd.concat(frames, ignore_index=True))
