"""Bad inputs a new user makes, through the real snakemake CLI: each is refused before any job
with one clear message, and the fix a message names works when followed."""

from __future__ import annotations

import copy
import re
import shlex
import subprocess

import pandas as pd
import pytest
import torch

from sweep import BIN, REPO, TINY, env, results, snakemake, write_config

from infoplane import contracts
from infoplane.contracts import Run

pytestmark = pytest.mark.workflow


def _run(workdir, *args, timeout=900):
    return subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=workdir, env=env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _nothing_written(workdir) -> bool:
    return not results(workdir).exists()


def test_repeated_configfile_is_refused_with_a_command_that_works(tmp_path):
    first = write_config(tmp_path, TINY, "tiny.yaml")
    second = write_config(tmp_path, {"seeds": [0, 1]}, "seeds.yaml")
    done = _run(tmp_path, "--cores", "1", "--configfile", first.name, "--configfile", second.name)
    assert done.returncode != 0
    message = re.search(r"--configfile is given 2 times: .*: (snakemake .*)", done.stderr)
    assert message, done.stderr[-3000:]
    assert _nothing_written(tmp_path)
    command = shlex.split(message.group(1))
    assert command[command.index("--configfile") + 1:][:2] == ["tiny.yaml", "seeds.yaml"]
    again = _run(tmp_path, *command[1:], "-n")  # the command the message gives: both files merged
    assert again.returncode == 0, again.stderr[-3000:]
    assert "infoplane: 4 runs × 2 epochs" in again.stdout + again.stderr


def test_unknown_key_is_one_short_message(tmp_path):
    config = copy.deepcopy(TINY) | {"seed": [0]}
    done = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1")
    assert done.returncode != 0
    assert "config key 'seed' is unknown; did you mean 'seeds'?" in done.stderr
    assert "additionalProperties" not in done.stderr and len(done.stderr.splitlines()) < 15, done.stderr
    assert _nothing_written(tmp_path)


def test_yaml_syntax_error_in_config_yaml_names_line_column_and_reason(tmp_path):
    (tmp_path / "config.yaml").write_text("seeds: [0]\ntraining: {epochs: 2\n")
    done = _run(tmp_path, "--cores", "1")
    assert done.returncode != 0
    assert ("config.yaml, line 3, column 1: not valid YAML: expected ',' or '}', but got '<stream end>' "
            "(while parsing a flow mapping, which starts at line 2, column 11)") in done.stderr, done.stderr  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU: device cuda is fine here")
def test_device_cuda_without_a_gpu_is_refused_before_any_job(tmp_path):
    config = copy.deepcopy(TINY) | {"device": "cuda"}
    done = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1")
    assert done.returncode != 0
    assert "config key 'device' = 'cuda': this machine sees no CUDA GPU and snakemake runs the jobs here" in done.stderr
    assert _nothing_written(tmp_path)  # not even the data job ran
    dry = snakemake(tmp_path, write_config(tmp_path, config), "-n")  # a dry run runs no job: allowed
    assert dry.returncode == 0, dry.stderr[-3000:]


def test_output_root_that_cannot_be_created_is_refused_before_any_job(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    config = copy.deepcopy(TINY) | {"output_root": str(blocker / "results")}
    done = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1")
    assert done.returncode != 0
    assert f"{blocker} is a file, not a folder" in done.stderr
    assert "rule data" not in done.stdout + done.stderr  # no job was started


def test_damaged_eval_set_the_fix_its_message_names_works(tmp_path):
    """A finished sweep whose eval set is then damaged: the train jobs fail naming the file and
    a fix; following the fix as written gives the clean sweep's tables again."""
    configfile = write_config(tmp_path, TINY)
    clean = snakemake(tmp_path, configfile, "--cores", "2")
    assert clean.returncode == 0, clean.stderr[-3000:]
    root = results(tmp_path)
    before = {name: pd.read_parquet(contracts.path("table", root, table=name)) for name in contracts.TABLES}
    eval_set = contracts.path("eval_set", root, dataset="mnist5k", split="test")
    eval_set.write_bytes(eval_set.read_bytes()[:300])

    failed = snakemake(tmp_path, configfile, "--cores", "2")
    assert failed.returncode != 0
    log = contracts.path("log", root, stage="train", job="mnist5k/mlp/e2e/seed0").read_text()
    assert f"{eval_set.relative_to(tmp_path)} cannot be read" in log
    fix = re.search(r"Run snakemake again with `([^`]+)`", log)
    assert fix, log[-3000:]

    fixed = snakemake(tmp_path, configfile, "--cores", "2", *shlex.split(fix.group(1)))
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    contracts.read_eval_set(eval_set)
    for name, table in before.items():
        pd.testing.assert_frame_equal(pd.read_parquet(contracts.path("table", root, table=name)), table)
    assert contracts.path("snapshot", root, run=Run("mnist5k", "mlp", "layerwise-ce", 0), split="test", epoch=2).exists()
