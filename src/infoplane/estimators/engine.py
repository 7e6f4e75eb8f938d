"""The batched engine: ``measure_snapshot`` measures every layer of a snapshot against X and Y under
every estimator setting and builds the table frame (``FRAME_COLUMNS``).

It cuts a snapshot's n samples into B = n // m consecutive batches of m (a trailing partial batch is
dropped) and works on (B, m, ...) stacks: batched GEMMs, batched centering, batched Cholesky,
batched traces; no Python loop over batches or samples. The kernel estimators score the layers
together as ``LayerStack``s of (L B, m, m) (each layer's own Gram GEMM, everything after it once
for the stack), within ``STACK_ELEMENTS`` per device type; the other estimators go layer by layer. It returns one row per (layer, setting)
with the value (mean over batches) and its evidence:
  - the permutation null (``null``): the same estimator on (X, Z_pi) and (Y, Z_pi), Z's samples
    shuffled by P permutations per batch (drawn once per call from a CPU ``torch.Generator`` seeded
    with ``seed``, shape (B, P, m), identical on every device, shared by every layer and setting);
    ``null_*_mean`` / ``null_*_std`` over all B P values, ``null_*_batch_mean_std`` the std over the
    P joint permutations of the batch-mean null (the distribution the p-value ranks the value in),
    ``excess_* = value - null mean``, and the permutation p-value of the reported value
    (``null.p_values``).
  - the per-batch excess: ``excess_*_batches`` the list over batches (eval-batch order) of
    value_b - mean_p null_{b,p} (all NaN without a null), ``excess_*_std`` its population std over
    batches: the spread of the excess itself, in which the null's batch-to-batch variation
    cancels (``excess_*`` is the mean of this list, up to rounding).
  - for nocco: ``ceiling_zz`` = tr(R_Z^2) (nocco(Z;Z)), ``ceiling_xx``, ``ceiling_yy`` likewise.
  - scale diagnostics per layer: ``mean_sq_activation`` (mean of z^2), ``median_distance`` =
    median ||z_i - z_j|| / sqrt(d), ``bandwidth_ratio`` = median(D_ij) / (2 s^2) for a Gaussian Z
    kernel: << 1 means the kernel is in its near-linear regime, where nocco counts directions.
  Per-batch numbers are averaged over batches; ``*_std`` are population stds (ddof=0).
  Setting keys an estimator does not use are NaN/None in its row.
The engine does the batching, the permutations, caching of references, diagnostics, aggregation
(mean, std, null mean/std, excess, p-value) and the frame; extras other than the ceilings become
columns after ``FRAME_COLUMNS`` (NaN in other estimators' rows).

Host syncs: one per Gram stack (finite check from the Gram diagonal; one for all the layers of
a ``LayerStack``), one per factorization stack (which members need the eigh fallback), one for
the median fallback of the median rules, one per one-hot kernel (the classes present, for
its low-rank ridge), and one when the frame is built; none per batch or per
value, and for the kernel estimators none per layer (they score a snapshot's layers as one stack). Everything runs on ``device``
(``"auto"``: CUDA when available, else the CPU); no CUDA is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .base import ESTIMATORS, SETTING_KEYS, Scores, normalize_setting, unit_of
from .geometry import BANDWIDTHS, Geometry, LayerStack, as_tensor, check_labels, resolve_device, warn_low_precision_matmul
from .null import Permutations, p_values

FRAME_COLUMNS = (
    "layer", "layer_name", "estimator", "kernel_x", "kernel_y", "kernel_z", "sigma", "bandwidth",
    "epsilon", "unit", "batch_size", "n_samples", "n_batches", "permutations",
    "value_xz", "value_xz_std", "null_xz_mean", "null_xz_std", "null_xz_batch_mean_std", "excess_xz", "p_xz",
    "value_yz", "value_yz_std", "null_yz_mean", "null_yz_std", "null_yz_batch_mean_std", "excess_yz", "p_yz",
    "ceiling_zz", "ceiling_xx", "ceiling_yy", "mean_sq_activation", "median_distance", "bandwidth_ratio",
    "excess_xz_batches", "excess_xz_std", "excess_yz_batches", "excess_yz_std",
)  # fmt: skip
_STRING_COLUMNS = ("layer_name", "estimator", "kernel_x", "kernel_y", "kernel_z", "bandwidth", "unit")
_INT_COLUMNS = ("layer", "batch_size", "n_samples", "n_batches", "permutations")
_EXTRA_COLUMNS = ("ceiling_zz", "ceiling_xx", "ceiling_yy")
#: Elements of one (L B, m, m) float64 matrix of a LayerStack, by device type. The CPU keeps a stack
#: within 1 MiB (cache-sized; LeNet5's 7 x 128 batches: one layer at a time): stacking its 5 layers
#: saved 3-8 % of a call in the best of repeats, but one-shot calls (a dependence job) were ~30 %
#: slower with the 5x larger temporaries (shared 2-core machine). On a GPU, where a snapshot is
#: bound by launches, a stack holds up to 2**25 elements (256 MiB per matrix).
STACK_ELEMENTS = {"cpu": 1 << 17, "other": 1 << 25}
_DIAGNOSTICS = ("mean_sq_activation", "median_distance", "bandwidth_ratio")
_BATCH_COLUMNS = ("excess_xz_batches", "excess_yz_batches")


@dataclass
class _Row:
    """One (layer, setting) of a call: its per-batch scores and the layer's per-batch diagnostics."""

    layer: int
    layer_name: str
    setting: dict
    estimator: object
    scores: Scores
    diagnostics: dict


