"""Linear separability of each layer: a linear probe fitted on activation snapshots.

For one snapshot (all layers of one run at one epoch) and every layer l:

1. Split the snapshot's samples once into a probe-train and a probe-test part by a fixed
   seeded permutation (`probe_split`): the same split for every run and epoch of a data set,
   because every run snapshots the same probe set in the same order.
2. Flatten Z_l to (n, d) and standardize every feature with the probe-train mean and std
   (constant features become 0).
3. Fit multinomial logistic regression, minimizing
       mean_i CE(W z_i + b, y_i) + (l2 / 2) ||W||²      (bias not penalized)
   by full-batch L-BFGS (`lbfgs`, analytic gradient, on the probe's device) from zero,
   in float64: a convex problem with one optimum, so the result
   does not depend on initialization or batch order.
4. Report accuracy on probe-train and probe-test (the linear separability).

When d exceeds the probe-train size n_t the fit runs in the span of the training features:
with the thin SVD Z_train = U S^½ Vᵀ (from the n_t × n_t Gram matrix), every optimal W lies
in span(V), and the L2 penalty is rotation invariant, so fitting B on Z_train V = U S^½ and
predicting with Z_test V = Z_test Z_trainᵀ U S^-½ gives exactly the same optimum at a cost
set by n_t, not d.

CLI (one job per run, all of its snapshot epochs):
    python -m infoplane.probes --probe-data results/data/mnist5k/probe.pt \\
        --snapshots .../epoch0.pt .../epoch20.pt --out probes.parquet \\
        --dataset mnist5k --arch lenet5 --mode e2e --seed 0 --settings '{"l2": 1e-3}'
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch.nn import functional as F

from . import runtime
from .io import torch_load, write_parquet
from .snapshots import check_matches_probe, run_identity, run_job_parser

#: Probe settings and their defaults (override any of them with `--settings` / the config).
PROBE_DEFAULTS: dict = {
    "train_fraction": 0.5,  # share of the snapshot samples used to fit the probe
    "split_seed": 0,  # seed of the fixed train/test permutation of the snapshot samples
    "l2": 1e-3,  # L2 penalty (l2/2)·||W||² on the weights, added to the mean cross-entropy
    "max_iter": 100,  # L-BFGS iterations
    "tolerance": 1e-6,  # stop when max |gradient| <= tolerance (or the loss stalls)
}

#: Relative eigenvalue cut-off when reducing to the span of the training features.
_RANK_TOL = 1e-9

#: Column contract of the probes tables (CONTRACTS.md), with pandas dtypes.
PROBES_COLUMNS = {
    "dataset": "string", "arch": "string", "mode": "string", "seed": "int64", "epoch": "int64",
    "layer": "int64", "layer_name": "string", "probe_train_size": "int64", "probe_test_size": "int64",
    "train_accuracy": "float64", "accuracy": "float64",
}  # fmt: skip
COLUMNS = list(PROBES_COLUMNS)


def resolve_settings(settings: Mapping | None) -> dict:
    """Defaults overridden by `settings`; unknown keys and bad values are refused."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(PROBE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown probe setting(s) {unknown}; allowed: {', '.join(PROBE_DEFAULTS)}")
    out = {**PROBE_DEFAULTS, **settings}
    if not 0.0 < float(out["train_fraction"]) < 1.0:
        raise ValueError(f"probe setting train_fraction must be in (0, 1), got {out['train_fraction']}")
    if float(out["l2"]) < 0:
        raise ValueError(f"probe setting l2 must be >= 0, got {out['l2']}")
    if int(out["max_iter"]) < 1:
        raise ValueError(f"probe setting max_iter must be >= 1, got {out['max_iter']}")
    return out


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


def probe_snapshot(snapshot: Mapping, probe: Mapping, settings: Mapping | None = None, device="cpu") -> pd.DataFrame:
    """Probe every layer of one snapshot; rows: epoch, layer, layer_name, sizes, accuracies."""
    settings = resolve_settings(settings)
    check_matches_probe(snapshot, probe, f"snapshot of epoch {snapshot['epoch']}")
    labels = torch.as_tensor(probe["y"]).long()
    num_classes = int(probe["num_classes"])
    split = probe_split(len(labels), settings["train_fraction"], settings["split_seed"])
    names, layers = list(snapshot["layer_names"]), list(snapshot["layers"])
    if len(names) != len(layers):
        raise ValueError(f"snapshot has {len(layers)} layers but {len(names)} layer names")
    rows = []
    for index, (name, z) in enumerate(zip(names, layers)):
        if z.shape[0] != len(labels):
            raise ValueError(f"layer {name!r} has {z.shape[0]} samples, probe set has {len(labels)}")
        train_acc, test_acc = probe_layer(z.to(device), labels, num_classes, split, settings)
        rows.append(
            {
                "epoch": int(snapshot["epoch"]),
                "layer": index,
                "layer_name": str(name),
                "probe_train_size": len(split[0]),
                "probe_test_size": len(split[1]),
                "train_accuracy": train_acc,
                "accuracy": test_acc,
            }
        )
    return pd.DataFrame(rows)


def probe_run(
    snapshot_paths: Sequence[str | Path],
    probe_path: str | Path,
    identity: Mapping,
    settings: Mapping | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """All snapshot epochs of one run -> the run's probes table (CONTRACTS.md columns)."""
    probe = torch_load(probe_path)
    frames = [probe_snapshot(torch_load(p), probe, settings, device) for p in snapshot_paths]
    table = pd.concat(frames, ignore_index=True)
    for key in ("dataset", "arch", "mode"):
        table[key] = str(identity[key])
    table["seed"] = int(identity["seed"])
    table = table.sort_values(["epoch", "layer"]).reset_index(drop=True)
    return table[COLUMNS].astype(PROBES_COLUMNS)


def _epoch_of(path: str) -> int:
    match = re.search(r"epoch(\d+)\.pt$", str(path))
    return int(match.group(1)) if match else -1


def main(argv: Sequence[str] | None = None) -> int:
    parser = run_job_parser("python -m infoplane.probes", __doc__.split("\n")[0])
    parser.add_argument("--settings", default="{}", help=f"JSON object; defaults: {json.dumps(PROBE_DEFAULTS)}")
    args = parser.parse_args(argv)
    try:
        settings = resolve_settings(json.loads(args.settings))
    except json.JSONDecodeError as err:
        parser.error(f"--settings is not valid JSON: {err}")
    device = runtime.setup_job(args.threads or 1, args.device)  # the fits are small: 1 thread is fastest
    identity = run_identity(args)
    start = time.perf_counter()
    paths = sorted(args.snapshots, key=_epoch_of)
    table = probe_run(paths, args.probe_data, identity, settings, str(device))
    write_parquet(table, args.out)
    final = table[table["epoch"] == table["epoch"].max()]
    print(
        f"probes {identity} on {device}: {len(paths)} epochs x {final.shape[0]} layers in "
        f"{time.perf_counter() - start:.1f}s; settings {json.dumps(settings)}; final-epoch test accuracy "
        + ", ".join(f"{n}={a:.3f}" for n, a in zip(final["layer_name"], final["accuracy"])),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
