"""The GPU check's cost step: time every paper experiment's run kinds here, project GPU-hours.

    python tests/gpu/cost.py [--device cuda] [--dry]         (run by tests/gpu/check.py)

For each cell (data set, architecture, mode) of each paper experiment file
(infoplane.projection.PAPER_EXPERIMENTS), on synthetic data of the file's shapes: the pipeline's
training step (a warm-up epoch, then one timed epoch of STEPS steps at the file's batch size;
scaled by the steps of a real epoch), the per-epoch evaluation on a test split of the real size,
writing one snapshot of the file's eval size, and the dependence and probe stages on that
snapshot with the file's settings. Also the start-up of one job (a process importing torch and
infoplane and touching the device) and the packing gain: runs at once on this device (as many
as the local profile would pack, GPU memory and cores permitting), their summed step rate over
one run's. infoplane.projection turns these into the table (formula: docs/gpu.md).

--dry: the same code on tiny sizes (2 steps, 64 eval samples, 2 runs at once) on any device;
a unit test runs it on the CPU so the check cannot rot. Its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402

from infoplane import config, contracts, data, packing, projection, runtime  # noqa: E402
from infoplane.contracts import Run  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    steps: int  # timed training steps per cell
    test_images: int | None  # None: the data set's real test split size
    eval_size: int | None  # None: the experiment's
    concurrency_s: float  # seconds each packed run is timed
    max_packed: int | None  # None: as many as the profile packs


FULL = Sizes(steps=30, test_images=None, eval_size=None, concurrency_s=10.0, max_packed=None)
DRY = Sizes(steps=2, test_images=64, eval_size=64, concurrency_s=1.0, max_packed=2)


def experiment_config(name: str, dry: bool = False) -> dict:
    """The experiment file over the defaults; --dry shrinks its batch, eval set and null."""
    overrides = {}
    if dry:
        overrides = {"training": {"batch_size": 8, "eval_batch_size": 64, "train_eval_size": 64},
                     "snapshots": {"eval_size": DRY.eval_size},
                     "dependence": {"batch_size": 32, "permutations": 2}, "probe": {"max_iter": 5}}  # fmt: skip
    return config.load(REPO / "experiments" / f"{name}.yaml", overrides=overrides)


def synthetic(dataset: str, train_images: int, test_images: int) -> data.Dataset:
    """Random uint8 images and labels of the data set's shape and class count."""
    meta = data.DATASETS.meta(dataset)
    gen = torch.Generator().manual_seed(0)
    n = train_images + test_images
    images = torch.randint(0, 256, (n, *meta["in_shape"]), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, meta["num_classes"], (n,), generator=gen)
    channels = meta["in_shape"][0]
    augment = ("hflip",) if channels == 3 else ()  # the CIFAR loaders' default
    return data.Dataset(dataset, images[:train_images], labels[:train_images], images[train_images:],
                        labels[train_images:], meta["num_classes"], mean=(0.5,) * channels,
                        std=(0.25,) * channels, augment=augment)  # fmt: skip


def _clock(device: torch.device, fn):
    runtime.synchronize(device)
    start = time.perf_counter()
    out = fn()
    runtime.synchronize(device)
    return out, time.perf_counter() - start


def trainer_for(cfg: dict, cell: projection.Cell, device: torch.device, sizes: Sizes):
    from infoplane.train import Trainer

    meta = data.DATASETS.meta(cell.dataset)
    test_n = sizes.test_images or meta["test_size"]
    eval_n = min(sizes.eval_size or cfg["snapshots"]["eval_size"], test_n)
    ds = synthetic(cell.dataset, sizes.steps * cell.batch_size, test_n)
    settings = config.stage_settings(cfg, "train")
    settings["data"] = {**settings["data"], "train_limit": None}
    run = Run(cell.dataset, cell.arch, cell.mode, 0)
    eval_set = data.eval_set(ds, eval_n)
    return Trainer(run, settings, eval_set, device, dataset=ds), eval_set


def time_cell(cfg: dict, cell: projection.Cell, device: torch.device, sizes: Sizes,
              measured: projection.Timing | None = None) -> projection.Timing:  # fmt: skip
    """Timings of one cell; `measured`: another mode's of the same network, whose snapshot,
    dependence and probe seconds are reused (the layers, hence those stages, do not change
    with the training mode)."""
    from infoplane import dependence, probe

    trainer, eval_set = trainer_for(cfg, cell, device, sizes)
    trainer.train_epoch(1)  # warm-up: kernels, autotuning, allocator
    _, train_s = _clock(device, lambda: trainer.train_epoch(2))
    _, evaluate_s = _clock(device, lambda: trainer.evaluate(2))
    if measured is not None:
        return projection.Timing(train_s / sizes.steps, evaluate_s, measured.snapshot_s, measured.dependence_s,
                                 measured.probe_s)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        snap_path = Path(tmp) / contracts.SNAPSHOT_NAME.format(epoch=2)
        eval_path = Path(tmp) / "eval_set.pt"
        _, snapshot_s = _clock(device, lambda: contracts.write_snapshot(snap_path, trainer.snapshot(2)))
        contracts.write_eval_set(eval_path, eval_set)
        del trainer
        _, dependence_s = _clock(device, lambda: dependence.measure_run(
            eval_path, [snap_path], config.stage_settings(cfg, "dependence"), device))  # fmt: skip
        _, probe_s = _clock(device, lambda: probe.probe_run(
            eval_path, [snap_path], config.stage_settings(cfg, "probe"), device))  # fmt: skip
    return projection.Timing(train_s / sizes.steps, evaluate_s, snapshot_s, dependence_s, probe_s)


