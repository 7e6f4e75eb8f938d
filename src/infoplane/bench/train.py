"""Training throughput: bare PyTorch loops against the pipeline's step in every training mode.

For each architecture (ResNet18 and VGG11 on CIFAR-shaped 3×32×32 images, LeNet5 on
MNIST-shaped 1×28×28; synthetic uint8 data with 10 classes: it measures speed, not learning)
it times, on the same device, batch size and thread count:

- `fp32 loop`: a bare loop: pre-normalized float32 tensors on the device, batches from a
  device permutation, cross-entropy, `torch.optim.Adam` (lr 1e-3), default kernels;
- `tuned loop` (the anchor): the same with bf16 autocast, channels_last (conv nets) and
  fused Adam; on CUDA also cuDNN's autotuner;
- `tuned, deterministic`: the tuned loop with deterministic kernels and the autotuner off
  (what `training.deterministic: true` costs);
- `pipeline <mode>`: `Trainer.train_epoch` of the pipeline with the schema's defaults for
  this device (precision, determinism, fused optimizer, channels_last), no augmentation;
- `packed K x e2e`: K pipeline processes training e2e at once on one GPU, aggregate images/s
  ("no CUDA" without one).

Each row gives images/s (best of `--repeats` timings of `--steps` steps after one warm-up
pass), the ratio to the tuned loop and to the pipeline's e2e step, the FLOPs per training
image of the step (`torch.utils.flop_counter.FlopCounterMode`: forward and backward of the
network and the mode's heads) and the share of the device's peak bf16 FLOP/s achieved (the
peak from `PEAK_BF16_TFLOPS` by device name, or `--peak-tflops`; "peak unknown" otherwise).

    python -m infoplane.bench.train [--quick] [--device auto] [--arch resnet18,vgg11,lenet5]
                                    [--mode e2e,layerwise-ce,...] [--steps 20] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from .. import config, contracts, data, models, runtime
from ..contracts import Run
from ..train import Trainer

#: Dense bf16 tensor-core peak, TFLOP/s, by a substring of `torch.cuda.get_device_name`
#: (vendor data sheets, without sparsity); the first match wins, so longer names come first.
PEAK_BF16_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
)
#: The architectures and the data shape each is benchmarked at: (data set name, in_shape).
ARCH_DATA = {"resnet18": ("cifar10", (3, 32, 32)), "vgg11": ("cifar10", (3, 32, 32)),
             "lenet5": ("mnist5k", (1, 28, 28)), "mlp": ("mnist5k", (1, 28, 28))}  # fmt: skip
MODES = ("e2e", "layerwise-ce", "layerwise-supcon", "layerwise-sim", "layerwise-predsim",
         "layerwise_seq-ce", "sigprop", "ff")  # fmt: skip
NORMALIZATION = {1: ((0.1307,), (0.3081,)), 3: ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))}


@dataclass
class Row:
    """One timed configuration: `images` trained in `seconds` (the best repeat)."""

    arch: str
    name: str
    images: int = 0
    seconds: float = math.nan
    flops_per_image: float = math.nan
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.images and self.seconds > 0 else math.nan


def peak_tflops(device: torch.device, override: float | None = None) -> float | None:
    """The device's dense bf16 peak in TFLOP/s: `override`, else the table by name; None if unknown."""
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def synthetic(dataset: str, in_shape: Sequence[int], n: int, seed: int = 0) -> data.Dataset:
    """Random uint8 images of `in_shape`, 10 classes, the data set's normalization; 64 test images."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n + 64, *in_shape), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (n + 64,), generator=gen)
    mean, std = NORMALIZATION[in_shape[0]]
    return data.Dataset(dataset, images[:n], labels[:n], images[n:], labels[n:], 10, mean=mean, std=std)


def settings(dataset: str, batch_size: int, compile_mode: str = "none") -> dict:
    """The train stage's settings: the schema's defaults without augmentation or snapshots
    (epochs: many, so that `layerwise_seq` stays in its first stage while timed)."""
    overrides = {"datasets": [dataset], "training": {"epochs": 1000, "batch_size": batch_size, "compile": compile_mode},
                 "data": {"augment": "none"}, "snapshots": {"epochs": []}}  # fmt: skip
    return config.stage_settings(config.load(overrides=overrides), "train")


def make_trainer(arch: str, mode: str, steps: int, batch_size: int, device: torch.device,
                 compile_mode: str = "none") -> Trainer:  # fmt: skip
    name, in_shape = ARCH_DATA[arch]
    dataset = synthetic(name, in_shape, steps * batch_size)
    no_eval_set = contracts.EvalSet(name, torch.zeros(1), torch.zeros(1), torch.zeros(1), 0)
    return Trainer(Run(name, arch, mode, 0), settings(name, batch_size, compile_mode), no_eval_set, device, dataset)


def best_time(run: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Seconds of the fastest of `repeats` calls of `run` (after one untimed warm-up call)."""
    run()
    runtime.synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        runtime.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


