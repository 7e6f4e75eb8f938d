"""Known-truth calibration of the MI estimators: ``python -m infoplane.bench.truth [--quick]``.

The estimators (renyi, kde, binning) are tested against their own formulas elsewhere; here they
meet tasks whose mutual information is known in closed form (the method of Czyż et al. 2023,
"Beyond normal"), at their default and an alternative setting and at m = 128 and 1,000 samples
per batch. Every value is in bits; each task is drawn R times (R batches of m, one estimator
call) and a cell is the mean ± standard deviation over the draws.

Tasks (`gaussian_task`, `discrete_task`, `channel_task`):

- **gaussian**: X ~ N(0, I_d), Z = ρX + √(1 − ρ²)·N, N ~ N(0, I_d) independent, so the d
  canonical correlations all equal ρ and I(X;Z) = −½ d log₂(1 − ρ²) bits; d ∈ {2, 16, 128}.
- **discrete**: X uniform over K fixed atoms of R^16, Z = tanh(X W / 4) with W a fixed square
  Gaussian matrix (invertible almost surely; tanh is invertible), so Z is an invertible function
  of X and I(X;Z) = H(X) = log₂ K. The sweep over K gives the **saturation point**: the truth
  from which the estimate stops growing (it reaches 90 % of its largest value over the sweep).
- **channel**: Z ~ N(0, I_2), Q = the decile of Z_1 (10 equiprobable classes), Y = Q kept with
  probability 1 − ε, else a uniformly drawn other class (a symmetric channel). Y depends on Z only
  through Q, so I(Y;Z) = I(Y;Q) = log₂ 10 − h₂(ε) − ε log₂ 9 bits.

kde and binning score I(X;Z) as the (noisy or binned) entropy of Z alone: they assume Z is a
deterministic function of X, so on the gaussian task (Z not a function of X) their I(X;Z) does not
depend on ρ, which the table shows.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# The estimators, by registry name: the only place this module reaches them (loading the
# registry registers renyi, kde and binning with the kernel family).
from infoplane.estimators import ESTIMATORS
from infoplane.estimators.settings import SETTINGS as ESTIMATOR_SETTINGS

_DEFAULTS = {name: ESTIMATOR_SETTINGS.get(name).defaults() for name in ("renyi", "kde", "binning")}
#: (estimator, label, setting): the default of each and one alternative from docs/estimators.md.
SETTINGS: tuple[tuple[str, str, dict], ...] = (
    ("renyi", f"renyi {_DEFAULTS['renyi']['width']} (default)", {}),
    ("renyi", "renyi silverman", {"width": "silverman"}),
    ("kde", f"kde s²={_DEFAULTS['kde']['noise_variance']:g} (default)", {"unit": "bits"}),
    ("kde", "kde s²=1", {"noise_variance": 1.0, "unit": "bits"}),
    ("binning", f"binning {_DEFAULTS['binning']['bins']} bins (default)", {}),
    ("binning", "binning 4 bins", {"bins": 4}),
)
NUM_CLASSES = 10
DISCRETE_DIM = 16
CHANNEL_DIM = 2
#: fraction of an estimator's largest value over the sweep that marks its saturation point
SATURATION_FRACTION = 0.9


@dataclass
class Task:
    """R draws of m samples: x (R, m, dx), z (R, m, dz), y (R, m) labels; the truth in bits of
    the side that the task calibrates (`side` "xz" or "yz")."""

    name: str
    side: str
    truth: float
    x: torch.Tensor
    z: torch.Tensor
    y: torch.Tensor


def gaussian_truth(rho: Sequence[float]) -> float:
    """I(X;Z) in bits of jointly Gaussian X, Z with canonical correlations `rho`."""
    return float(-0.5 * sum(math.log2(1.0 - r * r) for r in rho))


def binary_entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else float(-p * math.log2(p) - (1 - p) * math.log2(1 - p))


def channel_truth(eps: float, classes: int = NUM_CLASSES) -> float:
    """I(Y;Z) in bits when Y is Z's equiprobable class through a `classes`-ary symmetric channel."""
    return math.log2(classes) - binary_entropy(eps) - eps * math.log2(classes - 1)


def _deciles(z1: torch.Tensor, classes: int) -> torch.Tensor:
    """The equiprobable class of each N(0, 1) value: cut at the normal quantiles."""
    cuts = torch.tensor([math.sqrt(2) * torch.erfinv(torch.tensor(2.0 * q / classes - 1)).item()
                         for q in range(1, classes)], dtype=z1.dtype)  # fmt: skip
    return torch.bucketize(z1.contiguous(), cuts)


def _labels(z: torch.Tensor) -> torch.Tensor:
    return _deciles(z[..., 0], NUM_CLASSES)


def gaussian_task(d: int, rho: float, m: int, draws: int, seed: int) -> Task:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(draws, m, d, generator=g, dtype=torch.float64)
    z = rho * x + math.sqrt(1.0 - rho * rho) * torch.randn(draws, m, d, generator=g, dtype=torch.float64)
    return Task(f"gaussian d={d} ρ={rho}", "xz", gaussian_truth([rho] * d), x, z, _labels(z))


def discrete_task(k: int, m: int, draws: int, seed: int, dim: int = DISCRETE_DIM) -> Task:
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(k, dim, generator=g, dtype=torch.float64)
    w = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    x = atoms[torch.randint(0, k, (draws, m), generator=g)]
    z = torch.tanh(x @ w / math.sqrt(dim))
    return Task(f"discrete K={k}", "xz", math.log2(k), x, z, _labels(z))


