"""What the per-run measurement jobs (nHSIC, linear probes) share: their command line and
the check that a snapshot was taken on the probe set it is measured against."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import torch


def run_job_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """Arguments of a job reading one run's snapshots; the caller adds `--settings`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--probe-data", type=Path, required=True, help="results/data/{dataset}/probe.pt")
    parser.add_argument("--snapshots", type=Path, nargs="+", required=True, help="the run's epoch*.pt files")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--mode", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out", type=Path, required=True, help="output Parquet file")
    return parser


def run_identity(args: argparse.Namespace) -> dict:
    """The run columns every per-run table carries."""
    return {"dataset": args.dataset, "arch": args.arch, "mode": args.mode, "seed": args.seed}


def check_matches_probe(snapshot: Mapping, probe: Mapping, source: str | Path = "snapshot") -> None:
    """Refuse a snapshot taken on other samples than the probe set (a stale probe.pt or run)."""
    indices = torch.as_tensor(snapshot["indices"]).cpu()
    if not torch.equal(indices, torch.as_tensor(probe["indices"]).cpu()):
        raise ValueError(
            f"{source}: sample indices differ from probe.pt indices: the snapshot was made for another "
            "probe set; re-run training for this data set's current probe set"
        )
