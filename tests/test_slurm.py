"""The sweep on a live SLURM cluster through `snakemake --profile workflow/profiles/slurm`.

Needs a running cluster whose nodes declare a `gpu` GRES, e.g. the single-node one of
`tests/slurm/cluster.sh start` (which `.ci/run` brings up); skipped otherwise.

One tiny sweep (two runs) is submitted; while one run trains, its job is killed with
`scancel` after its first checkpoint. Then snakemake is run again and must finish the
sweep from that checkpoint. Checked: every train and hsic job ran inside a SLURM job that
snakemake submitted, the killed run resumed (not restarted), and the tables equal those of
a local run of the same config. A second, fast test checks that an unknown partition
stops the sweep with SLURM's own message.

Test-only flags: without slurmdbd (as in cluster.sh) `sacct` fails, so snakemake polls with
`--slurm-status-command squeue`; the first status check comes after 1 s instead of 40 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
SNAKEMAKE_TIMEOUT = 300  # s per snakemake call; a snakemake stuck polling ignores SIGTERM

# The tiny sweep has two runs; the layer-wise one is killed mid-run.
KILLED = ("mnist5k", "mlp", "layerwise-ce", 0)
TINY = {
    "experiment": "slurm-test",
    "output_root": "results",
    "device": "auto",
    "datasets": ["mnist5k"],
    "archs": ["mlp"],
    "modes": ["e2e", "layerwise-ce"],
    "seeds": [0],
    "training": {"epochs": 4, "batch_size": 128, "train_eval_size": 500, "eval_batch_size": 500},
    "snapshots": {"every": 2, "probe_size": 200},
    "hsic": {"batch_size": 100},
}
TABLES = ["metrics.parquet", "hsic.parquet"]
KEYS = ["dataset", "arch", "mode", "seed", "epoch", "split", "layer", "estimator"]


def _run_dir(run) -> str:
    dataset, arch, mode, seed = run
    return f"{dataset}/{arch}/{mode}/seed{seed}"


def _cluster_problem() -> str | None:
    """Why the SLURM tests cannot run here, or None when a usable cluster answers."""
    if shutil.which("sinfo") is None:
        return "no SLURM cluster: `sinfo` not found (start one: `sudo tests/slurm/cluster.sh start`)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t %G"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "no SLURM cluster: `sinfo` did not answer within 30 s"
    if out.returncode != 0:
        return f"no SLURM cluster: `sinfo` failed ({out.stderr.strip()}); start one: `tests/slurm/cluster.sh start`"
    nodes = [line.split() for line in out.stdout.splitlines() if line.strip()]
    usable = [gres for state, gres in nodes if state in ("idle", "mix", "alloc", "comp")]
    if not usable:
        return f"SLURM cluster has no node accepting jobs (sinfo: {out.stdout.strip()!r})"
    if not any("gpu" in gres for gres in usable):
        return "SLURM cluster declares no `gpu` GRES: the profile's train/hsic jobs could not be scheduled"
    return None


_PROBLEM = _cluster_problem()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")]


def _env() -> dict[str, str]:
    """Jobs inherit this environment (sbatch --export=ALL): this repo's code and Python first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for name in ("INFOPLANE_SLURM_PARTITION", "INFOPLANE_SLURM_GPU_PARTITION", "INFOPLANE_SLURM_QOS"):
        env.pop(name, None)
    return env


