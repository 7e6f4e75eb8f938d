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

from sweep import BIN, REPO, TINY, env, results, snakemake, snakemake_cmd, write_config

from infoplane import contracts
from infoplane.contracts import Run
from infoplane.paper.figures import KINDS

pytestmark = pytest.mark.workflow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    configfile = write_config(workdir, TINY)
    done = snakemake(workdir, configfile, "--cores", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir, configfile, done


def test_every_parquet_file_follows_its_contract(sweep):
    """Every table the sweep wrote, per run and aggregated, matches its contract exactly."""
    workdir, _, _ = sweep
    root = results(workdir)
    checked = 0
    for name, table in contracts.TABLES.items():
        table.check(pd.read_parquet(contracts.path("table", root, table=name)), name)
        per_run = {"metrics": "metrics", "dependence": "dependence", "probes": "probe"}[name]
        for mode in TINY["modes"]:
            table.check(pd.read_parquet(contracts.path(per_run, root, run=Run("mnist5k", "mlp", mode, 0))), per_run)
            checked += 1
    contracts.CLAIMS.check(pd.read_parquet(contracts.path("paper", root) / "claims.parquet"))
    assert checked == 6


def test_tables_hold_the_sweep(sweep):
    workdir, _, _ = sweep
    root = results(workdir)
    metrics = contracts.METRICS.read(contracts.path("table", root, table="metrics"))
    dependence = contracts.DEPENDENCE.read(contracts.path("table", root, table="dependence"))
    # one dependence row per run × snapshot epoch × layer (mlp: 4 blocks + classifier)
    assert len(dependence) == 2 * 3 * 5
    assert not dependence.duplicated(["mode", "epoch", "layer", "estimator"]).any()
    values = dependence[["value_xz", "value_yz", "value_xz_std", "value_yz_std"]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all()
    assert (dependence["n_samples"] == 256).all() and (dependence["batch_size"] == 128).all()
    assert set(dependence["layer_name"]) == {"fc1", "fc2", "fc3", "fc4", "classifier"}

    final = metrics[(metrics["layer_name"] == "classifier") & (metrics["split"] == "test") & (metrics["epoch"] == 2)]
    assert set(final["mode"]) == {"e2e", "layerwise-ce"}
    assert (final["accuracy"] > 0.15).all()  # above the 10 % of chance after two epochs
    assert final.set_index("mode").loc["e2e", "accuracy"] > 0.5
    # layer-wise has a head per block; e2e only the final classifier
    assert metrics[metrics["mode"] == "e2e"]["layer_name"].unique().tolist() == ["classifier"]
    assert metrics[metrics["mode"] == "layerwise-ce"]["layer"].nunique() == 5


def test_figures_and_accuracy_table(sweep):
    from PIL import Image

    workdir, _, _ = sweep
    paper = contracts.path("paper", results(workdir))
    figures = sorted((paper / "figures").rglob("*.png"))
    # every kind but the sensitivity figure, drawn only for a sigma or epsilon grid
    assert {p.parent.name for p in figures} == set(KINDS) - {"sensitivity"}
    for path in figures:
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as image:
            image.verify()
    text = (paper / "table1_accuracy.md").read_text()
    assert "| mnist5k | mlp |" in text and "e2e" in text and "layerwise-ce" in text


def test_second_run_has_nothing_to_do(sweep):
    workdir, configfile, _ = sweep
    again = snakemake(workdir, configfile, "--cores", "2", "--dry-run")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def test_logs_benchmarks_and_no_leftover_temp_files(sweep):
    workdir, _, _ = sweep
    root = results(workdir)
    for stage in ("train", "dependence", "probe"):
        assert contracts.path("benchmark", root, stage=stage, job="mnist5k/mlp/layerwise-ce/seed0").exists()
    train_log = contracts.path("log", root, stage="train", job="mnist5k/mlp/e2e/seed0").read_text()
    assert "device: cpu" in train_log and "epoch 2/2" in train_log
    assert not list(root.rglob("*.tmp"))


def test_bad_config_stops_before_any_job(tmp_path):
    config = copy.deepcopy(TINY)
    config["archs"] = ["mlp", "resnet99"]
    done = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1")
    assert done.returncode != 0
    assert "config key 'archs[1]' = 'resnet99': unknown arch; allowed:" in done.stderr + done.stdout
    assert not results(tmp_path).exists()


@pytest.mark.parametrize("root", ["", "/"])
def test_output_root_at_the_filesystem_root_is_refused_before_anything_is_written(tmp_path, root):
    config = copy.deepcopy(TINY) | {"output_root": root}
    done = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1")
    assert done.returncode != 0
    assert f"config key 'output_root' = {root!r}" in done.stderr + done.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".snakemake") == ["tiny.yaml"]  # snakemake's own


def test_hard_kill_leaves_a_lock_that_unlock_clears(tmp_path):
    """After SIGKILL snakemake keeps its lock: the rerun says so, `--unlock` clears it (README)."""
    configfile = write_config(tmp_path, TINY)
    proc = subprocess.Popen(
        snakemake_cmd(tmp_path, configfile, "--cores", "1"),
        cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 300
    while not list((tmp_path / ".snakemake" / "locks").glob("*")) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    again = snakemake(tmp_path, configfile, "--cores", "1")  # a dry run does not take the lock
    assert again.returncode != 0 and "--unlock" in again.stdout + again.stderr
    assert snakemake(tmp_path, configfile, "--unlock").returncode == 0
    assert snakemake(tmp_path, configfile, "--cores", "1", "--dry-run").returncode == 0


def test_dry_run_states_snapshot_bytes(tmp_path):
    done = snakemake(tmp_path, write_config(tmp_path, TINY), "--dry-run")
    assert done.returncode == 0, done.stderr[-3000:]
    # mlp layers on 256 eval samples: (512+256+128+64+10) values × 2 bytes × 3 epochs × 2 runs
    expected = (512 + 256 + 128 + 64 + 10) * 256 * 2 * 3 * 2
    assert f"{expected:,} bytes" in done.stderr + done.stdout


def _state_epoch(workdir):
    path = contracts.path("checkpoint", results(workdir), run=Run("mnist5k", "mlp", "e2e", 0))
    if not path.exists():
        return -1
    try:
        return torch.load(path, weights_only=True)["epoch"]
    except Exception:  # being replaced right now
        return -1


def test_killed_sweep_resumes_from_checkpoint_and_matches(tmp_path):
    config = copy.deepcopy(TINY)
    # A tiny epoch takes about 0.25 s: 20 epochs leave seconds between the poll that sees epoch 2
    # and the end of training.
    epochs = 20
    config.update(modes=["e2e"], training={"epochs": epochs, "batch_size": 64}, snapshots={"every": 10, "eval_size": 256})
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference = snakemake(reference_dir, write_config(reference_dir, config), "--cores", "1")
    assert reference.returncode == 0, reference.stderr[-3000:]

    configfile = write_config(killed_dir, config)
    proc = subprocess.Popen(
        snakemake_cmd(killed_dir, configfile, "--cores", "1"),
        cwd=killed_dir, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        # A shell without job control starts background commands with SIGINT ignored, and an
        # ignored signal stays ignored across exec: restore Ctrl-C's default for the sweep.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 600
    while _state_epoch(killed_dir) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to the foreground process group
    proc.wait(timeout=120)
    interrupted_at = _state_epoch(killed_dir)
    assert 2 <= interrupted_at < epochs
    assert not contracts.path("metrics", results(killed_dir), run=Run("mnist5k", "mlp", "e2e", 0)).exists()

    resumed = snakemake(killed_dir, configfile, "--cores", "1", "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = contracts.path("log", results(killed_dir), stage="train", job="mnist5k/mlp/e2e/seed0").read_text()
    assert f"from its checkpoint at epoch {interrupted_at}" in log
    for table in ("metrics", "dependence"):
        a = pd.read_parquet(contracts.path("table", results(reference_dir), table=table))
        b = pd.read_parquet(contracts.path("table", results(killed_dir), table=table))
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

    modes = ["e2e", "layerwise-ce", "layerwise-ce-mlp", "layerwise-supcon", "layerwise-sim", "layerwise-predsim",
             "layerwise_seq-ce", "sigprop", "ff"]
    assert {ModeSpec.parse(m).family for m in modes} == set(MODES.names())
    config = copy.deepcopy(TINY)
    config.update(
        modes=modes,
        data={"train_limit": 500},
        training={"epochs": 4, "batch_size": 100, "epochs_per_block": 1},
        snapshots={"every": 2, "eval_size": 256},
    )
    done = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    root = results(tmp_path)
    dependence, metrics, probes = (
        contracts.TABLES[name].read(contracts.path("table", root, table=name)) for name in ("dependence", "metrics", "probes")
    )
    for mode in modes:
        rows = dependence[dependence["mode"] == mode]
        assert len(rows) == 3 * 5, mode  # snapshot epochs 0, 2, 4 × (4 blocks + classifier)
        assert np.isfinite(rows[["value_xz", "value_yz"]].to_numpy()).all(), mode
        net = metrics[(metrics["mode"] == mode) & (metrics["layer_name"] == "classifier")]
        assert sorted(net["epoch"].unique()) == [0, 1, 2, 3, 4], mode
        assert set(net["readout"]) == {"goodness" if mode == "ff" else "classifier"}, mode
        assert len(probes[probes["mode"] == mode]) == 3 * 5, mode
    paper = contracts.path("paper", root)
    assert (paper / "claims.md").exists()
    assert next((paper / "figures" / "infoplane").glob("mnist5k_mlp_*.png")).read_bytes()[:8] == PNG_MAGIC


def test_console_script_lists_the_stages_named_like_the_rules():
    done = subprocess.run([str(BIN / "infoplane"), "--help"], capture_output=True, text=True, env=env())
    assert done.returncode == 0, done.stderr
    rules = {p.stem for p in (REPO / "workflow" / "rules").glob("*.smk")} - {"common"}
    for stage in rules:
        assert f"    {stage} " in done.stdout or f"    {stage}\n" in done.stdout, stage


def test_a_stage_runs_by_hand_on_a_snapshot_folder_and_matches_the_rule(sweep, tmp_path):
    """`infoplane dependence` on a run's snapshot folder, settings from the config file, gives
    the table the rule wrote."""
    workdir, configfile, _ = sweep
    root = results(workdir)
    run = Run("mnist5k", "mlp", "layerwise-ce", 0)
    out = tmp_path / "by_hand.parquet"
    done = subprocess.run(
        [str(BIN / "infoplane"), "dependence", "--eval-set", str(contracts.path("eval_set", root, dataset="mnist5k", split="test")),
         "--snapshots", str(contracts.path("snapshots", root, run=run)), "--out", str(out), "--device", "cpu",
         "--config", str(configfile)],
        capture_output=True, text=True, env=env(), cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    pd.testing.assert_frame_equal(
        contracts.DEPENDENCE.read(out), contracts.DEPENDENCE.read(contracts.path("dependence", root, run=run))
    )


def test_every_estimator_runs_through_the_workflow_on_the_same_snapshots(tmp_path):
    """Every registered estimator, with its null, measured by the dependence rule on one run's
    snapshots: one row per epoch × layer × setting, the unit of each, its evidence columns."""
    from infoplane.estimators import ESTIMATORS

    config = copy.deepcopy(TINY)
    estimators = ESTIMATORS.names()
    config.update(modes=["e2e"], dependence={"estimators": estimators, "permutations": 4, "sigma": [1.0, 5.0]})
    done = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    table = contracts.DEPENDENCE.read(contracts.path("table", results(tmp_path), table="dependence"))
    kernel = {"nocco", "nocco_normalized", "cka", "cka_unbiased", "cka_minibatch"}
    for name in estimators:
        rows = table[table["estimator"] == name]
        settings = 2 if name in kernel else 1  # the sigma grid multiplies the kernel estimators only
        assert len(rows) == 3 * 5 * settings, name  # epochs 0, 1, 2 × (4 blocks + classifier)
        assert np.isfinite(rows[["value_xz", "value_yz"]].to_numpy()).all(), name
        assert rows["permutations"].eq(4).all() and rows["p_yz"].between(0.2, 1).all(), name  # 1/(1+4) <= p
    assert set(table.loc[table["estimator"].isin(kernel), "unit"]) == {""}
    assert set(table.loc[table["estimator"].isin(["renyi", "binning"]), "unit"]) == {"bits"}
    assert set(table.loc[table["estimator"] == "kde", "unit"]) == {"nats"}
    # I(X;T) of kde and binning does not involve X: no null; binning records its log2(m) bound
    assert table.loc[table["estimator"].isin(["kde", "binning"]), "p_xz"].isna().all()
    binning = table[table["estimator"] == "binning"]
    assert (binning["saturation_bound"] == np.log2(128)).all() and (binning["value_xz"] <= 7 + 1e-9).all()
    assert (contracts.path("paper", results(tmp_path)) / "claims.md").exists()


def test_both_splits_run_through_the_workflow(tmp_path):
    """`snapshots.splits: [test, train]`: two eval sets, snapshots and table rows per split, the
    test split's rows the same numbers as a test-only sweep's, and the train split as its own
    rows of the robustness matrix and panel row of the information plane."""
    config = copy.deepcopy(TINY)
    config.update(modes=["e2e"], training={"epochs": 2, "batch_size": 64},
                  snapshots={"every": 1, "eval_size": 256, "splits": ["test", "train"]})  # fmt: skip
    done = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    root = results(tmp_path)
    run = Run("mnist5k", "mlp", "e2e", 0)
    for split in ("test", "train"):
        assert contracts.read_eval_set(contracts.path("eval_set", root, dataset="mnist5k", split=split)).split == split
        assert contracts.path("snapshot", root, run=run, split=split, epoch=2).exists()
    dependence = contracts.DEPENDENCE.read(contracts.path("table", root, table="dependence"))
    probes = contracts.PROBES.read(contracts.path("table", root, table="probes"))
    assert dependence.groupby("split").size().to_dict() == {"test": 3 * 5, "train": 3 * 5}
    assert probes.groupby("split").size().to_dict() == {"test": 3 * 5, "train": 3 * 5}
    # the test rows are what a sweep without the train split measures
    config["snapshots"]["splits"] = ["test"]
    alone = tmp_path / "alone"
    alone.mkdir()
    done = snakemake(alone, write_config(alone, config), "--cores", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    reference = contracts.DEPENDENCE.read(contracts.path("table", results(alone), table="dependence"))
    pd.testing.assert_frame_equal(dependence[dependence["split"] == "test"].reset_index(drop=True), reference)
    claims = contracts.CLAIMS.read(contracts.path("paper", root) / "claims.parquet")
    assert claims["setting"].str.endswith(" · train split").any()
    assert not claims.loc[claims["headline"], "setting"].str.contains("train split").any()
