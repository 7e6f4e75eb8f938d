"""Helpers to run the real snakemake CLI on tiny configs in temporary directories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: The tiny sweep (.test/config.yaml): 1,000 training images, 2 epochs, 256 eval samples.
TINY = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())


def results(workdir: Path, config: dict | None = None) -> Path:
    """The output root of a sweep run in `workdir`."""
    return Path(workdir) / (config or TINY)["output_root"]


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