def _slurm_args() -> list[str]:
    args = ["--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "10"]
    if subprocess.run(["sacct", "-n", "-X", "-o", "JobID"], capture_output=True).returncode != 0:
        args += ["--slurm-status-command", "squeue"]  # no slurmdbd: sacct cannot see any job
    return args


def _snakemake(workdir: Path, *args: str, env=None, background=False):
    """`snakemake` of this repo on `tiny.yaml` in `workdir`, killed (SIGKILL) after SNAKEMAKE_TIMEOUT."""
    cmd = [
        "timeout", "-s", "KILL", str(SNAKEMAKE_TIMEOUT),
        sys.executable, "-m", "snakemake", *[f"results/tables/{t}" for t in TABLES],
        "--snakefile", str(REPO / "Snakefile"), "--configfile", "tiny.yaml", "--nocolor", *args,
    ]  # fmt: skip
    log = open(workdir / f"snakemake-{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen(cmd, cwd=workdir, env=env or _env(), stdout=log, stderr=subprocess.STDOUT, text=True)
    if background:
        return proc, log
    proc.wait()
    log.seek(0)
    return proc.returncode, log.read()


def _finish(proc, log) -> tuple[int, str]:
    proc.wait()
    log.seek(0)
    return proc.returncode, log.read()


def _tables(workdir: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for name in TABLES:
        df = pd.read_parquet(workdir / "results" / "tables" / name)
        tables[name] = df.sort_values([c for c in KEYS if c in df.columns]).reset_index(drop=True)
    return tables


def _profile_threads() -> list[str]:
    """The profile's per-rule threads, so the local run computes with the same thread counts."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    return [f"{rule}={n}" for rule, n in profile.get("set-threads", {}).items()]


def _checkpoint_epoch(path: Path) -> int | None:
    from infoplane import io

    try:
        return int(io.torch_load(path)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError, KeyError):
        return None


def _slurm_job_in_log(path: Path) -> int | None:
    found = re.findall(r"SLURM job (\d+)", path.read_text()) if path.exists() else []
    return int(found[-1]) if found else None


def _submitted(output: str) -> set[int]:
    return {int(j) for j in re.findall(r"submitted with SLURM jobid (\d+)", output)}


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    dirs = {}
    for name in ("local", "slurm"):
        d = root / name
        d.mkdir()
        (d / "tiny.yaml").write_text(yaml.safe_dump(TINY))
        dirs[name] = d
    return dirs


def test_sweep_on_slurm_survives_scancel_and_equals_local_run(workdirs):
    work = workdirs["slurm"]
    killed = _run_dir(KILLED)
    checkpoint = work / "results" / "checkpoints" / killed / "state.pt"
    train_log = work / "results" / "logs" / "train" / f"{killed}.log"

    # 1. Submit the sweep; once the layer-wise run has a checkpoint, scancel its train job.
    proc, log = _snakemake(work, *_slurm_args(), "--retries", "0", background=True)
    job = epoch = None
    deadline = time.monotonic() + SNAKEMAKE_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        job = _slurm_job_in_log(train_log)
        epoch = _checkpoint_epoch(checkpoint)
        if job is not None and epoch is not None and epoch >= 1:
            subprocess.run(["scancel", str(job)], check=True)
            break
        time.sleep(0.2)
    code, first = _finish(proc, log)
    assert job is not None and epoch is not None, f"the killed run's train job never checkpointed:\n{first[-3000:]}"
    assert code != 0, "snakemake should fail: its train job was cancelled"
    assert re.search(rf"slurm_logs/rule_train/\S*/{job}\.log", first), "the failed job's SLURM log path is printed"
    cut = _checkpoint_epoch(checkpoint)
    assert 1 <= cut < TINY["training"]["epochs"], f"killed after the run finished (checkpoint epoch {cut})"

    # 2. Run again: the sweep completes, and the killed run continues from its checkpoint.
    code, second = _snakemake(work, *_slurm_args())
    assert code == 0, second[-4000:]
    resumed = re.search(r"resum\w* .* epoch (\d+)", train_log.read_text())
    assert resumed and int(resumed.group(1)) >= cut, f"train did not resume:\n{train_log.read_text()[-2000:]}"

    # 3. Every train and hsic job ran inside a SLURM job that snakemake submitted.
    submitted = _submitted(first) | _submitted(second)
    runs = [("mnist5k", "mlp", mode, 0) for mode in TINY["modes"]]
    for run in runs:
        for stage in ("train", "hsic"):
            in_job = _slurm_job_in_log(work / "results" / "logs" / stage / f"{_run_dir(run)}.log")
            assert in_job in submitted, f"{stage} of {run} did not run in a submitted SLURM job ({in_job})"
    assert _slurm_job_in_log(train_log) != job, "the resumed train ran in a new SLURM job"

    # 4. Same tables as a local run of the same config with the same thread counts.
    local = workdirs["local"]
    code, out = _snakemake(local, "--cores", "2", "--set-threads", *_profile_threads())
    assert code == 0, out[-4000:]
    for run in runs:
        assert _slurm_job_in_log(local / "results" / "logs" / "train" / f"{_run_dir(run)}.log") is None
    slurm_tables, local_tables = _tables(work), _tables(local)
    for name in TABLES:
        assert len(slurm_tables[name]) > 0
        pd.testing.assert_frame_equal(slurm_tables[name], local_tables[name], check_exact=True)


def test_unknown_partition_is_a_clear_error(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    env = _env()
    env["INFOPLANE_SLURM_PARTITION"] = "no_such_partition"
    code, out = _snakemake(tmp_path, *_slurm_args(), "--retries", "0", env=env)
    assert code != 0
    assert "no_such_partition" in out and re.search(r"invalid partition", out, re.IGNORECASE), out[-3000:]
    assert not (tmp_path / "results" / "data").exists(), "nothing should have run"
