"""The GPU check: run on a machine with CUDA, it exercises every GPU path once and prints one summary.

    python tests/gpu/check.py [--summary FILE]      (or: make gpu-check)

1. the engine's CUDA-vs-CPU agreement tests (tests/unit/test_kernel.py, test_engine.py, `-k cuda`);
2. the dependence-engine benchmark on CUDA (`python -m infoplane.bench.dependence --device cuda`);
3. the training benchmark: ResNet18 on CIFAR-shaped synthetic data, e2e and layerwise-ce, against a
   bare PyTorch loop (`python -m infoplane.bench.train --synthetic --device cuda`);
4. the tiny sweep (.test/config.yaml) end to end with `device: cuda`: train, dependence, probe,
   tables, paper; checks that the jobs logged the CUDA device and that the tables follow their contracts.
On a machine without CUDA it says so and exits 0. Each step has a time limit; a failed step is
reported and the others still run; the exit status is 1 if any step failed.
"""

from __future__ import annotations

import argparse
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
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        ok, out = done.returncode == 0, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        ok, out = False, f"timed out after {timeout:.0f} s\n{err.stdout or ''}{err.stderr or ''}"
    seconds = time.perf_counter() - start
    print(f"\n===== {name}: {'ok' if ok else 'FAILED'} in {seconds:.0f} s =====\n{out[-6000:]}", flush=True)
    return ok, out, seconds


def tiny_sweep(workdir: Path) -> list[str]:
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(REPO / ".test" / "config.yaml"), "--config", "device=cuda", "--cores", "4",
           "--resources", "gpu=1"]  # fmt: skip
    return cmd


def check_sweep(workdir: Path) -> list[str]:
    """Problems with the tiny sweep's outputs (empty: none)."""
    sys.path.insert(0, str(REPO / "src"))
    import pandas as pd
    import yaml

    from infoplane import contracts

    root = workdir / yaml.safe_load((REPO / ".test" / "config.yaml").read_text())["output_root"]
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
    args = parser.parse_args(argv)
    import torch

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
        ok, out, seconds = step("tiny sweep on cuda", tiny_sweep(Path(tmp)), 600)
        problems = check_sweep(Path(tmp)) if ok else ["the sweep failed"]
        results.append(("tiny sweep on cuda", ok and not problems, "\n".join(problems) or out, seconds))

    lines = [f"GPU check summary ({name}, torch {torch.__version__}):"]
    for label, ok, out, seconds in results:
        detail = ""
        if label.startswith("training benchmark"):
            detail = next((line.strip() for line in out.splitlines() if "ratio" in line), "")
        if label == "dependence benchmark":
            detail = next((line.strip() for line in out.splitlines() if line.startswith("| 1000 | 3072 |")), "")
        lines.append(f"  {'ok    ' if ok else 'FAILED'} {label} ({seconds:.0f} s) {detail}")
    summary = "\n".join(lines)
    print("\n" + summary)
    if args.summary:
        args.summary.write_text(summary + "\n")
    return 0 if all(ok for _, ok, _, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
