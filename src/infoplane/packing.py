"""Packing jobs onto a GPU: what one job needs in GPU memory, and what the machine has.

Why: one LeNet5 or even ResNet18 run at batch 128 uses a few percent of a large GPU, and a
`gpu: 1` slot per job leaves the device idle while jobs queue for it. Instead every train,
dependence and probe job that runs on CUDA asks for `gpu_mem_mb` (its estimate below), and the
local profile caps the sum at the memory of the machine's GPU (`machine_gpu_mem_mb`, read with
nvidia-smi: no torch import, which takes seconds). A large GPU then runs as many jobs as the
cores allow; a small one runs a large job alone. Formulas: docs/gpu.md.

The estimate is an upper bound by construction (fp32 everywhere, every activation kept for the
backward pass twice over, a fixed CUDA context, 25 % allocator headroom); `tests/gpu/check.py`
prints it beside the peak memory measured on a real device.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence

#: Environment overrides of the GPU detection (tests, machines where nvidia-smi lies or is absent):
#: INFOPLANE_GPUS=N (0: no GPU) and INFOPLANE_GPU_MEM_MB=M (memory of each GPU, MiB).
ENV_GPUS = "INFOPLANE_GPUS"
ENV_GPU_MEM_MB = "INFOPLANE_GPU_MEM_MB"

#: MiB of one process's CUDA context, cuBLAS/cuDNN workspaces and kernels (torch 2.x, CUDA 12/13).
CONTEXT_MB = 1024
#: Allocator headroom: the caching allocator rounds blocks up and fragments.
HEADROOM = 1.25
#: Fraction of a GPU's memory handed out to jobs (the rest: the driver, other processes).
USABLE_FRACTION = 0.9
#: Images of each data set's train split (train and test splits live on the device as uint8).
TRAIN_IMAGES = {"mnist5k": 4000, "mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000,
                "cifar100": 50000, "svhn": 73257}  # fmt: skip
#: Images assumed for a data set not listed above (more than any listed).
UNKNOWN_TRAIN_IMAGES = 100_000
#: Gram-sized float64 matrices the dependence engine holds at once per layer (K, L, their
#: centred forms and a batch of permuted ones): a generous count.
GRAMS_AT_ONCE = 16

#: training.eval_batch_size where a config leaves it out (the schema's default)
EVAL_BATCH_SIZE = 1000

_MB = 2**20


def _mb(nbytes: float) -> int:
    """Bytes -> MiB with headroom, rounded up to a multiple of 64 MiB."""
    return int(math.ceil(nbytes * HEADROOM / _MB / 64) * 64)


@functools.lru_cache(maxsize=None)
def network_profile(dataset: str, arch: str) -> dict[str, int]:
    """Sizes of `arch` built for `dataset`: parameters, activation values per image (the output
    of every leaf module: what autograd keeps for the backward pass), the largest layer and the
    sum of all layers' values per image. One forward pass of one image on the CPU."""
    import torch

    from . import data, models

    meta = data.DATASETS.meta(dataset)
    net = models.build(arch, meta["in_shape"], meta["num_classes"])
    kept = [0]

    def count(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            kept[0] += output[0].numel()

    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros((1, *meta["in_shape"])))
    finally:
        for hook in hooks:
            hook.remove()
    layers = [math.prod(shape) for shape in net.layer_shapes()]
    return {
        "params": sum(p.numel() for p in net.parameters()),
        "activations": kept[0],
        "largest_layer": max(layers),
        "layer_values": sum(layers),
        "image_values": math.prod(meta["in_shape"]),
        "test_images": meta["test_size"],
        "train_images": TRAIN_IMAGES.get(dataset, UNKNOWN_TRAIN_IMAGES),
    }


def job_gpu_mem_mb(stage: str, config: Mapping, dataset: str, arch: str, mode: str = "e2e") -> int:
    """GPU memory (MiB) one `stage` job (train, dependence or probe) of this run may use.

    train:      context + data (uint8 train and test splits, float32 eval set) + params × 16 B
                (weights, grads, two Adam moments; ×2 in layer-wise modes for the heads)
                + batch × activations × 4 B × 2 + eval batch × all layers' values × 4 B (a
                snapshot holds one eval batch's layer outputs on the device, then moves them off)
    dependence: context + eval × largest layer × 4 B × 2 + GRAMS_AT_ONCE × eval² × 8 B
    probe:      context + eval × largest layer × 4 B × 3
    each but the context × HEADROOM.
    """
    net = network_profile(dataset, arch)
    eval_n = int(config["snapshots"]["eval_size"])
    if stage == "train":
        eval_sets = len(config["snapshots"].get("splits", ["test"]))  # float32 eval set of every split
        data_bytes = (net["train_images"] + net["test_images"] + 4 * eval_n * eval_sets) * net["image_values"]
        param_bytes = net["params"] * 16 * (1 if mode.split("-")[0] == "e2e" else 2)
        act_bytes = int(config["training"]["batch_size"]) * net["activations"] * 4 * 2
        eval_batch = min(eval_n, int(config["training"].get("eval_batch_size", EVAL_BATCH_SIZE)))
        work = data_bytes + param_bytes + act_bytes + eval_batch * net["layer_values"] * 4
    elif stage == "dependence":
        work = eval_n * net["largest_layer"] * 4 * 2 + GRAMS_AT_ONCE * eval_n**2 * 8
    elif stage == "probe":
        work = eval_n * net["largest_layer"] * 4 * 3
    else:
        raise ValueError(f"unknown stage {stage!r}: the GPU stages are train, dependence and probe")
    return CONTEXT_MB + _mb(work)


