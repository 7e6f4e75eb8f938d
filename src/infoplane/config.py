"""Configuration checks beyond the JSON schema, and values derived from the config.

`workflow/schemas/config.schema.yaml` checks types, ranges and fills defaults (snakemake's
`validate`); `check` then checks names against the registries and the relations between
keys, so a bad value stops the run before any job starts with a message naming the key,
the value and what is allowed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, MutableMapping
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value that cannot run; the message names key, value and what is allowed."""


def _fail(key: str, value, problem: str) -> None:
    raise ConfigError(f"config key '{key}' = {value!r}: {problem}")


def _check_names(config: Mapping, key: str, registry) -> None:
    for i, name in enumerate(config[key]):
        if name not in registry:
            _fail(f"{key}[{i}]", name, f"unknown {registry.kind}; allowed: {', '.join(registry.names())}")


def snapshot_epochs(config: Mapping) -> list[int]:
    """Epochs at which activations are saved: explicit list, or every N plus 0 and the last."""
    epochs = config["training"]["epochs"]
    explicit = config["snapshots"].get("epochs")
    if explicit is not None:
        return sorted(set(explicit))
    every = config["snapshots"]["every"]
    return sorted(set(range(0, epochs + 1, every)) | {0, epochs})


def augmentations(config: Mapping, default: tuple[str, ...]) -> tuple[str, ...]:
    """The augmentation names a run uses: the data set's default, none, or the listed ones."""
    augment = config["data"]["augment"]
    if augment == "default":
        return tuple(default)
    if augment == "none":
        return ()
    return tuple(augment)


def check(config: MutableMapping) -> MutableMapping:
    """Check a schema-validated config in place; canonicalizes mode names. Returns it."""
    from . import data, hsic, models, modes

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
    for i, epoch in enumerate(config["snapshots"].get("epochs") or []):
        if epoch > epochs:
            _fail(f"snapshots.epochs[{i}]", epoch, f"beyond the last epoch (training.epochs = {epochs}); allowed: 0..{epochs}")
    for i, milestone in enumerate(training["schedule"].get("milestones", [])):
        if milestone > epochs:
            _fail(f"training.schedule.milestones[{i}]", milestone, f"beyond training.epochs = {epochs}")

    augment = config["data"]["augment"]
    if isinstance(augment, list):
        for i, name in enumerate(augment):
            if name not in data.AUGMENTATIONS:
                _fail(f"data.augment[{i}]", name, f"unknown augmentation; allowed: {', '.join(data.AUGMENTATIONS)}")

    settings = config["hsic"]
    for i, name in enumerate(settings["estimators"]):
        if name not in hsic.ESTIMATORS:
            _fail(f"hsic.estimators[{i}]", name, f"unknown estimator; allowed: {', '.join(hsic.ESTIMATORS.names())}")
    for key in ("kernel_x", "kernel_y", "kernel_z"):
        if settings[key] not in hsic.KERNELS:
            _fail(f"hsic.{key}", settings[key], f"unknown kernel; allowed: {', '.join(hsic.KERNELS)}")
    probe_size = config["snapshots"]["probe_size"]
    if settings["batch_size"] > probe_size:
        _fail("hsic.batch_size", settings["batch_size"], f"larger than snapshots.probe_size = {probe_size}")

    for name in canonical:
        family = modes.MODES.get(modes.ModeSpec.parse(name).family)
        hook = getattr(family, "check_training", None)
        if hook is None:
            continue
        for arch in config["archs"]:
            num_blocks = len(models.build(arch, (1, 28, 28), 10).blocks)
            try:
                hook(training, num_blocks)
            except ValueError as err:
                raise ConfigError(f"mode {name!r} with arch {arch!r}: {err}") from None
    return config


def load(path: str | Path, overrides: Mapping | None = None) -> dict:
    """Read, schema-validate (filling defaults) and check a config file, as the Snakefile does."""
    import yaml
    from snakemake.utils import validate

    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    config = _merge(config, overrides or {})
    validate(config, str(SCHEMA))
    return check(config)


def _merge(base: Mapping, extra: Mapping) -> dict:
    merged = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def gpus_per_job(config: Mapping) -> int:
    """GPUs a train/hsic job asks for: 1 where the config's device resolves to CUDA here.

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
    """Bytes the config's activation snapshots take: runs × snapshot epochs × probe samples × values."""
    from . import data, models

    itemsize = 2 if config["snapshots"]["dtype"] == "float16" else 4
    per_epoch = 0
    for dataset in config["datasets"]:
        meta = data.DATASETS.meta(dataset)
        for arch in config["archs"]:
            net = models.build(arch, meta["in_shape"], meta["num_classes"])
            values = sum(math.prod(shape) for shape in net.layer_shapes())
            per_epoch += values * config["snapshots"]["probe_size"] * itemsize
    return per_epoch * len(snapshot_epochs(config)) * len(config["modes"]) * len(config["seeds"])


def plan_summary(config: Mapping) -> str:
    """One log line: the size of the sweep and the bytes its snapshots will take."""
    runs = len(config["datasets"]) * len(config["archs"]) * len(config["modes"]) * len(config["seeds"])
    size = snapshot_bytes(config)
    return (
        f"infoplane: {runs} runs × {config['training']['epochs']} epochs; activation snapshots at "
        f"{len(snapshot_epochs(config))} epochs per run will take {size:,} bytes ({size / 2**30:.2f} GiB)"
    )
