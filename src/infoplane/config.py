"""The sweep configuration: reading it, schema validation, the checks the schema cannot
express, and the values derived from it (snapshot epochs, the settings each stage receives).

The JSON schema (package data `infoplane/config.schema.yaml`, the same file as the workflow's
`workflow/schemas/config.schema.yaml`) checks types and ranges and holds every default
(snakemake's `validate` fills them in); `check` then checks names against the registries
and the relations between keys, so a bad value stops the run before any job starts, with a
message naming the key, the value and what is allowed. Nothing here repeats a default.
Before the schema, `prepare` gives the command line's `--config` values the schema's types
and refuses renamed and unknown keys with one short line each.
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
import os
import re
import shlex
import tempfile
from collections.abc import Mapping, MutableMapping, Sequence
from importlib import resources
from pathlib import Path

from . import contracts
from .errors import ConfigError

#: The schema, shipped inside the package (read with importlib.resources, so a
#: non-editable install finds it); `workflow/schemas/config.schema.yaml` is the same file,
#: where the Snakefile's `validate` looks for it.
SCHEMA = Path(str(resources.files("infoplane").joinpath("config.schema.yaml")))

#: Keys renamed since earlier versions: old dotted key -> new dotted key.
RENAMED = {
    "hsic": "dependence",
    "probes": "probe",
    "snapshots.probe_size": "snapshots.eval_size",
}

__all__ = ["ConfigError", "check", "load", "defaults", "prepare", "stage_settings", "snapshot_epochs"]


def _fail(key: str, value, problem: str) -> None:
    raise ConfigError(f"config key '{key}' = {value!r}: {problem}")


@functools.cache
def _schema_text() -> str:
    return resources.files("infoplane").joinpath("config.schema.yaml").read_text(encoding="utf-8")


def schema() -> dict:
    """The config schema as a dict (a fresh copy: callers may change it)."""
    import yaml

    return yaml.safe_load(_schema_text())


# --------------------------------------------------------------------------- reading


def read_yaml(path: str | os.PathLike) -> dict:
    """A config file as a dict; a syntax error names the file, line, column and the parser's reason."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        try:
            content = yaml.safe_load(fh)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
            context = ""
            if err.context and err.context_mark is not None and err.context_mark is not mark:
                context = f" ({err.context}, which starts at line {err.context_mark.line + 1}, column {err.context_mark.column + 1})"
            raise ConfigError(f"{path}, {where}: not valid YAML: {err.problem}{context}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: a config file holds keys such as `seeds: [0, 1]`, not a {type(content).__name__}")
    return content


def check_syntax(path: str | os.PathLike) -> None:
    """Refuse a config file with a YAML syntax error, naming where (the Snakefile calls it on
    config.yaml before snakemake's own reader, whose message names neither line nor reason)."""
    if os.path.exists(path):
        read_yaml(path)


_CONFIGFILE_FLAG = re.compile(r"--configf(i(l(es?)?)?)?$")


def refuse_repeated_configfile(argv: Sequence[str]) -> None:
    """`--configfile A --configfile B` makes snakemake (argparse) keep only B, silently.
    Refuse it with the working command: one flag, every file after it."""
    files: list[str] = []
    flags, kept, first = 0, [], None
    i = 0
    while i < len(argv):
        flag, eq, inline = argv[i].partition("=")
        if not _CONFIGFILE_FLAG.match(flag):
            kept.append(argv[i])
            i += 1
            continue
        flags += 1
        first = len(kept) if first is None else first
        if eq:
            files.append(inline)
            i += 1
            continue
        i += 1
        while i < len(argv) and not argv[i].startswith("-"):
            files.append(argv[i])
            i += 1
    if flags < 2:
        return
    command = ["snakemake", *kept[1:first], "--configfile", *files, *kept[first:]]
    raise ConfigError(
        f"--configfile is given {flags} times: snakemake would read only the files of the last one and "
        f"silently ignore the others. Give every file after one --configfile (later files are merged over "
        f"earlier ones): {shlex.join(command)}"
    )


# --------------------------------------------------------------------------- before the schema


