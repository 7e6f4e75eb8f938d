"""The contracts every stage shares, in one place: the run identity, the path of every
output, the columns and dtypes of every table, and the formats of the files one job
writes and another reads (eval set, activation snapshots, training checkpoints).

Producers write through these functions and consumers read through them, so a column,
a path or a file format changes here and nowhere else. Nothing here imports torch at
module level: the Snakefile and the table stages import this module too.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import io
from .errors import CorruptFileError, MismatchedInputsError
from .estimators import settings as _estimator_settings  # torch-free: the estimators' declared settings

# --------------------------------------------------------------------------- run identity

RUN_KEYS = ("dataset", "arch", "mode", "seed")

#: A training mode's name: family[-loss[-head]] (see infoplane.modes), each part MODE_PART.
MODE_PART = r"[a-z][a-z0-9_]*"
MODE_NAME = rf"{MODE_PART}(?:-{MODE_PART}){{0,2}}"

#: The splits a run can be snapshotted on: "test", the eval set of test images (the paper's, and
#: the split every claim is decided on), and "train", as many of the training images the run
#: learns from, drawn the same way (critiques of information planes: compression shows mainly on
#: the training data, Wickstrøm et al. 2023). The config's `snapshots.splits` chooses among them.
SPLITS = ("test", "train")
#: The split the claims are decided on; the others add rows to the robustness matrix.
DECLARED_SPLIT = "test"

#: Regular expressions of the path fields; the Snakefile's wildcard constraints.
WILDCARDS = {
    "dataset": r"[A-Za-z0-9_]+",
    "arch": r"[A-Za-z0-9_]+",
    "mode": MODE_NAME,
    "seed": r"\d+",
    "split": "|".join(SPLITS),
}

#: How a run appears in paths: results/train/<RUN_PATH>/...
RUN_PATH = "{dataset}/{arch}/{mode}/seed{seed}"


@dataclass(frozen=True)
class Run:
    """One training run: (dataset, arch, mode, seed). Every output of a run carries all four."""

    dataset: str
    arch: str
    mode: str
    seed: int

    def columns(self) -> dict:
        return {"dataset": self.dataset, "arch": self.arch, "mode": self.mode, "seed": int(self.seed)}

    @property
    def path(self) -> str:
        return RUN_PATH.format(**self.columns())

    def __str__(self) -> str:
        return self.path

    @classmethod
    def parse(cls, text: str) -> Run:
        """'mnist5k/lenet5/e2e/seed0' -> Run (the inverse of `path`)."""
        pattern = "^" + RUN_PATH.format(**{k: f"(?P<{k}>{v})" for k, v in WILDCARDS.items()}) + "$"
        match = re.match(pattern, str(text))
        if not match:
            raise ValueError(f"run {text!r} is not of the form {RUN_PATH}, e.g. mnist5k/lenet5/e2e/seed0")
        fields = match.groupdict()
        return cls(fields["dataset"], fields["arch"], fields["mode"], int(fields["seed"]))

    @classmethod
    def from_mapping(cls, values: Mapping) -> Run:
        return cls(str(values["dataset"]), str(values["arch"]), str(values["mode"]), int(values["seed"]))


# --------------------------------------------------------------------------- paths

#: What one training run writes in its folder (results/train/<run>/): its metrics table and
#: activation snapshots (declared outputs) and its checkpoint folder (not declared, so Snakemake
#: never deletes it): the resume point of an interrupted run and the snapshots staged until the
#: run is complete.
RUN_FILES = {
    "metrics": "metrics.parquet",
    "snapshots": "snapshots",
    "checkpoint": "checkpoint/state.pt",
    "staged_snapshots": "checkpoint/snapshots",
}
#: File name of a snapshot (in a run's snapshots/<split>/ folder), and of a table (in tables/).
SNAPSHOT_NAME = "epoch{epoch}.pt"
TABLE_NAME = "{table}.parquet"

#: Every output below the output root, by name. Fields in braces: run fields, epoch, table, ...
PATHS = {
    "eval_set": "data/{dataset}/eval_set_{split}.pt",
    "train": "train/" + RUN_PATH,
    **{name: f"train/{RUN_PATH}/{file}" for name, file in RUN_FILES.items()},
    "snapshot": f"train/{RUN_PATH}/{RUN_FILES['snapshots']}/{{split}}/{SNAPSHOT_NAME}",
    "dependence": "dependence/" + RUN_PATH + ".parquet",
    "probe": "probe/" + RUN_PATH + ".parquet",
    "tables": "tables",
    "table": "tables/" + TABLE_NAME,
    "paper": "paper",
    "log": "logs/{stage}/{job}.log",
    "benchmark": "benchmarks/{stage}/{job}.tsv",
}

#: The top-level folders an output root holds; anything else in it is not ours.
OUTPUT_FOLDERS = ("data", "train", "dependence", "probe", "tables", "paper", "logs", "benchmarks")

_SNAPSHOT_RE = re.compile(r"^epoch(\d+)\.pt$")


class _KeepMissing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def pattern(name: str, root: str | os.PathLike = "", **fields) -> str:
    """PATHS[name] under `root` with the given fields filled; the others stay `{field}`
    (Snakemake wildcards). `run=Run(...)` fills the four run fields."""
    run = fields.pop("run", None)
    if run is not None:
        fields = {**run.columns(), **fields}
    text = string.Formatter().vformat(PATHS[name], (), _KeepMissing(fields))
    return os.path.join(str(root), text) if str(root) else text


def path(name: str, root: str | os.PathLike = "", **fields) -> Path:
    """PATHS[name] under `root` with every field filled."""
    text = pattern(name, root, **fields)
    missing = re.findall(r"\{(\w+)\}", text)
    if missing:
        raise ValueError(f"path {name!r} needs the fields {missing}")
    return Path(text)


def run_file(run_dir: str | os.PathLike, name: str, **fields) -> Path:
    """A file of RUN_FILES in one run's training folder (a snapshot: name="snapshot", split=s, epoch=e)."""
    if name == "snapshot":
        return Path(run_dir) / RUN_FILES["snapshots"] / fields["split"] / SNAPSHOT_NAME.format(epoch=fields["epoch"])
    return Path(run_dir) / RUN_FILES[name]


