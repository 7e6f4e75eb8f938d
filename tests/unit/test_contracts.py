"""The shared contracts: run identity, paths, table layouts and the file formats."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from infoplane import contracts
from infoplane.contracts import EvalSet, Run, Snapshot
from infoplane.errors import CorruptFileError


def _eval_set(n=4):
    return EvalSet("toy", torch.zeros(n, 1, 2, 2), torch.arange(n) % 2, torch.arange(n), 2)


def _snapshot(run=Run("toy", "mlp", "e2e", 0), epoch=3, indices=None):
    return Snapshot(run, epoch, ["fc1", "classifier"], [torch.ones(4, 3), torch.zeros(4, 2)],
                    torch.arange(4) if indices is None else indices)


def test_run_path_round_trips_and_bad_text_is_refused():
    run = Run("mnist5k", "lenet5", "layerwise-ce-mlp", 12)
    assert run.path == "mnist5k/lenet5/layerwise-ce-mlp/seed12"
    assert Run.parse(run.path) == run
    with pytest.raises(ValueError, match="not of the form"):
        Run.parse("mnist5k/lenet5/e2e/12")


def test_patterns_keep_unfilled_fields_as_wildcards_and_paths_need_all():
    assert contracts.pattern("snapshot", "results", epoch=4) == (
        "results/train/{dataset}/{arch}/{mode}/seed{seed}/snapshots/{split}/epoch4.pt"
    )
    run = Run("d", "a", "m", 1)
    assert str(contracts.path("dependence", "out", run=run)) == "out/dependence/d/a/m/seed1.parquet"
    with pytest.raises(ValueError, match=r"needs the fields \['split', 'epoch'\]"):
        contracts.path("snapshot", "out", run=run)
    assert str(contracts.path("snapshot", "out", run=run, split="train", epoch=2)) == (
        "out/train/d/a/m/seed1/snapshots/train/epoch2.pt")


def test_snapshot_files_are_found_in_a_folder_and_sorted_by_epoch(tmp_path):
    for epoch in (10, 0, 2):
        (tmp_path / contracts.SNAPSHOT_NAME.format(epoch=epoch)).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in contracts.snapshot_files([tmp_path])] == ["epoch0.pt", "epoch2.pt", "epoch10.pt"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no snapshot files"):
        contracts.snapshot_files([tmp_path / "empty"])


def test_snapshot_round_trip_and_eval_set_check(tmp_path):
    path = tmp_path / "epoch3.pt"
    contracts.write_snapshot(path, _snapshot())
    back = contracts.read_snapshot(path, _eval_set())
    assert back.run == Run("toy", "mlp", "e2e", 0) and back.epoch == 3 and back.layer_names == ["fc1", "classifier"]
    assert torch.equal(back.layers[0], torch.ones(4, 3))
    contracts.write_snapshot(path, _snapshot(indices=torch.arange(1, 5)))
    with pytest.raises(ValueError, match=r"epoch3\.pt: its sample indices differ from the eval set's"):
        contracts.read_snapshot(path, _eval_set())


def test_snapshots_of_two_runs_are_not_mixed(tmp_path):
    contracts.write_snapshot(tmp_path / "epoch0.pt", _snapshot(epoch=0))
    contracts.write_snapshot(tmp_path / "epoch1.pt", _snapshot(Run("toy", "mlp", "e2e", 1), epoch=1))
    with pytest.raises(ValueError, match="belongs to run toy/mlp/e2e/seed1"):
        list(contracts.read_snapshots([tmp_path], _eval_set()))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_damaged_files_get_a_message_naming_the_file_and_the_fix(tmp_path, damage):
    path = tmp_path / "train" / "toy" / "snapshots" / "epoch3.pt"
    path.parent.mkdir(parents=True)
    contracts.write_snapshot(path, _snapshot())
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"not a torch file at all")
    else:
        torch.save({"epoch": 3}, path)
    with pytest.raises(CorruptFileError) as err:
        contracts.read_snapshot(path)
    message = str(err.value)
    assert str(path) in message and "Delete the run's folder" in message and str(path.parent.parent) in message

    eval_path = tmp_path / "eval_set.pt"
    contracts.write_eval_set(eval_path, _eval_set())
    eval_path.write_bytes(eval_path.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match="--forcerun data"):
        contracts.read_eval_set(eval_path)


def test_a_file_a_safe_load_refuses_gets_no_advice_to_load_it_unsafely(tmp_path):
    """torch's message for such a file advises weights_only=False, which would run the file's
    code: the message names the problem without passing that advice on."""
    import fractions

    path = tmp_path / "state.pt"
    torch.save({"format": contracts.CHECKPOINT_FORMAT, "epoch": fractions.Fraction(1, 3)}, path)
    with pytest.raises(CorruptFileError) as err:
        contracts.read_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path} cannot be read (UnpicklingError: it holds objects other than tensors")
    assert "weights_only" not in message and "can still be loaded" not in message
    assert message.endswith("Training restarts this run from scratch.")


def test_tables_conform_check_and_refuse(tmp_path):
    rows = pd.DataFrame(
        [{"dataset": "d", "arch": "a", "mode": "m", "seed": 1, "epoch": 2, "split": "test", "layer": 0,
          "layer_name": "classifier", "readout": "classifier", "loss": 1.0, "accuracy": 0.5, "extra": 1}]
    )  # fmt: skip
    table = contracts.METRICS.conform(rows)
    assert list(table.columns) == list(contracts.METRICS.columns)
    contracts.METRICS.check(table)
    with pytest.raises(ValueError, match="lacks column"):
        contracts.METRICS.conform(rows.drop(columns="accuracy"))
    with pytest.raises(ValueError, match=r"wrong dtypes \{'seed'"):
        contracts.METRICS.check(table.astype({"seed": "float64"}))
    path = tmp_path / "m.parquet"
    contracts.METRICS.write(rows, path)
    pd.testing.assert_frame_equal(contracts.METRICS.read(path), table)
    path.write_bytes(b"PAR1 broken")
    with pytest.raises(CorruptFileError, match="m.parquet cannot be read"):
        contracts.METRICS.read(path)


def test_checkpoint_format_is_checked(tmp_path):
    path = tmp_path / "state.pt"
    contracts.write_checkpoint(path, {"signature": "s", "epoch": 1, "model": {}, "mode": {}, "history": []})
    assert contracts.read_checkpoint(path)["epoch"] == 1
    torch.save({"signature": "s"}, path)
    with pytest.raises(CorruptFileError, match="restarts this run from scratch"):
        contracts.read_checkpoint(path)
