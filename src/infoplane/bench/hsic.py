"""Benchmark of the nHSIC engine: ``python -m infoplane.bench.hsic [--quick] [--device cuda]``.

Prints Markdown tables:
1. per (m, d): seconds for one nHSIC(X; Z) pair as ``layer_scores`` pays it (X's kernel and R
   cached, so: Z's Gram, centering, Cholesky solve, trace), its ratio to the single float32 GEMM
   that forms the same Gram matrix (the floor), a stand-alone ``nhsic(x, z)`` call (both Grams),
   a naive implementation (m x m x d broadcasting, explicit H, explicit inverse) where it fits,
   and the peak memory of a pair (CPU: resident-set high-water mark; CUDA: allocator peak);
2. the two ways of forming R = K~(K~ + eps m I)^-1: Cholesky solve vs symmetric eigendecomposition;
3. how far a float32 GEMM moves nocco against a float64 GEMM on three kinds of data.
Times are the best of repeated runs (repeats fill about ``--repeat-seconds``; slow cases run once).
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

from infoplane.hsic import Kernel, gaussian_kernel, nhsic, nocco, resolve_device, ridge_matrix

EPS = 1e-5
SIGMA = 5.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


def peak_memory(fn: Callable[[], object], device: torch.device) -> tuple[object, float | None]:
    """Run fn once; return its result and the peak memory it added, in MiB (None if unknown)."""
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        _sync(device)
        return out, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    try:
        base = _rss_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark VmHWM to the current RSS
    except OSError:
        return fn(), None
    out = fn()
    return out, (_rss_kib("VmHWM") - base) / 1024


def best_time(fn: Callable[[], object], device: torch.device, repeat_seconds: float) -> float:
    """Best wall time of fn over repeats filling about repeat_seconds (one run if slower)."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    best = time.perf_counter() - start
    repeats = min(50, int(repeat_seconds / max(best, 1e-6)))
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def naive_nocco(x_kernel_r: torch.Tensor, z: torch.Tensor) -> float:
    """The textbook way: broadcast an m x m x d difference tensor, explicit H, explicit inverse."""
    m, d = z.shape
    diff = z[:, None, :] - z[None, :, :]
    d2 = diff.pow_(2).sum(dim=-1)
    del diff
    k = torch.exp(-d2.double() / (2 * SIGMA**2 * d))
    h = torch.eye(m, dtype=torch.float64, device=z.device) - 1.0 / m
    kc = h @ k @ h
    r = kc @ torch.linalg.inv(kc + EPS * m * torch.eye(m, dtype=torch.float64, device=z.device))
    return float(torch.trace(x_kernel_r @ r))


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def pair_table(sizes, dims, device, repeat_seconds, naive_max_gib, max_gib) -> list[str]:
    lines = [
        "| m | d | gemm_s | pair_s | pair/gemm | nhsic_s | nhsic/gemm | naive_s | naive/gemm | peak_MiB | naive_peak_MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    gen = torch.Generator().manual_seed(0)
    for m in sizes:
        for d in dims:
            if 2 * m * d * 4 > max_gib * 2**30:
                lines.append(f"| {m} | {d} | skipped: inputs exceed --max-gib={max_gib} |" + " |" * 8)
                print(lines[-1], flush=True)
                continue
            x = torch.randn(m, d, generator=gen).to(device)
            z = torch.randn(m, d, generator=gen).to(device)
            kx = Kernel(gaussian_kernel(x, sigma=SIGMA))
            kx.ridge(EPS)  # cached, as in layer_scores
            gemm_s = best_time(lambda: z @ z.T, device, repeat_seconds)

            def pair():
                return nocco(kx, Kernel(gaussian_kernel(z, sigma=SIGMA)), epsilon=EPS)

            value, peak = peak_memory(pair, device)
            pair_s = best_time(pair, device, repeat_seconds)
            nhsic_s = best_time(lambda: nhsic(x, z, epsilon=EPS, sigma=SIGMA), device, repeat_seconds)
            naive_s = naive_peak = None
            if 4 * m * m * d <= naive_max_gib * 2**30:
                naive_value, naive_peak = peak_memory(lambda: naive_nocco(kx.ridge(EPS), z), device)
                if not math.isclose(naive_value, value, rel_tol=1e-4):
                    raise AssertionError(f"naive nocco {naive_value} != engine {value} at m={m}, d={d}")
                naive_s = best_time(lambda: naive_nocco(kx.ridge(EPS), z), device, repeat_seconds)
            lines.append(
                f"| {m} | {d} | {_fmt(gemm_s)} | {_fmt(pair_s)} | {pair_s / gemm_s:.2f} | {_fmt(nhsic_s)} | "
                f"{nhsic_s / gemm_s:.2f} | {_fmt(naive_s)} | "
                f"{_fmt(naive_s / gemm_s if naive_s else None)} | {_fmt(peak, 4)} | {_fmt(naive_peak, 4)} |"
            )
            print(lines[-1], flush=True)
            del x, z, kx
    return lines


def ridge_table(sizes, device, repeat_seconds) -> list[str]:
    lines = ["| m | cholesky_s | eigh_s | eigh/cholesky |", "|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    gen = torch.Generator().manual_seed(1)
    for m in sizes:
        centered = Kernel(gaussian_kernel(torch.randn(m, 784, generator=gen).to(device))).centered
        chol = best_time(lambda: ridge_matrix(centered, EPS, "cholesky"), device, repeat_seconds)
        eigh = best_time(lambda: ridge_matrix(centered, EPS, "eigh"), device, repeat_seconds)
        lines.append(f"| {m} | {_fmt(chol)} | {_fmt(eigh)} | {eigh / chol:.2f} |")
        print(lines[-1], flush=True)
    return lines


def precision_table(sizes, d, device) -> list[str]:
    """|nocco(float32 GEMM) / nocco(float64 GEMM) - 1| for nHSIC(Y; Z) and nHSIC(X; Z)."""
    lines = ["| m | d | data | rel. diff nocco(Y;Z) | rel. diff nocco(X;Z) |", "|---:|---:|---|---:|---:|"]
    print("\n".join(lines), flush=True)
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run in seconds")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--sizes", default="128,1000,4096", help="comma-separated m")
    p.add_argument("--dims", default="784,3072,65536", help="comma-separated d")
    p.add_argument("--repeat-seconds", type=float, default=1.0)
    p.add_argument("--naive-max-gib", type=float, default=4.0, help="largest m*m*d float32 tensor to try")
    p.add_argument("--max-gib", type=float, default=4.0, help="largest X + Z input pair to try")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    dims = [int(s) for s in args.dims.split(",")]
    precision_sizes, precision_d = [128, 1000], 3072
    if args.quick:
        sizes, dims, precision_sizes, precision_d = [64, 128], [784], [64], 256
        args.repeat_seconds = min(args.repeat_seconds, 0.05)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"# nHSIC benchmark: {machine(device)}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"nocco, Gaussian kernel (sigma={SIGMA}), eps={EPS}; load average before: "
          f"{'—' if load is None else ', '.join(f'{v:.2f}' for v in load)}\n", flush=True)
    print("## Time per nHSIC(X;Z) pair\n", flush=True)
    pair_table(sizes, dims, device, args.repeat_seconds, args.naive_max_gib, args.max_gib)
    print("\n## Forming R: Cholesky solve vs eigendecomposition (float64)\n", flush=True)
    ridge_table(sizes, device, args.repeat_seconds)
    print("\n## float32 vs float64 distance GEMM (Gaussian kernels)\n", flush=True)
    precision_table(precision_sizes, precision_d, device)


if __name__ == "__main__":
    main()