def table_file(tables_dir: str | os.PathLike, table: str) -> Path:
    """The file of table `table` (a key of TABLES) in the tables folder."""
    return Path(tables_dir) / TABLE_NAME.format(table=table)


def snapshot_epoch(file: str | os.PathLike) -> int:
    """The epoch in a snapshot's file name (SNAPSHOT_NAME)."""
    match = _SNAPSHOT_RE.match(Path(file).name)
    if not match:
        raise ValueError(f"{file}: not a snapshot file name ({SNAPSHOT_NAME.format(epoch='N')})")
    return int(match.group(1))


def snapshot_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Snapshot files from files and/or snapshot folders (a run's snapshots/ folder: those of every
    split in it; snapshots/<split>/: that split's), sorted by epoch."""
    files: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found = [p for p in item.iterdir() if _SNAPSHOT_RE.match(p.name)]
            found += [p for split in SPLITS if (item / split).is_dir()
                      for p in (item / split).iterdir() if _SNAPSHOT_RE.match(p.name)]  # fmt: skip
            if not found:
                raise FileNotFoundError(f"{item}: no snapshot files ({SNAPSHOT_NAME.format(epoch='N')}) in this folder")
            files += found
        else:
            files.append(item)
    return sorted(files, key=snapshot_epoch)


# --------------------------------------------------------------------------- tables


#: The contract dtype of a column of float64 lists (Parquet list<double>): in pandas an `object`
#: column whose every cell is a 1-D float64 NumPy array (or missing, in an optional column).
FLOAT_LIST = "list<float64>"


def _pandas_dtype(dtype: str) -> str:
    return "object" if dtype == FLOAT_LIST else dtype


def _float_lists(values) -> list:
    """Cells as 1-D float64 arrays (None stays None); refuses anything else."""
    import numpy as np

    out = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v):
            out.append(None)
            continue
        a = np.asarray(v, dtype=np.float64)
        if a.ndim != 1:
            raise ValueError(f"a {FLOAT_LIST} cell must be a 1-D list of numbers, got shape {a.shape}")
        out.append(a)
    return out


