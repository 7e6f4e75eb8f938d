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
