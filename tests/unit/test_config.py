"""Config validation: bad values are refused with the key, the value and what is allowed."""

import copy
import shlex
import sys

import pytest
import yaml
from snakemake.cli import parse_config
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
    assert train["snapshots"] == {"epochs": list(range(0, 11, 2)), "dtype": "float16", "splits": ["test"]}
    assert ipconfig.stage_settings(config, "dependence") == config["dependence"]


def test_explicit_snapshot_epochs_win_over_every(tmp_path):
    config = _load(tmp_path, snapshots__epochs=[2, 0, 1, 1])
    assert ipconfig.snapshot_epochs(config) == [0, 1, 2]


# --------------------------------------------------------------------------- --config lists

#: A valid command-line text of every list key of the schema, with the typed value it must
#: become. A list key added to the schema fails `test_every_list_key_has_a_command_line_case`
#: until it has a case here.
LIST_CASES = {
    "datasets": ("[mnist5k]", ["mnist5k"]),
    "archs": ("[mlp,lenet5]", ["mlp", "lenet5"]),
    "modes": ("[e2e,layerwise-ce]", ["e2e", "layerwise-ce"]),
    "seeds": ("[0,1,2,3,4,5,6,7]", [0, 1, 2, 3, 4, 5, 6, 7]),
    "data.augment": ("[hflip,crop]", ["hflip", "crop"]),
    "training.schedule.milestones": ("[1,2]", [1, 2]),
    "snapshots.epochs": ("[0,2]", [0, 2]),
    "snapshots.splits": ("[test,train]", ["test", "train"]),
    "dependence.estimators": ("[nocco,cka]", ["nocco", "cka"]),
    "dependence.kernel_x": ("[gaussian,linear]", ["gaussian", "linear"]),
    "dependence.kernel_y": ("[onehot,linear]", ["onehot", "linear"]),
    "dependence.kernel_z": ("[gaussian,linear]", ["gaussian", "linear"]),
    "dependence.sigma": ("[1,2.5,1e1]", [1, 2.5, 10.0]),
    "dependence.bandwidth": ("[fixed,median]", ["fixed", "median"]),
    "dependence.epsilon": ("[1e-5,0.001]", [1e-5, 1e-3]),
    "dependence.renyi.alpha": ("[1.01,2]", [1.01, 2]),
    "dependence.kde.noise_variance": ("[0.1,1]", [0.1, 1]),
    "dependence.binning.bins": ("[30,10]", [30, 10]),
    "dependence.binning.bin_range": ("[0,1.5]", [0, 1.5]),
}


def _list_keys(node, prefix=""):
    keys = []
    for key, spec in node.get("properties", {}).items():
        alternatives = spec.get("oneOf", [spec])
        types = [t for alt in alternatives for t in ([alt["type"]] if isinstance(alt.get("type"), str) else alt.get("type", []))]
        if "array" in types:
            keys.append(prefix + key)
        keys += _list_keys(spec, f"{prefix}{key}.")
    return keys


def test_every_list_key_has_a_command_line_case():
    assert sorted(_list_keys(ipconfig.schema())) == sorted(LIST_CASES)


def _command_line(dotted: str, text: str) -> str:
    """`--config` text for a dotted key: nested keys as a YAML flow mapping, as a user types it."""
    top, *inner = dotted.split(".")
    for key in reversed(inner):
        text = f"{{{key}: {text}}}"
    return f"{top}={text}"


@pytest.mark.parametrize("dotted", sorted(LIST_CASES))
def test_command_line_lists_get_the_schemas_item_type(dotted):
    """Snakemake's own parser makes every list item a string; `prepare` types it by the schema."""
    text, expected = LIST_CASES[dotted]
    given = parse_config([_command_line(dotted, text)])
    value = given
    for key in dotted.split("."):
        value = value[key]
    assert all(isinstance(item, str) for item in value)  # what snakemake hands over
    config = ipconfig._merge(copy.deepcopy(TINY), given)
    if dotted == "training.schedule.milestones":
        config["training"]["schedule"]["name"] = "multistep"
    config = ipconfig.validate(config, command_line=given)
    for key in dotted.split("."):
        config = config[key]
    assert config == expected and [type(v) for v in config] == [type(v) for v in expected]


def test_command_line_scalars_inside_sections_get_the_schemas_type():
    given = parse_config(["training={epochs: 3, channels_last: false, epochs_per_block: null, lr: 1e-2}", "experiment=2024",
                          "dependence={sigma: 2, renyi: {sigma: null}}"])  # fmt: skip
    config = ipconfig.validate(ipconfig._merge(copy.deepcopy(TINY), given), command_line=given)
    training = config["training"]
    assert (training["epochs"], training["channels_last"], training["epochs_per_block"], training["lr"]) == (3, False, None, 0.01)
    assert config["experiment"] == "2024" and config["dependence"]["sigma"] == 2
    assert config["dependence"]["renyi"]["sigma"] is None


