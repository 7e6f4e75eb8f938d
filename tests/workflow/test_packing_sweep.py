"""The local profile packs GPU jobs by memory, checked on the CPU with a fake GPU (INFOPLANE_GPUS /
INFOPLANE_GPU_MEM_MB): the dry run shows every GPU job asking for its estimate, and a real tiny
run under a cap that fits one train but not two never runs two trains at once, yet runs a train
beside a smaller job."""

from __future__ import annotations

import re
import subprocess

import pytest

from sweep import REPO, TINY, env, snakemake_cmd, write_config

from infoplane import packing

pytestmark = pytest.mark.workflow
PROFILE = ["--workflow-profile", str(REPO / "workflow" / "profiles" / "default")]
GPU_RULES = ("train", "dependence", "probe")


def _run(workdir, configfile, *args, gpu_mem_mb: int, timeout: float = 900):
    environ = env() | {"INFOPLANE_GPUS": "1", "INFOPLANE_GPU_MEM_MB": str(gpu_mem_mb)}
    return subprocess.run(snakemake_cmd(workdir, configfile, *PROFILE, *args), cwd=workdir, env=environ,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def max_concurrent(log: str, rules) -> int:
    """Most jobs of `rules` running at once, from snakemake's job-start and job-finish lines."""
    running: set[str] = set()
    most = 0
    rule = None
    for line in log.splitlines():
        if m := re.match(r"^\s*(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif (m := re.match(r"^\s*jobid: (\d+)", line)) and rule in rules:
            running.add(m.group(1))
            most = max(most, len(running))
            rule = None
        elif m := re.match(r"^Finished jobid: (\d+)", line):
            running.discard(m.group(1))
    return most


def test_dry_run_asks_each_gpu_job_for_its_estimate(tmp_path):
    config = TINY | {"device": "cuda", "archs": ["mlp", "lenet5"]}
    configfile = write_config(tmp_path, config)
    done = _run(tmp_path, configfile, "-n", "--cores", "16", gpu_mem_mb=143771)
    assert done.returncode == 0, done.stderr[-3000:]
    asked = []
    for block in done.stdout.split("\n\n"):  # one job per block: rule, wildcards, resources
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        run = re.search(r"wildcards: dataset=(\w+), arch=(\w+), mode=([\w-]+)", block)
        mb = re.search(r"gpu_mem_mb=(\d+)", block)
        if rule and rule.group(1) in GPU_RULES:
            asked.append((rule.group(1), *run.groups(), mb.group(1)))
    assert len(asked) == 3 * 2 * len(config["modes"])
    for stage, dataset, arch, mode, mb in asked:
        assert int(mb) == packing.job_gpu_mem_mb(stage, config | {"training": TINY["training"]}, dataset, arch, mode)


def test_cpu_device_asks_for_no_gpu_memory(tmp_path):
    configfile = write_config(tmp_path, TINY)
    done = _run(tmp_path, configfile, "-n", "--cores", "2", gpu_mem_mb=1000)
    assert done.returncode == 0, done.stderr[-3000:]
    mem = re.findall(r"gpu_mem_mb=(\d+)", done.stdout)
    assert mem and set(mem) == {"0"}


def test_real_run_never_exceeds_the_gpu_memory_cap(tmp_path):
    """Cap 1300 MiB (90 % of a fake 1445 MiB GPU); a train asks for 1000, the others for 300:
    two trains never run together, while a train and a measurement job do."""
    configfile = write_config(tmp_path, TINY)
    sizes = {"train": 1000, "dependence": 300, "probe": 300}
    done = _run(tmp_path, configfile, "--cores", "2", "--set-resources",
                *[f"{rule}:gpu_mem_mb={mb}" for rule, mb in sizes.items()], gpu_mem_mb=1445)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    log = done.stdout + done.stderr
    assert max_concurrent(log, ("train",)) == 1
    assert max_concurrent(log, GPU_RULES) == 2