@dataclass(frozen=True)
class Table:
    """A long-format table: its column names in order, their pandas dtypes, its row order.

    Strings are pandas `string`, integers `int64`, reals `float64`, lists of reals `FLOAT_LIST`."""

    name: str
    columns: Mapping[str, str]
    sort: tuple[str, ...]
    #: Columns only some producers have (an estimator's own settings and extras): missing -> NA.
    optional: tuple[str, ...] = ()
    #: Columns added after the table's first version, with the value every older table meant
    #: (missing -> that value): `split` is "test", the only split measured before it existed.
    defaults: Mapping[str, object] = field(default_factory=dict)

    def conform(self, frame: pd.DataFrame, source: str = "") -> pd.DataFrame:
        """The contract's columns, in order, with its dtypes; rows sorted. Refuses missing columns
        (but fills the optional ones with NA)."""
        absent = [c for c in self.optional if c not in frame.columns]
        older = {c: v for c, v in self.defaults.items() if c not in frame.columns}
        if older:
            frame = frame.assign(**older)
        if absent:
            frame = frame.assign(**{c: pd.Series(index=frame.index, dtype=_pandas_dtype(self.columns[c]))
                                    for c in absent})
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            where = f"{source}: " if source else ""
            raise ValueError(f"{where}the {self.name} table lacks column(s) {missing}")
        table = frame[list(self.columns)].astype({c: _pandas_dtype(t) for c, t in self.columns.items()})
        for c in (c for c, t in self.columns.items() if t == FLOAT_LIST):
            table[c] = pd.Series(_float_lists(table[c]), index=table.index, dtype="object")
        if not self.sort:
            return table.reset_index(drop=True)
        return table.sort_values(list(self.sort), ignore_index=True, kind="stable")

    def empty(self) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=_pandas_dtype(t)) for c, t in self.columns.items()})

    def check(self, frame: pd.DataFrame, source: str = "") -> None:
        """Exactly the contract: names, order and dtypes."""
        got = dict(zip(frame.columns, frame.dtypes.astype(str)))
        want = {c: _pandas_dtype(t) for c, t in self.columns.items()}
        if list(frame.columns) == list(self.columns) and got == want:
            for c in (c for c, t in self.columns.items() if t == FLOAT_LIST):
                _float_lists(frame[c])  # every cell a 1-D list of numbers
            return
        extra = [c for c in frame.columns if c not in self.columns]
        wrong = {c: (got[c], t) for c, t in want.items() if c in got and got[c] != t}
        missing = [c for c in self.columns if c not in got]
        raise ValueError(
            f"{source or 'table'} does not follow the {self.name} contract: missing {missing}, "
            f"unexpected {extra}, wrong dtypes {wrong} (got, expected); rerun the job that wrote it"
        )

    def write(self, frame: pd.DataFrame, file: str | os.PathLike) -> pd.DataFrame:
        """Conform and write atomically; returns what was written."""
        table = self.conform(frame, str(file))
        io.write_parquet(table, file)
        return table

    def read(self, file: str | os.PathLike) -> pd.DataFrame:
        """Read a table written by `write`, refusing a corrupt file or another layout."""
        try:
            frame = pd.read_parquet(file)
        except FileNotFoundError:
            raise
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise CorruptFileError(_unreadable(file, err, "Delete it and rerun the job that wrote it.")) from None
        self.check(frame, str(file))
        return frame


_RUN_COLUMNS = {"dataset": "string", "arch": "string", "mode": "string", "seed": "int64"}

#: `readout`: how the row's prediction is made -- for the whole network (layer_name
#: "classifier", the last layer) the mode's read-out ("classifier": the final classifier's
#: logits; "goodness": forward-forward's argmax of summed goodness, whose loss is NaN), for the
#: layers of modes with auxiliary heads "head".
METRICS = Table(
    "metrics",
    {**_RUN_COLUMNS, "epoch": "int64", "split": "string", "layer": "int64", "layer_name": "string",
     "readout": "string", "loss": "float64", "accuracy": "float64"},
    sort=(*RUN_KEYS, "epoch", "split", "layer"),
)  # fmt: skip

