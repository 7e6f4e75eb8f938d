"""Shared helpers of the paper outputs: the input tables, estimator settings, run statistics.

The three input tables are those of `infoplane.contracts` (metrics, dependence, probes). A
*group* is one nested run identity dataset × arch; within it modes and seeds vary.
Dependence rows are further split by their *estimator setting* (estimator, kernels, σ,
bandwidth, ε, batch size): values of different settings are never mixed.

The evidence helpers name each estimator's quantity on an axis (`quantity_label`), give the
null band a figure draws (`null_band`), pick each estimator's paper-default setting among
those measured (`primary_settings`), find the σ / ε sensitivity grids (`sensitivity_sweeps`)
and summarize, per estimator, whether the dependence on X falls from its peak
(`compression_summary`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import contracts
from ..estimators.settings import MEASUREMENT_DEFAULTS, SETTINGS

RUN = list(contracts.RUN_KEYS)
GROUP = ["dataset", "arch"]
SETTING_COLUMNS = list(contracts.DEPENDENCE_SETTINGS)
#: Reference mode of the layer-wise comparisons.
E2E = "e2e"


def is_e2e(mode: str) -> bool:
    return mode == E2E or mode.startswith(E2E + "-")


def mode_order(modes: Iterable[str]) -> list[str]:
    """End-to-end first, then the other modes alphabetically."""
    modes = sorted(set(modes))
    return [m for m in modes if is_e2e(m)] + [m for m in modes if not is_e2e(m)]


def _fmt_number(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


#: How each setting column appears in a label, in order (kernels are shown as one triple).
_LABEL_PARTS = (("sigma", "σ={}"), ("bandwidth", "bandwidth {}"), ("epsilon", "ε={}"), ("alpha", "α={}"),
                ("width", "width {}"), ("k", "k={}"), ("noise_variance", "s²={}"), ("relative", "relative {}"),
                ("bins", "{} bins"), ("bin_range", "range {}"))


def _setting_parts(row) -> list[str]:
    """The non-empty settings of a row (a key its estimator does not use is NA and left out)."""
    parts = []
    if _fmt_number(row["kernel_x"]):
        parts.append(f"kernels X/Y/Z {row['kernel_x']}/{row['kernel_y']}/{row['kernel_z']}")
    for key, text in _LABEL_PARTS:
        value = _fmt_number(row[key])
        if value and not (key == "bandwidth" and value == "fixed") and not (key == "relative" and value == "False"):
            parts.append(text.format(value))
    return parts


def setting_label(row) -> str:
    """Human label of one estimator setting, e.g. 'nocco; kernels X/Y/Z gaussian/onehot/gaussian; σ=5;
    ε=1e-05; batch m=128' or 'binning; 30 bins; range snapshot; batch m=128' (unit in brackets for MI)."""
    unit = _fmt_number(row["unit"])
    head = f"{row['estimator']} [{unit}]" if unit else str(row["estimator"])
    return "; ".join([head, *_setting_parts(row), f"batch m={_fmt_number(row['batch_size'])}"])


def setting_slug(row) -> str:
    """File-name-safe id of one estimator setting."""
    text = "-".join([str(row["estimator"]), *_setting_parts(row), f"m{_fmt_number(row['batch_size'])}"])
    text = text.replace("kernels X/Y/Z ", "").replace("/", "-").replace("σ=", "s").replace("ε=", "e")
    text = text.replace("α=", "a").replace("s²=", "nv").replace("bandwidth ", "bw")
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text)


def with_settings(dependence: pd.DataFrame) -> pd.DataFrame:
    """The dependence table plus `setting` (label) and `setting_slug` columns."""
    dependence = dependence.copy()
    keys = pd.Series(["|".join(map(str, row)) for row in dependence[SETTING_COLUMNS].itertuples(index=False)],
                     index=dependence.index)
    first = dependence.groupby(keys, sort=False).head(1)
    labels = {k: setting_label(r) for k, (_, r) in zip(keys.loc[first.index], first.iterrows())}
    slugs = {k: setting_slug(r) for k, (_, r) in zip(keys.loc[first.index], first.iterrows())}
    dependence["setting"] = keys.map(labels)
    dependence["setting_slug"] = keys.map(slugs)
    return dependence


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows at each run's last epoch (runs may end at different epochs)."""
    last = table.groupby(RUN)["epoch"].transform("max")
    return table[table["epoch"] == last]


