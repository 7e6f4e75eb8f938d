import os

import pytest
import torch

# Tests run on the CPU with few threads: deterministic and light on a 2-core machine.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
