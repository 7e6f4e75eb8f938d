"""Config validation: bad values are refused with the key, the value and what is allowed."""

import copy

import pytest
import yaml
from snakemake.exceptions import WorkflowError

from infoplane import config as ipconfig
from sweep import REPO, TINY, write_config


def _load(tmp_path, **changes):
    config = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return ipconfig.load(write_config(tmp_path, config))


def test_default_config_is_valid_and_filled():
    config = ipconfig.load(REPO / "config.yaml")
    assert config["modes"] == ["e2e", "layerwise-ce"]
    assert config["dependence"]["estimators"] == ["nocco", "cka_unbiased"] and config["dependence"]["sigma"] == 5.0
    assert config["dependence"]["permutations"] == 32 and config["dependence"]["renyi"]["alpha"] == 1.01
    assert ipconfig.snapshot_epochs(config) == list(range(0, 11, 2))
    assert config["training"]["epochs_per_block"] is None  # schema default filled in
    assert config["training"]["schedule"] == {"name": "none", "milestones": [], "gamma": 0.2}  # nested defaults


def test_defaults_come_from_the_schema_and_are_not_shared():
    import yaml

    schema = yaml.safe_load(ipconfig.SCHEMA.read_text())
    probe = schema["properties"]["probe"]["properties"]
    assert ipconfig.defaults("probe") == {key: spec["default"] for key, spec in probe.items()}
    first = ipconfig.defaults()
    first["training"]["schedule"]["milestones"].append(3)
    assert ipconfig.defaults("training")["schedule"]["milestones"] == []


def test_registry_names_need_no_schema_enum():
    """Names a registry owns are checked against the registry, so registering an entry needs
    no schema edit: the schema must not list them."""
    import yaml

    schema = yaml.safe_load(ipconfig.SCHEMA.read_text())["properties"]
    for section, key in [("training", "optimizer"), ("dependence", "bandwidth"), ("dependence", "kernel_z")]:
        assert "enum" not in schema[section]["properties"][key], f"{section}.{key}"
    assert "enum" not in schema["training"]["properties"]["schedule"]["properties"]["name"]


