"""The dependence estimators: the engine, the shared geometry, the kernel family and the MI family.

Modules, one job each (imports run downwards only):
  - ``geometry``: input checks, sample stacks, squared distances, the kernels' registries
    ``KERNELS`` and ``BANDWIDTHS`` with the bandwidth rules;
  - ``null``: the permutations of the null, their gathers and the p-value;
  - ``base``: the estimator registry ``ESTIMATORS``, ``Scores`` and the settings grammar;
  - ``engine``: ``measure_snapshot``, its run-level ``ReferenceCache`` and the table frame (``FRAME_COLUMNS``);
  - ``kernel``: the kernels, the ridge and the kernel family (nocco, nocco_normalized, cka,
    cka_unbiased), the pair API ``nhsic`` and ``gram``;
  - ``minibatch``: minibatch CKA (``cka_minibatch``, ``minibatch_cka``) for large evaluation sets;
  - ``mutual_information``: what the MI family shares; ``renyi``, ``kde``, ``binning``: its estimators.
Importing the package registers every estimator. Formulas and sources: docs/measurement.md,
docs/estimators.md.
"""

from __future__ import annotations

from .base import ESTIMATORS, SETTING_KEYS, Scores, expand_settings, normalize_setting
from .binning import BinningEstimator, binning_range_max
from .engine import FRAME_COLUMNS, ReferenceCache, measure_snapshot
from .geometry import BANDWIDTHS, KERNELS, Geometry, resolve_device, squared_distances
from .kde import KDEEstimator
from .kernel import (Cka, CkaUnbiased, KernelEstimator, KernelStack, Nocco, NoccoNormalized, gram, nhsic,
                     ridge_matrix)
from .minibatch import CkaMinibatch, minibatch_cka
from .null import Permutations
from .renyi import RenyiEstimator, matrix_renyi_entropy

#: The MI estimators' classes by name (the benchmark and the tests build fresh instances).
MI_ESTIMATORS: dict[str, type] = {c.name: c for c in (RenyiEstimator, KDEEstimator, BinningEstimator)}

__all__ = [
    "BANDWIDTHS", "ESTIMATORS", "FRAME_COLUMNS", "KERNELS", "MI_ESTIMATORS", "SETTING_KEYS", "BinningEstimator",
    "Cka", "CkaMinibatch", "CkaUnbiased", "Geometry", "KDEEstimator", "KernelEstimator", "KernelStack", "Nocco",
    "NoccoNormalized", "Permutations", "ReferenceCache", "RenyiEstimator", "Scores", "binning_range_max", "expand_settings", "gram",
    "matrix_renyi_entropy", "measure_snapshot", "minibatch_cka", "nhsic", "normalize_setting", "resolve_device",
    "ridge_matrix", "squared_distances",
]
