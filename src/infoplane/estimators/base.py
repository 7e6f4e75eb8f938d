"""The estimator registry ``ESTIMATORS``, the per-batch ``Scores`` an estimator returns, and the
settings grammar (``normalize_setting``, ``expand_settings``).

Estimator protocol (how an estimator plugs into the engine, null, excess and p-value)
--------------------------------------------------------------------------------------
An estimator is an object registered in ``ESTIMATORS`` with
  ``name: str``, ``unit: str`` ("" | "bits" | "nats"; a callable(setting) or a "unit" setting key
      wins where the unit is configurable), ``settings``: its settings dataclass
      (``settings.Settings``: the keys it may use, their defaults and table dtypes; keys outside
      ``SETTING_KEYS`` become extra columns at the end of the frame),
  optional ``used_keys(setting) -> tuple`` (the keys this setting really uses; default all
      declared keys), ``check_setting(setting)`` (the estimator's checks, once: raise
      ``SettingError`` or ValueError naming a bad key; may return the setting normalized),
      ``min_samples: int`` (default 2),
  ``reference_key(role, setting) -> Hashable``: role "x" or "y"; equal keys (of one estimator object)
      share one prepare() for the whole call, across layers and settings,
  ``prepare(data, role, setting) -> object``: data is the (B, m, d) stack of flattened inputs
      (role "x", storage dtype) or the (B, m) int64 label stack (role "y"),
  ``score(ref_x, ref_y, z, setting, perms) -> Scores``: z the (B, m, d) flattened layer (storage
      dtype, may be float16: compute in float64 where it matters), perms (B, P, m) int64 (row i of
      the permuted batch is sample perms[b, p, i]) or None; returns per-batch tensors
      ``Scores(value_xz (B,), value_yz (B,), null_xz (B, P) | None, null_yz (B, P) | None,
      extra: dict[str, (B,)])`` (None: no meaningful null; its null columns are NaN).
The kernel family sets ``shares_geometry = True``: it receives ``Geometry`` objects (the stack
plus its cached Gram matrices, distances and kernels) instead of raw stacks and a ``Permutations``
object (its ``perms`` tensor plus the cached gather indices) instead of the tensor, so a layer's
GEMM is done once for every kernel setting and the diagnostics, and X's and Y's kernels are shared
by all kernel estimators (they share one reference key).

Settings and grids: a setting is a dict {"estimator", "kernel_x", "kernel_y", "kernel_z", "sigma",
"bandwidth", "epsilon"} (plus an estimator's own keys); ``expand_settings`` turns the config's
measurement section (lists allowed) into the distinct settings.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from infoplane.registry import Registry

from .settings import COMMON_KEYS

ESTIMATORS: Registry = Registry("estimator")
#: The setting keys of every engine row (the kernel family's; other estimators' rows have them missing).
SETTING_KEYS = ("estimator", *COMMON_KEYS)


class SettingError(ValueError, KeyError):
    """A bad setting value: names the key, the value and what is allowed (config errors point at the key)."""

    def __init__(self, key: str, value, reason: str) -> None:
        super().__init__(key, value, reason)
        self.key, self.value, self.reason = key, value, reason

    def __str__(self) -> str:
        return f"setting {self.key}={self.value!r}: {self.reason}"

# --------------------------------------------------------------------------- estimators


@dataclass
class Scores:
    """Per-batch results of one estimator on one layer: values (B,), nulls (B, P) or None, extras (B,)."""

    value_xz: torch.Tensor
    value_yz: torch.Tensor
    null_xz: torch.Tensor | None = None
    null_yz: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def used_keys_of(estimator, setting: Mapping) -> tuple[str, ...]:
    used = getattr(estimator, "used_keys", None)
    return tuple(used(setting)) if used is not None else estimator.settings.keys()


def normalize_setting(setting: Mapping) -> dict:
    """The setting with every key checked, the one place a measurement's settings are checked: keys
    left out take the estimator's declared defaults, the keys it uses must be valid (its own
    ``check_setting``), the others of ``SETTING_KEYS`` become None. Raises KeyError (unknown
    estimator) or ValueError (``SettingError`` where one key is bad) naming the key and what is allowed."""
    if not isinstance(setting, Mapping) or "estimator" not in setting:
        raise ValueError(f"a setting must be a dict with an 'estimator' key, got {setting!r}")
    est = ESTIMATORS.get(setting["estimator"])
    setting = {**est.settings.defaults(), **setting}
    used = used_keys_of(est, setting)
    missing = [k for k in used if setting.get(k) is None]
    if missing:
        raise ValueError(f"setting for estimator {setting['estimator']!r} lacks {', '.join(missing)}")
    out = {"estimator": setting["estimator"]}
    for key in SETTING_KEYS[1:]:
        out[key] = setting[key] if key in used else None
    for key in used:
        if key not in SETTING_KEYS:
            out[key] = setting[key]
    check = getattr(est, "check_setting", None)
    checked = check(out) if check is not None else None
    return out if checked is None else checked


def expand_settings(section: Mapping) -> list[dict]:
    """The distinct settings of a measurement section: ``estimators: [...]`` and, for each key an
    estimator uses, a value or a list (``sigma``, ``epsilon``, ``bandwidth``, kernels, an estimator's
    own keys). Every combination is its own setting, over the keys a setting uses only (cka does
    not multiply by the epsilon list; sigma does not multiply ``median``). Order: estimators as
    listed, then the product in each estimator's key order with the first value of every list
    first, so the first setting of each estimator takes every list's first value."""
    if not isinstance(section, Mapping):
        raise ValueError(f"the measurement section must be a mapping, got {type(section).__name__}")
    names = section.get("estimators")
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError("the measurement section needs 'estimators': a non-empty list; allowed: "
                         + ", ".join(ESTIMATORS.names()))
    out: list[dict] = []
    seen: set = set()
    for name in names:
        est = ESTIMATORS.get(name)
        declared = est.settings
        keys = list(declared.keys())
        lists = []
        for key in keys:
            value = section.get(key, declared.defaults().get(key))
            values = list(value) if isinstance(value, (list, tuple)) and declared.grid(key) else [value]
            if not values:
                raise ValueError(f"measurement {key} is an empty list; give at least one value")
            lists.append(values)
        for combo in itertools.product(*lists):
            raw = {"estimator": name, **dict(zip(keys, combo))}
            setting = normalize_setting(raw)
            ident = tuple(sorted((k, repr(v)) for k, v in setting.items()))
            if ident not in seen:
                seen.add(ident)
                out.append(setting)
    return out


def unit_of(est, setting: Mapping) -> str:
    """The unit of an estimator's rows under a setting: the setting's "unit" key, else the estimator's."""
    if setting.get("unit") is not None:
        return str(setting["unit"])
    unit = est.unit
    return str(unit(setting) if callable(unit) else unit)


