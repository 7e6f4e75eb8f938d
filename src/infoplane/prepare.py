"""Prepare a data set once per sweep: check it loads and write its fixed probe set.

The probe set (same test indices for every run of the data set) is what activation
snapshots, nHSIC and linear probes are computed on.

    python -m infoplane.prepare --dataset mnist5k --root data --probe-size 1000 --out results/data/mnist5k/probe.pt
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from . import data, io, runtime

log = logging.getLogger("infoplane")


def probe_set(dataset: data.Dataset, size: int) -> dict:
    indices = data.probe_indices(len(dataset.test_y), size)
    return {
        "x": dataset.normalize(dataset.test_x[indices]),
        "y": dataset.test_y[indices].clone(),
        "indices": indices,
        "num_classes": dataset.num_classes,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infoplane.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--root", default="data")
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--probe-size", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runtime.setup_logging()
    dataset = data.load(args.dataset, args.root, args.download)
    log.info(
        "%s: %d train / %d test images of shape %s, %d classes",
        args.dataset, len(dataset.train_y), len(dataset.test_y), dataset.in_shape, dataset.num_classes,
    )
    io.torch_save(probe_set(dataset, args.probe_size), args.out)


if __name__ == "__main__":
    main()
