"""The paper's claims (as docs/method.md states them), each one module: statement, statistic and
figure side by side, registered by one decorator (`registry.claim`) and decided by the one rule
(`infoplane.paper.rule`).

Claims: `input_information` (1), `differentiation` (2), `bottleneck` (3), `accuracy` (4),
`generalization` (5). `data` turns the input tables into what the claims judge (the excess over
the permutation null); `report` evaluates them all and writes what a reader sees; `figure` draws
each claim's figure from its declaration. Importing this package imports every module in it, so
a claim added in a new module here registers without any other edit.
"""

from __future__ import annotations

import importlib
import pkgutil

from . import accuracy, bottleneck, differentiation, generalization, input_information
from .figure import claim_figures
from .registry import CLAIMS, Claim, Options, claim, claim_ids, evaluate_claims
from .report import (COLUMNS, PROTOCOL, ClaimsReport, claim_summaries, claims_markdown, evaluate, headline_verdicts,
                     summary_line, write_claims)  # fmt: skip

__all__ = ["CLAIMS", "COLUMNS", "PROTOCOL", "Claim", "ClaimsReport", "Options", "accuracy", "bottleneck", "claim",
           "claim_figures", "claim_ids", "claim_summaries", "claims_markdown", "differentiation", "evaluate",
           "evaluate_claims", "generalization", "headline_verdicts", "input_information", "summary_line",
           "write_claims"]  # fmt: skip

for _module in pkgutil.iter_modules(__path__):  # a new claim module registers without an edit here
    importlib.import_module(f"{__name__}.{_module.name}")