# -- bare loops ---------------------------------------------------------------------------------
class BareLoop:
    """A minimal training loop over the trainer's data (`tuned`: bf16, channels_last, fused Adam)."""

    def __init__(self, trainer: Trainer, arch: str, tuned: bool, deterministic: bool) -> None:
        self.device, self.batch_size = trainer.device, trainer.training["batch_size"]
        self.tuned, self.deterministic = tuned, deterministic
        torch.manual_seed(0)
        ds = trainer.dataset
        self.model = models.build(arch, ds.in_shape, ds.num_classes).to(self.device)
        conv = len(ds.in_shape) == 3
        self.memory_format = torch.channels_last if tuned and conv else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=tuned)
        self.x = ds.normalize(trainer.train_x).contiguous(memory_format=self.memory_format)
        self.y = trainer.train_y

    def step(self, idx: torch.Tensor) -> torch.Tensor:
        with runtime.autocast("bf16" if self.tuned else "fp32", self.device):
            loss = F.cross_entropy(self.model(self.x[idx]), self.y[idx])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def epoch(self) -> None:
        runtime.make_deterministic(self.device, self.deterministic)
        order = torch.randperm(len(self.y), device=self.device)
        for i in range(0, len(self.y), self.batch_size):
            self.step(order[i : i + self.batch_size])


