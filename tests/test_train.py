"""The trainer: resume equals an uninterrupted run, determinism, snapshot contents, errors."""

import json

import pandas as pd
import pytest
import torch

from infoplane import io, prepare, train
from infoplane.data import load
from infoplane.models import build

SETTINGS = {
    "training": {
        "epochs": 3,
        "batch_size": 64,
        "optimizer": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "schedule": {"name": "multistep", "milestones": [2], "gamma": 0.5},
        "train_eval_size": 500,
        "eval_batch_size": 500,
    },
    "data": {"root": "data", "download": False, "augment": "default", "train_limit": 1000},
    "device": "cpu",
    "snapshots": {"epochs": [0, 2, 3], "dtype": "float16"},
}


@pytest.fixture(scope="module")
def probe_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "probe.pt"
    io.torch_save(prepare.probe_set(load("mnist5k"), 200), path)
    return path


def _train(tmp, probe_path, mode="layerwise-ce", arch="mlp", stop_after=None, settings=SETTINGS):
    run = train.Run("mnist5k", arch, mode, 0)
    return train.train_run(
        run, settings, probe_path, tmp / "ck", tmp / "snap", tmp / "metrics.parquet", torch.device("cpu"), stop_after
    )


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, probe_path):
    full = _train(tmp_path / "full", probe_path)
    assert _train(tmp_path / "cut", probe_path, stop_after=1) is None
    assert not (tmp_path / "cut" / "metrics.parquet").exists()
    assert torch.load(tmp_path / "cut" / "ck" / "state.pt", weights_only=True)["epoch"] == 1
    resumed = _train(tmp_path / "cut", probe_path)
    pd.testing.assert_frame_equal(full, resumed)
    for epoch in SETTINGS["snapshots"]["epochs"]:
        a = io.torch_load(tmp_path / "full" / "snap" / f"epoch{epoch}.pt")
        b = io.torch_load(tmp_path / "cut" / "snap" / f"epoch{epoch}.pt")
        for x, y in zip(a["layers"], b["layers"]):
            assert torch.equal(x, y)


def test_same_seed_same_numbers_and_training_learns(tmp_path, probe_path):
    first = _train(tmp_path / "a", probe_path, mode="e2e", arch="lenet5")
    second = _train(tmp_path / "b", probe_path, mode="e2e", arch="lenet5")
    pd.testing.assert_frame_equal(first, second)
    net = first[(first["layer_name"] == "classifier") & (first["split"] == "test")].set_index("epoch")
    assert net.loc[3, "accuracy"] > 0.7 > 0.3 > net.loc[0, "accuracy"]


def test_metrics_rows_and_schema(tmp_path, probe_path):
    table = _train(tmp_path, probe_path)
    assert dict(table.dtypes.astype(str)) == {k: v for k, v in train.METRICS_COLUMNS.items()}
    # 4 epochs (0..3) × 2 splits × (4 heads + classifier) for the 4-block mlp
    assert len(table) == 4 * 2 * 5
    assert set(table["layer_name"]) == {"fc1", "fc2", "fc3", "fc4", "classifier"}
    assert table["accuracy"].between(0, 1).all() and table["loss"].gt(0).all()


def test_snapshot_holds_every_layer_on_the_probe_set(tmp_path, probe_path):
    _train(tmp_path, probe_path, mode="e2e", arch="lenet5")
    snap = io.torch_load(tmp_path / "snap" / "epoch3.pt")
    probe = io.torch_load(probe_path)
    model = build("lenet5", (1, 28, 28), 10)
    state = io.torch_load(tmp_path / "ck" / "state.pt")
    model.load_state_dict(state["model"])
    model.eval()
    assert snap["epoch"] == 3 and snap["layer_names"] == model.layer_names
    assert torch.equal(snap["indices"], probe["indices"])
    with torch.no_grad():
        expected = model.layer_outputs(probe["x"])
    for stored, exact, shape in zip(snap["layers"], expected, model.layer_shapes()):
        assert stored.dtype == torch.float16 and tuple(stored.shape) == (200, *shape)
        torch.testing.assert_close(stored.float(), exact, rtol=2e-3, atol=2e-3)


def test_checkpoint_from_other_settings_is_not_resumed(tmp_path, probe_path):
    _train(tmp_path, probe_path, stop_after=1)
    other = json.loads(json.dumps(SETTINGS))
    other["training"]["lr"] = 5e-4
    table = _train(tmp_path, probe_path, settings=other)
    fresh = _train(tmp_path / "fresh", probe_path, settings=other)
    pd.testing.assert_frame_equal(table, fresh)


def test_diverged_run_fails_with_a_clear_message(tmp_path, probe_path):
    bad = json.loads(json.dumps(SETTINGS))
    bad["training"].update(optimizer="sgd", lr=1e12, momentum=0.0)
    with pytest.raises(train.DivergedError, match="diverged at epoch 1"):
        _train(tmp_path, probe_path, mode="e2e", settings=bad)
    assert not (tmp_path / "metrics.parquet").exists()


def test_throughput_benchmark_runs_and_reports_the_ratio(capsys):
    from infoplane.bench import train as bench

    bench.main(["--arch", "mlp", "--epochs", "1"])
    out = capsys.readouterr().out
    assert "bare PyTorch loop" in out and "pipeline train step" in out
    ratio = float(out.split("ratio")[1].split()[1])
    assert ratio > 0
