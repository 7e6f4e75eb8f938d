"""The GPU check: run on a machine with CUDA, it exercises every GPU path once and prints one summary.

    python tests/gpu/check.py [--summary FILE] [--dry]      (or: make gpu-check)

1. the engine's CUDA-vs-CPU agreement tests (tests/unit/test_kernel.py, test_engine.py, `-k cuda`);
2. the dependence-engine benchmark on CUDA (`python -m infoplane.bench.dependence --device cuda`);
3. the training benchmark: ResNet18 on CIFAR-shaped synthetic data, e2e and layerwise-ce, against a
   bare PyTorch loop (`python -m infoplane.bench.train --synthetic --device cuda`);
4. the tiny sweep (.test/config.yaml) end to end with `device: cuda` under the local profile (GPU
   jobs packed by memory): train, dependence, probe, tables, paper; checks that the jobs logged the
   CUDA device and that the tables follow their contracts;
5. the default sweep (config.yaml) with `device: cuda`, the local profile and every core: its seconds;
6. the cost of every paper experiment on this device (tests/gpu/cost.py): seconds per epoch, dependence
   and probe per snapshot, the packing gain, and the projected GPU-hours (docs/gpu.md); its table
   ends the summary.
On a machine without CUDA it says so and exits 0. Each step has a time limit; a failed step is
reported and the others still run; the exit status is 1 if any step failed.
`--dry`: only step 6, on tiny sizes, on whatever device there is (a unit test runs it on the CPU).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def step(name: str, cmd: list[str], timeout: float, cwd: Path = REPO) -> tuple[bool, str, float]:
    """Run one step; returns (ok, its output, seconds)."""
    start = time.perf_counter()
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(REPO / "src"), "HOME": str(Path.home())}
    env |= {k: v for k, v in os.environ.items() if k.startswith(("CUDA_", "INFOPLANE_GPU"))}
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        ok, stdout, stderr = done.returncode == 0, done.stdout, done.stderr
    except subprocess.TimeoutExpired as err:
        ok, stdout, stderr = False, f"timed out after {timeout:.0f} s\n{_text(err.stdout)}", _text(err.stderr)
    seconds = time.perf_counter() - start
    # each stream's own tail: progress bars on stderr must not push the step's results out of view
    print(f"\n===== {name}: {'ok' if ok else 'FAILED'} in {seconds:.0f} s =====\n{stdout[-6000:]}\n"
          f"----- its stderr (tail) -----\n{stderr[-2000:]}", flush=True)
    return ok, stdout + stderr, seconds


def _text(stream: bytes | str | None) -> str:
    return stream.decode(errors="replace") if isinstance(stream, bytes) else (stream or "")


def sweep(workdir: Path, configfile: Path | None) -> list[str]:
    """snakemake with the local profile (packing by GPU memory), `device: cuda` and every core."""
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--workflow-profile", str(REPO / "workflow" / "profiles" / "default"), "--config", "device=cuda",
           "output_root=results", "--cores", str(os.cpu_count() or 4)]  # fmt: skip
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    else:  # the default sweep reads config.yaml from the working directory
        (workdir / "config.yaml").write_text((REPO / "config.yaml").read_text())
    return cmd


def cost_table(out: str) -> str:
    """The projection table at the end of tests/gpu/cost.py's output."""
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Projected cost on")), None)
    return "\n".join(lines[start:]) if start is not None else ""


def check_sweep(workdir: Path) -> list[str]:
    """Problems with the tiny sweep's outputs (empty: none)."""
    sys.path.insert(0, str(REPO / "src"))
    import pandas as pd

    from infoplane import contracts

    root = workdir / "results"
    problems = []
    for name, table in contracts.TABLES.items():
        try:
            table.check(pd.read_parquet(contracts.path("table", root, table=name)), name)
        except Exception as err:  # noqa: BLE001 - reported, not raised
            problems.append(f"table {name}: {err}")
    for stage in ("train", "dependence", "probe"):
        logs = sorted((root / "logs" / stage).rglob("*.log"))
        if not logs or not all("device: cuda" in p.read_text() for p in logs):
            problems.append(f"{stage}: not every job log says 'device: cuda'")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--summary", type=Path, help="also write the summary to this file")
    parser.add_argument("--dry", action="store_true", help="only the cost step, tiny sizes, any device")
    parser.add_argument("--experiments", nargs="+", help="the cost step's experiment files (default: the paper's)")
    args = parser.parse_args(argv)
    import torch

    cost_cmd = [sys.executable, str(REPO / "tests" / "gpu" / "cost.py")]
    cost_cmd += ["--experiments", *args.experiments] if args.experiments else []
    if args.dry:
        ok, out, seconds = step("cost projection (--dry)", [*cost_cmd, "--dry", "--device",
                                "cuda" if torch.cuda.is_available() else "cpu"], 1800)  # fmt: skip
        print(f"\nGPU check --dry: cost step {'ok' if ok else 'FAILED'} in {seconds:.0f} s\n{cost_table(out)}")
        return 0 if ok and cost_table(out) else 1

    if not torch.cuda.is_available():
        print(f"GPU check: no CUDA device visible to torch {torch.__version__} (CUDA build "
              f"{torch.version.cuda or 'none'}): nothing to check here.")
        return 0
    name = torch.cuda.get_device_name(0)
    print(f"GPU check on {name}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    py = sys.executable
    results = [
        ("CUDA agreement tests", *step("CUDA agreement tests", [py, "-m", "pytest", "-q", "-k", "cuda",
                                        "tests/unit/test_kernel.py", "tests/unit/test_engine.py"], 300)),
        ("dependence benchmark", *step("dependence benchmark",
                                       [py, "-m", "infoplane.bench.dependence", "--device", "cuda", "--repeat-seconds", "1"],
                                       300)),
    ]
    for mode in ("e2e", "layerwise-ce"):
        results.append((f"training benchmark resnet18 {mode}", *step(
            f"training benchmark resnet18 {mode}",
            [py, "-m", "infoplane.bench.train", "--synthetic", "--arch", "resnet18", "--mode", mode,
             "--epochs", "2", "--device", "cuda"], 300)))
    with tempfile.TemporaryDirectory() as tmp:
        ok, out, seconds = step("tiny sweep on cuda", sweep(Path(tmp), REPO / ".test" / "config.yaml"), 600)
        problems = check_sweep(Path(tmp)) if ok else ["the sweep failed"]
        results.append(("tiny sweep on cuda", ok and not problems, "\n".join(problems) or out, seconds))
    with tempfile.TemporaryDirectory() as tmp:
        results.append(("default sweep on cuda, packed", *step("default sweep on cuda, packed", sweep(Path(tmp), None),
                                                               300)))  # fmt: skip
    results.append(("cost projection", *step("cost projection", [*cost_cmd, "--device", "cuda"], 360)))

    lines = [f"GPU check summary ({name}, torch {torch.__version__}):"]
    for label, ok, out, seconds in results:
        detail = ""
        if label.startswith("training benchmark"):
            detail = next((line.strip() for line in out.splitlines() if "ratio" in line), "")
        if label == "dependence benchmark":
            detail = next((line.strip() for line in out.splitlines() if line.startswith("| 1000 | 3072 |")), "")
        lines.append(f"  {'ok    ' if ok else 'FAILED'} {label} ({seconds:.0f} s) {detail}")
    lines += ["", cost_table(next(out for label, _, out, _ in results if label == "cost projection"))]
    summary = "\n".join(lines)
    print("\n" + summary)
    if args.summary:
        args.summary.write_text(summary + "\n")
    return 0 if all(ok for _, ok, _, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