# --------------------------------------------------------------------------- input checks


def _count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and value >= minimum):
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def _layer_list(layers, layer_names) -> tuple[list[str], list]:
    if isinstance(layers, Mapping):
        names, zs = [str(k) for k in layers], list(layers.values())
    else:
        zs = list(layers)
        names = [str(i) for i in range(len(zs))]
    if layer_names is not None:
        if len(layer_names) != len(zs):
            raise ValueError(f"layer_names has {len(layer_names)} names for {len(zs)} layers")
        names = [str(n) for n in layer_names]
    if not zs:
        raise ValueError("layers is empty; pass at least one representation")
    return names, zs


def _checked_settings(settings, batch_size: int) -> tuple[list[dict], list]:
    """The normalized settings and their estimators; every estimator's batch minimum checked."""
    if not isinstance(settings, Sequence) or isinstance(settings, (str, Mapping)) or not settings:
        raise ValueError("settings must be a non-empty list of setting dicts (see expand_settings)")
    settings = [normalize_setting(s) for s in settings]
    estimators = [ESTIMATORS.get(s["estimator"]) for s in settings]
    for s, est in zip(settings, estimators):
        need = getattr(est, "min_samples", 2)
        if batch_size < need:
            raise ValueError(f"estimator {s['estimator']!r} needs at least {need} samples, got batch_size={batch_size}")
    return settings, estimators


def _checked_data(x, y, names: list[str], zs: list, settings: list[dict], batch_size: int,
                  num_classes: int | None) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """x, y and the layers as tensors, aligned, enough samples, labels valid where used as labels."""
    tx, ty = as_tensor(x, "x"), as_tensor(y, "y")
    tzs = [as_tensor(z, f"layer {n!r}") for n, z in zip(names, zs)]
    n = tx.shape[0]
    for t, what in [(ty, "y")] + [(t, f"layer {nm!r}") for nm, t in zip(names, tzs)]:
        if t.shape[0] != n:
            raise ValueError(f"{what} has {t.shape[0]} samples but x has {n}; they must be aligned")
    if n < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the number of samples ({n}); "
                         "lower batch_size or pass more samples")
    check_labels(ty, "y", num_classes)
    for s in settings:
        if s["kernel_x"] == "onehot":
            check_labels(tx, "x", num_classes)
    if any(s["kernel_z"] == "onehot" for s in settings):
        for nm, t in zip(names, tzs):
            check_labels(t, f"layer {nm!r}", num_classes)
    return tx, ty, tzs


