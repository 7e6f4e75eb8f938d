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
    assert config["hsic"]["estimators"] == ["nocco"] and config["hsic"]["sigma"] == 5.0
    assert ipconfig.snapshot_epochs(config) == list(range(0, 21, 2))
    assert config["training"]["epochs_per_block"] is None  # schema default filled in


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
        ({"hsic__estimators": ["mine"]}, r"'hsic.estimators\[0\]' = 'mine': unknown estimator; allowed: .*cka.*nocco"),
        ({"hsic__kernel_z": "laplace"}, r"'hsic.kernel_z' = 'laplace': unknown kernel; allowed: .*gaussian"),
        ({"hsic__batch_size": 512}, r"'hsic.batch_size' = 512: larger than snapshots.probe_size = 256"),
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
        ({"training__optimizer": "adagrad"}, "adagrad"),
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


def test_explicit_snapshot_epochs_win_over_every(tmp_path):
    config = _load(tmp_path, snapshots__epochs=[2, 0, 1, 1])
    assert ipconfig.snapshot_epochs(config) == [0, 1, 2]