def prepare(config: MutableMapping, command_line: Mapping | None = None) -> MutableMapping:
    """What runs before the schema: the command line's values typed by the schema, then renamed
    and unknown keys refused (one line each, instead of the schema validator's dump)."""
    if command_line:
        from_command_line(config, command_line)
    refuse_renamed_keys(config)
    refuse_unknown_keys(config)
    return config


def from_command_line(config: MutableMapping, command_line: Mapping) -> MutableMapping:
    """Give the values that came from `--config KEY=VALUE` the types the schema asks for.

    Snakemake parses a `--config` value inside a list or mapping with YAML's BaseLoader, so
    every item is a string: `seeds=[0,1]` gives ['0', '1'], `dependence={sigma:[1,2]}` gives
    {'sigma': ['1', '2']}. Driven by the schema, for every key: a string becomes an integer,
    number, boolean or null where the schema allows that and not a string; where only a string
    is allowed, a number becomes its text. Only the keys the command line gave are touched, and
    a value that fits no type is left for the schema to refuse."""
    properties = schema()["properties"]
    for key, given in command_line.items():
        if key in config and key in properties:
            config[key] = _coerce(config[key], properties[key], given)
    return config


def _coerce(value, node: Mapping, given):
    if isinstance(given, Mapping) and isinstance(value, MutableMapping):
        properties = node.get("properties", {})
        for key, inner in given.items():
            if key in value and key in properties:
                value[key] = _coerce(value[key], properties[key], inner)
        return value
    return _typed(value, node)


def _typed(value, node: Mapping):
    """`value` converted to fit `node` (a schema), or unchanged where nothing fits."""
    alternatives = node.get("oneOf") or node.get("anyOf")
    if alternatives:
        import jsonschema

        for alternative in alternatives:
            candidate = _typed(copy.deepcopy(value), alternative)
            if jsonschema.Draft202012Validator(alternative).is_valid(candidate):
                return candidate
        return value
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if isinstance(value, list) and "array" in types:
        return [_typed(item, node.get("items", {})) for item in value]
    if isinstance(value, str) and "string" not in types:
        return _parse_scalar(value, types)
    numeric = {"integer", "number", "boolean"} & set(types)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and types == ["string"] and not numeric:
        return str(value)
    return value


_INTEGER = re.compile(r"[+-]?\d+")


def _parse_scalar(text: str, types: list[str]):
    stripped = text.strip()
    if "integer" in types and _INTEGER.fullmatch(stripped):
        return int(stripped)
    if "number" in types:
        if _INTEGER.fullmatch(stripped):
            return int(stripped)
        try:
            return float(stripped)
        except ValueError:
            pass
    if "boolean" in types and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if "null" in types and stripped in ("null", "~", ""):
        return None
    return text


def refuse_renamed_keys(config: Mapping) -> None:
    """Old key names get a message naming the new one (before the schema's generic error)."""
    for old, new in RENAMED.items():
        *parents, last = old.split(".")
        node = config
        for key in parents:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and last in node:
            raise ConfigError(f"config key '{old}' was renamed '{new}': rename it in your config file")


def refuse_unknown_keys(config: Mapping, node: Mapping | None = None, prefix: str = "") -> None:
    """A key the schema does not know, at any level: one line with its path and the closest
    known key (snakemake's validator would print the whole schema around it)."""
    node = schema() if node is None else node
    properties = node.get("properties", {})
    for key, value in config.items():
        path = f"{prefix}{key}"
        if key not in properties:
            if node.get("additionalProperties", True) is not False:
                continue
            close = difflib.get_close_matches(str(key), list(properties), n=1, cutoff=0.6)
            where = f"under '{prefix[:-1]}'" if prefix else "at the top level"
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"the keys {where}: {', '.join(properties)}"
            raise ConfigError(f"config key '{path}' is unknown; {hint}")
        if isinstance(value, Mapping) and "properties" in properties[key]:
            refuse_unknown_keys(value, properties[key], f"{path}.")


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
    _check_writable(value, resolved)
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


def _check_writable(value: str, resolved: Path) -> None:
    """The root, or the closest folder above it that exists, must take a new folder: a root
    the jobs cannot create or write (e.g. under /proc, or a read-only disk) is refused now, not
    at the first job. The probe folder is removed at once."""
    existing = resolved
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        _fail("output_root", value, f"{existing} is a file, not a folder; give a folder such as results")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".infoplane-write-check-", dir=existing))
    except OSError as err:
        problem = "written" if existing == resolved else f"created (inside {existing})"
        _fail("output_root", value, f"cannot be {problem}: {err.strerror}; give a folder you can write, such as results")