# --------------------------------------------------------------------------- the measurement


class _References:
    """X's and Y's prepared references, one per reference key for the whole call (or run: ``ReferenceCache``)."""

    def __init__(self, x_geo: Geometry, y_geo: Geometry) -> None:
        self.geometry = {"x": x_geo, "y": y_geo}
        self.cache: dict[Hashable, object] = {}

    def get(self, est, role: str, setting: Mapping):
        shares = getattr(est, "shares_geometry", False)
        key = ("geometry" if shares else id(est), est.reference_key(role, setting))
        if key not in self.cache:
            geo = self.geometry[role]
            data = geo if shares else (geo.data if role == "x" else geo.data[..., 0])
            self.cache[key] = est.prepare(data, role, setting)
        return self.cache[key]


class ReferenceCache:
    """X's and Y's prepared references kept across ``measure_snapshot`` calls on the same eval set.

    The snapshots of one run are all measured against the same X and Y, so their Gram matrices,
    kernels, ridge factors and packed null references need forming once per run, not once per
    snapshot. Pass one instance to every call of a run (``references=``); it holds one entry, for the
    last (x, y, batch_size, device, gram_dtype) seen, and is rebuilt when any of them changes: x and
    y are compared by value with private copies (``torch.equal``), so changing them in place between
    calls cannot return stale references."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._data: tuple[torch.Tensor, torch.Tensor] | None = None
        self._refs: _References | None = None

    def get(self, tx: torch.Tensor, ty: torch.Tensor, key: tuple, build) -> _References:
        """The references of (tx, ty) under key, from the cache or from ``build()``."""
        data = self._data
        if (self._refs is None or key != self._key or data is None or data[0].shape != tx.shape
                or data[0].dtype != tx.dtype or data[1].shape != ty.shape or data[1].dtype != ty.dtype
                or not torch.equal(data[0], tx.to(data[0].device)) or not torch.equal(data[1], ty.to(data[1].device))):
            self._refs = None  # free the previous entry before building the next
            self._refs, self._key, self._data = build(), key, (tx.clone(), ty.clone())
        return self._refs


def _score_layer(z_geo: Geometry, settings: list[dict], estimators: list, refs: _References,
                 perms: Permutations | None) -> list[tuple[Scores, dict]]:
    """Every setting on one layer: the scores and the per-batch diagnostics of each."""
    diag = {"mean_sq_activation": z_geo.mean_sq_activation,
            "median_distance": z_geo.median_distance / z_geo.dims.sqrt()}
    nan = torch.full((z_geo.batches,), math.nan, dtype=torch.float64, device=z_geo.device)
    out = []
    for setting, est in zip(settings, estimators):
        shares = getattr(est, "shares_geometry", False)
        raw_perms = perms.perms if perms is not None else None
        scores = est.score(refs.get(est, "x", setting), refs.get(est, "y", setting),
                           z_geo if shares else z_geo.data, setting, perms if shares else raw_perms)
        ratio = nan
        if setting.get("kernel_z") == "gaussian":
            sq_bandwidth = BANDWIDTHS.get(setting["bandwidth"])(z_geo, setting["sigma"])
            ratio = z_geo.median_sq_distance / (2.0 * sq_bandwidth)
        out.append((scores, {**diag, "bandwidth_ratio": ratio}))
    return out


@torch.no_grad()
def measure_snapshot(x, y, layers, settings: Sequence[Mapping], *, batch_size: int, permutations: int, seed: int,
                     num_classes: int | None = None, layer_names: Sequence[str] | None = None,
                     device: str | torch.device | None = "auto",
                     gram_dtype: torch.dtype | None = None,
                     references: ReferenceCache | None = None) -> pd.DataFrame:
    """Every layer against X and Y under every setting, with its permutation null and diagnostics.

    ``x`` (n, ...) inputs, ``y`` (n,) integer labels, ``layers`` a list (names "0", "1", ... or
    ``layer_names``) or dict name -> (n, ...) representation (float16 allowed), ``settings`` a list
    of setting dicts (``expand_settings``). Batches: n // batch_size consecutive ones, a trailing
    partial batch dropped. ``permutations`` P >= 0 per batch (0: the null columns are NaN), drawn from
    ``seed``. ``gram_dtype`` overrides the GEMM dtype (tests of exactness). Returns one row per
    (layer, setting), layer-major, with ``FRAME_COLUMNS`` (then any columns of other estimators'
    own setting keys and extras). ``references``: a ``ReferenceCache`` shared by the calls of one run
    (X's and Y's references prepared once for all of them); None prepares them for this call."""
    names, zs = _layer_list(layers, layer_names)
    batch_size = _count(batch_size, "batch_size", 1)
    permutations = _count(permutations, "permutations", 0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    settings, estimators = _checked_settings(settings, batch_size)
    tx, ty, tzs = _checked_data(x, y, names, zs, settings, batch_size, num_classes)

    dev = resolve_device(device, tx)
    warn_low_precision_matmul(dev)
    batches, m = tx.shape[0] // batch_size, batch_size

    def stack(t: torch.Tensor) -> torch.Tensor:
        return t[:batches * m].to(dev).reshape(batches, m, -1)

    def build() -> _References:
        return _References(Geometry(stack(tx), "x", gram_dtype=gram_dtype),
                           Geometry(stack(ty.long()), "y", gram_dtype=gram_dtype))

    key = (batch_size, str(dev), gram_dtype)
    refs = build() if references is None else references.get(tx, ty, key, build)
    perms = Permutations.draw(batches, permutations, m, seed, dev) if permutations else None
    per_stack = layers_per_stack(dev, batches, m)
    stacked = [k for k, est in enumerate(estimators) if getattr(est, "stacks_layers", False)] if per_stack > 1 else []
    alone = [k for k in range(len(settings)) if k not in stacked]
    results: list[dict[int, tuple[Scores, dict]]] = [{} for _ in tzs]
    for first in range(0, len(tzs) if stacked else 0, per_stack):  # layers in LayerStacks of (L B, m, m)
        members = range(first, min(len(tzs), first + per_stack))
        geometries = [Geometry(stack(tzs[li]), f"layer {names[li]!r}", gram_dtype=gram_dtype) for li in members]
        group = LayerStack(geometries) if len(geometries) > 1 else geometries[0]
        scored = _score_layer(group, [settings[k] for k in stacked], [estimators[k] for k in stacked], refs, perms)
        for k, (scores, diag) in zip(stacked, scored):
            for j, li in enumerate(members):
                results[li][k] = _layer_part(scores, diag, j, batches)
        del group, geometries, scored
    for li, (name, tz) in enumerate(zip(names, tzs)):
        if alone:
            z_geo = Geometry(stack(tz), f"layer {name!r}", gram_dtype=gram_dtype)
            scored = _score_layer(z_geo, [settings[k] for k in alone], [estimators[k] for k in alone], refs, perms)
            results[li].update(zip(alone, scored))
            del z_geo
    rows = [_Row(li, name, setting, est, *results[li][k])
            for li, name in enumerate(names) for k, (setting, est) in enumerate(zip(settings, estimators))]
    return _frame(rows, batch_size=m, batches=batches, permutations=permutations, device=dev)


def layers_per_stack(device: torch.device, batches: int, m: int) -> int:
    """How many layers one LayerStack holds: its (L B, m, m) matrices within ``STACK_ELEMENTS``."""
    return max(1, STACK_ELEMENTS.get(device.type, STACK_ELEMENTS["other"]) // (batches * m * m))


def _layer_part(scores: Scores, diag: dict, layer: int, batches: int) -> tuple[Scores, dict]:
    """Layer ``layer``'s batches (members layer B .. layer B + B - 1) of a LayerStack's scores."""
    part = slice(layer * batches, (layer + 1) * batches)

    def cut(t):
        return None if t is None else t[part]

    return (Scores(cut(scores.value_xz), cut(scores.value_yz), cut(scores.null_xz), cut(scores.null_yz),
                   extra={k: cut(v) for k, v in scores.extra.items()}),
            {k: cut(v) for k, v in diag.items()})


# --------------------------------------------------------------------------- the frame


def _as64(t: torch.Tensor | None, fill: torch.Tensor, what: str) -> torch.Tensor:
    """A per-batch tensor as float64 on fill's device, checked against fill's shape; fill for None."""
    if t is None:
        return fill
    if tuple(t.shape) != tuple(fill.shape):
        raise ValueError(f"{what} has shape {tuple(t.shape)}; the estimator protocol wants "
                         f"{tuple(fill.shape)} (batches{', permutations' if fill.ndim == 2 else ''})")
    return t.to(device=fill.device, dtype=torch.float64)


def _role_numbers(rows: list[_Row], role: str, batches: int, permutations: int,
                  device: torch.device) -> dict[str, torch.Tensor]:
    """The value, null, excess and p-value columns of one role ("xz" or "yz"), (R,) each."""
    count = len(rows)
    nan_b = torch.full((batches,), math.nan, dtype=torch.float64, device=device)
    values = torch.stack([_as64(getattr(r.scores, f"value_{role}"), nan_b, f"{r.setting['estimator']}: value_{role}")
                          for r in rows])  # (R, B)
    out = {f"value_{role}": values.mean(dim=1), f"value_{role}_std": values.std(dim=1, correction=0)}
    if permutations:
        nan_bp = torch.full((batches, permutations), math.nan, dtype=torch.float64, device=device)
        nulls = torch.stack([_as64(getattr(r.scores, f"null_{role}"), nan_bp, f"{r.setting['estimator']}: null_{role}")
                             for r in rows])  # (R, B, P)
        flat = nulls.reshape(count, -1)
        joint = nulls.mean(dim=1)  # (R, P): the batch mean under each joint permutation
        out[f"null_{role}_mean"] = flat.mean(dim=1)
        out[f"null_{role}_std"] = flat.std(dim=1, correction=0)
        out[f"null_{role}_batch_mean_std"] = joint.std(dim=1, correction=0)
        out[f"p_{role}"] = p_values(out[f"value_{role}"], joint, permutations, flat.isnan().any(dim=1))
        per_batch = values - nulls.mean(dim=2)  # (R, B): value_b - mean_p null_{b,p}
    else:
        for key in ("null_{}_mean", "null_{}_std", "null_{}_batch_mean_std", "p_{}"):
            out[key.format(role)] = torch.full((count,), math.nan, dtype=torch.float64, device=device)
        per_batch = torch.full_like(values, math.nan)
    out[f"excess_{role}"] = out[f"value_{role}"] - out[f"null_{role}_mean"]
    out[f"excess_{role}_std"] = per_batch.std(dim=1, correction=0)
    out[f"excess_{role}_batches"] = per_batch
    return out


def _extra_names(rows: list[_Row]) -> list[str]:
    """The estimators' extras beyond the ceilings, in order of first appearance."""
    names: list[str] = []
    for r in rows:
        names += [k for k in r.scores.extra if k not in _EXTRA_COLUMNS and k not in names]
    return names


