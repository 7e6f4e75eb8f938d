"""infoplane.projection: GPU-hours from fake timings, checked against hand arithmetic."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from infoplane import config, packing, projection

REPO = Path(__file__).resolve().parents[2]


def _cell(**kw) -> projection.Cell:
    base = dict(experiment="x", dataset="cifar10", arch="resnet18", mode="e2e", runs=3, epochs=400,
                train_images=50000, batch_size=128, snapshots=14, probed=2)  # fmt: skip
    return projection.Cell(**(base | kw))


def test_cells_of_a_paper_experiment():
    cfg = config.load(REPO / "experiments" / "resnet18_cifar10.yaml")
    cells = projection.cells("resnet18_cifar10", cfg)
    assert [c.mode for c in cells] == cfg["modes"]
    c = cells[0]
    assert (c.runs, c.epochs, c.train_images, c.batch_size) == (len(cfg["seeds"]), 400, 50000, 128)
    assert c.snapshots == len(config.snapshot_epochs(cfg))
    assert c.probed == (2 if cfg["probe"]["epochs"] == "ends" else c.snapshots)
    ends = {**cfg, "probe": {**cfg["probe"], "epochs": "ends"}}
    assert projection.cells("resnet18_cifar10", ends)[0].probed == 2
    assert c.steps_per_epoch == math.ceil(50000 / 128) == 391


def test_every_paper_experiment_has_cells():
    for name in projection.PAPER_EXPERIMENTS:
        cfg = config.load(REPO / "experiments" / f"{name}.yaml")
        cells = projection.cells(name, cfg)
        assert sum(c.runs for c in cells) == len(cfg["datasets"]) * len(cfg["archs"]) * len(cfg["modes"]) * len(
            cfg["seeds"]
        )
        # a train limit shrinks the epoch
        limited = {**cfg, "data": {**cfg["data"], "train_limit": 1000}}
        assert all(c.train_images == 1000 for c in projection.cells(name, limited))


def test_run_seconds_by_hand():
    cell = _cell(runs=1, epochs=10, train_images=1000, batch_size=100, snapshots=3, probed=2)
    t = projection.Timing(step_s=0.01, evaluate_s=0.5, snapshot_s=0.2, dependence_s=2.0, probe_s=1.0)
    # 10 epochs × (10 steps × 0.01 + 0.5) + 3 × (0.2 + 2.0) + 2 × 1.0 + 3 jobs × 4 s start-up
    assert projection.run_seconds(cell, t, startup_s=4.0) == pytest.approx(10 * 0.6 + 3 * 2.2 + 2.0 + 12.0)


def test_project_divides_by_the_packing_gain_and_sums_experiments():
    t = projection.Timing(step_s=0.01, evaluate_s=0.0, snapshot_s=0.0, dependence_s=0.0, probe_s=0.0)
    a = _cell(experiment="a", mode="e2e", runs=2, epochs=100, train_images=12800, snapshots=0, probed=0)
    b = _cell(experiment="a", mode="layerwise-ce", runs=2, epochs=100, train_images=12800, snapshots=0, probed=0)
    c = _cell(experiment="b", arch="lenet5", runs=4, epochs=36, train_images=12800, snapshots=0, probed=0)
    timings = {a: t, b: projection.Timing(0.02, 0, 0, 0, 0), c: t}
    rows = projection.project([a, b, c], timings, {a: 1.0, b: 1.0, c: 4.0}, startup_s=0.0)
    # a: 2 runs × 100 epochs × 100 steps × 0.01 s = 200 s; b: the same at 0.02 s = 400 s
    assert rows[0].experiment == "a" and rows[0].runs == 4
    assert rows[0].gpu_hours == pytest.approx(600 / 3600)
    assert rows[0].epoch_s == pytest.approx((1.0 + 2.0) / 2)
    # b: 4 runs × 36 × 1 s = 144 s, packed 4 at once with a gain of 4
    assert rows[1].gpu_hours == pytest.approx(144 / 4 / 3600) and rows[1].gain == 4.0
    text = projection.table(rows, "fake")
    assert f"**{600 / 3600 + 36 / 3600:.2f}**" in text and "| b | 4 | 36 |" in text


def test_project_refuses_a_cell_without_timing():
    with pytest.raises(ValueError, match="no timing for cifar10/resnet18/e2e"):
        projection.project([_cell()], {}, {}, 0.0)


def test_packed_jobs_and_gain():
    assert projection.packed_jobs(job_mem_mb=1000, cap_mb=129000, cores=16) == 16  # cores bind
    assert projection.packed_jobs(job_mem_mb=5000, cap_mb=7000, cores=16) == 1  # memory binds
    assert projection.packed_jobs(job_mem_mb=9000, cap_mb=7000, cores=16) == 1  # too large: alone
    assert projection.packing_gain(4.8, 8) == 4.8
    assert projection.packing_gain(9.0, 8) == 8.0  # never above the count
    assert projection.packing_gain(0.7, 8) == 1.0  # packing never assumed to slow a run


def test_small_runs_are_the_lenet_and_mlp_ones():
    assert packing.is_small_run("mnist", "lenet5") and packing.is_small_run("mnist", "mlp")
    assert not packing.is_small_run("cifar10", "resnet18") and not packing.is_small_run("cifar10", "vgg11")
