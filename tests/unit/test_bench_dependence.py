"""Smoke run of the dependence-engine benchmark: every table prints its rows, with ratios."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path


def test_benchmark_quick_smoke_run():
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-m", "infoplane.bench.dependence", "--quick"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "clock: process CPU time" in lines[0]
    pair_rows = [line for line in lines if line.startswith(("| 64 | 784 |", "| 128 | 784 |"))]
    assert len(pair_rows) == 2 and all(len(r.split("|")) == 14 for r in pair_rows)
    cka_row = next(line for line in lines if line.startswith("| 64 | 256 |"))
    if importlib.util.find_spec("cka") is None:
        assert "pytorch-cka not installed" in cka_row
    else:
        assert float(cka_row.split("|")[-2]) < 1e-12  # the two unbiased CKAs agree
    protocol = next(line for line in lines if line.startswith("| lenet5 (28 px) | 200 | 3 x 64 | 5 |"))
    assert protocol.split("|")[9].strip().endswith("%")  # what the null adds
    assert protocol.split("|")[15].strip().endswith("%")  # what the null adds to a run's later snapshot
    # the ridge table: a time in the second cell, printed as 0.00254 or 5.16e-05, and block/potri
    ridge_rows = [line for line in lines if re.match(r"\| 7 x (64|128) \| (?=[^|]*[.e])[0-9.e+-]+ \|", line)]
    assert len(ridge_rows) == 2 and all(float(r.split("|")[5]) > 0 for r in ridge_rows)
    mi_rows = [line for line in lines if line.startswith(("| renyi |", "| kde |", "| binning |"))]
    assert len(mi_rows) == 3 * 2  # each MI estimator without and with the null
    assert all(float(r.split("|")[-2]) > 0 for r in mi_rows)
    renyi_rows = [line for line in lines if line.startswith(("| 1.01 | 2 x 64 |", "| 2 | 2 x 64 |"))]
    assert len(renyi_rows) == 2 and all(float(r.split("|")[6]) > 1 for r in renyi_rows)  # the null costs more
    minibatch = next(line for line in lines if line.startswith("| 2000 | 256 | 200 | 10 |"))
    assert float(minibatch.split("|")[7]) > 0 and -1 < float(minibatch.split("|")[9]) <= 1  # ratio, CKA_mb


def test_benchmark_says_no_cuda_for_each_table_without_a_gpu():
    """--device cuda on a machine that sees no GPU: every table not skipped says "no CUDA", exit 0."""
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-m", "infoplane.bench.dependence", "--device", "cuda", "--skip", "mi,ridge"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    said = [line for line in out.stdout.splitlines() if line.startswith("## ")]
    assert said == [f"## {t}: no CUDA" for t in ("pair", "cka", "protocol", "renyi", "minibatch", "sweep", "precision")]
