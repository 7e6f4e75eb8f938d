"""Device choice, seeding and determinism shared by every job."""

from __future__ import annotations

import logging
import os
import random
import sys

import numpy as np
import torch

log = logging.getLogger("infoplane")


def resolve_device(name: str = "auto") -> torch.device:
    """auto -> CUDA when this process sees a GPU, else CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was requested but this job sees no CUDA GPU; set device: auto or cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (run seed, epoch, purpose), stable across runs and platforms."""
    value = 1469598103934665603
    for part in parts:
        value = ((value ^ (int(part) & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 63)
    return value


def make_deterministic(device: torch.device) -> None:
    """Deterministic kernels: bit-identical reruns on CPU; on CUDA, warn where none exists."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(True)


def setup_logging() -> None:
    """Timestamped INFO lines on stderr, which every rule sends to its log."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)


def setup_job(threads: int | None, device_name: str) -> torch.device:
    """Logging to stderr (the rule's log), torch threads, device; logs which device is used."""
    setup_logging()
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device_name)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    log.info("device: %s (%s); SLURM job %s", device, where, os.environ.get("SLURM_JOB_ID", "none"))
    return device