#: Settings of a dependence estimator, one column each; a setting is one distinct combination
#: (a key an estimator does not use is missing in its rows: NaN / <NA>). `sigma`: the Gaussian
#: width parameter (nocco/CKA: sigma of the bandwidth rule; renyi with width "fixed": the kernel
#: width itself). `unit`: "" for nHSIC and CKA (unitless), "bits" or "nats" for mutual information.
#: The keys and their dtypes are the estimators' declared settings (`infoplane.estimators.settings`):
#: kernel_x, kernel_y, kernel_z, sigma, bandwidth, epsilon, alpha, width, k, noise_variance,
#: relative, bins, bin_range (and range_max, binning's derived range, not a sort key).
DEPENDENCE_SETTINGS = ("estimator", *_estimator_settings.IDENTITY_KEYS, "unit", "batch_size")

#: One row per run × split × snapshot epoch × layer × estimator setting (`split`: the eval set
#: measured, SPLITS). Values are means over the
#: n_batches consecutive evaluation batches of batch_size eval samples (`*_std`: population std
#: over batches). The evidence: `null_*` the same estimator with Z's samples permuted against X
#: and Y (`permutations` joint permutations; mean and std over permutations and batches; NaN
#: where the estimator has no meaningful null, e.g. I(X;T) of kde and binning, which does not
#: involve X), `null_*_batch_mean_std` the std over permutations of the null's batch mean (the
#: spread the p-value is measured against), `excess_* = value - null mean`, `p_*` the permutation p-value of the reported
#: (batch-mean) value, (1 + #{null batch-means >= value}) / (1 + permutations). The excess per
#: batch: `excess_*_batches` the list (length n_batches, eval-batch order) of value_b minus the
#: mean over permutations of null_{b,p} (all NaN where the estimator has no null), and
#: `excess_*_std` its population std over batches (the excess's own batch spread, in which the
#: null's batch-to-batch variation cancels; `excess_*` is the list's mean). nocco only:
#: `ceiling_zz` = nHSIC(Z;Z), `ceiling_xx`, `ceiling_yy` of the batch. binning only:
#: `saturation_bound` = log2 of the batch size (the largest I(X;T) can be); `range_max` the
#: upper end of the run_max bin range. Diagnostics of the layer: `mean_sq_activation` (per
#: dimension), `median_distance` (median pairwise distance / sqrt(d)), `bandwidth_ratio`
#: (median D_ij / (2 s^2) with s the Gaussian Z kernel's bandwidth; << 1: near-linear regime).
DEPENDENCE = Table(
    "dependence",
    {**_RUN_COLUMNS, "split": "string", "epoch": "int64", "layer": "int64", "layer_name": "string",
     "estimator": "string", **_estimator_settings.COLUMN_DTYPES, "unit": "string",
     "batch_size": "int64", "n_samples": "int64", "n_batches": "int64", "permutations": "int64",
     "value_xz": "float64", "value_xz_std": "float64", "null_xz_mean": "float64", "null_xz_std": "float64",
     "null_xz_batch_mean_std": "float64", "excess_xz": "float64", "excess_xz_batches": FLOAT_LIST,
     "excess_xz_std": "float64", "p_xz": "float64",
     "value_yz": "float64", "value_yz_std": "float64", "null_yz_mean": "float64", "null_yz_std": "float64",
     "null_yz_batch_mean_std": "float64", "excess_yz": "float64", "excess_yz_batches": FLOAT_LIST,
     "excess_yz_std": "float64", "p_yz": "float64",
     "ceiling_zz": "float64", "ceiling_xx": "float64", "ceiling_yy": "float64", "saturation_bound": "float64",
     "mean_sq_activation": "float64", "median_distance": "float64", "bandwidth_ratio": "float64"},
    sort=(*RUN_KEYS, *DEPENDENCE_SETTINGS, "split", "epoch", "layer"),
    optional=(*(k for k in _estimator_settings.COLUMN_DTYPES if k not in _estimator_settings.COMMON_KEYS),
              "saturation_bound", "excess_xz_batches", "excess_xz_std", "excess_yz_batches", "excess_yz_std"),
    defaults={"split": DECLARED_SPLIT},
)  # fmt: skip

