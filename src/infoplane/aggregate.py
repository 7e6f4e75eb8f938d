"""Concatenate per-run tables into results/tables/*.parquet and the accuracy summary.

    python -m infoplane.aggregate --metrics runs/.../metrics.parquet ... --hsic hsic/...parquet ... \
        --out-metrics results/tables/metrics.parquet --out-hsic ... --out-accuracy ... \
        [--probes probes/...parquet ... --out-probes results/tables/probes.parquet]
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from . import io
from .measure import HSIC_COLUMNS
from .probes import PROBES_COLUMNS
from .train import METRICS_COLUMNS

RUN_KEYS = ["dataset", "arch", "mode", "seed"]


def concat(paths: Sequence[Path], columns: Mapping[str, str], sort: list[str]) -> pd.DataFrame:
    """Concatenate tables, enforcing the column contract (names, order, dtypes)."""
    frames = [pd.read_parquet(p) for p in paths]
    for path, frame in zip(paths, frames):
        missing = set(columns) - set(frame.columns)
        if missing:
            raise ValueError(f"{path} lacks columns {sorted(missing)}; re-run the job that wrote it")
    table = pd.concat([f[list(columns)] for f in frames], ignore_index=True).astype(dict(columns))
    return table.sort_values(sort, ignore_index=True)


def final_accuracy(metrics: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy of the whole network at each run's last epoch."""
    net = metrics[(metrics["layer_name"] == "classifier") & (metrics["split"] == "test")]
    last = net.groupby(RUN_KEYS)["epoch"].transform("max")
    return net[net["epoch"] == last][[*RUN_KEYS, "epoch", "accuracy"]].reset_index(drop=True)


def mean_std(values: pd.Series, scale: float = 100.0, digits: int = 2) -> str:
    mean = values.mean() * scale
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {values.std(ddof=1) * scale:.{digits}f}"


def accuracy_markdown(metrics: pd.DataFrame, experiment: str = "") -> str:
    """Final test accuracy (%) mean ± std over seeds: rows dataset/arch, columns mode."""
    final = final_accuracy(metrics)
    modes = list(dict.fromkeys(final["mode"]))
    lines = [
        f"# Final test accuracy (%){f' — {experiment}' if experiment else ''}",
        "",
        f"Mean ± sample std over seeds (n = {final['seed'].nunique()} seeds) at the last epoch.",
        "",
        "| dataset | arch | " + " | ".join(modes) + " |",
        "|---|---|" + "---|" * len(modes),
    ]
    for (dataset, arch), group in final.groupby(["dataset", "arch"], sort=False):
        cells = [mean_std(group[group["mode"] == m]["accuracy"]) if m in set(group["mode"]) else "—" for m in modes]
        lines.append(f"| {dataset} | {arch} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infoplane.aggregate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", type=Path, nargs="+", required=True)
    parser.add_argument("--hsic", type=Path, nargs="+", required=True)
    parser.add_argument("--probes", type=Path, nargs="*", default=[], help="per-run probe tables -> probes.parquet")
    parser.add_argument("--experiment", default="")
    parser.add_argument("--out-metrics", type=Path, required=True)
    parser.add_argument("--out-hsic", type=Path, required=True)
    parser.add_argument("--out-accuracy", type=Path, required=True)
    parser.add_argument("--out-probes", type=Path, help="where the concatenated --probes tables go")
    args = parser.parse_args(argv)
    metrics = concat(args.metrics, METRICS_COLUMNS, [*RUN_KEYS, "epoch", "split", "layer"])
    hsic = concat(args.hsic, HSIC_COLUMNS, [*RUN_KEYS, "estimator", "epoch", "layer"])
    if args.probes and args.out_probes is None:
        parser.error("--probes needs --out-probes")
    io.write_parquet(metrics, args.out_metrics)
    io.write_parquet(hsic, args.out_hsic)
    if args.probes:
        probes = concat(args.probes, PROBES_COLUMNS, [*RUN_KEYS, "epoch", "layer"])
        io.write_parquet(probes, args.out_probes)
    io.write_text(args.out_accuracy, accuracy_markdown(metrics, args.experiment))


if __name__ == "__main__":
    main()