def _nvidia_smi() -> list[str]:
    """Lines `index, memory.total` of nvidia-smi; empty when it is missing or fails."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return done.stdout.splitlines() if done.returncode == 0 else []


def detect_gpus(environ: Mapping[str, str] = os.environ, query: Callable[[], Sequence[str]] = _nvidia_smi) -> list[int]:
    """Memory (MiB) of each GPU this process may use: INFOPLANE_GPUS / INFOPLANE_GPU_MEM_MB when
    set, else nvidia-smi's list restricted to CUDA_VISIBLE_DEVICES (when it names indices)."""
    count, mem = environ.get(ENV_GPUS, "").strip(), environ.get(ENV_GPU_MEM_MB, "").strip()
    for name, value in ((ENV_GPUS, count), (ENV_GPU_MEM_MB, mem)):
        if value and not value.isdigit():
            raise ValueError(f"{name}={value!r} is not a whole number; e.g. {ENV_GPUS}=1 {ENV_GPU_MEM_MB}=24576")
    if count:
        if int(count) and not mem:
            raise ValueError(f"{ENV_GPUS}={count} needs {ENV_GPU_MEM_MB} too (MiB of each GPU), e.g. 24576")
        return [int(mem)] * int(count) if int(count) else []
    gpus = {}
    for line in query():
        index, _, total = line.partition(",")
        if index.strip().isdigit() and total.strip().isdigit():
            gpus[int(index)] = int(total)
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        if all(v.isdigit() for v in wanted):
            gpus = {i: gpus[i] for i in map(int, wanted) if i in gpus}
    totals = list(gpus.values())
    return [int(mem)] * len(totals) if mem else totals


def machine_gpu_mem_mb(gpus: Sequence[int]) -> int:
    """The local profile's global `gpu_mem_mb`: the usable memory of the first GPU (0: none).

    Jobs run on `cuda`, i.e. the first visible device, so only its memory counts; on a machine
    with several GPUs, the others stay idle unless each gets its own snakemake (docs/gpu.md).
    """
    return int(gpus[0] * USABLE_FRACTION) if gpus else 0


def gpu_mem_mb(stage: str, config: Mapping, gpus_per_job: int) -> Callable[..., int]:
    """The rules' `gpu_mem_mb` resource: the job's estimate where it runs on CUDA, else 0."""

    def resource(wildcards) -> int:
        if not gpus_per_job:
            return 0
        return job_gpu_mem_mb(stage, config, wildcards.dataset, wildcards.arch, wildcards.mode)

    return resource


#: A run is "small" (shares a SLURM allocation with others) when its network keeps at most this many
#: activation values per image: LeNet5 (15 k) and the MLPs (< 3 k) are, VGG11 (0.49 M) and
#: ResNet18 (1.5 M) are not. Compute per image scales with it, and a small run leaves a GPU idle.
SMALL_RUN_ACTIVATIONS = 100_000
#: SLURM job groups (the profile's `group-components` says how many of each share one allocation):
#: every job of a small run, and the dependence and probe jobs of a large one.
SMALL_RUNS_GROUP = "small_runs"
MEASURE_GROUP = "measure"


def is_small_run(dataset: str, arch: str) -> bool:
    return network_profile(dataset, arch)["activations"] <= SMALL_RUN_ACTIVATIONS


def slurm_group(stage: str) -> Callable[..., str | None]:
    """The rules' `group:` (used by cluster executors only; local runs ignore groups): small runs
    go whole (train, dependence, probe) into SMALL_RUNS_GROUP; a large run's train has none (one
    GPU to itself), its dependence and probe go into MEASURE_GROUP."""

    def group(wildcards) -> str | None:
        if is_small_run(wildcards.dataset, wildcards.arch):
            return SMALL_RUNS_GROUP
        return None if stage == "train" else MEASURE_GROUP

    return group
