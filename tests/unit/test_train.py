"""The trainer: resume equals an uninterrupted run, determinism, snapshot contents, errors."""

import json

import pandas as pd
import pytest
import torch

from infoplane import config, contracts, data, optim, runtime, train
from infoplane.contracts import Run
from infoplane.errors import CorruptFileError, DivergedError
from infoplane.models import build
from infoplane.modes import make_mode

SETTINGS = config.stage_settings(
    config.load(
        overrides={
            "training": {"epochs": 3, "batch_size": 64, "schedule": {"name": "multistep", "milestones": [2], "gamma": 0.5},
                         "train_eval_size": 500, "eval_batch_size": 500},
            "data": {"train_limit": 1000},
            "snapshots": {"epochs": [0, 2, 3]},
        }
    ),
    "train",
)  # fmt: skip
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def eval_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "eval_set.pt"
    contracts.write_eval_set(path, data.eval_set(data.load("mnist5k"), 200))
    return path


def _run(mode="layerwise-ce", arch="mlp"):
    return Run("mnist5k", arch, mode, 0)


def _train(root, eval_path, mode="layerwise-ce", arch="mlp", stop_after=None, settings=SETTINGS):
    run = _run(mode, arch)
    return train.train_run(run, settings, eval_path, contracts.path("train", root, run=run), CPU, stop_after)


def _snapshot(root, epoch, mode="layerwise-ce", arch="mlp"):
    return contracts.read_snapshot(contracts.path("snapshot", root, run=_run(mode, arch), split="test", epoch=epoch))


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, eval_path):
    full = _train(tmp_path / "full", eval_path)
    assert _train(tmp_path / "cut", eval_path, stop_after=1) is None
    assert not contracts.path("metrics", tmp_path / "cut", run=_run()).exists()
    assert contracts.read_checkpoint(contracts.path("checkpoint", tmp_path / "cut", run=_run()))["epoch"] == 1
    resumed = _train(tmp_path / "cut", eval_path)
    pd.testing.assert_frame_equal(full, resumed)
    for epoch in SETTINGS["snapshots"]["epochs"]:
        a, b = _snapshot(tmp_path / "full", epoch), _snapshot(tmp_path / "cut", epoch)
        for x, y in zip(a.layers, b.layers):
            assert torch.equal(x, y)


def test_corrupt_checkpoint_restarts_the_run_and_says_so(tmp_path, eval_path, caplog):
    _train(tmp_path, eval_path, stop_after=1)
    state = contracts.path("checkpoint", tmp_path, run=_run())
    state.write_bytes(state.read_bytes()[:1000])
    with pytest.raises(CorruptFileError):
        contracts.read_checkpoint(state)
    with caplog.at_level("WARNING", logger="infoplane"):
        table = _train(tmp_path, eval_path)
    assert "Training restarts this run from scratch" in caplog.text and str(state) in caplog.text
    pd.testing.assert_frame_equal(table, _train(tmp_path / "fresh", eval_path))


def test_same_seed_same_numbers_and_training_learns(tmp_path, eval_path):
    first = _train(tmp_path / "a", eval_path, mode="e2e", arch="lenet5")
    second = _train(tmp_path / "b", eval_path, mode="e2e", arch="lenet5")
    pd.testing.assert_frame_equal(first, second)
    net = first[(first["layer_name"] == "classifier") & (first["split"] == "test")].set_index("epoch")
    assert net.loc[3, "accuracy"] > 0.7 > 0.3 > net.loc[0, "accuracy"]


def test_metrics_rows_and_schema(tmp_path, eval_path):
    table = _train(tmp_path, eval_path)
    contracts.METRICS.check(table)
    contracts.METRICS.check(contracts.METRICS.read(contracts.path("metrics", tmp_path, run=_run())))
    # 4 epochs (0..3) × 2 splits × (4 heads + classifier) for the 4-block mlp
    assert len(table) == 4 * 2 * 5
    assert set(table["layer_name"]) == {"fc1", "fc2", "fc3", "fc4", "classifier"}
    assert table["accuracy"].between(0, 1).all() and table["loss"].gt(0).all()


def test_snapshot_holds_every_layer_on_the_eval_set(tmp_path, eval_path):
    _train(tmp_path, eval_path, mode="e2e", arch="lenet5")
    run = _run("e2e", "lenet5")
    eval_set = contracts.read_eval_set(eval_path)
    snap = contracts.read_snapshot(contracts.path("snapshot", tmp_path, run=run, split="test", epoch=3), eval_set)
    model = build("lenet5", (1, 28, 28), 10)
    model.load_state_dict(contracts.read_checkpoint(contracts.path("checkpoint", tmp_path, run=run))["model"])
    model.eval()
    assert snap.epoch == 3 and snap.layer_names == model.layer_names and snap.run == run
    with torch.no_grad():
        expected = model.layer_outputs(eval_set.x)
    for stored, exact, shape in zip(snap.layers, expected, model.layer_shapes()):
        assert stored.dtype == torch.float16 and tuple(stored.shape) == (200, *shape)
        torch.testing.assert_close(stored.float(), exact, rtol=2e-3, atol=2e-3)