# -- FLOP counting --------------------------------------------------------------------------------
def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of `step` (matrix multiplications and convolutions, forward and backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def pipeline_step_flops(trainer: Trainer) -> float:
    """FLOPs per training image of one step of the trainer's mode on its first batch (a real
    update: the timings after it train on from there)."""
    batch = trainer.training["batch_size"]
    x = trainer._inputs(trainer.train_x[:batch])
    y = trainer.train_y[:batch]
    trainer.model.train()
    with trainer._autocast():
        return count_flops(lambda: trainer.mode.train_step(x, y)) / batch


# -- measurements ---------------------------------------------------------------------------------
def measure_arch(arch: str, modes: Sequence[str], steps: int, batch_size: int, repeats: int,
                 device: torch.device, compile_mode: str = "none") -> list[Row]:  # fmt: skip
    """The bare loops and the pipeline in every mode for one architecture."""
    rows = []
    base = make_trainer(arch, "e2e", steps, batch_size, device)
    images = steps * batch_size
    for name, tuned, det in (("fp32 loop", False, base.deterministic), ("tuned loop", True, False),
                             ("tuned, deterministic", True, True)):  # fmt: skip
        loop = BareLoop(base, arch, tuned, det)
        flops = count_flops(lambda: loop.step(torch.arange(batch_size, device=device))) / batch_size
        seconds = best_time(loop.epoch, repeats, device)
        rows.append(Row(arch, name, images, seconds, flops, note=_loop_note(tuned, det, device)))
    for mode in modes:
        trainer = base if mode == "e2e" and compile_mode == "none" else make_trainer(
            arch, mode, steps, batch_size, device, compile_mode)  # fmt: skip
        runtime.make_deterministic(device, trainer.deterministic)  # the loops above changed it
        flops = pipeline_step_flops(trainer)
        epoch = iter(range(1, 10**6))
        seconds = best_time(lambda t=trainer: t.train_epoch(next(epoch)), repeats, device)
        note = f"{trainer.precision}, deterministic {'on' if trainer.deterministic else 'off'}"
        if compile_mode != "none":
            note += f", compile {compile_mode}"
        if mode.startswith("layerwise_seq"):
            note += ", stage 1 (block 0 only)"
        rows.append(Row(arch, f"pipeline {mode}", images, seconds, flops, note=note))
    runtime.make_deterministic(device, base.deterministic)
    return rows


def _loop_note(tuned: bool, deterministic: bool, device: torch.device) -> str:
    parts = ["bf16, channels_last, fused Adam" if tuned else "fp32"]
    parts.append(f"deterministic {'on' if deterministic else 'off'}")
    if device.type == "cuda" and not deterministic:
        parts.append("cuDNN autotuner")
    return ", ".join(parts)


def packed(arch: str, k: int, steps: int, batch_size: int, device: torch.device, timeout: float = 600) -> Row:
    """K processes, each a pipeline e2e run on the same GPU; aggregate images/s over the window
    from the first start to the last end (all start together, after every one has warmed up)."""
    row = Row(arch, f"packed {k} x e2e")
    if device.type != "cuda":
        row.note = "no CUDA"
        return row
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "infoplane.bench.train", "--packed-worker", tmp, "--arch", arch,
               "--steps", str(steps), "--batch-size", str(batch_size), "--device", str(device)]  # fmt: skip
        procs = [subprocess.Popen([*cmd, "--worker-id", str(i)]) for i in range(k)]
        deadline = time.time() + timeout
        while sum(Path(tmp, f"ready{i}").exists() for i in range(k)) < k:
            if time.time() > deadline or any(p.poll() not in (None, 0) for p in procs):
                for p in procs:
                    p.kill()
                row.note = "a worker failed or timed out"
                return row
            time.sleep(0.2)
        Path(tmp, "go").touch()
        for p in procs:
            p.wait(timeout=max(deadline - time.time(), 1))
        results = [json.loads(Path(tmp, f"result{i}.json").read_text()) for i in range(k)]
    row.images = sum(r["images"] for r in results)
    row.seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
    row.note = f"{k} processes, e2e, {results[0]['precision']}"
    return row


def packed_worker(folder: Path, worker: int, arch: str, steps: int, batch_size: int, device: torch.device) -> None:
    trainer = make_trainer(arch, "e2e", steps, batch_size, device)
    trainer.train_epoch(1)  # warm-up
    runtime.synchronize(device)
    Path(folder, f"ready{worker}").touch()
    while not Path(folder, "go").exists():
        time.sleep(0.01)
    start = time.time()
    trainer.train_epoch(2)
    runtime.synchronize(device)
    result = {"images": steps * batch_size, "start": start, "end": time.time(), "precision": trainer.precision}
    Path(folder, f"result{worker}.json").write_text(json.dumps(result))


# -- the table ------------------------------------------------------------------------------------
def table(rows: list[Row], peak: float | None) -> list[dict]:
    """Rows as printed: images/s and the ratios, each computed from the rows' own timings."""
    out = []
    for arch in dict.fromkeys(r.arch for r in rows):
        mine = [r for r in rows if r.arch == arch]
        tuned = next((r.images_per_s for r in mine if r.name == "tuned loop"), math.nan)
        e2e = next((r for r in mine if r.name == "pipeline e2e"), None)
        for r in mine:
            speed = r.images_per_s
            achieved = speed * r.flops_per_image / (peak * 1e12) if peak else math.nan
            out.append({
                "arch": arch,
                "run": r.name,
                "images/s": speed,
                "x tuned": speed / tuned,
                "x e2e": speed / e2e.images_per_s if e2e and r.name.startswith("pipeline") else math.nan,
                "GFLOP/image": r.flops_per_image / 1e9,
                "FLOP x e2e": r.flops_per_image / e2e.flops_per_image if e2e and r.name.startswith("pipeline")
                else math.nan,
                "% bf16 peak": 100 * achieved,
                "settings": r.note,
            })  # fmt: skip
    return out


