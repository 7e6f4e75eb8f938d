"""python -m infoplane.paper: tables, figures and claims from the three Parquet tables."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from . import build
from .claims import claim_ids, overall
from .common import Inputs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infoplane.paper", description=__doc__)
    parser.add_argument("--metrics", required=True, help="results/tables/metrics.parquet")
    parser.add_argument("--hsic", required=True, help="results/tables/hsic.parquet")
    parser.add_argument("--probes", required=True, help="results/tables/probes.parquet")
    parser.add_argument("--out", required=True, help="output folder, e.g. results/paper")
    parser.add_argument("--experiment", default="default", help="experiment name shown in every table header")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    inputs = Inputs.read(args.metrics, args.hsic, args.probes)
    written = build(inputs, args.out, args.experiment)
    import pandas as pd

    claims = pd.read_parquet(written["claims"][0])
    summary = ", ".join(f"claim {c}: {overall(claims, c)[0]}" for c in claim_ids())
    print(
        f"paper outputs for {args.experiment!r} in {time.perf_counter() - start:.1f}s: "
        f"{len(written['tables'])} table files, {len(written['figures'])} figures; {summary}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
