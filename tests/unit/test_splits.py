"""Both splits: the train split's eval set, its snapshots, its rows in the measurement tables, and
the paper stage deciding the claims on the test split with the train split as extra rows.

The fixtures make the two splits differ (other images, other layer activations, claims that hold
on one split and fail on the other), so a rule that mixes them up or measures one against the
other's eval set changes a number these tests compare."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from paper_synth import synth

from infoplane import config, contracts, data, dependence, probe, train
from infoplane.contracts import Run
from infoplane.errors import MismatchedInputsError
from infoplane.paper import build
from infoplane.paper import claims as C
from infoplane.paper.common import Inputs

CPU = torch.device("cpu")
RUN = Run("mnist5k", "mlp", "e2e", 0)


pytestmark = pytest.mark.usefixtures("low_resolution")  # figures at 40 dpi (tests/conftest.py)


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist5k")


# ------------------------------------------------------------------------------ the eval sets
def test_the_test_split_is_the_same_draw_as_before_splits_existed(mnist):
    eval_set = data.eval_set(mnist, 300)
    before = torch.randperm(len(mnist.test_y), generator=torch.Generator().manual_seed(data.EVAL_SEED))[:300]
    assert eval_set.split == "test" and torch.equal(eval_set.indices, before)
    assert torch.equal(eval_set.y, mnist.test_y[before])


def test_the_train_split_draws_from_the_training_images_the_runs_learn_from(mnist):
    limit = 1000
    eval_set = data.eval_set(mnist, 300, "train", train_limit=limit)
    learned = set(data.subset_indices(len(mnist.train_y), limit).tolist())
    indices = eval_set.indices.tolist()
    assert eval_set.split == "train" and len(set(indices)) == 300 and set(indices) <= learned
    assert torch.equal(eval_set.x, mnist.normalize(mnist.train_x[eval_set.indices]))
    assert torch.equal(eval_set.y, mnist.train_y[eval_set.indices])
    # not sorted by label: every class in the first batch of 128 (the dependence stage's batches)
    assert len(set(eval_set.y[:128].tolist())) == mnist.num_classes
    again = data.eval_set(mnist, 300, "train", train_limit=limit)
    assert torch.equal(again.indices, eval_set.indices)  # fixed: the same for every run


def test_an_eval_set_larger_than_its_split_is_refused(mnist):
    with pytest.raises(ValueError, match=r"eval_size must be in \[1, 1000\] for the train split"):
        data.eval_set(mnist, 1001, "train", train_limit=1000)
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        data.eval_set(mnist, 10, "validation")


def test_config_refuses_a_train_split_larger_than_the_training_images():
    overrides = {"data": {"train_limit": 500}, "snapshots": {"splits": ["test", "train"], "eval_size": 600}}
    with pytest.raises(config.ConfigError, match="snapshots.eval_size.*train_limit = 500"):
        config.load(overrides=overrides)
    overrides["snapshots"]["splits"] = ["test"]  # the test split alone may be larger
    config.load(overrides=overrides)


# ------------------------------------------------------------------------------ training
SETTINGS = config.stage_settings(
    config.load(overrides={"training": {"epochs": 2, "batch_size": 64, "train_eval_size": 200},
                           "data": {"train_limit": 600}, "snapshots": {"epochs": [0, 2]}}),
    "train",
)  # fmt: skip


def _eval_paths(tmp_path, mnist):
    paths = {}
    for split in contracts.SPLITS:
        paths[split] = contracts.path("eval_set", tmp_path, dataset="mnist5k", split=split)
        contracts.write_eval_set(paths[split], data.eval_set(mnist, 160, split, train_limit=600))
    return paths


def test_snapshotting_the_train_split_leaves_training_and_the_test_snapshots_unchanged(tmp_path, mnist):
    paths = _eval_paths(tmp_path, mnist)
    both = {**SETTINGS, "snapshots": {**SETTINGS["snapshots"], "splits": ["test", "train"]}}
    only_test = {**SETTINGS, "snapshots": {**SETTINGS["snapshots"], "splits": ["test"]}}
    runs = {}
    for name, settings in (("both", both), ("test", only_test)):
        run_dir = contracts.path("train", tmp_path / name, run=RUN)
        runs[name] = (train.train_run(RUN, settings, list(paths.values()), run_dir, CPU), run_dir)
    pd.testing.assert_frame_equal(runs["both"][0], runs["test"][0])
    for epoch in (0, 2):
        a = contracts.read_snapshot(contracts.run_file(runs["both"][1], "snapshot", split="test", epoch=epoch))
        b = contracts.read_snapshot(contracts.run_file(runs["test"][1], "snapshot", split="test", epoch=epoch))
        assert all(torch.equal(x, y) for x, y in zip(a.layers, b.layers))
    assert not (runs["test"][1] / "snapshots" / "train").exists()
    # the train snapshot holds the final network's layers on the train split's images
    eval_train = contracts.read_eval_set(paths["train"])
    snap = contracts.read_snapshot(contracts.run_file(runs["both"][1], "snapshot", split="train", epoch=2), eval_train)
    from infoplane.models import build as build_model

    model = build_model("mlp", mnist.in_shape, mnist.num_classes)
    model.load_state_dict(contracts.read_checkpoint(contracts.run_file(runs["both"][1], "checkpoint"))["model"])
    model.eval()
    with torch.no_grad():
        exact = model.layer_outputs(eval_train.x)
    assert snap.split == "train" and torch.equal(snap.indices, eval_train.indices)
    for stored, want in zip(snap.layers, exact):
        torch.testing.assert_close(stored.float(), want, rtol=2e-3, atol=2e-3)
    # a split asked for without its eval set is refused, naming the fix
    with pytest.raises(MismatchedInputsError, match=r"snapshots.splits asks for \['train'\].*--split"):
        train.train_run(RUN, both, [paths["test"]], tmp_path / "none", CPU)


# ------------------------------------------------------------------------------ measurement
def _synthetic_run(tmp_path, mnist):
    """Eval sets of both splits and snapshots in which the train split's layer carries the label
    (one-hot plus small noise) and the test split's is noise: their Y-dependence differs."""
    paths = _eval_paths(tmp_path, mnist)
    gen = torch.Generator().manual_seed(3)
    files = []
    for split in contracts.SPLITS:
        eval_set = contracts.read_eval_set(paths[split])
        for epoch in (0, 1):
            noise = torch.randn(len(eval_set.y), 10, generator=gen)
            layer = noise if split == "test" else torch.nn.functional.one_hot(eval_set.y, 10).float() + 0.1 * noise
            file = contracts.path("snapshot", tmp_path, run=RUN, split=split, epoch=epoch)
            contracts.write_snapshot(file, contracts.Snapshot(RUN, epoch, ["fc"], [layer], eval_set.indices, split))
            files.append(file)
    return paths, files


