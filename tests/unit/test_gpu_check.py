"""The prepared GPU check (tests/gpu/check.py) on a machine without CUDA says so and succeeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the real check (make gpu-check)")
def test_gpu_check_without_cuda_exits_zero_and_says_why():
    done = subprocess.run([sys.executable, str(REPO / "tests" / "gpu" / "check.py")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device visible" in done.stdout and "nothing to check" in done.stdout


def test_gpu_check_dry_prints_the_cost_table_on_the_cpu():
    """`--dry` runs the cost step's real code (timings, packed runs, projection) on tiny sizes."""
    cmd = [sys.executable, str(REPO / "tests" / "gpu" / "check.py"), "--dry",
           "--experiments", "lenet5_mnist", "alternatives_mnist"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    table = done.stdout[done.stdout.rindex("Projected cost on"):]
    # runs and epochs of each file: 1 × 1 × 4 modes × 3 seeds, 100 epochs; 1 × 2 × 5 × 5 seeds, 60 epochs
    assert "| lenet5_mnist | 12 | 100 |" in table and "| alternatives_mnist | 50 | 60 |" in table
    assert "| **total** | 62 |" in table
    assert "packing (small runs, lenet5/e2e): 2 at once" in done.stdout
