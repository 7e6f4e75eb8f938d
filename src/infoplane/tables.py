"""The tables stage: the per-run tables of every run, concatenated into results/tables/.

One table per contract (`contracts.TABLES`: metrics, dependence, probes), long format, rows
in the contract's order; each input is checked against its contract on the way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from . import contracts


def concat(table: contracts.Table, paths: Sequence[Path]) -> pd.DataFrame:
    """The per-run tables at `paths`, each checked against `table`, as one conformed table."""
    frames = [table.read(p) for p in paths]
    if not frames:
        return table.empty()
    return table.conform(pd.concat(frames, ignore_index=True))


def write_tables(inputs: Mapping[str, Sequence[Path]], tables_dir: Path) -> dict[str, Path]:
    """Concatenate and write every table of `inputs` (name -> per-run files) into `tables_dir`."""
    written = {}
    for name, paths in inputs.items():
        written[name] = contracts.table_file(tables_dir, name)
        contracts.TABLES[name].write(concat(contracts.TABLES[name], paths), written[name])
    return written
