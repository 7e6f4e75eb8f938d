"""The paper as outputs: tables, figures and a measured check of each claim.

From the three tables of `infoplane.contracts` (metrics, dependence, probes), `build` writes
under one output folder (results/paper/):

Every output reads the declared split's dependence and probes (`Inputs.declared_split`: test),
except tables 6 and 7, the information-plane figures (one panel row per split), the geometry
figures (one per split) and the claims' robustness matrix (each other split's rows as settings
of their own), which read every split measured.

* every table of `paper.tables.TABLES` (accuracy, separability, dependence, compression, compression
  by estimator, the data-processing check, compression beside clustering), each as `.parquet` (tidy numbers), `.md`, `.tex` (booktabs) and `.html` (for the
  Snakemake report);
* `figures/<kind>/*.png` (`paper.figures.KINDS`);
* `claims.parquet`, `claim_differences.parquet`, `claims.md`, `claims.html` and
  `figures/claims/claim<N>.png`: every claim of the paper (docs/method.md) decided by the
  calibrated rule of `infoplane.paper.rule` under every estimator setting (see
  `infoplane.paper.claims`).
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from .claims import claim_figures, evaluate, write_claims
from .common import Inputs
from .figures import make_figures
from .geometry import geometry_figures
from .render import write_display
from .tables import PER_SPLIT, TABLES


def build(inputs: Inputs, out: str | Path, experiment: str) -> dict[str, list[Path]]:
    """Write every table, figure and the claims; returns the written paths by kind."""
    out = Path(out)
    header = inputs.header(experiment)
    main = inputs.for_split(inputs.declared_split())
    written: dict[str, list[Path]] = {"tables": [], "figures": [], "claims": []}
    for name, make in TABLES.items():
        tidy, display = make(inputs if name in PER_SPLIT else main, header)
        io.write_parquet(tidy, out / f"{name}.parquet")
        written["tables"] += [out / f"{name}.parquet", *write_display(display, out / name)]
    written["figures"] = make_figures(inputs, out / "figures")
    written["figures"] += geometry_figures(inputs, out / "figures")
    claims = evaluate(inputs)
    written["claims"] = write_claims(claims, out, header)
    written["figures"] += claim_figures(claims.results, claims.differences, out / "figures" / "claims")
    return written
