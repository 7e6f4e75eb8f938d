"""The sweep configuration: schema validation, the checks the schema cannot express, and
the values derived from it (snapshot epochs, the settings each stage receives).

`workflow/schemas/config.schema.yaml` checks types and ranges and holds every default
(snakemake's `validate` fills them in); `check` then checks names against the registries
and the relations between keys, so a bad value stops the run before any job starts, with a
message naming the key, the value and what is allowed. Nothing here repeats a default.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from . import contracts
from .errors import ConfigError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

#: Keys renamed since earlier versions: old dotted key -> new dotted key.
RENAMED = {
    "hsic": "dependence",
    "probes": "probe",
    "snapshots.probe_size": "snapshots.eval_size",
}

__all__ = ["ConfigError", "check", "load", "defaults", "stage_settings", "snapshot_epochs"]


def _fail(key: str, value, problem: str) -> None:
    raise ConfigError(f"config key '{key}' = {value!r}: {problem}")


def refuse_renamed_keys(config: Mapping) -> None:
    """Old key names get a message naming the new one (before the schema's generic error)."""
    for old, new in RENAMED.items():
        *parents, last = old.split(".")
        node = config
        for key in parents:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and last in node:
            raise ConfigError(f"config key '{old}' was renamed '{new}': rename it in your config file")


def _check_names(config: Mapping, key: str, registry) -> None:
    for i, name in enumerate(config[key]):
        if name not in registry:
            _fail(f"{key}[{i}]", name, f"unknown {registry.kind}; allowed: {', '.join(registry.names())}")


def _check_name(key: str, value: str, registry) -> None:
    if value not in registry:
        names = registry.names() if hasattr(registry, "names") else list(registry)
        kind = getattr(registry, "kind", key.rsplit(".", 1)[-1])
        _fail(key, value, f"unknown {kind}; allowed: {', '.join(names)}")


def snapshot_epochs(config: Mapping) -> list[int]:
    """Epochs at which activations are saved: explicit list, or every N plus 0 and the last."""
    epochs = config["training"]["epochs"]
    explicit = config["snapshots"]["epochs"]
    if explicit is not None:
        return sorted(set(explicit))
    every = config["snapshots"]["every"]
    return sorted(set(range(0, epochs + 1, every)) | {0, epochs})


def augmentations(data_settings: Mapping, default: tuple[str, ...]) -> tuple[str, ...]:
    """The augmentation names a run uses: the data set's default, none, or the listed ones."""
    augment = data_settings["augment"]
    if augment == "default":
        return tuple(default)
    if augment == "none":
        return ()
    return tuple(augment)


def _check_output_root(value: str) -> None:
    """Refuse roots that would scatter outputs over the filesystem or mix them into other files."""
    if not value.strip():
        _fail("output_root", value, "empty; give a folder such as results")
    root = Path(value).expanduser()
    resolved = root.resolve()
    if resolved == Path(resolved.anchor):
        _fail("output_root", value, "the filesystem root; give a folder such as results")
    cwd = Path.cwd().resolve()
    if resolved == cwd:
        _fail("output_root", value, "the working directory itself; give a subfolder such as results")
    if resolved.is_relative_to(cwd) or not resolved.exists():
        return
    if not resolved.is_dir():
        _fail("output_root", value, "exists and is not a folder")
    foreign = sorted(p.name for p in resolved.iterdir() if p.name not in contracts.OUTPUT_FOLDERS and p.name[0] != ".")
    if foreign:
        _fail(
            "output_root", value,
            f"a folder outside the working directory that holds other files ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); use an empty or new folder, or an earlier infoplane output",
        )  # fmt: skip


def _check_dependence(section: Mapping, eval_size: int) -> None:
    """Estimator names against the registry, then every setting as the engine will see it, by the
    estimator's own checks (the one place a setting is checked: kernel and bandwidth names, sigma,
    renyi's alpha != 1, ...), and the batch size against the eval set and each estimator's minimum."""
    from . import dependence, estimators

    for i, name in enumerate(section["estimators"]):
        if name not in estimators.ESTIMATORS:
            _fail(f"dependence.estimators[{i}]", name, f"unknown estimator; allowed: {', '.join(estimators.ESTIMATORS.names())}")
    if section["batch_size"] > eval_size:
        _fail("dependence.batch_size", section["batch_size"], f"larger than snapshots.eval_size = {eval_size}")
    for name in section["estimators"]:
        est = estimators.ESTIMATORS.get(name)
        where = f"dependence.{name}" if est.settings.own_section else "dependence"
        try:
            dependence.settings({**section, "estimators": [name]})
        except estimators.SettingError as err:
            _fail(f"{where}.{err.key}", err.value, err.reason)
        except (KeyError, ValueError) as err:
            raise ConfigError(f"config key '{where}': {str(err).strip(chr(34) + chr(39))}") from None
        need = getattr(est, "min_samples", 2)
        if section["batch_size"] < need:
            _fail("dependence.batch_size", section["batch_size"], f"estimator {name!r} needs batches of at least {need}")


def check(config: MutableMapping) -> MutableMapping:
    """Check a schema-validated config in place; canonicalizes mode names. Returns it."""
    from . import data, models, modes, optim

    _check_output_root(config["output_root"])
    _check_names(config, "datasets", data.DATASETS)
    _check_names(config, "archs", models.ARCHS)

    canonical = []
    for i, name in enumerate(config["modes"]):
        try:
            spec = modes.ModeSpec.parse(name)
        except (KeyError, ValueError) as err:
            _fail(f"modes[{i}]", name, str(err).strip("\"'"))
        if spec.name in canonical:
            _fail(f"modes[{i}]", name, f"same mode as {spec.name!r}, listed twice")
        canonical.append(spec.name)
    config["modes"] = canonical

    training = config["training"]
    epochs = training["epochs"]
    _check_name("training.optimizer", training["optimizer"], optim.OPTIMIZERS)
    _check_name("training.schedule.name", training["schedule"]["name"], optim.SCHEDULES)
    for i, epoch in enumerate(config["snapshots"]["epochs"] or []):
        if epoch > epochs:
            _fail(f"snapshots.epochs[{i}]", epoch, f"beyond the last epoch (training.epochs = {epochs}); allowed: 0..{epochs}")
    for i, milestone in enumerate(training["schedule"]["milestones"]):
        if milestone > epochs:
            _fail(f"training.schedule.milestones[{i}]", milestone, f"beyond training.epochs = {epochs}")

    augment = config["data"]["augment"]
    if isinstance(augment, list):
        for i, name in enumerate(augment):
            if name not in data.AUGMENTATIONS:
                _fail(f"data.augment[{i}]", name, f"unknown augmentation; allowed: {', '.join(data.AUGMENTATIONS)}")

    eval_size = config["snapshots"]["eval_size"]
    for dataset in config["datasets"]:
        test_size = data.DATASETS.meta(dataset)["test_size"]
        if eval_size > test_size:
            _fail(
                "snapshots.eval_size", eval_size,
                f"larger than the test split of {dataset!r} ({test_size:,} images); allowed: 2..{test_size}",
            )  # fmt: skip

    _check_dependence(config["dependence"], eval_size)

    for key, allowed in modes.CHOICE_OPTIONS.items():  # every string option, also those no listed mode reads
        if training[key] not in allowed:
            _fail(f"training.{key}", training[key], f"unknown value; allowed: {', '.join(allowed)}")
    for name in canonical:
        for arch in config["archs"]:
            num_blocks = len(models.build(arch, (1, 28, 28), 10).blocks)
            try:
                modes.check_training(name, training, num_blocks)
            except ValueError as err:
                raise ConfigError(f"mode {name!r} with arch {arch!r}: {err}") from None
    return config


def validate(config: MutableMapping) -> MutableMapping:
    """Renamed keys, then the JSON schema (filling defaults), then `check`: what the Snakefile does."""
    from snakemake.utils import validate as schema_validate

    refuse_renamed_keys(config)
    schema_validate(config, str(SCHEMA))
    return check(config)


def load(path: str | Path | None = None, overrides: Mapping | None = None) -> dict:
    """Read a config file (or none: every default), merge `overrides`, validate and check it."""
    import yaml

    config: dict = {}
    if path is not None:
        with open(path) as fh:
            config = yaml.safe_load(fh) or {}
    return validate(_merge(config, overrides or {}))


def defaults(section: str | None = None) -> dict:
    """The schema's defaults: the whole config, or one section (e.g. "training")."""
    config = load()
    return copy.deepcopy(config[section] if section else config)


def _merge(base: Mapping, extra: Mapping) -> dict:
    merged = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def stage_settings(config: Mapping, stage: str) -> dict:
    """What a stage's job receives from the config (its `--settings`; a rerun trigger).

    Only what changes the stage's numbers: e.g. training gets neither `data.download`
    (the data stage downloads; training never does) nor the device."""
    if stage == "data":
        return {"root": config["data"]["root"], "download": config["data"]["download"],
                "eval_size": config["snapshots"]["eval_size"]}  # fmt: skip
    if stage == "train":
        return {
            "training": config["training"],
            "data": {k: v for k, v in config["data"].items() if k != "download"},
            "snapshots": {"epochs": snapshot_epochs(config), "dtype": config["snapshots"]["dtype"]},
        }
    if stage in ("dependence", "probe"):
        return copy.deepcopy(config[stage])
    raise ValueError(f"no settings for stage {stage!r}")


def gpus_per_job(config: Mapping) -> int:
    """GPUs a train/dependence/probe job asks for: 1 where the config's device resolves to CUDA here.

    On a CPU-only machine this is 0, so the default profile's `gpu: 1` cap does not
    serialize CPU jobs; cluster profiles set the resource explicitly per rule.
    """
    if config["device"] == "cpu":
        return 0
    if config["device"] == "cuda":
        return 1
    import torch

    return int(torch.cuda.is_available())


def snapshot_bytes(config: Mapping) -> int:
    """Bytes the config's activation snapshots take: runs × snapshot epochs × eval samples × values."""
    from . import data, models

    itemsize = 2 if config["snapshots"]["dtype"] == "float16" else 4
    per_epoch = 0
    for dataset in config["datasets"]:
        meta = data.DATASETS.meta(dataset)
        for arch in config["archs"]:
            net = models.build(arch, meta["in_shape"], meta["num_classes"])
            values = sum(math.prod(shape) for shape in net.layer_shapes())
            per_epoch += values * config["snapshots"]["eval_size"] * itemsize
    return per_epoch * len(snapshot_epochs(config)) * len(config["modes"]) * len(config["seeds"])


def plan_summary(config: Mapping) -> str:
    """One log line: the size of the sweep and the bytes its snapshots will take."""
    runs = len(config["datasets"]) * len(config["archs"]) * len(config["modes"]) * len(config["seeds"])
    size = snapshot_bytes(config)
    return (
        f"infoplane: {runs} runs × {config['training']['epochs']} epochs; activation snapshots at "
        f"{len(snapshot_epochs(config))} epochs per run will take {size:,} bytes ({size / 2**30:.2f} GiB)"
        f" under {os.path.join(config['output_root'], 'train')}"
    )