@pytest.mark.parametrize(("old", "new", "config"), [
    ("hsic", "dependence", {"hsic": {"sigma": 1.0}}),
    ("probes", "probe", {"probes": {"l2": 0.1}}),
    ("snapshots.probe_size", "snapshots.eval_size", {"snapshots": {"probe_size": 100}}),
])  # fmt: skip
def test_renamed_keys_name_the_new_key(tmp_path, old, new, config):
    with pytest.raises(ipconfig.ConfigError, match=rf"config key '{old}' was renamed '{new}'"):
        ipconfig.load(overrides=config)


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_experiment_config_is_valid(path):
    # snakemake merges an experiment (--configfile) over config.yaml, and so does this
    config = ipconfig.load(REPO / "config.yaml", overrides=yaml.safe_load(path.read_text()))
    assert config["experiment"] == path.stem


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"archs": ["mlp", "resnet99"]}, r"config key 'archs\[1\]' = 'resnet99': unknown arch; allowed: .*lenet5.*mlp"),
        ({"datasets": ["imagenet"]}, r"'datasets\[0\]' = 'imagenet': unknown dataset; allowed: .*mnist5k"),
        ({"modes": ["e2e", "backprop"]}, r"'modes\[1\]' = 'backprop': unknown mode .*allowed: .*e2e.*layerwise"),
        ({"modes": ["layerwise-xent"]}, r"'modes\[0\]' = 'layerwise-xent'.*unknown local loss 'xent'; allowed: ce"),
        ({"modes": ["layerwise", "layerwise-ce"]}, r"'modes\[1\]' = 'layerwise-ce': same mode as 'layerwise-ce'"),
        ({"snapshots__epochs": [0, 5]}, r"'snapshots.epochs\[1\]' = 5: beyond the last epoch \(training.epochs = 2\); allowed: 0..2"),
        ({"dependence__estimators": ["mine"]}, r"'dependence.estimators\[0\]' = 'mine': unknown estimator; allowed: .*cka.*nocco"),
        ({"dependence__kernel_z": "laplace"}, r"'dependence.kernel_z' = 'laplace': unknown kernel; allowed: .*gaussian"),
        ({"dependence__bandwidth": "widest"}, r"'dependence.bandwidth' = 'widest': unknown bandwidth rule; allowed: .*median"),
        ({"dependence__batch_size": 512}, r"'dependence.batch_size' = 512: larger than snapshots.eval_size = 256"),
        ({"snapshots__eval_size": 100000}, r"'snapshots.eval_size' = 100000: larger than the test split of 'mnist5k' \(1,000 images\); allowed: 2..1000"),
        ({"training__optimizer": "adagrad"}, r"'training.optimizer' = 'adagrad': unknown optimizer; allowed: adam, adamw, sgd"),
        ({"training__schedule": {"name": "linear"}}, r"'training.schedule.name' = 'linear': unknown schedule; allowed: cosine, multistep, none"),
        ({"dependence__bandwidth": ["fixed", "widest"]}, r"'dependence.bandwidth' = 'widest': unknown bandwidth rule"),
        ({"dependence__estimators": ["renyi"], "dependence__renyi": {"alpha": 1}},
         r"'dependence.renyi': renyi: alpha must be > 0 and != 1"),
        ({"dependence__estimators": ["renyi"], "dependence__renyi": {"width": "fixed"}},
         r"'dependence.renyi': setting for estimator 'renyi' lacks sigma"),
        ({"dependence__estimators": ["cka_unbiased"], "dependence__batch_size": 3, "snapshots__eval_size": 256},
         r"'dependence.batch_size' = 3: estimator 'cka_unbiased' needs batches of at least 4"),
        ({"training__ff_readout": "argmax"}, r"'training.ff_readout' = 'argmax': .*allowed: goodness, softmax"),
        ({"output_root": ""}, r"'output_root' = '': empty"),
        ({"output_root": "/"}, r"'output_root' = '/': the filesystem root"),
        ({"output_root": "."}, r"'output_root' = '.': the working directory itself"),
        ({"data__augment": ["rotate"]}, r"'data.augment\[0\]' = 'rotate': unknown augmentation; allowed: .*hflip"),
        ({"training__schedule": {"name": "multistep", "milestones": [9]}}, r"milestones\[0\]' = 9: beyond training.epochs = 2"),
    ],
)
def test_bad_names_and_relations_are_refused(tmp_path, changes, message):
    with pytest.raises(ipconfig.ConfigError, match=message):
        _load(tmp_path, **changes)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"training__epochs": -3}, "epochs"),
        ({"probe__train_fraction": 1.0}, "train_fraction"),
        ({"device": "tpu"}, "tpu"),
        ({"seeds": []}, "seeds"),
        ({"training__lr": 0}, "lr"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_schema_violations_are_refused(tmp_path, changes, fragment):
    with pytest.raises(WorkflowError, match=fragment):
        _load(tmp_path, **changes)


def test_layerwise_alias_is_canonicalized(tmp_path):
    config = _load(tmp_path, modes=["e2e", "layerwise", "layerwise-ce-mlp"])
    assert config["modes"] == ["e2e", "layerwise-ce", "layerwise-ce-mlp"]


def test_output_root_outside_the_working_directory_must_not_hold_other_files(tmp_path, monkeypatch):
    work, outside = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    ipconfig.load(overrides={"output_root": str(outside)})  # new: fine
    outside.mkdir()
    (outside / "train").mkdir()
    (outside / "logs").mkdir()
    ipconfig.load(overrides={"output_root": str(outside)})  # an earlier infoplane output: fine
    (outside / "thesis.tex").write_text("")
    with pytest.raises(ipconfig.ConfigError, match=r"outside the working directory that holds other files \(thesis.tex\)"):
        ipconfig.load(overrides={"output_root": str(outside)})
    ipconfig.load(overrides={"output_root": "sub/results"})  # inside the working directory: fine


def test_stage_settings_leave_out_what_does_not_change_numbers():
    config = ipconfig.load(REPO / "config.yaml")
    train = ipconfig.stage_settings(config, "train")
    assert "download" not in train["data"] and "device" not in train
    assert train["snapshots"] == {"epochs": list(range(0, 11, 2)), "dtype": "float16"}
    assert ipconfig.stage_settings(config, "dependence") == config["dependence"]


def test_explicit_snapshot_epochs_win_over_every(tmp_path):
    config = _load(tmp_path, snapshots__epochs=[2, 0, 1, 1])
    assert ipconfig.snapshot_epochs(config) == [0, 1, 2]
