"""What an experiment file costs on a GPU, projected from timings taken on that GPU.

`tests/gpu/check.py` times each run kind (data set, architecture, mode) of each paper experiment
for a few steps and one snapshot, and the packing gain of several runs on one device; this module
turns those timings into GPU-hours (formula: docs/gpu.md). No torch here: the projection is
arithmetic on timings, unit-tested with fake ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from . import config as config_mod
from . import packing

#: The experiment files the docs call the paper's (docs/experiments.md).
PAPER_EXPERIMENTS = ("resnet18_cifar10", "resnet18_cifar10_sequential", "vgg11_cifar10", "resnet18_cifar100",
                     "lenet5_mnist", "alternatives_mnist")  # fmt: skip
#: Jobs per run that start a process on the GPU: train, dependence, probe.
JOBS_PER_RUN = 3


@dataclass(frozen=True)
class Cell:
    """The runs of one experiment that share data set, architecture and mode (they differ by seed)."""

    experiment: str
    dataset: str
    arch: str
    mode: str
    runs: int
    epochs: int
    train_images: int
    batch_size: int
    snapshots: int  # snapshot epochs per run (each is written, then measured by dependence)
    probed: int  # snapshots the probe stage reads per run

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_images / self.batch_size)


@dataclass(frozen=True)
class Timing:
    """Seconds measured for one cell: a training step, the per-epoch evaluation, writing one
    snapshot, and the dependence and probe stages on one snapshot."""

    step_s: float
    evaluate_s: float
    snapshot_s: float
    dependence_s: float
    probe_s: float


def cells(experiment: str, config: Mapping) -> list[Cell]:
    """The cells of a validated config (an experiment file merged over the defaults)."""
    training, seeds = config["training"], config["seeds"]
    snaps = config_mod.snapshot_epochs(config)
    probed = 2 if config["probe"]["epochs"] == "ends" and len(snaps) > 1 else len(snaps)
    splits = len(config["snapshots"]["splits"])  # every split is snapshotted, measured and probed
    probed *= splits
    limit = config["data"].get("train_limit")
    out = []
    for dataset in config["datasets"]:
        images = packing.TRAIN_IMAGES.get(dataset, packing.UNKNOWN_TRAIN_IMAGES)
        images = min(images, limit) if limit else images
        for arch in config["archs"]:
            for mode in config["modes"]:
                out.append(Cell(experiment, dataset, arch, mode, len(seeds), int(training["epochs"]), images,
                                int(training["batch_size"]), len(snaps) * splits, probed))  # fmt: skip
    return out


def epoch_seconds(cell: Cell, timing: Timing) -> float:
    """One epoch of one run: steps per epoch × seconds per step, plus the epoch's evaluation."""
    return cell.steps_per_epoch * timing.step_s + timing.evaluate_s


def run_seconds(cell: Cell, timing: Timing, startup_s: float) -> float:
    """One run alone on the device: its epochs, its snapshots (written, then measured by
    dependence; probe reads `probed` of them) and the start-up of its three jobs."""
    return (cell.epochs * epoch_seconds(cell, timing) + cell.snapshots * (timing.snapshot_s + timing.dependence_s)
            + cell.probed * timing.probe_s + JOBS_PER_RUN * startup_s)  # fmt: skip


def packed_jobs(job_mem_mb: int, cap_mb: int, cores: int) -> int:
    """Jobs of this size that the local profile runs at once: the GPU-memory cap and the cores."""
    return max(1, min(cores, cap_mb // max(job_mem_mb, 1)))


def packing_gain(measured_speedup: float, jobs_at_once: int) -> float:
    """Throughput of `jobs_at_once` runs together over one run alone: the speedup measured with
    that many runs at once, never above the count nor below 1."""
    return max(1.0, min(float(measured_speedup), float(jobs_at_once)))


@dataclass(frozen=True)
class Row:
    experiment: str
    runs: int
    epochs: int
    epoch_s: float  # mean over the experiment's cells of one run's seconds per epoch
    gain: float  # packing gain applied (runs weighted)
    gpu_hours: float


def project(cells_: Sequence[Cell], timings: Mapping[Cell, Timing], gains: Mapping[Cell, float],
            startup_s: float) -> list[Row]:  # fmt: skip
    """GPU-hours per experiment: Σ over its cells of runs × run_seconds / packing gain / 3600."""
    rows = []
    for name in dict.fromkeys(c.experiment for c in cells_):
        own = [c for c in cells_ if c.experiment == name]
        missing = [f"{c.dataset}/{c.arch}/{c.mode}" for c in own if c not in timings]
        if missing:
            raise ValueError(f"{name}: no timing for {', '.join(missing)}")
        runs = sum(c.runs for c in own)
        seconds = sum(c.runs * run_seconds(c, timings[c], startup_s) / gains.get(c, 1.0) for c in own)
        rows.append(Row(
            name, runs, max(c.epochs for c in own),
            sum(epoch_seconds(c, timings[c]) for c in own) / len(own),
            sum(c.runs * gains.get(c, 1.0) for c in own) / runs, seconds / 3600,
        ))  # fmt: skip
    return rows


def table(rows: Iterable[Row], device: str) -> str:
    """The markdown table the GPU check prints, with the total."""
    rows = list(rows)
    lines = [f"Projected cost on {device} with the local profile's packing:", "",
             "| experiment | runs | epochs | s / epoch (one run) | packing gain | GPU-hours |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r.experiment} | {r.runs} | {r.epochs} | {r.epoch_s:.2f} | {r.gain:.1f}x | {r.gpu_hours:.2f} |")
    total = sum(r.gpu_hours for r in rows)
    lines.append(f"| **total** | {sum(r.runs for r in rows)} | | | | **{total:.2f}** |")
    return "\n".join(lines)