def _cell(value, peak_known: bool, column: str) -> str:
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "peak unknown" if column == "% bf16 peak" and not peak_known else "-"
    if column == "images/s":
        return f"{value:,.0f}"
    return f"{value:.3f}" if column in ("GFLOP/image", "% bf16 peak") else f"{value:.2f}"


def format_table(printed: list[dict], peak: float | None) -> str:
    if not printed:
        return ""
    columns = list(printed[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in printed:
        lines.append("| " + " | ".join(_cell(row[c], peak is not None, c) for c in columns) + " |")
    return "\n".join(lines)


def summary(printed: list[dict]) -> list[str]:
    """One line per architecture with the figures the targets name (the GPU check quotes it)."""
    lines = []
    for arch in dict.fromkeys(r["arch"] for r in printed):
        mine = {r["run"]: r for r in printed if r["arch"] == arch}
        parts = []
        if "pipeline e2e" in mine:
            parts.append(f"pipeline e2e {mine['pipeline e2e']['x tuned']:.2f} x tuned")
        layerwise = [r for name, r in mine.items() if name.startswith("pipeline layerwise")]
        if layerwise:
            worst = min(layerwise, key=lambda r: r["x e2e"])
            parts.append(f"slowest layer-wise {worst['x e2e']:.2f} x e2e ({worst['run'].split()[-1]})")
        packed_row = next((r for name, r in mine.items() if name.startswith("packed")), None)
        if packed_row is not None:
            speed = packed_row["images/s"]
            figure = f"{speed:,.0f} images/s" if not math.isnan(speed) else packed_row["settings"]
            parts.append(f"{packed_row['run']} {figure}")
        lines.append(f"ratio summary {arch}: " + "; ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m infoplane.bench.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18,vgg11,lenet5", help="comma-separated: " + ", ".join(ARCH_DATA))
    parser.add_argument("--mode", default=",".join(MODES), help="comma-separated training modes")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--repeats", "--epochs", type=int, default=3, help="timings per row, the best is kept")
    parser.add_argument("--synthetic", action="store_true", help="accepted for older callers: data is always synthetic")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--packed", type=int, default=4, help="K runs at once for the packed row (0: none)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's bf16 peak, TFLOP/s")
    parser.add_argument("--compile", default="none", choices=("none", "default", "reduce-overhead", "max-autotune"),
                        help="training.compile for the pipeline rows")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a short CPU run: 2 steps, 1 repeat")
    parser.add_argument("--packed-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-id", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    runtime.keep_freed_memory()  # as every job runs (runtime.setup_job)
    if args.quick:
        args.steps, args.repeats = 2, 1
    device = runtime.resolve_device(args.device)
    archs = [a for a in args.arch.split(",") if a]
    unknown = sorted(set(archs) - set(ARCH_DATA))
    if unknown:
        parser.error(f"--arch {','.join(unknown)}: benchmarked architectures are {', '.join(ARCH_DATA)}")
    if args.packed_worker:
        packed_worker(args.packed_worker, args.worker_id, archs[0], args.steps, args.batch_size, device)
        return []
    modes = [m for m in args.mode.split(",") if m]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    peak = peak_tflops(device, args.peak_tflops)
    print(f"training throughput on {where}, torch {torch.__version__}, batch {args.batch_size}, "
          f"{args.steps} steps x best of {args.repeats}, bf16 peak "
          f"{f'{peak:g} TFLOP/s' if peak else 'unknown'}", flush=True)  # fmt: skip
    rows: list[Row] = []
    for arch in archs:
        rows += measure_arch(arch, modes, args.steps, args.batch_size, args.repeats, device, args.compile)
        if args.packed:
            rows.append(packed(arch, args.packed, args.steps, args.batch_size, device))
        print(f"  {arch} done", file=sys.stderr, flush=True)
    printed = table(rows, peak)
    print(format_table(printed, peak))
    for line in summary(printed):
        print(line)
    print("targets (H200): pipeline e2e >= 0.95 x tuned; every layer-wise mode >= 0.8 x e2e; "
          "packed ResNet18 >= 45,000 images/s")  # fmt: skip
    return printed


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