def _check_dependence(section: Mapping, eval_size: int) -> None:
    """Estimator names against the registry, then every setting as the engine will see it, by the
    estimator's own checks (the one place a setting is checked: kernel and bandwidth names, sigma,
    renyi's alpha != 1, ...), and the batch size against the eval set and each estimator's minimum."""
    from . import dependence, estimators

    _check_names({"dependence.estimators": section["estimators"]}, "dependence.estimators", estimators.ESTIMATORS)
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
    limit, size = config["data"]["train_limit"], config["snapshots"]["eval_size"]
    if "train" in config["snapshots"]["splits"] and limit is not None and size > limit:
        _fail("snapshots.eval_size", size, f"the train split is drawn from the data.train_limit = {limit} training "
              f"images the runs learn from; set eval_size <= {limit} or raise train_limit")  # fmt: skip
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


def validate(config: MutableMapping, command_line: Mapping | None = None) -> MutableMapping:
    """`prepare` (command-line types, renamed and unknown keys), then the JSON schema (filling
    defaults), then `check`: what the Snakefile does."""
    from snakemake.utils import validate as schema_validate

    prepare(config, command_line)
    schema_validate(config, str(SCHEMA))
    return check(config)


def load(path: str | Path | None = None, overrides: Mapping | None = None) -> dict:
    """Read a config file (or none: every default), merge `overrides`, validate and check it."""
    config = read_yaml(path) if path is not None else {}
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
                "eval_size": config["snapshots"]["eval_size"], "train_limit": config["data"]["train_limit"]}  # fmt: skip
    if stage == "train":
        return {
            "training": config["training"],
            "data": {k: v for k, v in config["data"].items() if k != "download"},
            "snapshots": {"epochs": snapshot_epochs(config), "dtype": config["snapshots"]["dtype"],
                          "splits": list(config["snapshots"]["splits"])},
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
    """Bytes the config's activation snapshots take: runs × splits × snapshot epochs × eval samples × values."""
    from . import data, models

    itemsize = 2 if config["snapshots"]["dtype"] == "float16" else 4
    per_epoch = 0
    for dataset in config["datasets"]:
        meta = data.DATASETS.meta(dataset)
        for arch in config["archs"]:
            net = models.build(arch, meta["in_shape"], meta["num_classes"])
            values = sum(math.prod(shape) for shape in net.layer_shapes())
            per_epoch += values * config["snapshots"]["eval_size"] * itemsize
    epochs = len(snapshot_epochs(config)) * len(config["snapshots"]["splits"])
    return per_epoch * epochs * len(config["modes"]) * len(config["seeds"])


def plan_summary(config: Mapping) -> str:
    """One log line: the size of the sweep and the bytes its snapshots will take."""
    runs = len(config["datasets"]) * len(config["archs"]) * len(config["modes"]) * len(config["seeds"])
    size = snapshot_bytes(config)
    return (
        f"infoplane: {runs} runs × {config['training']['epochs']} epochs; activation snapshots at "
        f"{len(snapshot_epochs(config))} epochs per run ({' and '.join(config['snapshots']['splits'])} split"
        f"{'s' * (len(config['snapshots']['splits']) > 1)}) will take {size:,} bytes ({size / 2**30:.2f} GiB)"
        f" under {os.path.join(config['output_root'], 'train')}"
    )


def refuse_missing_cuda(config: Mapping, local: bool) -> None:
    """`device: cuda` needs a GPU where the jobs run. When snakemake runs the jobs on its own
    machine (`local`), that is this one: refuse it once, before any job, instead of failing in
    every train job. Jobs sent to a cluster run on its nodes, which the submitting host (often
    without a GPU) cannot check, so there it is allowed."""
    if not local or config["device"] != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "config key 'device' = 'cuda': this machine sees no CUDA GPU and snakemake runs the jobs here; "
            "set device: auto or cpu, or send the jobs to GPU nodes (--workflow-profile workflow/profiles/slurm)"
        )