#: One row per run × split × snapshot epoch × layer (`infoplane.probe`; `split` as in the dependence
#: table: the probe's halves are both drawn from that split's eval set). The linear probe: `train_accuracy`
#: and `accuracy` (probe-test) of multinomial logistic regression fitted on probe_train_size eval
#: samples and scored on the other probe_test_size; NaN at the epochs the config's `probe.epochs`
#: leaves out. The geometry, at every snapshot epoch, on the raw features: `nc1` the within-class
#: variability collapse tr(Σ_W Σ_B⁺)/C on the whole eval set (Papyan et al. 2020; 0 = every sample
#: on its class mean, lower = tighter class clusters, NaN when all class means coincide);
#: `knn_accuracy` of a `knn_k`-nearest-neighbour classifier fitted on the probe-train samples and
#: scored on the probe-test samples. The geometry columns are optional (NA) so that a probe table
#: built without them (synthetic tests of the paper stage) still conforms.
PROBES = Table(
    "probes",
    {**_RUN_COLUMNS, "split": "string", "epoch": "int64", "layer": "int64", "layer_name": "string",
     "probe_train_size": "int64", "probe_test_size": "int64", "train_accuracy": "float64", "accuracy": "float64",
     "nc1": "float64", "knn_k": "Int64", "knn_accuracy": "float64"},
    sort=(*RUN_KEYS, "split", "epoch", "layer"),
    optional=("nc1", "knn_k", "knn_accuracy"),
    defaults={"split": DECLARED_SPLIT},
)  # fmt: skip

#: results/paper/table6_data_processing.parquet (`infoplane.paper.data_processing`), one row per
#: estimator setting × run × split × snapshot epoch × quantity ("xz": dependence on X, "yz": on Y) × pair
#: of consecutive layers (`layer` -> `next_layer`): `value`, `next_value` the two values
#: (value_xz / value_yz of the dependence table), `increase` = next_value - value, `noise` the
#: threshold 2 × (SE + next SE) (SE: the batch mean's standard error), `relative_increase` =
#: increase / |value|, `determined` (False: one batch, no noise estimate), `violation` = determined
#: and increase > noise, `law` = the estimator estimates a mutual information (unit not "").
DATA_PROCESSING = Table(
    "data_processing",
    {"setting": "string", "estimator": "string", "unit": "string", "law": "bool", **_RUN_COLUMNS,
     "split": "string", "epoch": "int64", "quantity": "string", "layer": "int64", "layer_name": "string", "next_layer": "int64",
     "next_layer_name": "string", "value": "float64", "next_value": "float64", "increase": "float64",
     "noise": "float64", "relative_increase": "float64", "determined": "bool", "violation": "bool"},
    sort=("setting", *RUN_KEYS, "split", "epoch", "quantity", "layer"),
)  # fmt: skip

#: results/paper/claims.parquet, one row per comparison (`infoplane.paper.rule.RESULT_COLUMNS`,
#: whose comment defines each), plus `headline` (the row is under the setting of the headline
#: verdicts: the paper's protocol when measured, or claim 4's "n/a") and `raw_mean`, `raw_ci_low`,
#: `raw_ci_high`: the same statistic on the raw dependence values instead of their excess over the
#: permutation null (reported beside it, never deciding; NaN for claim 4).
CLAIMS = Table(
    "claims",
    {"claim": "string", "part": "string", "primary": "bool", "dataset": "string", "arch": "string",
     "setting": "string", "mode": "string", "reference_mode": "string", "statistic": "string",
     "direction": "string", "n_seeds": "int64", "mean": "float64", "ci_low": "float64", "ci_high": "float64",
     "ci_method": "string", "effect_size": "float64", "p_value": "float64", "p_reverse": "float64",
     "p_corrected": "float64", "p_reverse_corrected": "float64", "family_size": "int64", "test": "string",
     "verdict": "string", "reason": "string", "seeds_needed": "int64", "peak_epoch": "float64",
     "headline": "bool", "raw_mean": "float64", "raw_ci_low": "float64", "raw_ci_high": "float64"},
    sort=(),
)  # fmt: skip

#: results/paper/claim_differences.parquet, one row per comparison x seed
#: (`infoplane.paper.rule.DIFFERENCE_COLUMNS`): difference = value - reference.
CLAIM_DIFFERENCES = Table(
    "claim_differences",
    {"claim": "string", "part": "string", "dataset": "string", "arch": "string", "setting": "string",
     "mode": "string", "reference_mode": "string", "seed": "int64", "value": "float64", "reference": "float64",
     "difference": "float64"},
    sort=(),
)  # fmt: skip

#: The tables of results/tables/, by file stem.
TABLES = {"metrics": METRICS, "dependence": DEPENDENCE, "probes": PROBES}


