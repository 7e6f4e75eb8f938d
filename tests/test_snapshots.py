"""The shared pieces of the per-run measurement jobs."""

import pytest
import torch

from infoplane import measure
from infoplane.snapshots import check_matches_probe, run_identity, run_job_parser


def test_snapshot_of_other_samples_is_refused_by_name():
    probe = {"indices": torch.tensor([1, 4, 7])}
    check_matches_probe({"indices": torch.tensor([1, 4, 7])}, probe)
    with pytest.raises(ValueError, match=r"epoch3\.pt: sample indices differ from probe\.pt"):
        check_matches_probe({"indices": torch.tensor([1, 4, 8])}, probe, "epoch3.pt")


def test_measure_job_refuses_a_stale_snapshot(tmp_path):
    probe = {"x": torch.zeros(4, 2), "y": torch.tensor([0, 1, 0, 1]), "indices": torch.arange(4), "num_classes": 2}
    snap = {"epoch": 0, "layer_names": ["a"], "layers": [torch.zeros(4, 2)], "indices": torch.arange(1, 5)}
    torch.save(snap, tmp_path / "epoch0.pt")
    with pytest.raises(ValueError, match="indices differ"):
        measure.measure_run(probe, [tmp_path / "epoch0.pt"], {}, {}, torch.device("cpu"))


def test_run_identity_from_the_shared_command_line():
    args = run_job_parser("job", "").parse_args(
        ["--probe-data", "p.pt", "--snapshots", "a.pt", "b.pt", "--dataset", "mnist5k", "--arch", "mlp",
         "--mode", "e2e", "--seed", "3", "--out", "o.parquet"]
    )
    assert run_identity(args) == {"dataset": "mnist5k", "arch": "mlp", "mode": "e2e", "seed": 3}
    assert [p.name for p in args.snapshots] == ["a.pt", "b.pt"] and args.threads is None
