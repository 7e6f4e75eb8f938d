"""Each estimator's settings, declared once: their names, defaults, table dtypes and grid rules, as
one small dataclass per estimator (``SETTINGS``: estimator name -> its dataclass).

Everything that needs a setting's name or default reads it here: the estimators (their checks
live on the estimator classes, which point at these declarations), the dependence stage (which
keys a config section holds), the config check, the table contract's setting columns, the
report's defaults and the claims' protocol. This module imports neither torch nor the rest of
the package, so the contract and the report (which run without torch) read it too.

A key is a dataclass field made by ``key``: its default, the pandas dtype of its table column,
whether a config list of it is a grid of values (``grid=False``: the list is one value, e.g.
binning's ``bin_range`` pair) and whether the stage derives it (``derived=True``, e.g. binning's
``range_max``, the run's largest activation: not a config key and not a sort key of the table). The
defaults of the kernel family are the paper's protocol (Sakamoto & Sato 2024, after Ma et al.'s
HSIC bottleneck, 2020): a Gaussian kernel of fixed sigma = 5 (s^2 = sigma^2 d) on X and Z, the
one-hot kernel on Y, ridge eps = 1e-5.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from infoplane.registry import Registry

SETTINGS: Registry = Registry("estimator")

#: The measurement's own defaults (not an estimator's): batch size m and permutations per batch.
MEASUREMENT_DEFAULTS = {"batch_size": 128, "permutations": 32}


def key(default: Any, *, dtype: str, grid: bool = True, derived: bool = False):
    """A setting key: a dataclass field with its table column's dtype and grid/derived rules."""
    return field(default=default, metadata={"dtype": dtype, "grid": grid, "derived": derived})


class Settings:
    """Base of every estimator's settings dataclass.

    ``own_section``: the keys live in the config's sub-section ``dependence.<estimator>`` (True)
    or are the section's flat keys, shared with the other estimators of the family (False)."""

    own_section: ClassVar[bool] = True

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def defaults(cls) -> dict:
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    @classmethod
    def dtypes(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("dtype", "object") for f in fields(cls)}

    @classmethod
    def grid(cls, name: str) -> bool:
        return next(f.metadata.get("grid", True) for f in fields(cls) if f.name == name)

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """The keys a config sets (all but the derived ones); they identify a setting."""
        return tuple(f.name for f in fields(cls) if not f.metadata.get("derived", False))


@dataclass
class KernelSettings(Settings):
    """cka, cka_unbiased: the kernels on X, Y and Z and the Gaussian bandwidth rule (sigma: its
    scale; ``fixed``: s^2 = sigma^2 d)."""

    own_section: ClassVar[bool] = False
    kernel_x: str = key("gaussian", dtype="string")
    kernel_y: str = key("onehot", dtype="string")
    kernel_z: str = key("gaussian", dtype="string")
    sigma: float = key(5.0, dtype="float64")
    bandwidth: str = key("fixed", dtype="string")


@dataclass
class RidgeKernelSettings(KernelSettings):
    """nocco, nocco_normalized: the kernel settings plus the ridge eps of R = K~(K~ + eps m I)^-1."""

    epsilon: float = key(1e-5, dtype="float64")


@dataclass
class RenyiSettings(Settings):
    """renyi: the order alpha, the kernel width rule (knn with k neighbours, silverman, or a fixed sigma)."""

    alpha: float = key(1.01, dtype="float64")
    width: str = key("knn", dtype="string")
    k: int = key(10, dtype="Int64")
    sigma: float | None = key(None, dtype="float64")


@dataclass
class KdeSettings(Settings):
    """kde: the added noise's variance (relative: times the layer's mean squared activation), the unit."""

    noise_variance: float = key(0.1, dtype="float64")
    relative: bool = key(False, dtype="boolean")
    unit: str = key("nats", dtype="string")


@dataclass
class BinningSettings(Settings):
    """binning: bins per unit and their range ("snapshot", "run_max" or a fixed [lo, hi] pair)."""

    bins: int = key(30, dtype="Int64")
    bin_range: Any = key("snapshot", dtype="string", grid=False)
    range_max: float | None = key(None, dtype="float64", derived=True)


for _name, _cls in (("nocco", RidgeKernelSettings), ("nocco_normalized", RidgeKernelSettings), ("cka", KernelSettings),
                    ("cka_unbiased", KernelSettings), ("renyi", RenyiSettings), ("kde", KdeSettings),
                    ("binning", BinningSettings)):  # fmt: skip
    SETTINGS.register(_name)(_cls)

#: The settings classes in table order: the kernel family (whose keys every engine row carries), then the MI family.
FAMILIES: tuple[type[Settings], ...] = (RidgeKernelSettings, RenyiSettings, KdeSettings, BinningSettings)
#: Keys the engine writes as its own columns whatever the estimator (kde's unit is the row's unit).
_ENGINE_KEYS = ("unit",)


def _union(pick) -> dict[str, str]:
    out: dict[str, str] = {}
    for cls in FAMILIES:
        for name, dtype in cls.dtypes().items():
            if name not in _ENGINE_KEYS and pick(cls, name) and name not in out:
                out[name] = dtype
    return out


#: Every setting column of the dependence table with its dtype, in table order.
COLUMN_DTYPES: dict[str, str] = _union(lambda cls, name: True)
#: The setting columns that identify a setting (the table's sort keys), in table order.
IDENTITY_KEYS: tuple[str, ...] = tuple(_union(lambda cls, name: name in cls.config_keys()))
#: The setting columns every engine row has (the kernel family's); the others only some rows have.
COMMON_KEYS: tuple[str, ...] = RidgeKernelSettings.keys()
