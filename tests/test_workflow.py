"""The real snakemake CLI on a tiny sweep: outputs, contracts, idempotence, errors, resume."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch

from infoplane.measure import HSIC_COLUMNS
from infoplane.train import METRICS_COLUMNS
from sweep import BIN, REPO, TINY, env, snakemake, snakemake_cmd, write_config

pytestmark = pytest.mark.workflow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    configfile = write_config(workdir, TINY)
    done = snakemake(workdir, configfile, "--cores", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir, configfile, done


def test_tables_follow_the_contract(sweep):
    workdir, _, _ = sweep
    metrics = pd.read_parquet(workdir / "results/tables/metrics.parquet")
    hsic = pd.read_parquet(workdir / "results/tables/hsic.parquet")
    assert list(metrics.columns) == list(METRICS_COLUMNS)
    assert dict(metrics.dtypes.astype(str)) == METRICS_COLUMNS
    assert list(hsic.columns) == list(HSIC_COLUMNS)
    assert dict(hsic.dtypes.astype(str)) == HSIC_COLUMNS

    # one nHSIC row per run × snapshot epoch × layer (mlp: 4 blocks + classifier)
    assert len(hsic) == 2 * 3 * 5
    assert not hsic.duplicated(["mode", "epoch", "layer", "estimator"]).any()
    values = hsic[["nhsic_xz", "nhsic_yz", "nhsic_xz_std", "nhsic_yz_std"]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all()
    assert (hsic["n_samples"] == 256).all() and (hsic["batch_size"] == 128).all()
    assert set(hsic["layer_name"]) == {"fc1", "fc2", "fc3", "fc4", "classifier"}

    final = metrics[(metrics["layer_name"] == "classifier") & (metrics["split"] == "test") & (metrics["epoch"] == 2)]
    assert set(final["mode"]) == {"e2e", "layerwise-ce"}
    assert (final["accuracy"] > 0.15).all()  # above the 10 % of chance after two epochs
    assert final.set_index("mode").loc["e2e", "accuracy"] > 0.5
    # layer-wise has a head per block; e2e only the final classifier
    assert metrics[metrics["mode"] == "e2e"]["layer_name"].unique().tolist() == ["classifier"]
    assert metrics[metrics["mode"] == "layerwise-ce"]["layer"].nunique() == 5


def test_plots_and_accuracy_summary(sweep):
    workdir, _, _ = sweep
    for name in ("infoplane_mnist5k_mlp.png", "accuracy_mnist5k_mlp.png"):
        path = workdir / "results/plots" / name
        assert path.read_bytes()[:8] == PNG_MAGIC
        from PIL import Image

        with Image.open(path) as image:
            image.verify()
    text = (workdir / "results/tables/accuracy.md").read_text()
    assert "| mnist5k | mlp |" in text and "e2e" in text and "layerwise-ce" in text


def test_second_run_has_nothing_to_do(sweep):
    workdir, configfile, _ = sweep
    again = snakemake(workdir, configfile, "--cores", "2", "--dry-run")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_logs_benchmarks_and_no_leftover_temp_files(sweep):
    workdir, _, _ = sweep
    results = workdir / "results"
    assert (results / "benchmarks/train/mnist5k/mlp/e2e/seed0.tsv").exists()
    assert (results / "benchmarks/hsic/mnist5k/mlp/layerwise-ce/seed0.tsv").exists()
    train_log = (results / "logs/train/mnist5k/mlp/e2e/seed0.log").read_text()
    assert "device: cpu" in train_log and "epoch 2/2" in train_log
    assert not list(results.rglob("*.tmp"))


def test_bad_config_stops_before_any_job(tmp_path):
    config = copy.deepcopy(TINY)
    config["archs"] = ["mlp", "resnet99"]
    done = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1")
    assert done.returncode != 0
    assert "config key 'archs[1]' = 'resnet99': unknown arch; allowed:" in done.stderr + done.stdout
    assert not (tmp_path / "results").exists()


def test_dry_run_states_snapshot_bytes(tmp_path):
    done = snakemake(tmp_path, write_config(tmp_path, TINY), "--dry-run")
    assert done.returncode == 0, done.stderr[-3000:]
    # mlp layers on 256 probe samples: (512+256+128+64+10) values × 2 bytes × 3 epochs × 2 runs
    expected = (512 + 256 + 128 + 64 + 10) * 256 * 2 * 3 * 2
    assert f"{expected:,} bytes" in done.stderr + done.stdout


def _state_epoch(workdir):
    path = workdir / "results/checkpoints/mnist5k/mlp/e2e/seed0/state.pt"
    if not path.exists():
        return -1
    try:
        return torch.load(path, weights_only=True)["epoch"]
    except Exception:  # being replaced right now
        return -1


def test_killed_sweep_resumes_from_checkpoint_and_matches(tmp_path):
    config = copy.deepcopy(TINY)
    config.update(modes=["e2e"], training={"epochs": 6, "batch_size": 64}, snapshots={"every": 3, "probe_size": 256})
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference = snakemake(reference_dir, write_config(reference_dir, config), "--cores", "1")
    assert reference.returncode == 0, reference.stderr[-3000:]

    configfile = write_config(killed_dir, config)
    proc = subprocess.Popen(
        snakemake_cmd(killed_dir, configfile, "--cores", "1"),
        cwd=killed_dir, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 600
    while _state_epoch(killed_dir) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to the foreground process group
    proc.wait(timeout=120)
    interrupted_at = _state_epoch(killed_dir)
    assert 2 <= interrupted_at < 6
    assert not (killed_dir / "results/runs/mnist5k/mlp/e2e/seed0/metrics.parquet").exists()

    resumed = snakemake(killed_dir, configfile, "--cores", "1", "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (killed_dir / "results/logs/train/mnist5k/mlp/e2e/seed0.log").read_text()
    assert f"from its checkpoint at epoch {interrupted_at}" in log
    for table in ("metrics", "hsic"):
        a = pd.read_parquet(reference_dir / f"results/tables/{table}.parquet")
        b = pd.read_parquet(killed_dir / f"results/tables/{table}.parquet")
        pd.testing.assert_frame_equal(a, b)


def test_lint_and_format():
    lint = subprocess.run(
        [str(BIN / "snakemake"), "--lint"],
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=300,
    )
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"], cwd=REPO, env=env(), capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stderr[-3000:]


@pytest.mark.parametrize("experiment", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_experiment_dry_runs(tmp_path, experiment):
    done = subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(experiment), "-n"],
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "activation snapshots" in done.stdout + done.stderr and "train" in done.stdout


def test_every_mode_runs_through_the_whole_pipeline(tmp_path):
    """Every registered mode family (and the local-loss/head variants) trains, is measured,
    probed, tabulated, plotted and checked by the unchanged downstream rules."""
    from infoplane.modes import MODES, ModeSpec

    modes = ["e2e", "layerwise-ce", "layerwise-ce-mlp", "layerwise-supcon", "layerwise-sim",
             "layerwise_seq-ce", "sigprop", "ff"]
    assert {ModeSpec.parse(m).family for m in modes} == set(MODES.names())
    config = copy.deepcopy(TINY)
    config.update(
        modes=modes,
        data={"train_limit": 500},
        training={"epochs": 4, "batch_size": 100, "epochs_per_block": 1},
        snapshots={"every": 2, "probe_size": 256},
    )
    done = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    tables = tmp_path / "results/tables"
    hsic = pd.read_parquet(tables / "hsic.parquet")
    metrics = pd.read_parquet(tables / "metrics.parquet")
    probes = pd.read_parquet(tables / "probes.parquet")
    for mode in modes:
        rows = hsic[hsic["mode"] == mode]
        assert len(rows) == 3 * 5, mode  # snapshot epochs 0, 2, 4 × (4 blocks + classifier)
        assert np.isfinite(rows[["nhsic_xz", "nhsic_yz"]].to_numpy()).all(), mode
        net = metrics[(metrics["mode"] == mode) & (metrics["layer_name"] == "classifier")]
        assert sorted(net["epoch"].unique()) == [0, 1, 2, 3, 4], mode
        assert len(probes[probes["mode"] == mode]) == 3 * 5, mode
    assert (tmp_path / "results/paper/claims.md").exists()
    assert (tmp_path / "results/plots/infoplane_mnist5k_mlp.png").read_bytes()[:8] == PNG_MAGIC