def require(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    """Refuse a frame that is not a DataFrame or lacks columns, naming them."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; it needs {list(columns)} "
                         f"(see the docstring of the function that reads it)")  # fmt: skip


def unique(frame: pd.DataFrame, keys: list[str], name: str) -> None:
    """Refuse a frame whose rows repeat `keys`, with an example."""
    dup = frame.duplicated(keys, keep=False)
    if dup.any():
        example = frame.loc[dup, keys].iloc[0].to_dict()
        raise ValueError(f"{name} table has {int(dup.sum())} rows that repeat the key {keys}, e.g. {example}; "
                         f"aggregate them to one row per key before computing claims")  # fmt: skip




def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample std (ddof=1; NaN for one value), count) of the finite values."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan, math.nan, 0
    std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return float(arr.mean()), std, int(arr.size)


def deep_layers(num_layers: int) -> list[int]:
    """The deeper half of layers 0..L-1 (classifier included): indices >= L // 2."""
    return list(range(num_layers // 2, num_layers))


def middle_layers(num_layers: int) -> list[int]:
    """Blocks other than the first and the last (classifier excluded); all blocks if < 3."""
    blocks = list(range(num_layers - 1)) or [0]
    return blocks[1:-1] if len(blocks) >= 3 else blocks


def compression(dependence: pd.DataFrame) -> pd.DataFrame:
    """Per run, setting and layer: peak of the dependence on X over epochs minus its final value."""
    keys = [*RUN, "setting", "layer", "layer_name"]
    ordered = dependence.sort_values("epoch")
    grouped = ordered.groupby(keys, sort=False)
    out = grouped.agg(peak=("value_xz", "max"), final=("value_xz", "last")).reset_index()
    out["compression"] = out["peak"] - out["final"]
    return out


def generalization_gap(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run: train minus test accuracy of the whole network at the run's last epoch."""
    final = final_rows(whole_network(metrics))
    wide = final.pivot_table(index=RUN, columns="split", values="accuracy", aggfunc="mean")
    if not {"train", "test"} <= set(wide.columns):
        return pd.DataFrame(columns=[*RUN, "train", "test", "gap"])
    wide = wide.reset_index()
    wide["gap"] = wide["train"] - wide["test"]
    return wide[[*RUN, "train", "test", "gap"]]


def whole_network(metrics: pd.DataFrame) -> pd.DataFrame:
    """The final classifier's rows (the whole network's prediction)."""
    return metrics[metrics["layer_name"] == "classifier"]


@dataclass
class Inputs:
    """The three tables, conformed to their contracts; dependence carries `setting` / `setting_slug`."""

    metrics: pd.DataFrame
    dependence: pd.DataFrame
    probes: pd.DataFrame

    @classmethod
    def from_frames(cls, metrics: pd.DataFrame, dependence: pd.DataFrame, probes: pd.DataFrame) -> Inputs:
        return cls(
            contracts.METRICS.conform(metrics, "metrics"),
            with_settings(contracts.DEPENDENCE.conform(dependence, "dependence")),
            contracts.PROBES.conform(probes, "probes"),
        )

    @classmethod
    def read(cls, tables_dir: str) -> Inputs:
        """The tables in `tables_dir` (results/tables/), each checked against its contract."""
        tables = {name: t.read(contracts.table_file(tables_dir, name)) for name, t in contracts.TABLES.items()}
        return cls.from_frames(tables["metrics"], tables["dependence"], tables["probes"])

    def splits(self) -> list[str]:
        """The splits measured (dependence or probes), in `contracts.SPLITS` order."""
        found = {str(s) for t in (self.dependence, self.probes) for s in t["split"].unique()}
        return [s for s in contracts.SPLITS if s in found]

    def declared_split(self) -> str:
        """The split the claims and the single-split outputs use: `contracts.DECLARED_SPLIT` (test)
        when measured, else the first split measured."""
        splits = self.splits()
        return contracts.DECLARED_SPLIT if contracts.DECLARED_SPLIT in splits or not splits else splits[0]

    def for_split(self, split: str) -> Inputs:
        """These tables with the dependence and probe rows of one split only (metrics unchanged:
        they are per run, measured on their own samples)."""
        return Inputs(self.metrics, self.dependence[self.dependence["split"] == split],
                      self.probes[self.probes["split"] == split])  # fmt: skip

    def settings(self) -> list[tuple[str, str]]:
        """(label, slug) of every estimator setting, sorted by label."""
        pairs = self.dependence[["setting", "setting_slug"]].drop_duplicates().sort_values("setting")
        return list(pairs.itertuples(index=False, name=None))

    def seeds(self) -> list[int]:
        frames = [t["seed"] for t in (self.metrics, self.dependence, self.probes) if len(t)]
        return sorted({int(s) for f in frames for s in f}) if frames else []

    def header(self, experiment: str) -> str:
        """One line: experiment, estimator settings, seeds (what a reader needs to judge a table)."""
        settings = "; ".join(f"[{label}]" for label, _ in self.settings()) or "none"
        seeds = self.seeds()
        per_run = self.metrics.groupby([*GROUP, "mode"])["seed"].nunique() if len(self.metrics) else pd.Series()
        counts = sorted(set(per_run.tolist()))
        if not counts:
            count_text = f"{len(seeds)} seed{'s' * (len(seeds) != 1)}"
        elif len(counts) == 1:
            count_text = f"{counts[0]} seed{'s' * (counts[0] != 1)} per cell"
        else:
            count_text = f"{counts[0]}–{counts[-1]} seeds per cell"
        probe = ""
        if len(self.probes):
            sizes = self.probes[["probe_train_size", "probe_test_size"]].drop_duplicates().iloc[0]
            probe = f" · linear probe: {sizes.probe_train_size} train / {sizes.probe_test_size} test samples"
        splits = self.splits()
        split_text = ""
        if len(splits) > 1 or (splits and splits[0] != contracts.DECLARED_SPLIT):
            others = [s for s in splits if s != self.declared_split()]
            split_text = f" · eval sets: {self.declared_split()} split (claims and tables)" + (
                f", {', '.join(others)} split (robustness rows, information-plane rows, tables 6 and 7)" if others else "")
        return (
            f"Experiment `{experiment}` · dependence estimator: {settings} · {count_text} "
            f"(seeds {', '.join(map(str, seeds))}){probe}{split_text}"
        )


# --------------------------------------------------------------------------- the evidence

#: The quantity each estimator measures, as an axis or a table names it ({a}: X or Y).
QUANTITIES = {
    "nocco": "nHSIC({a}; Z_l)",
    "nocco_normalized": "normalized nHSIC({a}; Z_l)",
    "cka": "CKA({a}; Z_l)",
    "cka_unbiased": "unbiased CKA({a}; Z_l)",
    "renyi": "I_α({a}; T_l)",
    "kde": "I({a}; T_l)",
    "binning": "I({a}; T_l)",
}
#: Rows of the cross-estimator views follow this order (unknown estimators after, alphabetically).
ESTIMATOR_ORDER = tuple(QUANTITIES)
#: Half-width of the null band in standard deviations of the batch-mean null (see `null_band`).
NULL_BAND_SD = 2.0
#: Setting columns that a sensitivity figure sweeps; a setting differing from an estimator's
#: paper-default setting only in these belongs to its sweep.
SWEPT = ("sigma", "epsilon", "bandwidth")
#: `compression_summary`: a fall counts when it is at least this share of the peak ...
COMPRESSION_MIN_FALL = 0.05
#: ... and larger than this many standard errors; fewer snapshot epochs than this: no verdict.
COMPRESSION_NOISE_SD = 2.0
COMPRESSION_MIN_EPOCHS = 3


def estimator_order(names: Iterable[str]) -> list[str]:
    """The estimators in ESTIMATOR_ORDER, then the others alphabetically."""
    names = set(names)
    return [n for n in ESTIMATOR_ORDER if n in names] + sorted(names - set(ESTIMATOR_ORDER))


def quantity_label(estimator: str, unit=None, role: str = "x", *, excess: bool = False) -> str:
    """The quantity on an axis: 'nHSIC(X; Z_l)', 'unbiased CKA(Y; Z_l)', 'I_α(X; T_l) [bits]',
    'excess nHSIC(X; Z_l) over the null' ... (role "x": dependence on X, "y": on Y)."""
    if role not in ("x", "y"):
        raise ValueError(f"role must be 'x' (dependence on X) or 'y' (on Y), got {role!r}")
    text = QUANTITIES.get(str(estimator), f"{estimator}({{a}}; Z_l)").format(a=role.upper())
    if excess:
        text = f"excess {text} over the null"
    unit = _fmt_number(unit)
    return f"{text} [{unit}]" if unit else text


def block_quantity_label(block: pd.DataFrame, role: str = "x", *, excess: bool = False) -> str:
    """`quantity_label` of the (one) estimator of a block of dependence rows; an excess of a
    quantity without a null (kde's and binning's I(X; T)) is named as the raw value it falls back to."""
    first = block.iloc[0]
    if excess and not has_null(block, role):
        return quantity_label(first["estimator"], first["unit"], role) + " (no null: raw value)"
    return quantity_label(first["estimator"], first["unit"], role, excess=excess)


def has_null(frame: pd.DataFrame, role: str) -> bool:
    """Whether the rows carry a permutation null for role "x" or "y" (not for kde's and binning's
    I(X; T), nor with permutations = 0)."""
    return bool(frame[f"null_{role}z_mean"].notna().any())


def null_band(frame: pd.DataFrame, role: str, *, excess: bool = False) -> pd.DataFrame:
    """Per row, the null band drawn behind a value (columns `lo`, `hi`; centred at 0 for the
    excess): null mean ± NULL_BAND_SD · the std of the batch-mean null over the permutations
    (`null_*_batch_mean_std`: the distribution the p-value ranks the value in)."""
    half = NULL_BAND_SD * frame[f"null_{role}z_batch_mean_std"]
    centre = frame[f"null_{role}z_mean"]
    if excess:
        centre = centre * 0.0  # 0 where there is a null, NaN where there is none
    return pd.DataFrame({"lo": centre - half, "hi": centre + half}, index=frame.index)


def null_band_text(frame: pd.DataFrame) -> str:
    """What the null band of `null_band` is, for a legend or a title."""
    return f"null band: null mean ± {NULL_BAND_SD:g} SD of the batch-mean null (its permutation distribution)"


def plotted(frame: pd.DataFrame, role: str, *, excess: bool = False) -> pd.Series:
    """The plotted quantity of each row: the value, or its excess over the null (the raw value
    where the setting has no null for this role)."""
    if excess and has_null(frame, role):
        return frame[f"excess_{role}z"]
    return frame[f"value_{role}z"]


def setting_table(dependence: pd.DataFrame) -> pd.DataFrame:
    """One row per estimator setting of a dependence table (`with_settings`): its setting
    columns, `setting` and `setting_slug`, sorted by label."""
    columns = [*SETTING_COLUMNS, "setting", "setting_slug"]
    return dependence.drop_duplicates("setting_slug")[columns].sort_values("setting").reset_index(drop=True)


def default_setting(estimator: str) -> dict:
    """The setting `estimator` declares as its default (`infoplane.estimators.settings`; for the
    kernel family the paper's protocol), and the default m; keys without a default left out (an
    estimator the registry does not know: its name and m only)."""
    defaults = SETTINGS.get(estimator).defaults() if estimator in SETTINGS else {}
    keys = {k: v for k, v in defaults.items() if v is not None}
    return {"estimator": estimator, **keys, "batch_size": MEASUREMENT_DEFAULTS["batch_size"]}


def _same(a, b) -> bool:
    return _fmt_number(a) == _fmt_number(b)


def primary_settings(dependence: pd.DataFrame) -> dict[str, str]:
    """Per estimator of the table (ESTIMATOR_ORDER), the slug of its setting closest to the
    schema's default: the most setting columns equal to the default's; ties by label."""
    table = setting_table(dependence)
    out = {}
    for estimator in estimator_order(table["estimator"]):
        rows = table[table["estimator"] == estimator]
        default = default_setting(estimator)
        score = rows.apply(lambda r: sum(_same(r[k], v) for k, v in default.items() if k in r.index), axis=1)
        out[estimator] = rows[score == score.max()].iloc[0]["setting_slug"]
    return out


@dataclass
class Sweep:
    """A sensitivity grid of one estimator: the settings that differ from its primary setting
    (`base`, a slug) only in σ, ε or the bandwidth rule (`members`, rows of `setting_table`)."""

    estimator: str
    base: str
    members: pd.DataFrame

    @property
    def base_row(self) -> pd.Series:
        return self.members[self.members["setting_slug"] == self.base].iloc[0]

    def sigma_levels(self) -> list[float]:
        """The ε values (NaN for an estimator without ε) at which the grid holds >= 2 values of σ."""
        with_sigma = self.members[self.members["sigma"].notna()]
        counts = with_sigma.groupby(with_sigma["epsilon"].fillna(-1.0))["sigma"].nunique()
        return sorted(math.nan if e == -1.0 else float(e) for e, n in counts.items() if n >= 2)

    def along_sigma(self, epsilon: float) -> pd.DataFrame:
        """The members drawn against σ at this ε (σ-free rules such as `median` as a level)."""
        same = self.members["epsilon"].isna() if math.isnan(epsilon) else self.members["epsilon"].map(
            lambda v: _same(v, epsilon))  # fmt: skip
        return self.members[same]

    def along_epsilon(self) -> pd.DataFrame:
        """The members drawn against ε: those at the base σ, and σ-free rules (`median`)."""
        sigma = self.base_row["sigma"]
        same = self.members["sigma"].isna() | self.members["sigma"].map(lambda v: _same(v, sigma))
        if pd.isna(sigma):
            same = self.members["sigma"].isna()
        rows = self.members[same & self.members["epsilon"].notna()]
        return rows if rows["epsilon"].nunique() >= 2 else rows.iloc[0:0]

    def panels(self) -> list[tuple[str, float, pd.DataFrame]]:
        """The rows of its figure: ("sigma", ε, members) per ε level, then ("epsilon", σ, members)."""
        rows = [("sigma", e, self.along_sigma(e)) for e in self.sigma_levels()]
        eps = self.along_epsilon()
        if len(eps):
            rows.append(("epsilon", float(self.base_row["sigma"]), eps))
        return rows

    def shown(self) -> set[str]:
        """Slugs of the settings its sensitivity figure draws."""
        return set().union(*(set(rows["setting_slug"]) for _, _, rows in self.panels()))


def sensitivity_sweeps(dependence: pd.DataFrame) -> list[Sweep]:
    """The estimators whose settings hold more than one σ (at some ε) or more than one ε (at the
    primary σ), with their grids; see `Sweep`."""
    table = setting_table(dependence)
    fixed_columns = [c for c in SETTING_COLUMNS if c not in SWEPT]
    sweeps = []
    for estimator, slug in primary_settings(dependence).items():
        rows = table[table["estimator"] == estimator]
        base = rows[rows["setting_slug"] == slug].iloc[0]
        same = rows.apply(lambda r: all(_same(r[c], base[c]) for c in fixed_columns), axis=1)
        sweep = Sweep(estimator, slug, rows[same].reset_index(drop=True))
        if sweep.panels():
            sweeps.append(sweep)
    return sweeps


def fall_standard_error(peak: Mapping, last: Mapping, quantity: str = "excess") -> float:
    """Batch standard error of the fall peak − last of one run's batch-mean dependence on X.

    peak, last: the run's dependence rows at the two epochs (the same evaluation batches at every
    epoch). The spread must be that of the quantity whose fall is judged: for the excess over the
    null, the per-batch excess (`excess_xz_batches`), paired over batches: fall_b = excess_peak_b −
    excess_last_b, SE = sd_b(fall_b) / √B (batch effects shared by both epochs cancel, as they do in
    the fall itself). Without the per-batch excess (tables written before it existed), the unpaired
    √(s_peak² + s_last²) / √(B − 1) from `excess_xz_std` (s a population std over batches), which
    is conservative; for a raw value (`quantity="value"`, no null) the same from `value_xz_std`.
    NaN when neither is available."""
    if quantity == "excess":
        a, b = peak.get("excess_xz_batches"), last.get("excess_xz_batches")
        if a is not None and b is not None and np.ndim(a) == 1 and np.ndim(b) == 1:
            fall = np.asarray(a, np.float64) - np.asarray(b, np.float64)
            if fall.size >= 2 and np.all(np.isfinite(fall)):
                return float(np.std(fall, ddof=1) / math.sqrt(fall.size))
    column = "excess_xz_std" if quantity == "excess" else "value_xz_std"
    s_peak, s_last = float(peak.get(column, math.nan)), float(last.get(column, math.nan))
    n = float(peak.get("n_batches", math.nan))
    if not n >= 2:
        return math.nan
    return float(math.hypot(s_peak, s_last) / math.sqrt(n - 1))


def compression_summary(dependence: pd.DataFrame) -> pd.DataFrame:
    """Per setting × dataset × arch × mode × layer: does the dependence on X fall from its peak?

    The quantity is the excess over the permutation null where the setting has one, else the
    value (kde's and binning's I(X; T), where X enters only as the samples' identity). On its
    mean over seeds: the peak epoch (first maximum over snapshot epochs) and the last epoch;
    `fall` = peak − last, `relative_fall` = fall / peak, `fall_se` its standard error (from the
    seeds' paired differences peak − last; one seed: from the batches, `fall_standard_error` of
    the same quantity, paired over the evaluation batches). Verdict, fixed before any data was seen:
    `falls` when relative_fall >= COMPRESSION_MIN_FALL and fall > COMPRESSION_NOISE_SD · fall_se,
    `unclear` when the fall is that large but within the noise, `no fall` otherwise; `no excess`
    (`no dependence` for a raw value) when the peak is <= 0; `too few epochs` with fewer than
    COMPRESSION_MIN_EPOCHS snapshots; `no value` when an epoch has no finite value. (The peak is
    the maximum of noisy values, so a flat trajectory has a small positive fall: hence both
    thresholds.)"""
    columns = ["setting", "setting_slug", "estimator", *GROUP, "mode", "layer", "layer_name", "quantity",
               "n_seeds", "n_epochs", "peak_epoch", "last_epoch", "peak", "final", "fall", "fall_se",
               "relative_fall", "verdict"]
    if not len(dependence):
        return pd.DataFrame(columns=columns)
    with_null = dependence.groupby("setting_slug")["null_xz_mean"].transform(lambda s: s.notna().any()).astype(bool)
    frame = dependence.assign(q=dependence["excess_xz"].where(with_null, dependence["value_xz"]),
                              quantity=np.where(with_null, "excess", "value"))
    rows = []
    keys = ["setting", "setting_slug", "estimator", *GROUP, "mode", "layer", "layer_name", "quantity"]
    for key, part in frame.groupby(keys, sort=True, observed=True):
        wide = part.groupby(["epoch", "seed"])["q"].mean().unstack("seed").sort_index()  # epochs × seeds
        mean = wide.mean(axis=1)
        epochs = wide.index.to_numpy()
        row = dict(zip(keys, key), n_seeds=int(wide.shape[1]), n_epochs=int(len(epochs)), last_epoch=int(epochs[-1]))
        if not mean.notna().all():
            rows.append({**row, "peak_epoch": -1, "peak": math.nan, "final": math.nan, "fall": math.nan,
                         "fall_se": math.nan, "relative_fall": math.nan, "verdict": "no value"})
            continue
        peak_epoch = int(mean.idxmax())
        peak, final = float(mean.loc[peak_epoch]), float(mean.loc[epochs[-1]])
        diffs = (wide.loc[peak_epoch] - wide.loc[epochs[-1]]).dropna()
        if len(diffs) >= 2:
            se = float(diffs.std(ddof=1) / math.sqrt(len(diffs)))
        else:  # one seed: the noise of the batch means of the same quantity
            one = part[part["seed"] == part["seed"].iloc[0]].drop_duplicates("epoch").set_index("epoch")
            se = fall_standard_error(one.loc[peak_epoch], one.loc[epochs[-1]], row["quantity"])
        fall = peak - final
        relative = fall / peak if peak > 0 else math.nan
        if len(epochs) < COMPRESSION_MIN_EPOCHS:
            verdict = "too few epochs"
        elif not peak > 0:
            verdict = "no excess" if row["quantity"] == "excess" else "no dependence"
        elif relative >= COMPRESSION_MIN_FALL and fall > COMPRESSION_NOISE_SD * se:
            verdict = "falls"
        elif relative >= COMPRESSION_MIN_FALL:
            verdict = "unclear"
        else:
            verdict = "no fall"
        rows.append({**row, "peak_epoch": peak_epoch, "peak": peak, "final": final, "fall": fall, "fall_se": se,
                     "relative_fall": relative, "verdict": verdict})
    return pd.DataFrame(rows, columns=columns)
