"""The dependence estimators: the engine, the shared geometry, the kernel family and the MI family.

Modules, one job each (imports run downwards only):
  - ``settings``: each estimator's settings (names, defaults, table dtypes), torch-free;
  - ``geometry``: input checks, sample stacks, squared distances, the kernels' registries
    ``KERNELS`` and ``BANDWIDTHS`` with the bandwidth rules;
  - ``null``: the permutations of the null, their gathers and the p-value;
  - ``base``: the estimator registry ``ESTIMATORS``, ``Scores`` and the settings grammar;
  - ``engine``: ``measure_snapshot``, its run-level ``ReferenceCache`` and the table frame (``FRAME_COLUMNS``);
  - ``kernel``: the kernels, the ridge and the kernel family (nocco, nocco_normalized, cka,
    cka_unbiased), the pair API ``nhsic`` and ``gram``;
  - ``minibatch``: minibatch CKA (``cka_minibatch``, ``minibatch_cka``) for large evaluation sets;
  - ``mutual_information``: what the MI family shares; ``renyi``, ``kde``, ``binning``: its estimators.
The public names below load on first use (PEP 562), and loading any of them registers every
estimator; so ``infoplane.estimators.settings`` alone imports no torch (the table contract and
the report read it). Formulas and sources: docs/measurement.md, docs/estimators.md.
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it.
_PUBLIC = {
    "ESTIMATORS": "base", "SETTING_KEYS": "base", "Scores": "base", "SettingError": "base",
    "expand_settings": "base", "normalize_setting": "base",
    "FRAME_COLUMNS": "engine", "ReferenceCache": "engine", "measure_snapshot": "engine",
    "BANDWIDTHS": "geometry", "KERNELS": "geometry", "Geometry": "geometry", "resolve_device": "geometry",
    "squared_distances": "geometry",
    "Cka": "kernel", "CkaUnbiased": "kernel", "KernelEstimator": "kernel", "KernelStack": "kernel", "Nocco": "kernel",
    "NoccoNormalized": "kernel", "gram": "kernel", "nhsic": "kernel", "ridge_matrix": "ridge", "spd_inverse": "ridge",
    "MIEstimator": "mutual_information", "Permutations": "null",
    "RenyiEstimator": "renyi", "matrix_renyi_entropy": "renyi", "KDEEstimator": "kde",
    "BinningEstimator": "binning", "binning_range_max": "binning",
    "CkaMinibatch": "minibatch", "minibatch_cka": "minibatch",
    "SETTINGS": "settings", "Settings": "settings",
}  # fmt: skip
#: The modules whose import registers the estimators.
_FAMILIES = ("kernel", "minibatch", "renyi", "kde", "binning")

__all__ = sorted([*_PUBLIC, "MI_ESTIMATORS"])


def __getattr__(name: str):
    if name not in _PUBLIC and name != "MI_ESTIMATORS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for family in _FAMILIES:
        importlib.import_module(f".{family}", __name__)
    if name == "MI_ESTIMATORS":  # the MI estimators' classes by name (the benchmark builds fresh instances)
        value = {c.name: c for c in map(__getattr__, ("RenyiEstimator", "KDEEstimator", "BinningEstimator"))}
    else:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
