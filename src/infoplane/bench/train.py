"""Training throughput of the pipeline's train step against a bare PyTorch loop.

Both train the same architecture on the same in-memory data in this process, with the
same batch size, optimizer and thread count; the pipeline's step adds per-batch uint8 →
float normalization, the mode's own step and loss bookkeeping. Prints samples/s and the
ratio (target ≥ 0.8).

    python -m infoplane.bench.train [--arch lenet5] [--mode e2e] [--epochs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from .. import config, contracts, data, models
from ..contracts import Run
from ..runtime import resolve_device
from ..train import Trainer


def settings(dataset: str, epochs: int, batch_size: int) -> dict:
    """The train stage's settings: the schema's defaults (Adam, lr 1e-3) without augmentation."""
    overrides = {"datasets": [dataset], "training": {"epochs": epochs, "batch_size": batch_size},
                 "data": {"augment": "none"}, "snapshots": {"epochs": []}}  # fmt: skip
    return config.stage_settings(config.load(overrides=overrides), "train")


def bare_loop(trainer: Trainer, arch: str, epochs: int, batch_size: int) -> float:
    """Minimal loop: pre-normalized tensors, randperm batches, Adam, cross-entropy."""
    torch.manual_seed(0)
    ds = trainer.dataset
    model = models.build(arch, ds.in_shape, ds.num_classes).to(trainer.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = ds.normalize(trainer.train_x), trainer.train_y
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(y), device=x.device)
        for i in range(0, len(y), batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return epochs * len(y) / (time.perf_counter() - start)


def pipeline_loop(trainer: Trainer, epochs: int) -> float:
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        trainer.train_epoch(epoch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return epochs * len(trainer.train_y) / (time.perf_counter() - start)


def synthetic_cifar(n: int = 5000, seed: int = 0) -> data.Dataset:
    """CIFAR-shaped random data (3x32x32 uint8 images, 10 classes): measures speed, not learning,
    on machines without the CIFAR files."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n + 1000, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (n + 1000,), generator=gen)
    return data.Dataset("cifar10", images[:n], labels[:n], images[n:], labels[n:], 10,
                        mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infoplane.bench.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--arch", default="lenet5")
    parser.add_argument("--mode", default="e2e")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--synthetic", action="store_true", help="CIFAR-shaped random data instead of --dataset")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dataset = synthetic_cifar() if args.synthetic else None
    name = "cifar10" if args.synthetic else args.dataset
    run = Run(name, args.arch, args.mode, 0)
    no_eval_set = contracts.EvalSet(name, torch.zeros(1), torch.zeros(1), torch.zeros(1), 0)
    trainer = Trainer(run, settings(name, args.epochs, args.batch_size), no_eval_set, device, dataset)
    # warm-up both once (allocator, first-call overheads), then alternate measurements
    bare_loop(trainer, args.arch, 1, args.batch_size)
    pipeline_loop(trainer, 1)
    bare, pipe = [], []
    for _ in range(2):
        bare.append(bare_loop(trainer, args.arch, args.epochs, args.batch_size))
        pipe.append(pipeline_loop(trainer, args.epochs))
    b, p = max(bare), max(pipe)
    source = "synthetic CIFAR-shaped data" if args.synthetic else args.dataset
    print(f"{args.arch} / {args.mode} on {source} ({len(trainer.train_y)} images, batch {args.batch_size}, "
          f"{device}, {torch.get_num_threads()} threads)")
    print(f"  bare PyTorch loop : {b:10.0f} samples/s")
    print(f"  pipeline train step: {p:10.0f} samples/s")
    print(f"  ratio              : {p / b:10.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
