"""Benchmark of the dependence engine: ``python -m infoplane.bench.dependence [--quick] [--device cuda]``.

Prints Markdown tables, every ratio measured in this one process (the pieces of a ratio alternate,
best of repeats, so a shared machine's load hits numerator and denominator alike):
1. nocco pair: seconds for one nHSIC(X; Z) pair as the engine pays it (X's kernel and R cached, so:
   Z's Gram, centering, R, trace), its ratio to the one float32 GEMM that forms the same Gram
   matrix (the floor), the same pair with R from the Cholesky solve (the former route), a
   stand-alone ``nhsic(x, z)`` (both Grams), a naive implementation (m x m x d broadcasting,
   explicit H, explicit inverse) where it fits, and the pair's peak memory.
2. unbiased linear CKA from the same two Gram matrices: the engine (``CkaUnbiased.pair``, both
   sides prepared from the Grams; and with X's side cached, as the engine pays a layer) against
   ``cka.hsic.hsic`` of ``pytorch-cka`` 1.1.3 (the ``bench`` extra), which returns HSIC_xy, HSIC_xx,
   HSIC_yy, from which CKA is one division.
3. the paper protocol: 1,000 samples = 7 batches of 128 (trailing 104 dropped), nocco with the
   Gaussian kernel (sigma = 5, fixed), one-hot labels, eps = 1e-5, on float16 activations with the
   layer shapes of LeNet5 on 28 px and ResNet18 on 32 px: ``measure_snapshot`` total time against
   the batched Gram GEMMs it needs (X and every layer, in the engine's GEMM dtype), the time with
   32 permutations per batch and what the null adds, and the peak memory of a run; the same as a
   run's snapshots after the first pay it (``run_s``: X's and Y's references kept in a
   ``ReferenceCache``), against all those GEMMs and against the layers' GEMMs alone (``layer_gemm_s``:
   what such a snapshot still needs).
4. the ways of forming R = K~(K~ + eps m I)^-1 for a stack of 7 kernels: I - eps m C^-1 as the engine
   forms it (``ridge.spd_inverse``: on the CPU at m in ``BLOCK_SIZES`` the block inverse, else potrf
   + potri), both of those routes forced, the Cholesky solve with m right-hand sides, the symmetric
   eigendecomposition.
5. how far a float32 GEMM moves nocco against a float64 GEMM on three kinds of data.
6. Renyi's null against its values: one layer's ``score`` with P = 0 and P = 32 at alpha = 1.01 and
   alpha = 2 (closed form), and their ratio (target <= 3).
7. minibatch CKA: ``minibatch_cka`` on n = 10,000, d = 3,072 in minibatches of 1,000 against the
   minibatch Gram GEMMs it needs, with its peak memory.
8. one dependence job per registered estimator: the snapshot epochs of one run of ``--config``
   (config.yaml: the default sweep) on LeNet5-shaped layers, each estimator at the config's
   settings (not with ``--quick``).
Clock: on the CPU, the process CPU time of each call (``time.process_time``; with one torch thread
it is the compute time even when a shared machine deschedules the process, where wall time is
not); on CUDA, wall time with synchronization. Peak memory: CPU, the resident-set high-water mark
added by the call; CUDA, the allocator peak.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import time
from collections.abc import Callable

import torch

from infoplane.estimators import (ESTIMATORS, Geometry, KernelStack, ReferenceCache, measure_snapshot, nhsic,
                                  resolve_device, ridge_matrix)
from infoplane.estimators.geometry import _gemm_dtype
from infoplane.estimators.settings import SETTINGS
from infoplane.runtime import keep_freed_memory, release_freed_memory, synchronize

PAPER = {"estimator": "nocco", **SETTINGS.get("nocco").defaults()}  # the paper's protocol: nocco's defaults
EPS, SIGMA = PAPER["epsilon"], PAPER["sigma"]
ARCHS = {  # (x shape, [(layer name, per-sample shape)]) of the paper's networks' block outputs
    "lenet5 (28 px)": ((1, 28, 28), [("conv1", (6, 14, 14)), ("conv2", (16, 5, 5)), ("fc1", (120,)),
                                      ("fc2", (84,)), ("classifier", (10,))]),
    "resnet18 (32 px)": ((3, 32, 32), [("stem", (64, 32, 32)), ("layer1.0", (64, 32, 32)), ("layer1.1", (64, 32, 32)),
                                        ("layer2.0", (128, 16, 16)), ("layer2.1", (128, 16, 16)),
                                        ("layer3.0", (256, 8, 8)), ("layer3.1", (256, 8, 8)),
                                        ("layer4.0", (512, 4, 4)), ("layer4.1", (512, 4, 4)), ("classifier", (10,))]),
}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


def peak_memory(fn: Callable[[], object], device: torch.device) -> tuple[object, float | None]:
    """Run fn once; return its result and the peak memory it added, in MiB (None if unknown)."""
    if device.type == "cuda":
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        synchronize(device)
        return out, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    release_freed_memory()  # what glibc keeps for reuse would otherwise hide the call's own peak
    try:
        base = _rss_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark VmHWM to the current RSS
    except OSError:
        return fn(), None
    out = fn()
    return out, (_rss_kib("VmHWM") - base) / 1024


def clock(device: torch.device) -> Callable[[], float]:
    """Process CPU time on the CPU (robust to a shared machine), wall time on CUDA."""
    return time.perf_counter if device.type == "cuda" else time.process_time


def best_times(fns: dict[str, Callable[[], object]], device: torch.device, repeat_seconds: float,
               max_repeats: int = 30) -> dict[str, float]:
    """Best time (``clock``) of each fn, the fns run in turn (so load drifts hit all of them), repeats
    filling about repeat_seconds (at least 3 rounds where a round is cheap, one round for slow ones)."""
    best = {k: math.inf for k in fns}
    spent = 0.0
    rounds = 0
    now = clock(device)
    while rounds < max_repeats:
        for name, fn in fns.items():
            synchronize(device)
            start = now()
            fn()
            synchronize(device)
            elapsed = now() - start
            best[name] = min(best[name], elapsed)
            spent += elapsed
        rounds += 1
        if spent >= repeat_seconds and rounds >= min(3, max(1, int(repeat_seconds / max(spent / rounds, 1e-9)))):
            break
    return best


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _print(lines: list[str]) -> None:
    print("\n".join(lines), flush=True)


# --------------------------------------------------------------------------- 1. nocco pair


def naive_nocco(x_ridge: torch.Tensor, z: torch.Tensor) -> float:
    """The textbook way: broadcast an m x m x d difference tensor, explicit H, explicit inverse."""
    m, d = z.shape
    diff = z[:, None, :] - z[None, :, :]
    d2 = diff.pow_(2).sum(dim=-1)
    del diff
    k = torch.exp(-d2.double() / (2 * SIGMA**2 * d))
    h = torch.eye(m, dtype=torch.float64, device=z.device) - 1.0 / m
    kc = h @ k @ h
    r = kc @ torch.linalg.inv(kc + EPS * m * torch.eye(m, dtype=torch.float64, device=z.device))
    return float(torch.trace(x_ridge @ r))


def pair_table(sizes, dims, device, repeat_seconds, naive_max_gib, max_gib) -> list[str]:
    nocco = ESTIMATORS.get("nocco")
    lines = ["| m | d | gemm_s | pair_s | pair/gemm | solve-route pair_s | solve/gemm | nhsic_s | nhsic/gemm "
             "| naive_s | naive/gemm | peak_MiB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    _print(lines)
    gen = torch.Generator().manual_seed(0)
    for m in sizes:
        for d in dims:
            if 2 * m * d * 4 > max_gib * 2**30:
                lines.append(f"| {m} | {d} | skipped: inputs exceed --max-gib={max_gib} |" + " |" * 9)
                print(lines[-1], flush=True)
                continue
            x = torch.randn(m, d, generator=gen).to(device)
            z = torch.randn(m, d, generator=gen).to(device)
            kx = Geometry(x[None], "x").kernel("gaussian", sigma=SIGMA, bandwidth=PAPER["bandwidth"])
            x_ridge = kx.ridge(EPS)  # cached, as measure_snapshot does for every layer

            def pair():
                kz = Geometry(z[None], "z").kernel("gaussian", sigma=SIGMA, bandwidth=PAPER["bandwidth"])
                return nocco.pair(kx, kz, PAPER)

            def solve_pair():  # the former route: R by the Cholesky solve with m right-hand sides
                kz = Geometry(z[None], "z").kernel("gaussian", sigma=SIGMA, bandwidth=PAPER["bandwidth"])
                return (x_ridge * ridge_matrix(kz.centered[0], EPS, "solve")).sum()

            value, peak = peak_memory(pair, device)
            if not math.isclose(float(solve_pair()), float(value[0]), rel_tol=1e-9):
                raise AssertionError(f"solve route {float(solve_pair())} != engine {float(value[0])}")
            fns = {"gemm": lambda: z @ z.T, "pair": pair, "solve": solve_pair,
                   "nhsic": lambda: nhsic(x, z, epsilon=EPS, sigma=SIGMA)}
            naive = 4 * m * m * d <= naive_max_gib * 2**30
            if naive:
                naive_value = naive_nocco(x_ridge[0], z)
                if not math.isclose(naive_value, float(value[0]), rel_tol=1e-4):
                    raise AssertionError(f"naive nocco {naive_value} != engine {float(value[0])} at m={m}, d={d}")
                fns["naive"] = lambda: naive_nocco(x_ridge[0], z)
            t = best_times(fns, device, repeat_seconds)
            g = t["gemm"]
            naive_s = t.get("naive")
            lines.append(
                f"| {m} | {d} | {_fmt(g)} | {_fmt(t['pair'])} | {t['pair'] / g:.2f} | {_fmt(t['solve'])} | "
                f"{t['solve'] / g:.2f} | {_fmt(t['nhsic'])} | {t['nhsic'] / g:.2f} | {_fmt(naive_s)} | "
                f"{_fmt(naive_s / g if naive_s else None)} | {_fmt(peak, 4)} |")
            print(lines[-1], flush=True)
            del x, z, kx, x_ridge
    return lines


# --------------------------------------------------------------------------- 2. unbiased CKA


def cka_table(sizes, d, device, repeat_seconds) -> list[str]:
    """Unbiased linear CKA from two float64 Gram matrices: the engine against pytorch-cka's hsic."""
    lines = ["| m | d | engine_s (both sides) | engine_s (X cached) | pytorch-cka_s | engine/pytorch-cka "
             "| X-cached/pytorch-cka | |CKA diff| |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    _print(lines)
    try:
        from cka.hsic import hsic as cka_hsic
    except ImportError:
        cka_hsic = None
    unbiased = ESTIMATORS.get("cka_unbiased")
    gen = torch.Generator().manual_seed(3)
    for m in sizes:
        a = torch.randn(m, d, generator=gen).to(device)
        b = (torch.tanh(a @ torch.randn(d, 64, generator=gen).to(device) / math.sqrt(d))
             @ torch.randn(64, d, generator=gen).to(device) + torch.randn(m, d, generator=gen).to(device))
        gx = (a.double() @ a.double().T)[None]  # the same Gram inputs for both
        gz = (b.double() @ b.double().T)[None]
        kx_cached = KernelStack(gx)
        kx_cached.unbiased_self  # noqa: B018  (prepared once, as measure_snapshot does for X)

        def engine():
            return unbiased.pair(KernelStack(gx), KernelStack(gz), {})

        def engine_cached():
            return unbiased.pair(kx_cached, KernelStack(gz), {})

        fns = {"engine": engine, "cached": engine_cached}
        if cka_hsic is not None:
            def reference():
                xy, xx, yy = cka_hsic(gx, gz)
                return xy / (xx[:, None] * yy[None, :]).sqrt()

            fns["reference"] = reference
        t = best_times(fns, device, repeat_seconds)
        if cka_hsic is None:
            lines.append(f"| {m} | {d} | {_fmt(t['engine'])} | {_fmt(t['cached'])} | pytorch-cka not installed "
                         "(pip install 'infoplane[bench]') | — | — | — |")
        else:
            diff = abs(float(engine()[0]) - float(fns["reference"]()[0, 0]))
            lines.append(f"| {m} | {d} | {_fmt(t['engine'])} | {_fmt(t['cached'])} | {_fmt(t['reference'])} | "
                         f"{t['engine'] / t['reference']:.2f} | {t['cached'] / t['reference']:.2f} | {diff:.1e} |")
        print(lines[-1], flush=True)
    return lines


# --------------------------------------------------------------------------- 3. paper protocol


def protocol_table(archs, n, batch_size, permutations, device, repeat_seconds) -> list[str]:
    lines = [f"| network | n | batches x m | layers | gemm_s | engine_s (P=0) | engine/gemm | engine_s (P={permutations}) "
             f"| null adds | run_s (P=0) | run/gemm | layer_gemm_s | run/layer_gemm | run_s (P={permutations}) "
             "| run null adds | peak_MiB (P=0) | peak_MiB (P=" + str(permutations) + ") |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    _print(lines)
    gen = torch.Generator().manual_seed(4)
    for name, (x_shape, layer_shapes) in archs.items():
        x = torch.randn(n, *x_shape, generator=gen).to(device)
        y = torch.randint(0, 10, (n,), generator=gen).to(device)
        layers = {ln: torch.relu(torch.randn(n, *shape, generator=gen)).half().to(device) for ln, shape in layer_shapes}
        batches = n // batch_size
        used = batches * batch_size
        stacks = []
        for t in [x, *layers.values()]:
            flat = t[:used].reshape(batches, batch_size, -1)
            stacks.append(flat.to(_gemm_dtype(t.dtype, batch_size, flat.shape[-1])))

        def gemms(parts=stacks):
            for s in parts:
                torch.matmul(s, s.mT)

        references = ReferenceCache()  # X's and Y's references kept, as for every snapshot of a run but the first

        def run(p, cache=None):
            return measure_snapshot(x, y, layers, [PAPER], batch_size=batch_size, permutations=p, seed=0,
                                    num_classes=10, device=device, references=cache)

        _, peak0 = peak_memory(lambda: run(0), device)
        _, peak_p = peak_memory(lambda: run(permutations), device)
        t = best_times({"gemm": gemms, "layer_gemm": lambda: gemms(stacks[1:]), "plain": lambda: run(0),
                        "null": lambda: run(permutations), "run": lambda: run(0, references),
                        "run_null": lambda: run(permutations, references)}, device, repeat_seconds)
        lines.append(f"| {name} | {n} | {batches} x {batch_size} | {len(layers)} | {_fmt(t['gemm'])} | "
                     f"{_fmt(t['plain'])} | {t['plain'] / t['gemm']:.2f} | {_fmt(t['null'])} | "
                     f"{100 * (t['null'] / t['plain'] - 1):+.0f}% | {_fmt(t['run'])} | {t['run'] / t['gemm']:.2f} | "
                     f"{_fmt(t['layer_gemm'])} | {t['run'] / t['layer_gemm']:.2f} | {_fmt(t['run_null'])} | "
                     f"{100 * (t['run_null'] / t['run'] - 1):+.0f}% | {_fmt(peak0, 4)} | {_fmt(peak_p, 4)} |")
        print(lines[-1], flush=True)
        del x, y, layers, stacks
    return lines


# --------------------------------------------------------------------------- 4. and 5.


def ridge_table(sizes, device, repeat_seconds, batches: int = 7) -> list[str]:
    lines = [f"| B x m | engine_s | potri_s | block_s | block/potri | solve_s | eigh_s | solve/engine | eigh/engine "
             "| max abs diff to eigh (engine) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    _print(lines)
    gen = torch.Generator().manual_seed(1)
    for m in sizes:
        centered = Geometry(torch.randn(batches, m, 784, generator=gen).to(device), "x").kernel(
            "gaussian", sigma=SIGMA, bandwidth=PAPER["bandwidth"]).centered
        fns = {method: (lambda method=method: ridge_matrix(centered, EPS, method)) for method in ("cholesky", "solve", "eigh")}
        fns |= {route: (lambda block=block: ridge_matrix(centered, EPS, block=block))
                for route, block in (("potri", False), ("block", True))}
        t = best_times(fns, device, repeat_seconds)
        diff = float((ridge_matrix(centered, EPS) - ridge_matrix(centered, EPS, "eigh")).abs().max())
        lines.append(f"| {batches} x {m} | {_fmt(t['cholesky'])} | {_fmt(t['potri'])} | {_fmt(t['block'])} | "
                     f"{t['block'] / t['potri']:.2f} | {_fmt(t['solve'])} | {_fmt(t['eigh'])} | "
                     f"{t['solve'] / t['cholesky']:.2f} | {t['eigh'] / t['cholesky']:.2f} | {diff:.1e} |")
        print(lines[-1], flush=True)
    return lines


def precision_table(sizes, d, device) -> list[str]:
    """|nocco(float32 GEMM) / nocco(float64 GEMM) - 1| for nHSIC(Y; Z) and nHSIC(X; Z)."""
    lines = ["| m | d | data | rel. diff nocco(Y;Z) | rel. diff nocco(X;Z) |", "|---:|---:|---|---:|---:|"]
    _print(lines)
    gen = torch.Generator().manual_seed(2)
    for m in sizes:
        x = torch.randn(m, d, generator=gen)
        y = torch.randint(0, 10, (m,), generator=gen)
        data = {
            "iid normal": torch.randn(m, d, generator=gen),
            "ReLU + 5": torch.relu(torch.randn(m, d, generator=gen)) + 5,
            "rank 10": torch.randn(m, 10, generator=gen) @ torch.randn(10, d, generator=gen),
        }
        for name, z in data.items():
            diffs = []
            for other, kind in ((y, "onehot"), (x, "gaussian")):
                kw = dict(kernel_a=kind, device=device, epsilon=EPS, sigma=SIGMA)
                lo = nhsic(other, z, **kw)
                hi = nhsic(other, z, gram_dtype=torch.float64, **kw)
                diffs.append(abs(lo / hi - 1))
            lines.append(f"| {m} | {d} | {name} | {diffs[0]:.1e} | {diffs[1]:.1e} |")
            print(lines[-1], flush=True)
    return lines


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


#: (B, m, d) of the MI rows: the paper protocol's 7 batches of 128, and one batch of 1000.
MI_CASES = ((7, 128, 784), (7, 128, 3072), (1, 1000, 784), (1, 1000, 3072))


def mi_table(cases, device: torch.device, repeat_seconds: float, permutations=(0, 32)) -> None:
    """Seconds to prepare X and Y and to score one layer (with 0 and 32 permutations) per MI estimator."""
    from infoplane.estimators import ESTIMATORS, MI_ESTIMATORS, normalize_setting

    gen = torch.Generator().manual_seed(0)
    print("| estimator | B | m | d | P | prepare_s | score_s |")
    print("|---|---|---|---|---|---|---|")
    for batches, m, d in cases:
        x = torch.randn(batches, m, d, generator=gen)
        z = torch.tanh(x[..., torch.randperm(d, generator=gen)] + 0.5 * torch.randn(batches, m, d, generator=gen))
        x, z = x.to(device), z.to(torch.float16).to(device)
        y = torch.randint(0, 10, (batches, m), generator=gen).to(device)
        for count in permutations:
            perms = torch.argsort(torch.rand(batches, count, m, generator=gen), dim=-1).to(device) if count else None
            for name in MI_ESTIMATORS:
                est = ESTIMATORS.get(name)
                setting = normalize_setting({"estimator": name})  # its declared defaults
                refs = (est.prepare(x, "x", setting), est.prepare(y, "y", setting))
                times = best_times({"prepare": lambda: (est.prepare(x, "x", setting), est.prepare(y, "y", setting)),
                                    "score": lambda: est.score(*refs, z, setting, perms)}, device, repeat_seconds)
                prepare_s, score_s = times["prepare"], times["score"]
                print(f"| {name} | {batches} | {m} | {d} | {count} | {prepare_s:.3g} | {score_s:.3g} |", flush=True)


def renyi_null_table(device: torch.device, repeat_seconds: float, permutations: int = 32,
                     shape=(7, 128, 784, 1176)) -> None:
    """Renyi on one layer (B x m, X of d_x, a float16 layer of d_z), alpha = 1.01 and 2: score seconds
    without and with the null, and their ratio (target: <= 3)."""
    from infoplane.estimators import RenyiEstimator

    batches, m, d_x, d_z = shape
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(batches, m, d_x, generator=gen).to(device)
    z = torch.relu(torch.randn(batches, m, d_z, generator=gen)).half().to(device)
    y = torch.randint(0, 10, (batches, m), generator=gen).to(device)
    perms = torch.rand(batches, permutations, m, generator=gen).argsort(dim=-1).to(device)
    print("| alpha | B x m | d_x, d_z | score_s (P=0) | score_s (P=" + str(permutations) + ") | null/values | "
          "target |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    est = RenyiEstimator()
    for alpha in (1.01, 2.0):
        setting = {"alpha": alpha}
        refs = (est.prepare(x, "x", setting), est.prepare(y, "y", setting))
        t = best_times({"plain": lambda: est.score(*refs, z, setting, None),
                        "null": lambda: est.score(*refs, z, setting, perms)}, device, repeat_seconds)
        print(f"| {alpha:g} | {batches} x {m} | {d_x}, {d_z} | {_fmt(t['plain'])} | {_fmt(t['null'])} | "
              f"{t['null'] / t['plain']:.2f} | <= 3 |", flush=True)


def minibatch_table(n: int, d: int, batch: int, device: torch.device, repeat_seconds: float) -> None:
    """``minibatch_cka`` (linear kernels) of two (n, d) float32 matrices in minibatches of ``batch``:
    seconds, the GEMMs it needs (both sides' minibatch Grams, float64 as the linear kernel forms
    them), their ratio and the peak memory it adds."""
    from infoplane.estimators import minibatch_cka

    gen = torch.Generator().manual_seed(6)
    x = torch.randn(n, d, generator=gen)
    z = (torch.tanh(x @ torch.randn(d, 64, generator=gen) / math.sqrt(d)) @ torch.randn(64, d, generator=gen)
         + torch.randn(n, d, generator=gen))
    x, z = x.to(device), z.to(device)
    k = n // batch

    def gemms():
        for t in (x, z):
            for i in range(k):
                f = t[i * batch:(i + 1) * batch].double()
                f @ f.T

    def run():
        return minibatch_cka(x, z, batch_size=batch)

    value, peak = peak_memory(run, device)
    t = best_times({"gemm": gemms, "mb": run}, device, repeat_seconds, max_repeats=3)
    print("| n | d | b | k | gemm_s | minibatch_cka_s | ratio | peak_MiB | CKA_mb | full n x n Gram (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {n} | {d} | {batch} | {k} | {_fmt(t['gemm'])} | {_fmt(t['mb'])} | {t['mb'] / t['gemm']:.2f} | "
          f"{_fmt(peak, 4)} | {value:.4f} | {n * n * 8 / 2**20:.0f} |", flush=True)


def sweep_table(device: torch.device, config_path: str | None, arch: str = "lenet5 (28 px)") -> None:
    """Seconds of one dependence job (every snapshot epoch of one run of the config: its eval set,
    batches and permutations) per registered estimator at the config's settings, X's and Y's
    references kept across the snapshots as ``dependence.measure_run`` keeps them; one run each,
    import excluded. The config's own estimators (the default sweep for config.yaml) are marked."""
    from infoplane import config, dependence

    defaults = config.load(config_path if config_path and os.path.exists(config_path) else None)
    section = defaults["dependence"]
    epochs = config.snapshot_epochs(defaults)
    n, batch, permutations = defaults["snapshots"]["eval_size"], section["batch_size"], section["permutations"]
    x_shape, layer_shapes = ARCHS[arch]
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(n, *x_shape, generator=gen).to(device)
    y = torch.randint(0, 10, (n,), generator=gen).to(device)
    snapshots = [{ln: torch.relu(torch.randn(n, *shape, generator=gen)).half().to(device)
                  for ln, shape in layer_shapes} for _ in epochs]
    print(f"config {config_path if config_path and os.path.exists(config_path) else '(the schema defaults)'}: "
          f"{arch}, {len(epochs)} snapshots (epochs {', '.join(map(str, epochs))}), {n} samples in batches of "
          f"{batch}, P = {permutations}\n")
    print("| estimator | in the config's sweep | settings | job_s | per snapshot_s |")
    print("|---|---|---:|---:|---:|")
    now = clock(device)
    for name in ESTIMATORS.names():
        settings = dependence.settings({**section, "estimators": [name]})
        synchronize(device)
        start = now()
        references = ReferenceCache()  # one per job, as dependence.measure_run keeps it
        for layers in snapshots:
            measure_snapshot(x, y, layers, settings, batch_size=batch, permutations=permutations, seed=0,
                             num_classes=10, device=device, references=references)
        synchronize(device)
        elapsed = now() - start
        print(f"| {name} | {'yes' if name in section['estimators'] else 'no'} | {len(settings)} | "
              f"{_fmt(elapsed)} | {_fmt(elapsed / len(epochs))} |", flush=True)


#: The tables, in the order they print (``--skip`` names them).
TABLES = ("pair", "cka", "protocol", "renyi", "minibatch", "sweep", "mi", "ridge", "precision")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run in seconds")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--sizes", default="128,1000", help="comma-separated m of the pair and ridge tables")
    p.add_argument("--dims", default="784,3072", help="comma-separated d of the pair table")
    p.add_argument("--samples", type=int, default=1000, help="samples of the paper-protocol rows")
    p.add_argument("--permutations", type=int, default=32, help="permutations per batch of the null row")
    p.add_argument("--repeat-seconds", type=float, default=2.0)
    p.add_argument("--naive-max-gib", type=float, default=4.0, help="largest m*m*d float32 tensor to try")
    p.add_argument("--max-gib", type=float, default=4.0, help="largest X + Z input pair to try")
    p.add_argument("--config", default="config.yaml",
                   help="the config whose dependence job the sweep table times (default: config.yaml; the "
                        "schema's defaults where that file does not exist)")
    p.add_argument("--skip", default="", help=f"comma-separated tables to skip: {','.join(TABLES)}")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    dims = [int(s) for s in args.dims.split(",")]
    cka_sizes, cka_d, archs, samples, batch = [1000], 3072, ARCHS, args.samples, 128
    precision_sizes, precision_d = [128, 1000], 3072
    if args.quick:
        sizes, dims, precision_sizes, precision_d = [64, 128], [784], [64], 256
        cka_sizes, cka_d, samples, batch = [64], 256, 200, 64
        archs = {"lenet5 (28 px)": ARCHS["lenet5 (28 px)"]}
        args.repeat_seconds = min(args.repeat_seconds, 0.05)
    skip = set(filter(None, args.skip.split(",")))
    if args.device == "cuda" and not torch.cuda.is_available():  # the CUDA rows, said not measured
        print("# Dependence-engine benchmark: no CUDA (this machine sees no CUDA GPU); "
              "`--device cpu` prints the CPU rows\n")
        for table in (t for t in TABLES if t not in skip and not (args.quick and t == "sweep")):
            print(f"## {table}: no CUDA")
        return
    torch.set_num_threads(args.threads)
    allocator = "glibc keeps freed memory" if keep_freed_memory() else "as it is"  # as every job runs
    device = resolve_device(args.device)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"# Dependence-engine benchmark: {machine(device)}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); allocator: {allocator}; "
          f"clock: {'wall' if device.type == 'cuda' else 'process CPU'} time; "
          f"load average before: "
          f"{'—' if load is None else ', '.join(f'{v:.2f}' for v in load)}\n", flush=True)
    if "pair" not in skip:
        print(f"## nocco pair (Gaussian, sigma={SIGMA}, eps={EPS}): time per nHSIC(X;Z) with X cached\n", flush=True)
        pair_table(sizes, dims, device, args.repeat_seconds, args.naive_max_gib, args.max_gib)
    if "cka" not in skip:
        print("\n## Unbiased linear CKA from the same float64 Gram matrices: engine vs pytorch-cka 1.1.3\n", flush=True)
        cka_table(cka_sizes, cka_d, device, args.repeat_seconds)
    if "protocol" not in skip:
        print(f"\n## The paper protocol: {samples} samples in batches of {batch}, nocco, float16 activations\n",
              flush=True)
        protocol_table(archs, samples, batch, args.permutations, device, args.repeat_seconds)
    if "renyi" not in skip:
        print(f"\n## The Renyi null against its values (one layer, P = {args.permutations})\n", flush=True)
        renyi_null_table(device, args.repeat_seconds, args.permutations,
                         (2, 64, 256, 128) if args.quick else (7, 128, 784, 1176))
    if "minibatch" not in skip:
        print("\n## Minibatch CKA (linear kernels, float32 inputs)\n", flush=True)
        minibatch_table(*((2000, 256, 200) if args.quick else (10000, 3072, 1000)), device, args.repeat_seconds)
    if "sweep" not in skip and not args.quick:
        print("\n## One dependence job per estimator (the config's settings)\n", flush=True)
        sweep_table(device, args.config)
    if "mi" not in skip:
        print("\n## Mutual-information estimators (default settings; float16 layer; prepare = X and Y "
              "references, score = one layer with its null)\n", flush=True)
        mi_table(MI_CASES if not args.quick else ((2, 64, 256),), device, args.repeat_seconds)
    if "ridge" not in skip:
        print("\n## Forming R (float64) for 7 kernels: I - eps m C^-1 (engine: block inverse or potri) vs the solve vs eigh\n",
              flush=True)
        ridge_table(sizes, device, args.repeat_seconds)
    if "precision" not in skip:
        print("\n## float32 vs float64 distance GEMM (Gaussian kernels)\n", flush=True)
        precision_table(precision_sizes, precision_d, device)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"\nload average after: {'—' if load is None else ', '.join(f'{v:.2f}' for v in load)}", flush=True)


if __name__ == "__main__":
    main()