def test_only_the_command_lines_keys_are_typed_and_bad_items_reach_the_schema():
    config = {"seeds": ["0"], "experiment": 5}
    assert ipconfig.from_command_line(copy.deepcopy(config), {"seeds": ["0"]}) == {"seeds": [0], "experiment": 5}
    given = parse_config(["seeds=[0,x]"])
    with pytest.raises(WorkflowError, match="'x' is not of type 'integer'"):
        ipconfig.validate(ipconfig._merge(copy.deepcopy(TINY), given), command_line=given)


def test_the_docs_config_examples_type_through_snakemakes_parser():
    """Each `snakemake ... --config` line of the README and docs/configuration.md, parsed as
    snakemake parses it, validates (tests/workflow/test_commands.py dry-runs them)."""
    import doc_commands

    commands = [command for _, command in doc_commands.commands() if command.startswith("snakemake") and "--config " in command]
    assert "snakemake --cores 8 --config seeds=[0,1,2,3,4,5,6,7]" in commands
    for command in commands:
        words = shlex.split(command)
        entries = []
        for word in words[words.index("--config") + 1:]:
            if word.startswith("-"):
                break
            entries.append(word)
        given = parse_config(entries)
        ipconfig.validate(ipconfig._merge(copy.deepcopy(TINY), given), command_line=given)


# --------------------------------------------------------------------------- bad inputs


def test_repeated_configfile_is_refused_with_the_working_command():
    argv = ["/venv/bin/snakemake", "--cores", "2", "--configfile", "a.yaml", "--configfile", "b.yaml", "-n"]
    with pytest.raises(ipconfig.ConfigError) as err:
        ipconfig.refuse_repeated_configfile(argv)
    assert "given 2 times" in str(err.value)
    assert str(err.value).endswith("snakemake --cores 2 --configfile a.yaml b.yaml -n")
    with pytest.raises(ipconfig.ConfigError, match="--configfile a.yaml b.yaml c.yaml"):
        ipconfig.refuse_repeated_configfile(["snakemake", "--configfile=a.yaml", "--configfiles", "b.yaml", "c.yaml"])
    ipconfig.refuse_repeated_configfile(["snakemake", "--configfile", "a.yaml", "b.yaml", "--config", "seeds=[0]"])
    ipconfig.refuse_repeated_configfile(["snakemake", "--config", "seeds=[0]"])


@pytest.mark.parametrize(("config", "message"), [
    ({"seed": [0]}, r"^config key 'seed' is unknown; did you mean 'seeds'\?$"),
    ({"training": {"epoch": 3}}, r"^config key 'training.epoch' is unknown; did you mean 'training.epochs'\?$"),
    ({"dependence": {"kde": {"noise_varience": 0.1}}}, r"did you mean 'dependence.kde.noise_variance'\?$"),
    ({"zzz": 1}, r"^config key 'zzz' is unknown; the keys at the top level: experiment, output_root, device, .*probe$"),
])  # fmt: skip
def test_unknown_key_gets_one_line_with_its_path_and_the_closest_key(config, message):
    with pytest.raises(ipconfig.ConfigError, match=message):
        ipconfig.load(overrides=config)


def test_yaml_syntax_error_names_file_line_column_and_reason(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [0]\ntraining: {epochs: 2\n")
    with pytest.raises(ipconfig.ConfigError) as err:
        ipconfig.load(bad)
    assert str(err.value) == (
        f"{bad}, line 3, column 1: not valid YAML: expected ',' or '}}', but got '<stream end>' "
        "(while parsing a flow mapping, which starts at line 2, column 11)"
    )
    tabbed = tmp_path / "tab.yaml"
    tabbed.write_text("training:\n\tepochs: 2\n")
    with pytest.raises(ipconfig.ConfigError, match=rf"{tabbed}, line 2, column 1: not valid YAML: found character '\\t'"):
        ipconfig.check_syntax(tabbed)
    listed = tmp_path / "list.yaml"
    listed.write_text("- seeds\n")
    with pytest.raises(ipconfig.ConfigError, match="holds keys such as .* not a list"):
        ipconfig.load(listed)


def test_cuda_without_a_gpu_is_refused_only_where_jobs_run_here(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ipconfig.ConfigError, match="'device' = 'cuda': this machine sees no CUDA GPU"):
        ipconfig.refuse_missing_cuda({"device": "cuda"}, local=True)
    ipconfig.refuse_missing_cuda({"device": "cuda"}, local=False)  # cluster nodes have the GPU
    ipconfig.refuse_missing_cuda({"device": "auto"}, local=True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ipconfig.refuse_missing_cuda({"device": "cuda"}, local=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_output_root_that_cannot_be_created_is_refused(tmp_path):
    with pytest.raises(ipconfig.ConfigError, match=r"'output_root' = '/proc/x': cannot be created \(inside /proc\)"):
        ipconfig.load(overrides={"output_root": "/proc/x"})
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ipconfig.ConfigError, match=rf"{blocker} is a file, not a folder"):
        ipconfig.load(overrides={"output_root": str(blocker / "results")})
    ipconfig.load(overrides={"output_root": str(tmp_path / "new" / "results")})
    assert not (tmp_path / "new").exists()  # the check creates nothing that stays