def channel_task(eps: float, m: int, draws: int, seed: int, dim: int = CHANNEL_DIM) -> Task:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(draws, m, dim, generator=g, dtype=torch.float64)
    q = _labels(z)
    flip = torch.rand(draws, m, generator=g, dtype=torch.float64) < eps
    other = (q + torch.randint(1, NUM_CLASSES, q.shape, generator=g)) % NUM_CLASSES
    return Task(f"channel ε={eps}", "yz", channel_truth(eps), z, z, torch.where(flip, other, q))


def estimate(name: str, setting: dict, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw I(X;Z) and I(Y;Z) in bits from the registered estimator `name` (no null)."""
    estimator = ESTIMATORS.get(name)
    ref_x = estimator.prepare(x, "x", setting)
    ref_y = estimator.prepare(y, "y", setting)
    scores = estimator.score(ref_x, ref_y, z, setting, None)
    to_bits = 1.0 / math.log(2.0) if estimator.unit_for(setting) == "nats" else 1.0
    return scores.value_xz.double().numpy() * to_bits, scores.value_yz.double().numpy() * to_bits


def evaluate(task: Task, settings=SETTINGS) -> dict[str, np.ndarray]:
    """Per setting label, the per-draw estimates of the task's side, in bits."""
    out = {}
    for name, label, setting in settings:
        xz, yz = estimate(name, setting, task.x, task.z, task.y)
        out[label] = xz if task.side == "xz" else yz
    return out


def saturation_point(truths: Sequence[float], means: Sequence[float], fraction: float = SATURATION_FRACTION) -> float:
    """The smallest truth at which the mean estimate reaches `fraction` of its largest value."""
    means = np.asarray(means, dtype=float)
    ceiling = means.max()
    return float(np.asarray(truths)[np.flatnonzero(means >= fraction * ceiling)[0]])


@dataclass
class Plan:
    sizes: tuple[int, ...]
    draws: int
    gaussian: tuple[tuple[int, float], ...]
    ks: tuple[int, ...]
    eps: tuple[float, ...]


FULL = Plan(
    sizes=(128, 1000),
    draws=5,
    gaussian=((2, 0.5), (2, 0.9), (2, 0.99), (16, 0.5), (16, 0.9), (128, 0.2), (128, 0.9)),
    ks=(2, 8, 32, 128, 512, 4096),
    eps=(0.0, 0.3, 0.6),
)
QUICK = Plan(sizes=(64,), draws=2, gaussian=((2, 0.5), (2, 0.99), (16, 0.9)), ks=(2, 16, 256), eps=(0.0, 0.5))


def _cell(values: np.ndarray) -> str:
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}" if len(values) > 1 else f"{values.mean():.2f}"


def run(plan: Plan, seed: int = 0) -> list[str]:
    """The report's lines: one table per m (estimate beside the truth), then the saturation points."""
    labels = [label for _, label, _ in SETTINGS]
    lines: list[str] = []
    saturation: dict[int, dict[str, float]] = {}
    ceiling: dict[int, dict[str, float]] = {}
    for m in plan.sizes:
        tasks = [gaussian_task(d, rho, m, plan.draws, seed + i) for i, (d, rho) in enumerate(plan.gaussian)]
        discrete = [discrete_task(k, m, plan.draws, seed + 100 + i) for i, k in enumerate(plan.ks)]
        tasks += discrete + [channel_task(e, m, plan.draws, seed + 200 + i) for i, e in enumerate(plan.eps)]
        lines += [f"\nm = {m} (log₂ m = {math.log2(m):.2f} bits), {plan.draws} draws, mean ± sd, bits\n",
                  "| task | side | truth | " + " | ".join(labels) + " |",
                  "|---|---|---:|" + "---:|" * len(labels)]  # fmt: skip
        results = {}
        for task in tasks:
            results[task.name] = evaluate(task)
            cells = " | ".join(_cell(results[task.name][label]) for label in labels)
            side = "I(X;Z)" if task.side == "xz" else "I(Y;Z)"
            lines.append(f"| {task.name} | {side} | {task.truth:.2f} | {cells} |")
        truths = [t.truth for t in discrete]
        means = {label: [results[t.name][label].mean() for t in discrete] for label in labels}
        saturation[m] = {label: saturation_point(truths, means[label]) for label in labels}
        ceiling[m] = {label: float(max(means[label])) for label in labels}
    lines += ["\nCeiling: the largest mean estimate over the discrete sweep (K ∈ " f"{list(plan.ks)}); saturation "
              f"point: the smallest truth H(X) = log₂ K whose estimate reaches {SATURATION_FRACTION:.0%} of the "
              "ceiling. Bits.\n",
              "| setting | " + " | ".join(f"m={m} ceiling | m={m} saturation point" for m in plan.sizes) + " |",
              "|---|" + "---:|---:|" * len(plan.sizes)]  # fmt: skip
    for label in labels:
        cells = " | ".join(f"{ceiling[m][label]:.2f} | {saturation[m][label]:.2f}" for m in plan.sizes)
        lines.append(f"| {label} | {cells} |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infoplane.bench.truth", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small plan (one m, 2 draws), for a test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: a 2-thread eigensolver on a loaded 2-core machine took 20x the CPU time)")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        lines = run(QUICK if args.quick else FULL, seed=args.seed)
    finally:
        torch.set_num_threads(threads)
    print(f"# Known-truth calibration ({'quick' if args.quick else 'full'} plan, seed {args.seed}; "
          f"torch {torch.__version__}, {platform.machine()})")  # fmt: skip
    print("\n".join(lines))
    print(f"\nwall time: {time.perf_counter() - start:.1f} s, process CPU time: {time.process_time() - cpu:.1f} s")


if __name__ == "__main__":
    main()
