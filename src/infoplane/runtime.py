"""Device choice, seeding and determinism shared by every job."""

from __future__ import annotations

import ctypes
import functools
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


#: training.precision -> autocast dtype (None: plain float32)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def resolve_precision(setting: str, device: torch.device) -> str:
    """training.precision: `auto` is bf16 on CUDA (its matrix units run bf16; docs/benchmarks.md
    shows the science unchanged) and fp32 on CPU (bf16 autocast is slower there)."""
    if setting == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if setting not in PRECISIONS:
        raise ValueError(f"training.precision must be one of auto, {', '.join(PRECISIONS)}; got {setting!r}")
    return setting


def autocast(precision: str, device: torch.device):
    """The autocast context of a resolved precision (a no-op context for fp32)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def resolve_deterministic(setting: bool | str, device: torch.device) -> bool:
    """training.deterministic: `auto` is on for CPU (bit-identical reruns and resumes cost
    nothing there) and off for CUDA, where deterministic kernels without cuDNN's autotuner
    ran the project's ResNet18 at 5,550 images/s against 13,420 tuned on an H200
    (docs/benchmarks.md)."""
    if setting == "auto":
        return device.type != "cuda"
    if not isinstance(setting, bool):
        raise ValueError(f"training.deterministic must be true, false or auto; got {setting!r}")
    return setting


def make_deterministic(device: torch.device, enabled: bool = True) -> None:
    """Deterministic kernels (bit-identical reruns on CPU; on CUDA, warn where none exists) and
    cuDNN's autotuner off; or, with `enabled` False, the fastest kernels and the autotuner on."""
    if device.type == "cuda":
        if enabled:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not enabled
        torch.use_deterministic_algorithms(enabled, warn_only=True)
    else:
        torch.use_deterministic_algorithms(enabled)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a host tensor to `device` without blocking the host: a copy from pageable memory
    waits for the GPU's queue to drain, one from pinned memory does not (a per-batch random
    draw sent this way keeps the epoch free of host synchronisation)."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def synchronize(device: torch.device) -> None:
    """Wait for `device`'s queued work (CUDA; a no-op elsewhere), as timing a call needs."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@functools.lru_cache(maxsize=64)
def constant(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A cached (1, C, 1, 1) tensor of per-channel constants on `device` (made once, not per
    batch: building it from Python numbers on a GPU is a blocking copy). Never modify it."""
    return torch.tensor(values, dtype=dtype).view(1, -1, 1, 1).to(device)


def setup_logging() -> None:
    """Timestamped INFO lines on stderr, which every rule sends to its log."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)


#: glibc malloc: requests below MMAP_THRESHOLD come from the heap, and up to TRIM_THRESHOLD of freed heap
#: is kept for reuse (bytes; 32 MiB is glibc's largest mmap threshold on 64-bit systems).
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 128 << 20


def _glibc() -> ctypes.CDLL | None:
    """The C library where it is glibc on Linux (it has mallopt and malloc_trim), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None  # musl lacks them


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse; whether it applied (glibc on Linux only).

    By default glibc maps every request above a dynamic threshold (from 128 KiB) afresh and returns
    freed heap to the kernel, so the engine's many short-lived tensors of 0.1-15 MB page-fault on
    every call: with P = 32 a LeNet5 snapshot spent 7.6 ms of 51 in the kernel (5,400 page faults);
    with these thresholds 0.3 ms (136). The cost is up to TRIM_THRESHOLD of memory kept by the process."""
    libc = _glibc()
    if libc is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(libc.mallopt(m_trim_threshold, TRIM_THRESHOLD))


def release_freed_memory() -> None:
    """Give the free memory glibc keeps (``keep_freed_memory``) back to the kernel (malloc_trim), so
    that the resident set is the live memory again: a peak-memory measurement starts from it."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def setup_job(threads: int | None, device_name: str) -> torch.device:
    """Logging to stderr (the rule's log), the allocator (``keep_freed_memory``), torch threads,
    device; logs which device is used."""
    setup_logging()
    if not keep_freed_memory():
        log.info("allocator: not glibc, left as it is")
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device_name)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    log.info("device: %s (%s); SLURM job %s", device, where, os.environ.get("SLURM_JOB_ID", "none"))
    return device