# --------------------------------------------------------------------------- files


def _unreadable(file, err: BaseException, fix: str) -> str:
    text = str(err).strip()
    if "weights only" in text.lower() or "weights_only" in text:
        # torch's advice (load with weights_only=False) would run whatever code the file holds
        reason = "holds objects other than tensors and plain values, which a safe load refuses"
        return f"{file} cannot be read ({type(err).__name__}: it {reason}): another program wrote it, or it is corrupt. {fix}"
    reason = text.splitlines()[0] if text else type(err).__name__
    return f"{file} cannot be read ({type(err).__name__}: {reason}): it is truncated or corrupt. {fix}"


def _rerun(producer: str) -> str:
    """A fix that works also after failed jobs removed their outputs (deleting the file and
    rerunning can then find "Nothing to be done" while the finished tables are still there)."""
    return f"Run snakemake again with `--forcerun {producer}`: it rewrites this file and reruns what depends on it."


def _rerun_training(file) -> str:
    """Snapshots are hard links of the copies staged beside the checkpoint: remove both."""
    run_folder = Path(file).parent.parent.parent  # <run>/snapshots/<split>/epoch<e>.pt
    return f"Delete the run's folder {run_folder} (snapshots and checkpoint) and rerun snakemake."


def _load(file: str | os.PathLike, kind: str, fix: str, required: Sequence[str], map_location="cpu") -> dict:
    """A .pt file of `kind` with the keys `required`, or a CorruptFileError naming the file and the fix."""
    try:
        content = io.torch_load(file, map_location=map_location)
    except FileNotFoundError:
        raise
    except Exception as err:  # zip/pickle/EOF errors of a damaged file
        raise CorruptFileError(_unreadable(file, err, fix)) from None
    if not isinstance(content, dict) or content.get("format") != kind:
        found = content.get("format") if isinstance(content, dict) else type(content).__name__
        raise CorruptFileError(
            f"{file} is not an infoplane {kind} file (format {found!r}): another version or another "
            f"program wrote it. {fix}"
        )
    missing = [k for k in required if k not in content]
    if missing:
        raise CorruptFileError(f"{file} lacks {missing}. {fix}")
    return content


@dataclass
class EvalSet:
    """The fixed sample set of one split whose activations are saved and measured: for "test" a
    seeded draw of test images, for "train" one of the training images the runs learn from, the
    same for every run of a data set, normalized as the network sees them (no augmentation)."""

    dataset: str
    x: object  # torch.Tensor (n, C, H, W) float32
    y: object  # torch.Tensor (n,) int64
    indices: object  # torch.Tensor (n,) int64, positions in the split's images
    num_classes: int
    split: str = DECLARED_SPLIT


EVAL_SET_FORMAT = "infoplane.eval_set/2"
SNAPSHOT_FORMAT = "infoplane.snapshot/2"
CHECKPOINT_FORMAT = "infoplane.checkpoint/1"


def write_eval_set(file: str | os.PathLike, eval_set: EvalSet) -> None:
    io.torch_save(
        {"format": EVAL_SET_FORMAT, "dataset": eval_set.dataset, "split": eval_set.split, "x": eval_set.x,
         "y": eval_set.y, "indices": eval_set.indices, "num_classes": int(eval_set.num_classes)},
        file,
    )  # fmt: skip


def read_eval_set(file: str | os.PathLike) -> EvalSet:
    c = _load(file, EVAL_SET_FORMAT, _rerun("data"), ("dataset", "split", "x", "y", "indices", "num_classes"))
    return EvalSet(c["dataset"], c["x"], c["y"], c["indices"], int(c["num_classes"]), str(c["split"]))


def read_eval_sets(files: Sequence[str | os.PathLike]) -> dict[str, EvalSet]:
    """The eval sets of one data set by split, refusing two of the same split or of two data sets."""
    found: dict[str, EvalSet] = {}
    for file in files:
        eval_set = read_eval_set(file)
        if eval_set.split in found:
            raise MismatchedInputsError(f"{file}: a second eval set of split {eval_set.split!r}; pass one per split")
        found[eval_set.split] = eval_set
    datasets = {e.dataset for e in found.values()}
    if len(datasets) > 1:
        raise MismatchedInputsError(f"eval sets of several data sets {sorted(datasets)}; pass one data set's")
    return found