def startup_seconds(device: str) -> float:
    """A job's start: a fresh process importing torch and infoplane's stages and touching the device."""
    code = ("import torch, infoplane.cli, infoplane.train, infoplane.dependence, infoplane.probe; "
            f"torch.zeros(1, device={device!r}).sum().item()")  # fmt: skip
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ | {"PYTHONPATH": str(REPO / "src")})
    return time.perf_counter() - start


def worker(args: argparse.Namespace) -> None:
    """One of the runs timed together: warm up, wait for the common start, count steps for a while."""
    sizes = DRY if args.dry else FULL
    cfg = experiment_config(args.experiment, args.dry)
    cell = next(c for c in projection.cells(args.experiment, cfg) if (c.dataset, c.arch, c.mode) == tuple(args.cell))
    device = torch.device(args.device)
    trainer, _ = trainer_for(cfg, cell, device, sizes)
    trainer.train_epoch(1)
    runtime.synchronize(device)
    late = time.time() > args.start_at
    while time.time() < args.start_at:
        time.sleep(0.01)
    start, epochs = time.perf_counter(), 0
    while time.perf_counter() - start < args.duration or epochs == 0:
        epochs += 1
        trainer.train_epoch(1 + epochs)
        runtime.synchronize(device)
    print(f"RATE {epochs * sizes.steps / (time.perf_counter() - start):.6f} {'late' if late else 'ok'}", flush=True)


def packed_speedup(experiment: str, cell: projection.Cell, k: int, device: str, sizes: Sizes,
                   step_s: float, warm_s: float) -> float:  # fmt: skip
    """Summed steps/s of `k` runs of `cell` at once over one run's (1 / step_s)."""
    start_at = time.time() + warm_s
    cmd = [sys.executable, __file__, "--worker", "--experiment", experiment, "--cell", cell.dataset, cell.arch,
           cell.mode, "--start-at", str(start_at), "--duration", str(sizes.concurrency_s), "--device", device,
           *(["--dry"] if sizes is DRY else [])]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(k)]
    rates, late = [], 0
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a packed run failed (exit {proc.returncode})")
        line = next(line for line in out.splitlines() if line.startswith("RATE "))
        rates.append(float(line.split()[1]))
        late += line.endswith("late")
    if late:
        print(f"  note: {late} of {k} packed runs started late (warm-up over {warm_s:.0f} s): gain understated")
    return sum(rates) * step_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dry", action="store_true", help="tiny sizes: checks the code, not the device")
    parser.add_argument("--experiments", nargs="+", default=list(projection.PAPER_EXPERIMENTS))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--experiment", help=argparse.SUPPRESS)
    parser.add_argument("--cell", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    sizes = DRY if args.dry else FULL
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    torch.set_num_threads(1 if device.type == "cuda" else torch.get_num_threads())

    all_cells, configs, timings = [], {}, {}
    for experiment in args.experiments:
        configs[experiment] = cfg = experiment_config(experiment, args.dry)
        for cell in projection.cells(experiment, cfg):
            same_net = next((timings[c] for c in all_cells if (c.experiment, c.dataset, c.arch) ==
                             (experiment, cell.dataset, cell.arch)), None)  # fmt: skip
            timings[cell], seconds = _clock(device, lambda: time_cell(cfg, cell, device, sizes, same_net))
            t = timings[cell]
            print(f"  {experiment} {cell.dataset}/{cell.arch}/{cell.mode}: step {t.step_s * 1e3:.2f} ms, "
                  f"evaluate {t.evaluate_s:.2f} s, snapshot {t.snapshot_s:.2f} s, dependence {t.dependence_s:.2f} s, "
                  f"probe {t.probe_s:.2f} s ({seconds:.0f} s)", flush=True)  # fmt: skip
            all_cells.append(cell)
    startup = startup_seconds(args.device)
    print(f"  job start-up: {startup:.1f} s", flush=True)

    # packing: one representative per size class (small runs share a GPU most), timed at the count
    # the local profile would run at once; every cell of the class gets that gain, capped at its own count
    cap = packing.machine_gpu_mem_mb(packing.detect_gpus()) if device.type == "cuda" else 0
    cores = os.cpu_count() or 1

    def at_once(cell: projection.Cell) -> int:
        if not cap:
            return 1 if not args.dry else 2
        mem = packing.job_gpu_mem_mb("train", configs[cell.experiment], cell.dataset, cell.arch, cell.mode)
        return projection.packed_jobs(mem, cap, cores)

    gains: dict[projection.Cell, float] = {}
    for small in (True, False):
        members = [c for c in all_cells if packing.is_small_run(c.dataset, c.arch) == small]
        if not members:
            continue
        rep = members[0]
        k = min(at_once(rep), sizes.max_packed or at_once(rep))
        speedup = 1.0
        if k > 1:
            speedup = packed_speedup(rep.experiment, rep, k, args.device, sizes, timings[rep].step_s,
                                     warm_s=10.0 if args.dry else 30.0)  # fmt: skip
        print(f"  packing ({'small' if small else 'large'} runs, {rep.arch}/{rep.mode}): {k} at once, "
              f"{speedup:.2f}x one run's throughput", flush=True)  # fmt: skip
        for c in members:
            gains[c] = projection.packing_gain(speedup, min(k, at_once(c)))

    rows = projection.project(all_cells, timings, gains, startup)
    print("\n" + projection.table(rows, name + (" (--dry: tiny sizes, numbers mean nothing)" if args.dry else "")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
