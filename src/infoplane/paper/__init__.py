"""The paper as outputs: tables, figures and a measured check of each claim.

From the three tables of `infoplane.contracts` (metrics, dependence, probes), `build` writes
under one output folder (results/paper/):

* `table1_accuracy`, `table2_separability`, `table3_dependence`, `table4_compression`, each as
  `.parquet` (tidy numbers), `.md`, `.tex` (booktabs) and `.html` (for the Snakemake report);
* `figures/<kind>/*.png` (`paper.figures.KINDS`);
* `claims.parquet`, `claims.md` and `claims.html`: every claim of METHOD.md as a test with
  its verdict (see `infoplane.paper.claims`).
"""

from __future__ import annotations

from pathlib import Path

from .. import contracts, io
from .claims import claims_display, claims_markdown, evaluate_claims
from .common import Inputs
from .figures import make_figures
from .render import to_html, write_display
from .tables import TABLES


def build(inputs: Inputs, out: str | Path, experiment: str) -> dict[str, list[Path]]:
    """Write every table, figure and the claims; returns the written paths by kind."""
    out = Path(out)
    header = inputs.header(experiment)
    written: dict[str, list[Path]] = {"tables": [], "figures": [], "claims": []}
    for name, make in TABLES.items():
        tidy, display = make(inputs, header)
        io.write_parquet(tidy, out / f"{name}.parquet")
        written["tables"] += [out / f"{name}.parquet", *write_display(display, out / name)]
    written["figures"] = make_figures(inputs, out / "figures")
    claims = evaluate_claims(inputs)
    contracts.CLAIMS.write(claims, out / "claims.parquet")
    io.write_text(out / "claims.md", claims_markdown(claims, header))
    io.write_text(out / "claims.html", to_html(claims_display(claims, header)))
    written["claims"] = [out / "claims.parquet", out / "claims.md", out / "claims.html"]
    return written