def test_checkpoint_from_other_settings_is_not_resumed(tmp_path, eval_path):
    _train(tmp_path, eval_path, stop_after=1)
    other = json.loads(json.dumps(SETTINGS))
    other["training"]["lr"] = 5e-4
    table = _train(tmp_path, eval_path, settings=other)
    fresh = _train(tmp_path / "fresh", eval_path, settings=other)
    pd.testing.assert_frame_equal(table, fresh)


def test_diverged_run_fails_with_a_clear_message(tmp_path, eval_path):
    bad = json.loads(json.dumps(SETTINGS))
    bad["training"].update(optimizer="sgd", lr=1e12, momentum=0.0)
    with pytest.raises(DivergedError, match="diverged at epoch 1"):
        _train(tmp_path, eval_path, mode="e2e", settings=bad)
    assert not contracts.path("metrics", tmp_path, run=_run("e2e")).exists()


def _with(**training):
    settings = json.loads(json.dumps(SETTINGS))
    settings["training"].update(training)
    return settings


def test_bf16_autocast_learns_as_fp32_does_and_stores_the_same_snapshot_format(tmp_path, eval_path):
    tables, snaps = {}, {}
    for precision in ("fp32", "bf16"):
        root = tmp_path / precision
        tables[precision] = _train(root, eval_path, mode="e2e", arch="lenet5", settings=_with(precision=precision))
        snaps[precision] = _snapshot(root, 3, mode="e2e", arch="lenet5")
    final = {p: t[(t.layer_name == "classifier") & (t.split == "test") & (t.epoch == 3)].accuracy.item()
             for p, t in tables.items()}  # fmt: skip
    assert final["fp32"] > 0.7 and abs(final["bf16"] - final["fp32"]) < 0.05
    # bf16 really ran: the same seed no longer gives the same numbers after the first step
    last = {p: t.loc[t.epoch == 3, "loss"].to_numpy() for p, t in tables.items()}
    assert not (last["fp32"] == last["bf16"]).all()
    a, b = snaps["fp32"], snaps["bf16"]
    assert a.layer_names == b.layer_names and a.epoch == b.epoch == 3
    for x, y in zip(a.layers, b.layers):
        assert x.dtype == y.dtype == torch.float16 and x.shape == y.shape and torch.isfinite(y).all()


def test_precision_and_determinism_resolve_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert runtime.resolve_precision("auto", cpu) == "fp32" and runtime.resolve_precision("auto", cuda) == "bf16"
    assert runtime.resolve_precision("bf16", cpu) == "bf16"
    assert runtime.resolve_deterministic("auto", cpu) is True and runtime.resolve_deterministic("auto", cuda) is False
    assert runtime.resolve_deterministic(True, cuda) is True
    with pytest.raises(ValueError, match="training.precision"):
        runtime.resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="training.deterministic"):
        runtime.resolve_deterministic("yes", cpu)
    with runtime.autocast("bf16", cpu):
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == torch.bfloat16
    with runtime.autocast("fp32", cpu):
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == torch.float32


def test_fused_optimizer_only_where_every_parameter_is_on_cuda():
    params = list(torch.nn.Linear(3, 2).parameters())
    assert optim.fused(params, {"fused_optimizer": True}) == {}  # CPU: the reference optimizer
    opt = optim.make_optimizer(params, SETTINGS["training"])
    assert not opt.defaults.get("fused")


def test_config_rejects_unknown_training_speed_settings():
    for key, value in (("precision", "fp16"), ("deterministic", "yes"), ("compile", "fast")):
        with pytest.raises(Exception, match=key):
            config.load(overrides={"training": {key: value}})


def test_compile_wraps_every_block_classifier_and_head_and_keeps_checkpoint_names():
    """`training.compile` (structure only: compiling a 3-epoch CPU run took minutes here)."""
    model = build("mlp", (1, 28, 28), 10)
    names = set(model.state_dict())
    mode = make_mode("layerwise-ce", model, SETTINGS["training"])
    train.compile_modules(model, mode, "default")
    parts = [*model.blocks, model.classifier, *mode.heads]
    assert all(part._compiled_call_impl is not None for part in parts)
    assert model._compiled_call_impl is None  # the whole model is not: modes call its blocks one by one
    assert set(model.state_dict()) == names
