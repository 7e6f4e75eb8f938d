"""The dependence stage: how much every layer Z depends on the input X and the label Y, on
every snapshot of one run, each value with its evidence (the engine: `infoplane.estimators`).

Reads the eval sets (inputs X, labels Y of each split) and the run's snapshot files and returns
the run's `contracts.DEPENDENCE` table: one row per (split, epoch, layer, estimator setting), with the
permutation null, excess, p-value, the nocco ceilings and the layer's scale diagnostics.
The permutations are seeded by the run and the epoch, so results are reproducible.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from . import contracts, estimators, runtime

log = logging.getLogger("infoplane")

#: Purpose of the derived permutation seed (see runtime.derived_seed).
_NULL_SEED = 11


def settings(section: Mapping) -> list[dict]:
    """The distinct estimator settings of the config's `dependence` section, in order.

    Each estimator's keys are those its settings declare (`estimators.settings`): the kernel
    family reads the section's flat keys, an estimator with its own sub-section (`renyi`, `kde`,
    `binning`) reads that; a key the section lacks takes the declared default. Every value may be
    a list: each combination is its own setting (`estimators.expand_settings`), except where the
    key declares a list to be one value (binning's [lo, hi] `bin_range`)."""
    out: list[dict] = []
    for name in section["estimators"]:
        declared = estimators.ESTIMATORS.get(name).settings
        source = section.get(name, {}) if declared.own_section else section
        keys = {k: source[k] for k in declared.keys() if k in source}
        out += estimators.expand_settings({"estimators": [name], **keys})
    return out


def null_seed(run: contracts.Run, epoch: int) -> int:
    """The permutation seed of one snapshot: derived from the run and the epoch."""
    return runtime.derived_seed(zlib.crc32(run.path.encode()), run.seed, epoch, _NULL_SEED)


def _run_max(snapshot_paths: Sequence[Path], eval_sets: Mapping[str, contracts.EvalSet]) -> dict[str, list[float]]:
    """Per split and layer, its largest activation over all snapshots of the run (binning's run_max range)."""
    peak: dict[str, list[float]] = {}
    for snap in contracts.read_snapshots(snapshot_paths, eval_sets):
        values = [float(z.float().max()) for z in snap.layers]
        old = peak.get(snap.split)
        peak[snap.split] = values if old is None else [max(a, b) for a, b in zip(old, values)]
    return peak


def measure_snapshot(eval_set: contracts.EvalSet, snapshot: contracts.Snapshot, section: Mapping,
                     device: torch.device, run_max: Sequence[float] | None = None,
                     references: estimators.ReferenceCache | None = None) -> pd.DataFrame:
    """The dependence rows of one snapshot (all layers × estimator settings); ``references`` keeps
    X's and Y's prepared references across the snapshots of a run."""
    common = dict(batch_size=section["batch_size"], permutations=section["permutations"],
                  seed=null_seed(snapshot.run, snapshot.epoch), num_classes=eval_set.num_classes, device=device,
                  references=references)
    chosen = settings(section)
    per_layer = [s for s in chosen if s.get("bin_range") == "run_max"]
    shared = [s for s in chosen if s.get("bin_range") != "run_max"]
    frames = []
    if shared:
        frames.append(estimators.measure_snapshot(eval_set.x, eval_set.y, snapshot.layers, shared,
                                                  layer_names=snapshot.layer_names, **common))
    for index, (name, z) in enumerate(zip(snapshot.layer_names, snapshot.layers)):
        if not per_layer:
            break
        resolved = [{**s, "range_max": max(run_max[index], 0.0)} for s in per_layer]
        frame = estimators.measure_snapshot(eval_set.x, eval_set.y, [z], resolved, layer_names=[name], **common)
        frames.append(frame.assign(layer=index))
    table = pd.concat(frames, ignore_index=True)
    if "bin_range" in table:
        table["bin_range"] = [f"[{v[0]:g}, {v[1]:g}]" if isinstance(v, (list, tuple)) else v if isinstance(v, str)
                              else None for v in table["bin_range"]]
    return table.assign(epoch=snapshot.epoch, split=snapshot.split, **snapshot.run.columns())


def measure_run(eval_set_paths: Path | Sequence[Path], snapshot_paths: Sequence[Path], section: Mapping,
                device: torch.device) -> pd.DataFrame:
    """The dependence table of one run: every split, snapshot, layer and estimator setting; each
    snapshot measured against the eval set of its split."""
    paths = [eval_set_paths] if isinstance(eval_set_paths, (str, Path)) else list(eval_set_paths)
    eval_sets = contracts.read_eval_sets(paths)
    needs_run_max = any(s.get("bin_range") == "run_max" for s in settings(section))
    run_max = _run_max(snapshot_paths, eval_sets) if needs_run_max else {}
    snapshots = contracts.read_snapshots(snapshot_paths, eval_sets)
    # a split's X and Y are the same for every snapshot of it: one cache per split
    references = {split: estimators.ReferenceCache() for split in eval_sets}
    frames = [measure_snapshot(eval_sets[snap.split], snap, section, device, run_max.get(snap.split),
                               references[snap.split])
              for snap in tqdm(snapshots, desc="snapshots", mininterval=2.0, disable=False)]
    return contracts.DEPENDENCE.conform(pd.concat(frames, ignore_index=True))