def _numbers(rows: list[_Row], batches: int, permutations: int, device: torch.device,
             extra_names: list[str]) -> dict[str, np.ndarray | list]:
    """Every numeric column, aggregated on the device and moved to the host in one transfer; the
    per-batch columns as lists of (B,) float64 arrays."""
    results = {}
    for role in ("xz", "yz"):
        results.update(_role_numbers(rows, role, batches, permutations, device))
    nan_b = torch.full((batches,), math.nan, dtype=torch.float64, device=device)
    for key in [*_EXTRA_COLUMNS, *extra_names, *_DIAGNOSTICS]:
        stacked = torch.stack([_as64(r.diagnostics[key] if key in r.diagnostics else r.scores.extra.get(key), nan_b,
                                     f"{r.setting['estimator']}: {key}") for r in rows])
        results[key] = stacked.mean(dim=1)
    per_batch = {k: results.pop(k) for k in _BATCH_COLUMNS}  # (R, B) each
    keys = list(results)
    scalars = torch.stack([results[k] for k in keys])  # (K, R)
    host = torch.cat([scalars.reshape(-1), *(v.reshape(-1) for v in per_batch.values())]).cpu().numpy()  # one transfer
    numbers: dict[str, np.ndarray | list] = dict(zip(keys, host[:scalars.numel()].reshape(len(keys), len(rows))))
    tail = host[scalars.numel():].reshape(len(per_batch), len(rows), batches)
    for key, block in zip(per_batch, tail):
        numbers[key] = list(block)  # one (B,) float64 array per row
    return numbers