DEPENDENCE = config.stage_settings(
    config.load(overrides={"dependence": {"estimators": ["nocco"], "batch_size": 80, "permutations": 8}}),
    "dependence",
)  # fmt: skip


def test_each_split_is_measured_against_its_own_eval_set(tmp_path, mnist):
    paths, files = _synthetic_run(tmp_path, mnist)
    table = dependence.measure_run(list(paths.values()), files, DEPENDENCE, CPU)
    assert sorted(table["split"].unique()) == ["test", "train"] and len(table) == 4
    for split in contracts.SPLITS:
        alone = dependence.measure_run([paths[split]], [f for f in files if f.parent.name == split], DEPENDENCE, CPU)
        rows = table[table["split"] == split].reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, alone)
    train_rows, test_rows = table[table["split"] == "train"], table[table["split"] == "test"]
    assert train_rows["excess_yz"].min() > 10 * max(test_rows["excess_yz"].abs().max(), 1e-3)
    # the probe stage too: the label-carrying train layer is separable, the noise is not
    snapshots_folder = contracts.path("snapshots", tmp_path, run=RUN)  # both splits from the run folder
    probes = probe.probe_run(list(paths.values()), [snapshots_folder], {**config.load()["probe"], "epochs": "all"})
    by_split = probes.groupby("split")["accuracy"].mean()
    assert by_split["train"] > 0.95 and by_split["test"] < 0.3
    assert set(probes["split"]) == {"test", "train"}


def test_a_snapshot_is_refused_against_another_splits_eval_set(tmp_path, mnist):
    paths, files = _synthetic_run(tmp_path, mnist)
    train_files = [f for f in files if f.parent.name == "train"]
    with pytest.raises(MismatchedInputsError, match="no eval set of that split was given"):
        list(contracts.read_snapshots(train_files, contracts.read_eval_set(paths["test"])))
    with pytest.raises(MismatchedInputsError, match="a snapshot of the train split, measured against the test"):
        contracts.read_snapshot(train_files[0], contracts.read_eval_set(paths["test"]))
    with pytest.raises(MismatchedInputsError, match="a second eval set of split 'test'"):
        contracts.read_eval_sets([paths["test"], paths["test"]])


