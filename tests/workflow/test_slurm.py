"""The sweep on a live SLURM cluster through `snakemake --profile workflow/profiles/slurm`.

Needs a running cluster whose nodes declare a `gpu` GRES, e.g. the single-node one of
`tests/slurm/cluster.sh start` (which `.ci/run` brings up); skipped otherwise.

The tables of a tiny sweep (two runs) are made by submitting jobs; while one run trains, its job is killed with
`scancel` after its first checkpoint. Then snakemake is run again and must finish the
sweep from that checkpoint. Checked: every train, dependence and probe job ran inside a SLURM job that
snakemake submitted, the runs (small: MLP) shared cluster jobs through the profile's job group
`small_runs`, the killed run resumed (not restarted), and the tables equal those of
a local run of the same config. A second, fast test checks that an unknown partition
stops the sweep with SLURM's own message.

Test-only flags: without slurmdbd (as in cluster.sh) `sacct` fails, so snakemake polls with
`--slurm-status-command squeue`; the first status check comes after 1 s instead of 40 s.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sweep import BIN, REPO, TINY, env, write_config

from infoplane import contracts
from infoplane.contracts import Run

PROFILE = REPO / "workflow" / "profiles" / "slurm"
SNAKEMAKE_TIMEOUT = 600  # s per snakemake call; a snakemake stuck polling ignores SIGTERM

# Two runs (mlp, e2e and layer-wise) on 1,000 training images, one of which is killed after
# its first epoch: 3 more epochs leave time to hit the job before it finishes.
CONFIG = copy.deepcopy(TINY) | {
    "experiment": "slurm-test",
    "output_root": "results",
    "training": {"epochs": 4, "batch_size": 64, "train_eval_size": 500},
    "snapshots": {"every": 2, "eval_size": 256},
}
RUNS = [Run("mnist5k", "mlp", mode, 0) for mode in CONFIG["modes"]]
STAGES = ["train", "dependence", "probe"]  # the rules that run on GPU nodes, one job per run each


def _log(results: Path, stage: str, run: Run) -> Path:
    return contracts.path("log", results, stage=stage, job=run.path)


def _cluster_problem() -> str | None:
    """Why the SLURM tests cannot run here, or None when a usable cluster answers."""
    if shutil.which("sinfo") is None:
        return "no SLURM cluster: `sinfo` not found (start one: `sudo tests/slurm/cluster.sh start`)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t %G"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "no SLURM cluster: `sinfo` did not answer within 30 s"
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or ["no message"])[-1]
        return f"no SLURM cluster: `sinfo` failed ({why}); start one: `tests/slurm/cluster.sh start`"
    nodes = [line.split() for line in out.stdout.splitlines() if line.strip()]
    usable = [gres for state, gres in nodes if state in ("idle", "mix", "alloc", "comp")]
    if not usable:
        return f"SLURM cluster has no node accepting jobs (sinfo: {out.stdout.strip()!r})"
    if not any("gpu" in gres for gres in usable):
        return "SLURM cluster declares no `gpu` GRES: the profile's train/dependence jobs could not be scheduled"
    return None


_PROBLEM = _cluster_problem()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")]


def _env(**extra: str) -> dict[str, str]:
    """The test environment (jobs inherit it: sbatch --export=ALL), without partition overrides."""
    environ = {k: v for k, v in env().items() if not k.startswith("INFOPLANE_SLURM_")}
    return environ | extra


def _slurm_args() -> list[str]:
    # --cores 2: a cluster job of a group fits the test node's 2 CPUs (its jobs run in layers)
    args = ["--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "10",
            "--cores", "2"]  # fmt: skip
    if subprocess.run(["sacct", "-n", "-X", "-o", "JobID"], capture_output=True).returncode != 0:
        args += ["--slurm-status-command", "squeue"]  # no slurmdbd: sacct cannot see any job
    return args


def _snakemake(workdir: Path, *args: str, environ=None, background=False):
    """This repo's snakemake making the tables of config.yaml in `workdir`; SIGKILLed after SNAKEMAKE_TIMEOUT."""
    cmd = [
        "timeout", "-s", "KILL", str(SNAKEMAKE_TIMEOUT), str(BIN / "snakemake"),
        *[str(contracts.path("table", "results", table=name)) for name in contracts.TABLES],  # before the options
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", "config.yaml", *args,
    ]  # fmt: skip
    log = open(workdir / f"snakemake-{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=environ or _env(), stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    _STARTED.append(proc)
    return (proc, log) if background else _finish(proc, log)


def _finish(proc, log) -> tuple[int, str]:
    proc.wait()
    with log:
        log.seek(0)
        return proc.returncode, log.read()


_STARTED: list[subprocess.Popen] = []  # snakemake processes, killed at teardown if still running


def _tables(workdir: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for name, table in contracts.TABLES.items():
        tables[name] = table.read(contracts.path("table", workdir / "results", table=name))
    return tables


def _profile_threads() -> list[str]:
    """The profile's per-rule threads, so the local run computes with the same thread counts."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    return [f"{rule}={n}" for rule, n in profile.get("set-threads", {}).items()]


def _checkpoint_epoch(path: Path) -> int | None:
    from infoplane import io

    try:
        return int(io.torch_load(path)["epoch"])
    except Exception:  # not written yet (or being replaced right now)
        return None


def _slurm_job_in_log(path: Path) -> int | None:
    found = re.findall(r"SLURM job (\d+)", path.read_text()) if path.exists() else []
    return int(found[-1]) if found else None


def _submitted(output: str) -> set[int]:
    return {int(j) for j in re.findall(r"submitted with SLURM jobid (\d+)", output)}


def _cancel_jobs_under(folder: Path) -> None:
    """scancel this test's jobs that are still queued or running (snakemake killed by the timeout)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True).stdout
    jobs = [job for job, workdir in (line.split(maxsplit=1) for line in out.splitlines() if " " in line)
            if Path(workdir).is_relative_to(folder)]  # fmt: skip
    if jobs:
        subprocess.run(["scancel", *jobs])


@pytest.fixture
def workdirs(tmp_path):
    dirs = {name: tmp_path / name for name in ("local", "slurm")}
    for workdir in dirs.values():
        write_config(workdir, CONFIG, "config.yaml")
    yield dirs
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:  # a failed assertion left it running: kill `timeout` and snakemake
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _cancel_jobs_under(tmp_path)


def test_sweep_on_slurm_survives_scancel_and_equals_local_run(workdirs):
    work = workdirs["slurm"]
    results = work / "results"
    started = time.monotonic()

    # 1. Submit the sweep; the first train job to write a checkpoint after epoch 1 is scancelled.
    proc, log = _snakemake(work, *_slurm_args(), "--retries", "0", background=True)
    killed = job = None
    deadline = time.monotonic() + SNAKEMAKE_TIMEOUT
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        for run in RUNS:
            job = _slurm_job_in_log(_log(results, "train", run))
            epoch = _checkpoint_epoch(contracts.path("checkpoint", results, run=run))
            if job is not None and epoch is not None and epoch >= 1:
                subprocess.run(["scancel", str(job)], check=True)
                killed = run
                break
        time.sleep(0.1)
    code, first = _finish(proc, log)
    print(f"first slurm run (until scancel and exit): {time.monotonic() - started:.0f} s")
    assert killed is not None, f"no train job was caught between two checkpoints:\n{first[-3000:]}"
    assert code != 0, "snakemake should fail: a train job was cancelled"
    # a grouped job logs under slurm_logs/group_<group>/, a single one under slurm_logs/rule_<rule>/
    assert re.search(rf"slurm_logs/\S*/{job}\.log", first), "the failed job's SLURM log path is printed"
    checkpoint = contracts.path("checkpoint", results, run=killed)
    train_log = _log(results, "train", killed)
    cut = _checkpoint_epoch(checkpoint)
    assert 1 <= cut < CONFIG["training"]["epochs"], f"killed after the run finished (checkpoint epoch {cut})"
    assert not contracts.path("metrics", results, run=killed).exists()

    # 2. Run again: the sweep completes, and the killed run continues from its checkpoint.
    # Meanwhile the same config runs locally, for step 4 (most of step 2 is waiting on SLURM).
    started = time.monotonic()
    local = workdirs["local"]
    local_run = _snakemake(local, "--cores", "2", "--set-threads", *_profile_threads(), background=True)
    code, second = _snakemake(work, *_slurm_args())
    print(f"second slurm run (resume and finish): {time.monotonic() - started:.0f} s")
    assert code == 0, second[-4000:]
    resumed = re.search(r"resum\w* .* epoch (\d+)", train_log.read_text())
    assert resumed and int(resumed.group(1)) >= cut, f"train did not resume:\n{train_log.read_text()[-2000:]}"

    # 3. Every train, hsic and probe job ran inside a SLURM job that snakemake submitted.
    submitted = _submitted(first) | _submitted(second)
    for run in RUNS:
        for stage in STAGES:
            in_job = _slurm_job_in_log(_log(work / "results", stage, run))
            assert in_job in submitted, f"{stage} of {run} did not run in a submitted SLURM job ({in_job})"
    assert _slurm_job_in_log(train_log) != job, "the resumed train ran in a new SLURM job"

    # 3b. The runs are small (MLP): their jobs shared cluster jobs (the profile's group small_runs).
    # Ungrouped, the 6 jobs would have taken 4 cluster jobs (2 trains, 2 measure pairs) at least;
    # grouped, one per snakemake call: the resumed run's train, dependence and probe in one, with
    # jobs of the other run.
    hosts = {(stage, run): _slurm_job_in_log(_log(results, stage, run)) for stage in STAGES for run in RUNS}
    print("SLURM job of each rule job:", {f"{stage} {run.mode}": j for (stage, run), j in hosts.items()})
    assert len(set(hosts.values())) <= 2, f"jobs of small runs did not share allocations: {hosts}"
    assert hosts[("train", killed)] == hosts[("dependence", killed)] == hosts[("probe", killed)]
    other = next(run for run in RUNS if run != killed)
    assert hosts[("train", killed)] in {hosts[(stage, other)] for stage in STAGES}, hosts

    # 4. Same tables as a local run of the same config with the same thread counts.
    code, out = _finish(*local_run)
    print(f"local run finished after {time.monotonic() - started:.0f} s")
    assert code == 0, out[-4000:]
    for run in RUNS:
        assert _slurm_job_in_log(_log(local / "results", "train", run)) is None
    slurm_tables, local_tables = _tables(work), _tables(local)
    for name in contracts.TABLES:
        assert len(slurm_tables[name]) > 0
        pd.testing.assert_frame_equal(slurm_tables[name], local_tables[name], check_exact=True)


def test_unknown_partition_is_a_clear_error(tmp_path):
    # ResNet18: a large run, whose train job is submitted alone. (Snakemake reports a failed
    # submission of a grouped job as "Error in group ..." without the executor's message.)
    write_config(tmp_path, CONFIG | {"archs": ["resnet18"]}, "config.yaml")
    environ = _env(INFOPLANE_SLURM_PARTITION="no_such_partition")
    code, out = _snakemake(tmp_path, *_slurm_args(), "--retries", "0", environ=environ)
    assert code != 0
    assert re.search(r"invalid partition.*no_such_partition|no_such_partition.*invalid partition", out, re.I | re.S)
    assert not (tmp_path / "results" / "train").exists(), "no train job should have run"