def _setting_columns(rows: list[_Row], batch_size: int, batches: int, permutations: int,
                     setting_extra: list[str]) -> dict[str, list]:
    """The per-row identity columns: layer, setting keys, unit and the batch geometry."""
    data: dict[str, list] = {c: [] for c in ("layer", "layer_name", "estimator", "kernel_x", "kernel_y", "kernel_z",
                                             "sigma", "bandwidth", "epsilon", "unit", "batch_size", "n_samples",
                                             "n_batches", "permutations", *setting_extra)}  # fmt: skip
    for r in rows:
        data["layer"].append(r.layer)
        data["layer_name"].append(r.layer_name)
        data["estimator"].append(r.setting["estimator"])
        for key in ("kernel_x", "kernel_y", "kernel_z", "bandwidth"):
            data[key].append(r.setting.get(key))
        for key in ("sigma", "epsilon"):
            data[key].append(math.nan if r.setting.get(key) is None else float(r.setting[key]))
        data["unit"].append(unit_of(r.estimator, r.setting))
        data["batch_size"].append(batch_size)
        data["n_samples"].append(batch_size * batches)
        data["n_batches"].append(batches)
        data["permutations"].append(permutations)
        for key in setting_extra:
            data[key].append(r.setting.get(key))
    return data


def _frame(rows: list[_Row], *, batch_size: int, batches: int, permutations: int,
           device: torch.device) -> pd.DataFrame:
    """Aggregate per-batch tensors on the device, move them to the host once, build the frame."""
    extra_names = _extra_names(rows)
    numbers = _numbers(rows, batches, permutations, device, extra_names)
    setting_extra: list[str] = []
    for r in rows:
        setting_extra += [k for k in r.setting
                          if k not in SETTING_KEYS and k not in FRAME_COLUMNS and k not in setting_extra]
    data = _setting_columns(rows, batch_size, batches, permutations, setting_extra)
    out: dict[str, object] = {}
    for c in [*FRAME_COLUMNS, *setting_extra, *extra_names]:  # each column in its final dtype (astype: ~25x)
        if c in numbers:
            out[c] = numbers[c]
        elif c in _INT_COLUMNS:
            out[c] = np.asarray(data[c], dtype=np.int64)
        elif c in _STRING_COLUMNS:
            out[c] = pd.array(data[c], dtype="string")
        elif c in ("sigma", "epsilon"):
            out[c] = np.asarray(data[c], dtype=np.float64)
        else:
            out[c] = data[c]
    return pd.DataFrame(out)