@dataclass
class Snapshot:
    """The activations of every layer of one run at one epoch, on the eval set of one split."""

    run: Run
    epoch: int
    layer_names: list[str]
    layers: list  # torch.Tensor (n, ...) per layer, float16 or float32
    indices: object  # the eval set's indices, to check that both belong together
    split: str = DECLARED_SPLIT


def write_snapshot(file: str | os.PathLike, snapshot: Snapshot) -> None:
    io.torch_save(
        {"format": SNAPSHOT_FORMAT, "run": snapshot.run.columns(), "epoch": int(snapshot.epoch),
         "split": snapshot.split, "layer_names": list(snapshot.layer_names), "layers": list(snapshot.layers),
         "indices": snapshot.indices},
        file,
    )  # fmt: skip


def read_snapshot(file: str | os.PathLike, eval_set: EvalSet | None = None) -> Snapshot:
    """A snapshot; with `eval_set`, refuses one taken on other samples (another split, a stale eval
    set or run)."""
    c = _load(file, SNAPSHOT_FORMAT, _rerun_training(file),
              ("run", "epoch", "split", "layer_names", "layers", "indices"))  # fmt: skip
    if len(c["layer_names"]) != len(c["layers"]):
        raise CorruptFileError(f"{file} has {len(c['layers'])} layers but {len(c['layer_names'])} layer names")
    snap = Snapshot(Run.from_mapping(c["run"]), int(c["epoch"]), list(c["layer_names"]), list(c["layers"]),
                    c["indices"], str(c["split"]))  # fmt: skip
    if eval_set is not None:
        _check_samples(file, snap, eval_set)
    return snap


def _check_samples(file, snap: Snapshot, eval_set: EvalSet) -> None:
    """Refuse a snapshot taken on other samples than `eval_set`'s."""
    import torch

    if snap.split != eval_set.split:
        raise MismatchedInputsError(
            f"{file}: a snapshot of the {snap.split} split, measured against the {eval_set.split} split's "
            f"eval set; pass the eval set of every split the snapshots were taken on"
        )
    same = torch.equal(torch.as_tensor(snap.indices).cpu(), torch.as_tensor(eval_set.indices).cpu())
    if not same:
        raise MismatchedInputsError(
            f"{file}: its sample indices differ from the eval set's: the snapshot was taken on another "
            "eval set; rerun training for this data set's current eval set (snakemake --forcerun train)"
        )


def read_snapshots(files: Sequence[str | os.PathLike], eval_sets: EvalSet | Mapping[str, EvalSet]
                   ) -> Iterable[Snapshot]:
    """The snapshots of one run, in epoch order, each checked against the eval set of its split
    (`eval_sets`: one eval set, or a mapping split -> eval set) and all of them against each other."""
    if isinstance(eval_sets, EvalSet):
        eval_sets = {eval_sets.split: eval_sets}
    first: Run | None = None
    seen: set[tuple[str, int]] = set()
    for file in snapshot_files(files):
        snap = read_snapshot(file)
        if snap.split not in eval_sets:
            raise MismatchedInputsError(
                f"{file}: a snapshot of the {snap.split} split, but no eval set of that split was given "
                f"(given: {sorted(eval_sets)}); pass its eval set too"
            )
        _check_samples(file, snap, eval_sets[snap.split])
        if first is None:
            first = snap.run
        elif snap.run != first:
            raise MismatchedInputsError(f"{file} belongs to run {snap.run}, the other snapshots to {first}; pass one run's files")
        if (snap.split, snap.epoch) in seen:
            raise MismatchedInputsError(f"{file}: a second snapshot of split {snap.split!r} at epoch {snap.epoch}")
        seen.add((snap.split, snap.epoch))
        yield snap


def write_checkpoint(file: str | os.PathLike, state: Mapping) -> None:
    io.torch_save({"format": CHECKPOINT_FORMAT, **state}, file)


def read_checkpoint(file: str | os.PathLike, map_location="cpu") -> dict:
    """A checkpoint (CorruptFileError if damaged: the trainer then starts the run afresh)."""
    fix = "Training restarts this run from scratch."
    return _load(file, CHECKPOINT_FORMAT, fix, ("signature", "epoch", "model", "mode", "history"), map_location)
