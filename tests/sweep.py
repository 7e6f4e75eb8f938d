"""Helpers to run the real snakemake CLI on tiny configs in temporary directories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: A sweep small enough for the test suite: 1,000 training images, 2 epochs, 256 probe samples.
TINY = {
    "experiment": "tiny",
    "datasets": ["mnist5k"],
    "archs": ["mlp"],
    "modes": ["e2e", "layerwise-ce"],
    "seeds": [0],
    "device": "cpu",
    "data": {"train_limit": 1000},
    "training": {"epochs": 2, "batch_size": 64},
    "snapshots": {"every": 1, "probe_size": 256},
}


def write_config(workdir: Path, config: dict, name: str = "tiny.yaml") -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    path.write_text(yaml.safe_dump(config))
    return path


def env() -> dict:
    """The test's environment with this venv first on PATH and this checkout's src importable."""
    environ = dict(os.environ)
    environ["PATH"] = f"{BIN}{os.pathsep}{environ.get('PATH', '')}"
    environ["PYTHONPATH"] = f"{REPO / 'src'}{os.pathsep}{environ.get('PYTHONPATH', '')}"
    return environ


def snakemake_cmd(workdir: Path, configfile: Path, *args: str) -> list[str]:
    return [
        str(BIN / "snakemake"),
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(configfile),
        *args,
    ]


def snakemake(workdir: Path, configfile: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_cmd(workdir, configfile, *args),
        cwd=workdir, env=env(), capture_output=True, text=True, timeout=timeout,
    )