# ------------------------------------------------------------------------------ the paper stage
def _two_splits(train_reversed=True) -> Inputs:
    """Test split: the paper-like tables (every claim holds); train split: the reversed ones."""
    metrics, test_dep, test_probes = synth()
    _, train_dep, train_probes = synth(reverse=train_reversed)
    dep = pd.concat([test_dep.assign(split="test"), train_dep.assign(split="train")], ignore_index=True)
    # clusters tighten over training on the test split and loosen on the train split
    test_probes = test_probes.assign(split="test", nc1=lambda f: 1.0 / (1 + f["epoch"]), knn_k=10, knn_accuracy=0.9)
    train_probes = train_probes.assign(split="train", nc1=lambda f: 1.0 + f["epoch"], knn_k=10, knn_accuracy=0.8)
    probes = pd.concat([test_probes, train_probes], ignore_index=True)
    return Inputs.from_frames(metrics, dep, probes)


FAST = C.Options(n_perm=199)


def test_claims_are_decided_on_the_test_split_and_the_train_split_adds_robustness_rows():
    both = _two_splits()
    alone = Inputs.from_frames(*synth())
    assert both.splits() == ["test", "train"] and both.declared_split() == "test"
    report, reference = C.evaluate(both, FAST), C.evaluate(alone, FAST)
    headline = report.results[report.results["headline"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(headline, reference.results[reference.results["headline"]].reset_index(drop=True))
    assert report.headline_setting == reference.headline_setting and "train" not in report.headline_setting
    # the train rows are the claims decided on the train split's data alone, under their own setting name
    metrics, train_dep, train_probes = synth(reverse=True)
    on_train = C.evaluate(Inputs.from_frames(synth()[0], train_dep, train_probes), FAST).results
    on_train = on_train[on_train["setting"] != "n/a"].assign(setting=lambda f: f["setting"] + " · train split")
    train_rows = report.results[report.results["setting"].str.endswith(" · train split")]
    keys = ["claim", "part", "mode", "reference_mode", "setting"]
    left, right = (f.sort_values(keys)[[*keys, "mean", "p_value", "verdict"]].reset_index(drop=True)
                   for f in (train_rows, on_train))  # fmt: skip
    exact = left["claim"] != "5"  # claim 5's permutation draws are seeded by the setting's name
    pd.testing.assert_frame_equal(left[exact], right[exact])
    assert left["verdict"].tolist() == right["verdict"].tolist()
    dependent = train_rows[train_rows["claim"].isin(["1", "2", "3"]) & (train_rows["verdict"] != "descriptive")]
    assert "fails" in set(dependent["verdict"]) and "holds" not in set(dependent["verdict"])  # reversed data
    assert set(headline.loc[headline["claim"].isin(["1", "2", "3"]) & (headline["verdict"] != "descriptive"),
                            "verdict"]) == {"holds"}  # fmt: skip
    assert any(c.endswith(" · train split") for c in report.matrix.columns)
    assert set(report.lines["n_settings"]) <= {1, 2}  # per claim: the test setting and its train row


def test_only_the_train_split_measured_is_declared_and_says_so():
    metrics, dep, probes = synth()
    only = Inputs.from_frames(metrics, dep.assign(split="train"), probes.assign(split="train"))
    assert only.declared_split() == "train"
    assert "train split (claims and tables)" in only.header("x")
    report = C.evaluate(only, FAST)
    assert not report.results["setting"].str.contains("split").any()


def test_build_reads_the_declared_split_except_where_it_shows_every_split(tmp_path):
    both, alone = _two_splits(), Inputs.from_frames(*synth())
    build(both, tmp_path / "both", "x")
    build(alone, tmp_path / "alone", "x")
    for name in ("table1_accuracy", "table2_separability", "table3_dependence", "table4_compression"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "both" / f"{name}.parquet"),
                                      pd.read_parquet(tmp_path / "alone" / f"{name}.parquet"))  # fmt: skip
    checked = pd.read_parquet(tmp_path / "both" / "table6_data_processing.parquet")
    assert set(checked["split"]) == {"test", "train"}
    alone_checked = pd.read_parquet(tmp_path / "alone" / "table6_data_processing.parquet")
    pd.testing.assert_frame_equal(checked[checked["split"] == "test"].reset_index(drop=True), alone_checked)
    geometry = pd.read_parquet(tmp_path / "both" / "table7_geometry.parquet")
    assert set(geometry["split"]) == {"test", "train"}
    assert sorted(p.name for p in (tmp_path / "both" / "figures" / "geometry").iterdir()) == [
        "toy_net.png", "toy_net_train.png"]


def test_the_schema_offers_exactly_the_splits_of_the_contracts():
    spec = config.schema()["properties"]["snapshots"]["properties"]["splits"]
    assert tuple(spec["items"]["enum"]) == contracts.SPLITS and spec["default"] == [contracts.DECLARED_SPLIT]
    assert contracts.WILDCARDS["split"] == "|".join(contracts.SPLITS)
