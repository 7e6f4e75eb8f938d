import sys
from pathlib import Path

import pytest
import torch

# Shared helpers of both test levels (tests/support: the tiny sweep, synthetic tables,
# data-set fixtures in torchvision's file formats).
sys.path.insert(0, str(Path(__file__).parent / "support"))

# Tests run on the CPU with one torch thread: their tensors are small, where thread barriers
# cost more than they save (and a 2-core machine runs other work beside them).
torch.set_num_threads(1)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


@pytest.fixture
def low_resolution(monkeypatch):
    """Figures at 40 dpi: rasterizing dominates the paper tests' time, and no check depends on it
    (modules that draw use it with `pytestmark = pytest.mark.usefixtures("low_resolution")`)."""
    from infoplane.paper import style

    monkeypatch.setattr(style, "DPI", 40)
